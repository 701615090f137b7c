"""miniapp_host against a real miniappd with real jailed programs, and against a fake daemon
that misbehaves. Run by the Swift suite HostSDKLanguageTests, which builds the world and passes
it in the environment: MINIAPPD, MINIAPP_POLICY_DIR, MINIAPP_PAY_ZIP/_ID, MINIAPP_STUBBORN_ZIP/_ID,
MINIAPP_WORK_DIR. Exits 0 when every check passed."""
import asyncio
import json
import os
import signal
import subprocess
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
import miniapp_host  # noqa: E402
from miniapp_host import HostError  # noqa: E402

ENV = os.environ
WORK = ENV.get("MINIAPP_WORK_DIR", "/tmp")
SOCK = os.path.join(WORK, "py.sock")
STATE = os.path.join(WORK, "py-state")


class Daemon:
    """A miniappd on SOCK and STATE, started and stopped by this script."""

    def __init__(self):
        self.log = open(os.path.join(WORK, "py-daemon.log"), "ab")
        self.proc = subprocess.Popen([ENV["MINIAPPD"], "--state-dir", STATE, "--control-socket", SOCK,
                                      "--policy-dir", ENV["MINIAPP_POLICY_DIR"]], stdout=self.log, stderr=self.log)

    async def ready(self):
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            assert self.proc.poll() is None, "miniappd exited early"
            try:
                probe = await miniapp_host.connect(SOCK, reconnect=False)
                await probe.call("daemon.info", timeout=2)
                await probe.close()
                return self
            except HostError:
                await asyncio.sleep(0.05)
        raise AssertionError("miniappd did not become ready")

    def stop(self, sig=signal.SIGTERM):
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            self.proc.wait(30)


async def exit_of(notes, worker_id, seconds=30):
    async def find():
        async for n in notes:
            if n.method == "program.exited" and n.params.get("workerId") == worker_id:
                return n.params
    return await asyncio.wait_for(find(), seconds)


def pay_handler(served):
    async def pay(call):
        served.append(call)
        return {"transactionId": "tx-" + call.params.get("orderId", "")}
    return pay


async def real_daemon_cases():
    daemon = await Daemon().ready()
    try:
        host = await miniapp_host.connect(SOCK, reconnect_initial=0.02, reconnect_max=0.2,
                                            max_reconnect_attempts=600)
        served = []
        await host.provide(["payment.pay"], pay_handler(served))
        notes = host.notifications()
        inst = await host.install(ENV["MINIAPP_PAY_ZIP"])
        assert inst["id"] == ENV["MINIAPP_PAY_ID"] and inst["active"] is True, inst
        info, launched = await asyncio.gather(host.daemon_info(), host.launch(ENV["MINIAPP_PAY_ID"], ["o-7"]))  # pipelined
        assert "version" in info
        exited = await exit_of(notes, launched["workerId"])
        assert exited["status"] == 0, exited
        call = served[0]
        assert call.program["id"] == ENV["MINIAPP_PAY_ID"] and call.method == "payment.pay", call
        assert call.worker_id == launched["workerId"] and call.params["orderId"] == "o-7", call
        try:
            await host.launch("com.e2e.absent")
            raise AssertionError("launch of an absent program succeeded")
        except HostError as e:
            assert e.code == "NOT_FOUND" and e.message, (e.code, e.message)
        print("ok install, launch, payment.pay served, program.exited")

        # The daemon gives up on a slow provider (payment.pay times out after 1.5 s): the
        # handler's task is cancelled, the program sees TIMEOUT.
        cancelled = []

        async def slow(call):
            try:
                await asyncio.sleep(30)
            except asyncio.CancelledError:
                cancelled.append(call.id)
                raise
            return {"transactionId": "late"}
        await host.provide(["payment.pay"], slow)
        launched = await host.launch(ENV["MINIAPP_PAY_ID"])
        exited = await exit_of(notes, launched["workerId"])
        assert exited["status"] == 4, exited
        for _ in range(100):
            if cancelled:
                break
            await asyncio.sleep(0.05)
        assert cancelled, "the handler was not cancelled"  # (the program may be restarted as a crash: >= 1)
        await host.provide(["payment.pay"], pay_handler(served))
        print("ok handler cancelled when the daemon times the call out")

        # Restart: the provider is registered again on the new daemon.
        daemon.stop()
        daemon = await Daemon().ready()
        async for n in notes:
            if n.method == "connection.restored":
                assert "error" not in n.params, n.params
                break
        launched = await host.launch(ENV["MINIAPP_PAY_ID"], ["o-9"])
        exited = await exit_of(notes, launched["workerId"])
        assert exited["status"] == 0, exited
        assert served[-1].params["orderId"] == "o-9"
        await host.close()
        print("ok provider re-registered after a daemon restart")

        # SIGKILL mid-call: the call fails HOST_UNAVAILABLE well within its timeout.
        host = await miniapp_host.connect(SOCK, reconnect=False)
        ready = asyncio.Event()

        async def toast(call):
            ready.set()  # the program ignores SIGTERM from now on
            return {}
        await host.provide(["ui.toast"], toast)
        await host.install(ENV["MINIAPP_STUBBORN_ZIP"])
        launched = await host.launch(ENV["MINIAPP_STUBBORN_ID"])
        await asyncio.wait_for(ready.wait(), 30)
        start = time.monotonic()
        stop = asyncio.ensure_future(host.stop(launched["workerId"], grace_millis=60000, timeout=20))
        await asyncio.sleep(0.5)
        daemon.stop(signal.SIGKILL)
        try:
            await stop
            raise AssertionError("programs.stop succeeded on a killed daemon")
        except HostError as e:
            assert e.code == "HOST_UNAVAILABLE", e
        assert time.monotonic() - start < 10
        try:
            await host.daemon_info()
            raise AssertionError("a call after the loss succeeded")
        except HostError as e:
            assert e.code == "HOST_UNAVAILABLE", e
        print("ok daemon killed mid-call: HOST_UNAVAILABLE within the timeout")
    finally:
        daemon.stop(signal.SIGKILL)


