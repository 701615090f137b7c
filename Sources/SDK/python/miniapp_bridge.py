"""MiniAppBridge for Python mini-programs: JSON-RPC 2.0 over the Bridge socket (fd 3,
newline-delimited JSON; see spec/bridge-protocol.md).

    import miniapp_bridge as bridge

    value = bridge.call("storage.get", {"key": "k"})["value"]
    try:
        bridge.call("payment.pay", {"orderId": "o-1", "amount": 9.5, "currency": "USD"})
    except bridge.BridgeError as err:
        print(err.code, err.message)          # e.g. PERMISSION_DENIED
    bridge.on_event("lifecycle.show", lambda data: ...)

    # or, awaitable (the spec's promise/awaitable shape), in an asyncio program:
    value = (await bridge.aio.call("storage.get", {"key": "k"}))["value"]

- ``call`` blocks until its reply; it is thread-safe, and calls from several threads are
  pipelined on the one connection (replies are matched by id, in any order).
- ``aio.call`` is the same call as a coroutine on the same process-wide connection: many may
  be in flight (``asyncio.gather``), replies are matched by id. ``aio.on_event`` registers
  event callbacks, run on the event loop. A process uses ``call`` or ``aio``, not both: they
  would be two readers of the one socket (the second one used raises ``RuntimeError``).
  ``aio`` belongs to the first event loop that uses it (one ``asyncio.run`` per program).
- Events (``event`` notifications) are delivered to ``on_event`` callbacks on whichever thread
  is reading at the time: inside a ``call`` or in ``poll_events``.
- ``AsyncBridge`` is the class behind ``aio``, for an explicit fd: ``await AsyncBridge(fd).call(...)``.
- When the connection closes, calls raise ``BridgeError`` with code ``BRIDGE_CLOSED`` (an SDK
  code, never sent by the daemon).
- A request over the Bridge's message limit is refused here, before it is sent, with code
  ``MESSAGE_TOO_LARGE`` (the daemon would answer with an error it cannot match to the call, and
  close the connection). The limit comes from ``MINIAPP_BRIDGE_MAX_BYTES``, which the daemon
  sets in every worker (default 1 MiB, newline excluded).
- An error answer with id null (one the daemon could not match to a call) fails every call in
  flight with its code: the SDK cannot tell which call it answers, and failing them beats
  leaving one waiting forever.
- The fd comes from ``MINIAPP_BRIDGE_FD`` (default 3).
"""

# Start-up cost is a program's launch time: this module imports only what is built into the
# interpreter or already loaded by its own start (measured with `python3 -X importtime`).
# asyncio (ssl, concurrent.futures, logging, inspect: ~20 ms of CPU) and socket are imported
# where the awaitable API first runs; the blocking Bridge reads and writes the fd with os and
# select, locks with _thread (threading pulls in functools and collections), and speaks JSON
# through json's own C accelerator _json (the json package compiles regular expressions and
# builds enums at import: ~7 ms, more than the interpreter's whole start), falling back to json
# where _json is missing.
import _thread
import itertools
import os
import select

__all__ = ["BridgeError", "Bridge", "AsyncBridge", "call", "on_event", "poll_events", "default_bridge", "aio"]

_CODE_BY_NUMBER = {
    -32700: "PARSE_ERROR", -32600: "INVALID_REQUEST", -32601: "METHOD_NOT_FOUND",
    -32602: "INVALID_PARAMS", -32603: "INTERNAL", -32001: "PERMISSION_DENIED",
    -32002: "RATE_LIMITED", -32003: "QUOTA_EXCEEDED", -32004: "TIMEOUT",
    -32005: "HOST_UNAVAILABLE", -32006: "DOMAIN_NOT_ALLOWED", -32007: "MESSAGE_TOO_LARGE",
}


class BridgeError(Exception):
    """A failed call: ``code`` is the stable string of the spec's error table (``data.code``),
    ``message`` the daemon's explanation, ``rpc_code`` the JSON-RPC number, ``data`` the rest."""

    def __init__(self, code, message, rpc_code=-32603, data=None):
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message
        self.rpc_code = rpc_code
        self.data = data

    @classmethod
    def from_wire(cls, error):
        e = error if isinstance(error, dict) else {}
        data = e.get("data") if isinstance(e.get("data"), dict) else None
        number = e.get("code") if type(e.get("code")) is int else -32603
        # A data.code that is missing, empty or not a string counts as absent: a program
        # branching on ``code`` never sees "" or a number.
        sent = (data or {}).get("code")
        code = sent if isinstance(sent, str) and sent else _CODE_BY_NUMBER.get(number, "INTERNAL")
        message = e.get("message") if isinstance(e.get("message"), str) else "bridge call failed"
        return cls(code, message, number, data)


