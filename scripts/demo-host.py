#!/usr/bin/env python3
"""A small host runtime for the demo, on the repo's host library (Sources/HostSDK/python,
`miniapp_host`): it sets the user session, serves `payment.pay` as a Bridge provider, subscribes
to the Bridge Inspector, installs and launches the demo program, prints what happens, and
returns when the program exits."""
import asyncio
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "Sources", "HostSDK", "python"))
import miniapp_host  # noqa: E402


async def pay(call: miniapp_host.Call) -> dict:
    p = call.params
    print(f"[host] payment.pay for {call.program['id']} ({call.worker_id}): {p.get('amount')} {p.get('currency')}")
    return {"transactionId": "tx-demo-1"}


async def main(sock_path: str, package: str) -> int:
    host = await miniapp_host.connect(sock_path)
    try:
        info = await host.daemon_info()
        print(f"[host] connected to miniappd {info.get('version')} (mode {info.get('mode')}, cgroups {info.get('cgroups')})")
        await host.set_session("user-42", {"tier": "gold"})
        await host.provide(["payment.pay"], pay)
        notes = host.notifications()  # before the launch: program.exited may come first
        await host.subscribe_inspector()
        inst = await host.install(package)
        print(f"[host] installed {inst['id']} {inst['version']}")
        launched = await host.launch(inst["id"])
        print(f"[host] launched {launched['workerId']} pid {launched['pid']}")
        return await asyncio.wait_for(watch(notes, launched["workerId"]), 60)
    except asyncio.TimeoutError:
        print("[host] timed out waiting for the program")
        return 1
    except miniapp_host.HostError as e:
        print(f"[host] {e.code} {e.message}")
        return 1
    finally:
        await host.close()


async def watch(notes, worker_id: str) -> int:
    async for n in notes:
        p = n.params
        if n.method == "inspector.event":
            code = f" {p['code']}" if p.get("code") else ""
            print(f"[inspector] {p['workerId']} {p['method']:<16} {p['decision']}{code} {p['micros']}us")
        elif n.method == "program.exited" and p["workerId"] == worker_id:
            print(f"[host] {p['workerId']} exited: status {p['status']} ({p['reason']})")
            return 0 if p["status"] == 0 else 1
    return 1


if __name__ == "__main__":
    sys.exit(asyncio.run(main(sys.argv[1], sys.argv[2])))