def rid(line):
    return json.dumps(json.loads(line).get("id"))


FAKE_CASES = [
    ("malformed line", lambda line: [b"this is not json"], "PARSE_ERROR"),
    ("array line", lambda line: [b"[1,2,3]"], "PARSE_ERROR"),
    ("reply to no request", lambda line: [b'{"jsonrpc":"2.0","id":777,"result":{}}'], "INVALID_REQUEST"),
    ("reply with a string id", lambda line: [b'{"jsonrpc":"2.0","id":"x","result":{}}'], "INVALID_REQUEST"),
    ("neither request nor response", lambda line: [b'{"jsonrpc":"2.0","id":1}'], "INVALID_REQUEST"),
    ("method not a string", lambda line: [b'{"jsonrpc":"2.0","method":5}'], "INVALID_REQUEST"),
    ("params not an object", lambda line: [b'{"jsonrpc":"2.0","method":"program.exited","params":[1]}'], "INVALID_REQUEST"),
    ("connection drop mid-call", lambda line: [None], "HOST_UNAVAILABLE"),
    ("null-id refusal", lambda line: [b'{"jsonrpc":"2.0","id":null,"error":{"code":-32014,"message":"no","data":{"code":"UNAUTHORIZED"}}}', None], "UNAUTHORIZED"),
    ("no answer", lambda line: [], "TIMEOUT"),
    ("the daemon's error", lambda line: [('{"jsonrpc":"2.0","id":%s,"error":{"code":-32010,"message":"gone","data":{"code":"NOT_FOUND"}}}' % rid(line)).encode()], "NOT_FOUND"),
]


async def fake_daemon(path, script, greeting=()):
    """A Unix socket server whose connections get script(line) -> lines (None closes)."""
    received = []

    async def session(reader, writer):
        for g in greeting:
            writer.write(g + b"\n")
        while True:
            try:
                line = await reader.readline()
            except (asyncio.CancelledError, ConnectionError):
                return
            if not line:
                break
            received.append(line)
            for out in script(line):
                if out is None:
                    writer.close()
                    return
                writer.write(out + b"\n")
        writer.close()
    server = await asyncio.start_unix_server(session, path)
    return server, received


async def fake_daemon_cases():
    path = os.path.join(WORK, "py-fake.sock")
    for name, script, code in FAKE_CASES:
        if os.path.exists(path):
            os.unlink(path)
        server, _ = await fake_daemon(path, script)
        host = await miniapp_host.connect(path, reconnect=False, call_timeout=1.0)
        start = time.monotonic()
        try:
            result = await host.call("daemon.info")
            raise AssertionError(f"{name}: expected {code}, got {result}")
        except HostError as e:
            assert e.code == code, (name, e.code, e.message)
        assert time.monotonic() - start < 5, name
        await host.close()
        server.close()
    print(f"ok {len(FAKE_CASES)} misbehaving-daemon cases give typed errors")

    os.unlink(path)
    server, _ = await fake_daemon(path, lambda line: [
        b'{"jsonrpc":"2.0","method":"something.new","params":{"x":1}}',
        ('{"jsonrpc":"2.0","id":%s,"result":{}}' % rid(line)).encode()])
    host = await miniapp_host.connect(path, reconnect=False)
    notes = host.notifications()
    await host.call("daemon.info")
    n = await asyncio.wait_for(notes.__anext__(), 5)
    assert n.method == "something.new" and n.params == {"x": 1}, n
    await host.close()
    server.close()
    print("ok an unknown notification is passed through")

    os.unlink(path)
    greeting = [b'{"jsonrpc":"2.0","id":"q-1","method":"host.reboot","params":{}}',
                b'{"jsonrpc":"2.0","id":"p-1","method":"bridge.call","params":{"method":"payment.pay","params":{},'
                b'"program":{"id":"a","version":"1"},"workerId":"w-1"}}']
    server, received = await fake_daemon(path, lambda line: [], greeting)
    host = await miniapp_host.connect(path, reconnect=False)
    for _ in range(100):
        if len(received) == 2:
            break
        await asyncio.sleep(0.05)
    answers = [json.loads(line) for line in received]
    assert [a["id"] for a in answers] == ["q-1", "p-1"], answers
    assert all(a["error"]["data"]["code"] == "METHOD_NOT_FOUND" for a in answers), answers
    await host.close()
    server.close()
    print("ok requests this host does not serve are refused METHOD_NOT_FOUND")


async def main():
    await fake_daemon_cases()
    if ENV.get("MINIAPPD"):
        await real_daemon_cases()


if __name__ == "__main__":
    asyncio.run(main())
    print("all passed")