def _closed():
    return BridgeError("BRIDGE_CLOSED", "the Bridge connection is closed")


DEFAULT_MAX_BYTES = 1 << 20


def _json_codec():
    """(dumps, loads) for the wire: compact, ASCII-only, no NaN; loads refuses trailing data."""
    try:
        import _json

        def no_default(o):
            raise TypeError(f"Object of type {type(o).__name__} is not JSON serializable")

        encode = _json.make_encoder(
            {}, no_default, _json.encode_basestring_ascii, None, ":", ",", False, False, False)

        class _Context:  # what _json's scanner reads from json.JSONDecoder
            strict = True
            object_hook = None
            object_pairs_hook = None
            parse_float = float
            parse_int = int
            memo = {}

            @staticmethod
            def parse_constant(name):
                raise ValueError(f"{name} is not JSON")

        scan = _json.make_scanner(_Context())
    except (ImportError, AttributeError, TypeError):
        import json
        return (lambda o: json.dumps(o, separators=(",", ":"), allow_nan=False),
                json.loads)

    def dumps(o):
        return "".join(encode(o, 0))

    def loads(raw):
        text = raw.decode("utf-8") if isinstance(raw, (bytes, bytearray)) else raw
        text = text.strip(" \t\r\n")
        try:
            value, end = scan(text, 0)
        except StopIteration:
            raise ValueError("not JSON") from None
        if end != len(text):
            raise ValueError("extra data after the JSON value")
        return value

    return dumps, loads


_dumps, _loads = _json_codec()


class _Condition:
    """threading.Condition's acquire/release/wait/notify_all, on _thread locks."""

    def __init__(self):
        self._lock = _thread.allocate_lock()
        self._waiters = []
        self.acquire = self._lock.acquire
        self.release = self._lock.release

    def __enter__(self):
        self._lock.acquire()
        return self

    def __exit__(self, *exc):
        self._lock.release()

    def wait(self):
        """Releases the lock until notify_all, then takes it again (the caller holds it)."""
        waiter = _thread.allocate_lock()
        waiter.acquire()
        self._waiters.append(waiter)
        self._lock.release()
        try:
            waiter.acquire()
        finally:
            self._lock.acquire()

    def notify_all(self):
        waiters, self._waiters = self._waiters, []
        for waiter in waiters:
            waiter.release()


def _env_max_bytes():
    """The message limit the daemon announced (MINIAPP_BRIDGE_MAX_BYTES), else 1 MiB."""
    try:
        n = int(os.environ.get("MINIAPP_BRIDGE_MAX_BYTES", ""))
    except ValueError:
        return DEFAULT_MAX_BYTES
    return n if n > 0 else DEFAULT_MAX_BYTES


def _is_unmatched_error(message):
    """An error answer the daemon could not match to a call (``"id": null``)."""
    return "id" in message and message["id"] is None and "error" in message


def _encode(request_id, method, params, max_bytes):
    if not isinstance(method, str) or not method:
        raise BridgeError("INVALID_REQUEST", "method must be a non-empty string", -32600)
    request = {"jsonrpc": "2.0", "id": request_id, "method": method}
    if params is not None:
        request["params"] = params
    try:
        # ensure_ascii keeps the line free of raw U+2028/U+2029; allow_nan=False: JSON has no NaN.
        line = _dumps(request).encode()
    except (TypeError, ValueError) as err:
        raise BridgeError("INVALID_PARAMS", f"params are not serializable: {err}", -32602) from None
    if len(line) > max_bytes:
        raise BridgeError(
            "MESSAGE_TOO_LARGE",
            f"{method}: the request is {len(line)} bytes; the Bridge limit is {max_bytes} "
            "(MINIAPP_BRIDGE_MAX_BYTES): send less per call",
            -32007, {"code": "MESSAGE_TOO_LARGE", "limit": max_bytes})
    return line + b"\n"


class _Events:
    def __init__(self):
        self._listeners = {}
        self._lock = _thread.allocate_lock()

    def add(self, name, callback):
        with self._lock:
            self._listeners.setdefault(name, []).append(callback)

    def dispatch(self, params):
        if not isinstance(params, dict) or not isinstance(params.get("name"), str):
            return
        name, data = params["name"], params.get("data")
        with self._lock:
            named = list(self._listeners.get(name, ()))
            wildcard = list(self._listeners.get("*", ()))
        for cb in named:
            cb(data)
        for cb in wildcard:
            cb(name, data)


