"""The prewarm loader for Python mini-programs (the daemon runs it, never a program):

    python3 -s -B /sdk/python/miniapp_loader.py /app/main.py      (MINIAPP_PREWARM=1)

A prewarmed worker is made ahead of its program's launch: the interpreter starts, the SDK is
imported and the entry point's source is compiled here (compiling runs none of it), then this
loader blocks on the Bridge until the daemon releases the worker with the event
``lifecycle.launch`` (``{"args": [...]}``), and only then runs the entry point as ``__main__``
with ``sys.argv = [entry] + args`` and ``sys.path[0]`` its directory, as
``python3 /app/main.py args…`` would. Exactly the event's line is read from the socket: anything
after it is left for the program's Bridge.
"""

import os
import socket
import sys

import miniapp_bridge  # noqa: F401  (loaded now: that is what prewarming is for)

LAUNCH_EVENT = "lifecycle.launch"


def _read_line(sock):
    """One line from the socket (without its newline), consuming nothing after it; None on EOF."""
    line = b""
    while True:
        peek = sock.recv(65536, socket.MSG_PEEK)
        if not peek:
            return None
        nl = peek.find(b"\n")
        if nl >= 0:
            return line + sock.recv(nl + 1)[:-1]
        line += sock.recv(len(peek))


def await_launch(fd):
    """Blocks until the daemon's launch event; returns its args. Exits quietly when the daemon
    closes the Bridge first (the prewarmed worker was dropped)."""
    import json

    sock = socket.socket(fileno=fd)
    try:
        while True:
            raw = _read_line(sock)
            if raw is None:
                sys.exit(0)
            try:
                message = json.loads(raw)
            except ValueError:
                continue
            if not isinstance(message, dict):
                continue
            params = message.get("params")
            if message.get("method") == "event" and isinstance(params, dict) and params.get("name") == LAUNCH_EVENT:
                args = (params.get("data") or {}).get("args") or []
                return [a for a in args if isinstance(a, str)]
    finally:
        sock.detach()  # the fd stays open for the program's Bridge


def compile_entry(entry):
    """The entry point's code object, or None when it cannot be read or compiled: the launch
    then runs it with runpy, which reports the error as a direct start would."""
    try:
        with open(entry, "rb") as f:
            return compile(f.read(), entry, "exec", dont_inherit=True)
    except (OSError, SyntaxError, ValueError):
        return None


def run_as_main(entry, code):
    """Runs `code` as the module ``__main__`` (the globals runpy.run_path gives a script)."""
    if code is None:
        import runpy

        runpy.run_path(entry, run_name="__main__")
        return
    module = type(sys)("__main__")
    module.__dict__.update(__file__=entry, __cached__=None, __loader__=None, __package__=None, __spec__=None)
    sys.modules["__main__"] = module
    exec(code, module.__dict__)


def main():
    if len(sys.argv) < 2:
        sys.exit("usage: miniapp_loader.py ENTRY (run by miniappd for prewarmed workers)")
    entry = sys.argv[1]
    code = compile_entry(entry)
    args = await_launch(int(os.environ.get("MINIAPP_BRIDGE_FD", "3")))
    os.environ.pop("MINIAPP_PREWARM", None)
    sys.argv = [entry] + args
    sys.path[0] = os.path.dirname(entry)
    run_as_main(entry, code)


if __name__ == "__main__":
    main()
