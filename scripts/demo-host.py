#!/usr/bin/env python3
"""A small host runtime for the demo: speaks the control API (spec/control-api.md) over the
daemon's Unix socket with nothing but the standard library. It sets the user session, serves
`payment.pay` as a Bridge provider, subscribes to the Bridge Inspector, installs and launches the
demo program, prints what happens, and returns when the program exits."""
import json, socket, sys, time

class Control:
    def __init__(self, path):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.connect(path)
        self.buf, self.next_id, self.inbox = b"", 1, []

    def send(self, msg):
        self.sock.sendall(json.dumps(msg, separators=(",", ":")).encode() + b"\n")

    def read(self):
        while b"\n" not in self.buf:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise SystemExit("demo-host: the daemon closed the connection")
            self.buf += chunk
        line, self.buf = self.buf.split(b"\n", 1)
        return json.loads(line)

    def call(self, method, params=None):
        rid = self.next_id; self.next_id += 1
        self.send({"jsonrpc": "2.0", "id": rid, "method": method, "params": params or {}})
        while True:
            msg = self.read()
            if msg.get("id") == rid and "method" not in msg:
                if "error" in msg:
                    raise SystemExit(f"demo-host: {method} failed: {msg['error']}")
                return msg["result"]
            self.inbox.append(msg)

    def events(self):
        while True:
            yield self.inbox.pop(0) if self.inbox else self.read()

def main(sock_path, package):
    c = Control(sock_path)
    info = c.call("daemon.info")
    print(f"[host] connected to miniappd {info.get('version')} (mode {info.get('mode')}, cgroups {info.get('cgroups')})")
    c.call("session.set", {"userId": "user-42", "claims": {"tier": "gold"}})
    c.call("bridge.provide", {"methods": ["payment.pay"]})
    c.call("inspector.subscribe", {})
    inst = c.call("packages.install", {"path": package})
    print(f"[host] installed {inst['id']} {inst['version']}")
    launched = c.call("programs.launch", {"id": inst["id"]})
    print(f"[host] launched {launched['workerId']} pid {launched['pid']}")
    deadline = time.time() + 60
    for msg in c.events():
        method, params = msg.get("method"), msg.get("params", {})
        if method == "inspector.event":
            code = f" {params['code']}" if params.get("code") else ""
            print(f"[inspector] {params['workerId']} {params['method']:<16} {params['decision']}{code} {params['micros']}us")
        elif method == "bridge.call":
            inner = params["params"]
            print(f"[host] payment.pay for {params['program']['id']}: {inner.get('amount')} {inner.get('currency')}")
            c.send({"jsonrpc": "2.0", "id": msg["id"], "result": {"transactionId": "tx-demo-1"}})
        elif method == "program.exited":
            print(f"[host] {params['workerId']} exited: status {params['status']} ({params['reason']})")
            return 0 if params["status"] == 0 else 1
        if time.time() > deadline:
            print("[host] timed out waiting for the program"); return 1

if __name__ == "__main__":
    sys.exit(main(sys.argv[1], sys.argv[2]))