class _Listening:
    """What ``Bridge`` and ``AsyncBridge`` share: the socket and limit they are given (or the
    worker's, from the environment), request ids, and event subscriptions."""

    def _attach(self, fd, max_bytes):
        self._fd = int(os.environ.get("MINIAPP_BRIDGE_FD", "3")) if fd is None else fd
        self.max_bytes = max_bytes or _env_max_bytes()
        self._ids = itertools.count(1)
        self._events = _Events()

    def on_event(self, name, callback):
        """``callback(data)`` for host event ``name``; ``"*"`` gets ``callback(name, data)``."""
        self._events.add(name, callback)

    def on_update_ready(self, callback):
        """``callback({"version": …})`` when the daemon staged a newer version of this program
        (it runs from the next launch; WeChat's ``onUpdateReady``)."""
        self._events.add("update.ready", callback)


def _result_of(message):
    """The ``result`` of an answer, or its error raised as ``BridgeError``."""
    if "error" in message:
        raise BridgeError.from_wire(message["error"])
    return message.get("result")


class Bridge(_Listening):
    """A blocking bridge over a connected stream socket (``fd``, default MINIAPP_BRIDGE_FD or 3).
    ``max_bytes``: the message limit (default MINIAPP_BRIDGE_MAX_BYTES or 1 MiB)."""

    def __init__(self, fd=None, max_bytes=None):
        self._attach(fd, max_bytes)
        self._pending = set()
        os.set_blocking(self._fd, True)
        self._send_lock = _thread.allocate_lock()
        self._cond = _Condition()
        self._results = {}
        self._reading = False
        self._closed = False
        self._buffer = b""

    def call(self, method, params=None):
        """Calls ``method``; returns its ``result`` or raises ``BridgeError``."""
        with self._cond:
            request_id = next(self._ids)
        line = _encode(request_id, method, params, self.max_bytes)
        with self._cond:
            self._pending.add(request_id)
        with self._send_lock:
            try:
                self._write_all(line)
            except OSError:
                with self._cond:
                    self._pending.discard(request_id)
                raise _closed() from None
        return _result_of(self._wait_for(request_id))

    def poll_events(self, timeout=None):
        """Reads and dispatches events for up to ``timeout`` seconds (None: until one arrives)."""
        with self._cond:
            if self._reading:
                return
            self._reading = True
        events = []
        try:
            ready, _, _ = select.select([self._fd], [], [], timeout)
            if ready:
                events = self._read_once()
        finally:
            with self._cond:
                self._reading = False
                self._cond.notify_all()
        self._dispatch(events)

    def _wait_for(self, request_id):
        with self._cond:
            try:
                return self._wait_locked(request_id)
            finally:
                self._pending.discard(request_id)

    def _wait_locked(self, request_id):
        """Waits for the reply (``self._cond`` held), reading the socket when nobody else is."""
        while request_id not in self._results:
            if self._closed:
                raise _closed()
            if self._reading:
                self._cond.wait()
                continue
            self._reading = True
            self._cond.release()
            events = []
            try:
                events = self._read_once()
            finally:
                self._cond.acquire()
                self._reading = False
                self._cond.notify_all()
            if events:
                # Callbacks run without the lock and with no read in progress, so a callback
                # may itself call the bridge.
                self._cond.release()
                try:
                    self._dispatch(events)
                finally:
                    self._cond.acquire()
        return self._results.pop(request_id)

    def _dispatch(self, events):
        for params in events:
            self._events.dispatch(params)

    def _read_once(self):
        """One recv: stores replies, returns the event params received (not yet dispatched)."""
        try:
            chunk = os.read(self._fd, 65536)
        except OSError:
            chunk = b""
        if not chunk:
            with self._cond:
                self._closed = True
            return []
        self._buffer += chunk
        *lines, self._buffer = self._buffer.split(b"\n")
        events = []
        for raw in lines:
            event = self._handle_line(raw)
            if event is not None:
                events.append(event)
        return events

    def _handle_line(self, raw):
        if not raw.strip():
            return None
        try:
            message = _loads(raw)
        except (ValueError, UnicodeDecodeError, RecursionError):
            return None
        if not isinstance(message, dict):
            return None
        if _is_unmatched_error(message):
            with self._cond:
                for request_id in self._pending:
                    self._results.setdefault(request_id, message)
            return None
        if message.get("id") is not None:
            with self._cond:
                if message["id"] in self._pending:
                    self._results[message["id"]] = message
            return None
        if message.get("method") == "event":
            return message.get("params")
        return None

    def fileno(self):
        """The Bridge socket's file descriptor."""
        return self._fd

    def _write_all(self, data):
        view = memoryview(data)
        while view:
            view = view[os.write(self._fd, view):]

    def close(self):
        os.close(self._fd)


class AsyncBridge(_Listening):
    """The asyncio variant: ``result = await AsyncBridge().call("system.info")``.
    ``max_bytes``: the message limit (default MINIAPP_BRIDGE_MAX_BYTES or 1 MiB)."""

    def __init__(self, fd=None, max_bytes=None):
        self._attach(fd, max_bytes)
        self._pending = {}
        self._writer = None
        self._reader_task = None
        self._start_lock = None

    async def _start(self):
        import asyncio  # here, not at the top: see the imports
        if self._start_lock is None:
            self._start_lock = asyncio.Lock()
        async with self._start_lock:
            if self._writer is None:
                import socket
                sock = socket.socket(fileno=self._fd)
                reader, self._writer = await asyncio.open_unix_connection(sock=sock, limit=2 ** 21)
                self._reader_task = asyncio.get_running_loop().create_task(self._read_loop(reader))

    async def _read_loop(self, reader):
        try:
            while True:
                raw = await reader.readline()
                if not raw:
                    break
                try:
                    message = _loads(raw)
                except (ValueError, UnicodeDecodeError, RecursionError):
                    continue
                if not isinstance(message, dict):
                    continue
                if _is_unmatched_error(message):
                    pending, self._pending = self._pending, {}
                    for future in pending.values():
                        if not future.done():
                            future.set_result(message)
                    continue
                future = self._pending.pop(message.get("id"), None) if message.get("id") is not None else None
                if future is not None and not future.done():
                    future.set_result(message)
                elif message.get("id") is None and message.get("method") == "event":
                    self._events.dispatch(message.get("params"))
        finally:
            for future in self._pending.values():
                if not future.done():
                    future.set_exception(_closed())
            self._pending.clear()

    async def call(self, method, params=None):
        """Calls ``method``; returns its ``result`` or raises ``BridgeError``."""
        request_id = next(self._ids)
        line = _encode(request_id, method, params, self.max_bytes)  # refused before connecting
        await self._start()
        if self._reader_task.done():
            raise _closed()
        import asyncio  # loaded by _start already
        future = asyncio.get_running_loop().create_future()
        self._pending[request_id] = future
        try:
            self._writer.write(line)
            await self._writer.drain()
        except (OSError, RuntimeError):  # ConnectionResetError, or a transport already closing
            self._pending.pop(request_id, None)
            if not future.done():
                future.cancel()
                raise _closed() from None
            # Answered (or failed by the reader) before the write noticed the close: that wins.
        return _result_of(await future)


_defaults = {}  # the one process-wide bridge, keyed by its class
_default_lock = _thread.allocate_lock()


def _both_defaults():
    return RuntimeError(
        "miniapp_bridge: use either the blocking call() or the awaitable aio.call() in one process, "
        "not both: they would be two readers of the one Bridge socket")


def _default_of(cls):
    """The process-wide bridge of class ``cls`` on MINIAPP_BRIDGE_FD (created on first use);
    a bridge of the other class already made is an error (two readers of one socket)."""
    with _default_lock:
        if cls not in _defaults:
            if _defaults:
                raise _both_defaults()
            _defaults[cls] = cls()
        return _defaults[cls]


def default_bridge():
    """The process-wide blocking bridge on MINIAPP_BRIDGE_FD (created on first use)."""
    return _default_of(Bridge)


def default_async_bridge():
    """The process-wide asyncio bridge on MINIAPP_BRIDGE_FD behind ``aio`` (created on first use)."""
    return _default_of(AsyncBridge)


class _Aio:
    """``await miniapp_bridge.aio.call(method, params)``: the awaitable form of ``call``."""

    async def call(self, method, params=None):
        """Calls ``method``; returns its ``result`` or raises ``BridgeError``."""
        return await default_async_bridge().call(method, params)

    def on_event(self, name, callback):
        """``callback(data)`` for host event ``name`` (``"*"``: ``callback(name, data)``), on the loop."""
        default_async_bridge().on_event(name, callback)

    def on_update_ready(self, callback):
        """``callback({"version": …})`` on ``update.ready``, on the loop."""
        default_async_bridge().on_update_ready(callback)


aio = _Aio()


def call(method, params=None):
    """``default_bridge().call(method, params)``."""
    return default_bridge().call(method, params)


def on_event(name, callback):
    """``default_bridge().on_event(name, callback)``."""
    default_bridge().on_event(name, callback)


def on_update_ready(callback):
    """``default_bridge().on_update_ready(callback)``: a newer version is staged (``{"version"}``)."""
    default_bridge().on_update_ready(callback)


def poll_events(timeout=None):
    """``default_bridge().poll_events(timeout)``."""
    default_bridge().poll_events(timeout)


# `miniapp_bridge.mock` (the in-process mock for unit tests, miniapp_bridge.parts/mock.py): a
# module's __path__ makes it a package for submodule imports, so `from miniapp_bridge import
# mock` and `import miniapp_bridge.mock` work while this file stays one importable module, and
# programs that never import the mock never load it.
__path__ = [os.path.join(os.path.dirname(os.path.abspath(__file__)), "miniapp_bridge.parts")]
