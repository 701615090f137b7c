"""miniapp_host: the miniappd control API (spec/control-api.md) for Python host runtimes.

asyncio, standard library only. The same small core as the Swift ``MiniAppHost`` library and
the Node ``miniapp-host`` package::

    host = await miniapp_host.connect("/run/miniappd/control.sock")
    await host.provide(["payment.pay"], pay)       # async def pay(call) -> result
    exits = host.notifications()                    # subscribe before launching
    await host.call("programs.launch", {"id": "com.partner.app"})
    async for n in exits: ...                       # n.method, n.params
    await host.close()

Every call has a timeout (``TIMEOUT``); a lost connection fails the calls in flight
(``HOST_UNAVAILABLE``) and the client reconnects with backoff, registering its providers and
inspector subscriptions again (``connection.lost`` / ``connection.restored`` notifications).
A line from the daemon that is not JSON-RPC, or a reply to a request never sent, drops the
connection (``PARSE_ERROR`` / ``INVALID_REQUEST`` for the calls in flight) instead of hanging.
"""
from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass, field
from typing import Any, AsyncIterator, Awaitable, Callable, Dict, List, Optional

__all__ = ["connect", "Host", "HostError", "Call", "Notification", "Handler"]


class HostError(Exception):
    """A control API error: ``code`` is the spec's code string (``NOT_FOUND``, ``TIMEOUT``…),
    ``message`` what to do, ``data`` the rest of ``error.data``. Raise it from a provider's
    handler to answer the program with that code and message."""

    def __init__(self, code: str, message: str, data: Optional[Dict[str, Any]] = None, rpc_code: Optional[int] = None):
        super().__init__(f"{code} {message}")
        self.code = code
        self.message = message
        self.data = data or {}
        self.rpc_code = rpc_code

    @classmethod
    def from_rpc(cls, e: Any) -> "HostError":
        if not isinstance(e, dict):
            return cls("INVALID_REQUEST", "miniappd sent an error that is not an object")
        data = e.get("data") if isinstance(e.get("data"), dict) else {}
        number = e.get("code") if isinstance(e.get("code"), int) else None
        code = data.get("code") if isinstance(data.get("code"), str) else _CODE_BY_NUMBER.get(number, "INTERNAL")
        message = e.get("message") if isinstance(e.get("message"), str) else "error"
        return cls(code, message, {k: v for k, v in data.items() if k != "code"}, number)

    def rpc_object(self) -> Dict[str, Any]:
        number = self.rpc_code if self.rpc_code is not None else _NUMBERS.get(self.code, -32000)
        return {"code": number, "message": self.message, "data": dict(self.data, code=self.code)}


_NUMBERS = {
    "PARSE_ERROR": -32700, "INVALID_REQUEST": -32600, "METHOD_NOT_FOUND": -32601, "INVALID_PARAMS": -32602,
    "INTERNAL": -32603, "PERMISSION_DENIED": -32001, "RATE_LIMITED": -32002, "QUOTA_EXCEEDED": -32003,
    "TIMEOUT": -32004, "HOST_UNAVAILABLE": -32005, "DOMAIN_NOT_ALLOWED": -32006, "MESSAGE_TOO_LARGE": -32007,
    "NOT_FOUND": -32010, "ALREADY_RUNNING": -32011, "INVALID_PACKAGE": -32012, "HOST_UPDATE_REQUIRED": -32013,
    "UNAUTHORIZED": -32014,
}
_CODE_BY_NUMBER = {v: k for k, v in _NUMBERS.items()}


@dataclass(frozen=True)
class Notification:
    """A notification: from the daemon (``program.exited``, ``inspector.event``, ``package.*``…)
    or about the connection (``connection.lost {code, message}``, ``connection.restored {}``)."""
    method: str
    params: Dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Call:
    """A host-provided Bridge call the daemon forwarded (it passed the permission check).
    ``program`` is ``{"id", "version"}`` as the daemon identified the caller."""
    id: Any
    method: str
    params: Dict[str, Any]
    program: Dict[str, str]
    worker_id: str


Handler = Callable[[Call], Awaitable[Any]]


async def connect(path: str, **options: Any) -> "Host":
    """Connects to the control socket at ``path``. Options: ``call_timeout`` (s, 30),
    ``reconnect`` (True), ``max_reconnect_attempts`` (40), ``reconnect_initial`` (s, 0.05),
    ``reconnect_max`` (s, 2), ``max_line_bytes`` (64 MiB)."""
    host = Host(path, **options)
    await host._open()
    return host


class Host:
    """One control connection (see the module doc). Create it with ``connect``."""

    def __init__(self, path: str, *, call_timeout: float = 30.0, reconnect: bool = True, max_reconnect_attempts: int = 40,
                 reconnect_initial: float = 0.05, reconnect_max: float = 2.0, max_line_bytes: int = 64 << 20):
        self.path = path
        self.call_timeout = call_timeout
        self._reconnect = reconnect
        self._max_attempts = max_reconnect_attempts
        self._backoff = (reconnect_initial, reconnect_max)
        self._max_line = max_line_bytes
        self._writer: Optional[asyncio.StreamWriter] = None
        self._reader_task: Optional[asyncio.Task] = None
        self._generation = 0
        self._next_id = 0
        self._pending: Dict[int, asyncio.Future] = {}
        self._providers: Dict[str, Handler] = {}
        self._subscriptions: List[Dict[str, Any]] = []
        self._serving: Dict[str, asyncio.Task] = {}
        self._queues: List[asyncio.Queue] = []
        self._closed = False
        self._terminal: Optional[HostError] = None

    # -- calls ---------------------------------------------------------------------------------

    async def call(self, method: str, params: Optional[Dict[str, Any]] = None, timeout: Optional[float] = None) -> Any:
        """Calls a control method; returns its result or raises ``HostError`` (the daemon's
        error, ``TIMEOUT`` after ``timeout`` seconds, ``HOST_UNAVAILABLE`` when the connection
        is lost first). Any number of calls may be in flight."""
        if self._terminal is not None:
            raise self._terminal
        if self._writer is None:
            raise HostError("HOST_UNAVAILABLE", f"not connected to miniappd at {self.path} (reconnecting); try again")
        self._next_id += 1
        rid = self._next_id
        future: asyncio.Future = asyncio.get_running_loop().create_future()
        self._pending[rid] = future
        limit = self.call_timeout if timeout is None else timeout
        try:
            await asyncio.wait_for(self._send({"jsonrpc": "2.0", "id": rid, "method": method, "params": params or {}}), limit)
            result = await asyncio.wait_for(asyncio.shield(future), limit)
        except asyncio.TimeoutError:
            raise HostError("TIMEOUT", f"miniappd did not answer {method} in {limit} s") from None
        finally:
            self._pending.pop(rid, None)
        if method == "inspector.subscribe":
            self._subscriptions.append(dict(params or {}))
        return result

    async def provide(self, methods: List[str], handler: Handler) -> None:
        """Serves the host-provided Bridge ``methods`` with ``handler`` (``async (call) ->
        result``; raise ``HostError`` to answer an error), now and after every reconnection.
        The handler's task is cancelled when the daemon gives up on the call (``bridge.cancel``:
        its timeout passed or the worker exited); its answer is then dropped."""
        for m in methods:
            self._providers[m] = handler
        try:
            await self.call("bridge.provide", {"methods": sorted(self._providers)})
        except HostError:
            for m in methods:
                self._providers.pop(m, None)
            raise

    def notifications(self) -> AsyncIterator[Notification]:
        """The notifications that arrive from now on, in order (subscribe before launching a
        program whose ``program.exited`` you want); ends when the host is closed."""
        queue: asyncio.Queue = asyncio.Queue()
        if self._closed:
            queue.put_nowait(None)
        self._queues.append(queue)
        return self._drain(queue)

    async def _drain(self, queue: asyncio.Queue) -> AsyncIterator[Notification]:
        try:
            while True:
                item = await queue.get()
                if item is None:
                    return
                yield item
        finally:
            if queue in self._queues:
                self._queues.remove(queue)

    async def close(self) -> None:
        """Closes the connection: calls in flight fail ``HOST_UNAVAILABLE``, handlers are
        cancelled, notification iterators end. Idempotent."""
        if self._closed:
            return
        self._closed = True
        self._terminal = self._terminal or HostError("HOST_UNAVAILABLE", "the host closed its connection to miniappd")
        writer, self._writer = self._writer, None
        self._fail_all(self._terminal)
        if writer is not None:
            writer.close()
        if self._reader_task is not None and self._reader_task is not asyncio.current_task():
            self._reader_task.cancel()
        self._end_queues()

    # -- connection ------------------------------------------------------------------------------

    async def _open(self) -> None:
        try:
            reader, writer = await asyncio.open_unix_connection(self.path, limit=self._max_line)
        except OSError as e:
            raise HostError("HOST_UNAVAILABLE", f"cannot connect to miniappd at {self.path}: {e}. Is the daemon running?") from None
        self._generation += 1
        self._writer = writer
        self._reader_task = asyncio.get_running_loop().create_task(self._read(reader, writer, self._generation))

    async def _send(self, message: Dict[str, Any], writer: Optional[asyncio.StreamWriter] = None) -> None:
        writer = writer or self._writer
        if writer is None:
            raise HostError("HOST_UNAVAILABLE", "not connected to miniappd")
        try:
            writer.write(json.dumps(message, separators=(",", ":"), ensure_ascii=False).encode() + b"\n")
            await writer.drain()
        except (OSError, RuntimeError) as e:
            raise HostError("HOST_UNAVAILABLE", f"lost the connection to miniappd: {e}") from None

    async def _read(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, generation: int) -> None:
        error = HostError("HOST_UNAVAILABLE", "miniappd closed the connection")
        try:
            while True:
                line = await reader.readline()
                if not line.endswith(b"\n"):
                    break  # EOF (a partial last line is dropped with the connection)
                violation = self._handle(line[:-1], generation)
                if violation is not None:
                    error = violation
                    break
        except (asyncio.LimitOverrunError, ValueError):
            error = HostError("MESSAGE_TOO_LARGE", f"miniappd sent a line over {self._max_line} bytes")
        except OSError as e:
            error = HostError("HOST_UNAVAILABLE", f"lost the connection to miniappd: {e}")
        except asyncio.CancelledError:
            writer.close()
            raise
        writer.close()
        await self._lost(error, generation)

    async def _lost(self, error: HostError, generation: int) -> None:
        if generation != self._generation or self._closed:
            return
        self._writer = None
        self._generation += 1
        reported = self._terminal or error
        self._fail_all(reported)
        for task in self._serving.values():
            task.cancel()
        self._serving.clear()
        self._deliver("connection.lost", {"code": reported.code, "message": reported.message})
        if not self._reconnect or self._terminal is not None:
            self._terminal = reported
            self._closed = True
            self._end_queues()
            return
        await self._reconnect_loop()

    async def _reconnect_loop(self) -> None:
        delay, limit = self._backoff
        last = "not connected"
        for _ in range(self._max_attempts):
            await asyncio.sleep(delay)
            if self._closed:
                return
            delay = min(delay * 2, limit)
            try:
                await self._open()
            except HostError as e:
                last = e.message
                continue
            asyncio.get_running_loop().create_task(self._register())
            return
        self._terminal = HostError("HOST_UNAVAILABLE",
                                   f"gave up reconnecting to miniappd at {self.path} after {self._max_attempts} attempts: {last}")
        self._closed = True
        self._end_queues()

    async def _register(self) -> None:
        subs, self._subscriptions = self._subscriptions, []
        calls = [self.call("inspector.subscribe", p) for p in subs]
        if self._providers:
            calls.append(self.call("bridge.provide", {"methods": sorted(self._providers)}))
        results = await asyncio.gather(*calls, return_exceptions=True)
        failed = next((r for r in results if isinstance(r, HostError)), None)
        self._deliver("connection.restored", {"error": {"code": failed.code, "message": failed.message}} if failed else {})

    def _fail_all(self, error: HostError) -> None:
        pending, self._pending = self._pending, {}
        for future in pending.values():
            if not future.done():
                future.set_exception(error)

    def _end_queues(self) -> None:
        for q in self._queues:
            q.put_nowait(None)

    def _deliver(self, method: str, params: Dict[str, Any]) -> None:
        note = Notification(method, params)
        for q in self._queues:
            q.put_nowait(note)

    # -- messages --------------------------------------------------------------------------------

    def _handle(self, line: bytes, generation: int) -> Optional[HostError]:
        """Handles one line; returns the protocol violation that ends the connection, if any."""
        try:
            msg = json.loads(line)
        except (ValueError, RecursionError):
            msg = None
        if not isinstance(msg, dict):
            return HostError("PARSE_ERROR", f"miniappd sent a line that is not a JSON object: {line[:80]!r}")
        if "method" in msg:
            method, params = msg["method"], msg.get("params", {})
            if not isinstance(method, str) or not isinstance(params, dict):
                return HostError("INVALID_REQUEST", "miniappd sent a message whose method or params are malformed")
            if "id" in msg:
                self._serve(method, msg["id"], params, generation)
            elif method == "bridge.cancel":
                task = self._serving.pop(json.dumps(params.get("id")), None)
                if task is not None:
                    task.cancel()
            else:
                self._deliver(method, params)
            return None
        if "id" not in msg or ("result" not in msg and not isinstance(msg.get("error"), dict)):
            return HostError("INVALID_REQUEST", "miniappd sent a message that is neither a request nor a response")
        return self._respond(msg)

    def _respond(self, msg: Dict[str, Any]) -> Optional[HostError]:
        rid = msg["id"]
        error = HostError.from_rpc(msg["error"]) if "error" in msg else None
        if rid is None:
            # The daemon could not tie its answer to a request (UNAUTHORIZED at connect, a line
            # it could not parse): it concerns every call in flight.
            error = error or HostError("INVALID_REQUEST", "miniappd sent a result with id null")
            if error.code == "UNAUTHORIZED":
                self._terminal = error
            self._fail_all(error)
            return None
        future = self._pending.pop(rid, None) if isinstance(rid, int) and not isinstance(rid, bool) else None
        if future is None:
            # A late answer to a call that timed out here is harmless; an id never issued is not.
            if isinstance(rid, int) and not isinstance(rid, bool) and 0 < rid <= self._next_id:
                return None
            return HostError("INVALID_REQUEST", f"miniappd answered a request this host never sent (id {rid!r})")
        if not future.done():
            if error is not None:
                future.set_exception(error)
            else:
                future.set_result(msg["result"])
        return None

    def _serve(self, method: str, rid: Any, params: Dict[str, Any], generation: int) -> None:
        writer = self._writer
        inner = params.get("method")
        handler = self._providers.get(inner) if method == "bridge.call" and isinstance(inner, str) else None
        if handler is None:
            what = f"the Bridge method {inner}" if method == "bridge.call" else method
            self._answer(writer, rid, None, HostError("METHOD_NOT_FOUND", f"this host does not serve {what}"))
            return
        program, worker, call_params = params.get("program"), params.get("workerId"), params.get("params", {})
        if not isinstance(program, dict) or not isinstance(program.get("id"), str) or not isinstance(worker, str) \
                or not isinstance(call_params, dict):
            self._answer(writer, rid, None, HostError("INVALID_PARAMS", "bridge.call params are malformed"))
            return
        call = Call(rid, inner, call_params, {"id": program["id"], "version": str(program.get("version", ""))}, worker)
        key = json.dumps(rid)
        task = asyncio.get_running_loop().create_task(self._run_handler(handler, call, writer, key))
        self._serving[key] = task

    async def _run_handler(self, handler: Handler, call: Call, writer: Optional[asyncio.StreamWriter], key: str) -> None:
        try:
            result, error = await handler(call), None
        except asyncio.CancelledError:
            return  # the daemon gave up on the call, or the connection is gone: nobody to answer
        except HostError as e:
            result, error = None, e
        except Exception:  # noqa: BLE001 - a handler's bug must not reach the program as detail
            result, error = None, HostError("INTERNAL", f"the host failed to serve {call.method}")
        if self._serving.pop(key, None) is None or writer is not self._writer:
            return
        self._answer(writer, call.id, result, error)

    def _answer(self, writer: Optional[asyncio.StreamWriter], rid: Any, result: Any, error: Optional[HostError]) -> None:
        if writer is None or writer is not self._writer:
            return
        msg = {"jsonrpc": "2.0", "id": rid}
        if error is not None:
            msg["error"] = error.rpc_object()
        else:
            msg["result"] = result if result is not None else {}
        try:
            writer.write(json.dumps(msg, separators=(",", ":"), ensure_ascii=False).encode() + b"\n")
        except (OSError, RuntimeError):
            pass  # the reader notices the lost connection

    # -- typed helpers (spec/control-api.md and the README's additions) ---------------------------

    async def daemon_info(self) -> Dict[str, Any]:
        return await self.call("daemon.info")

    async def install(self, path: str, allow_downgrade: bool = False) -> Dict[str, Any]:
        params: Dict[str, Any] = {"path": path}
        if allow_downgrade:
            params["allowDowngrade"] = True
        return await self.call("packages.install", params)

    async def packages(self) -> List[Dict[str, Any]]:
        return (await self.call("packages.list"))["packages"]

    async def rollback(self, program_id: str) -> Dict[str, Any]:
        return await self.call("packages.rollback", {"id": program_id})

    async def remove(self, program_id: str) -> None:
        await self.call("packages.remove", {"id": program_id})

    async def launch(self, program_id: str, args: Optional[List[str]] = None) -> Dict[str, Any]:
        params: Dict[str, Any] = {"id": program_id}
        if args:
            params["args"] = list(args)
        return await self.call("programs.launch", params)

    async def stop(self, worker_id: str, grace_millis: Optional[int] = None, timeout: Optional[float] = None) -> int:
        params: Dict[str, Any] = {"workerId": worker_id}
        if grace_millis is not None:
            params["graceMillis"] = grace_millis
        return (await self.call("programs.stop", params, timeout))["status"]

    async def suspend(self, worker_id: str) -> None:
        await self.call("programs.suspend", {"workerId": worker_id})

    async def resume(self, worker_id: str) -> None:
        await self.call("programs.resume", {"workerId": worker_id})

    async def workers(self) -> List[Dict[str, Any]]:
        return (await self.call("programs.list"))["workers"]

    async def send(self, worker_id: str, name: str, data: Any = None) -> None:
        params: Dict[str, Any] = {"workerId": worker_id, "name": name}
        if data is not None:
            params["data"] = data
        await self.call("programs.send", params)

    async def set_session(self, user_id: str, claims: Optional[Dict[str, Any]] = None) -> None:
        await self.call("session.set", {"userId": user_id, "claims": claims or {}})

    async def subscribe_inspector(self, program_id: Optional[str] = None) -> None:
        await self.call("inspector.subscribe", {"programId": program_id} if program_id else {})

    async def refresh_permissions(self) -> Dict[str, Any]:
        return await self.call("permissions.refresh")

    async def check_updates(self, program_id: Optional[str] = None) -> List[Dict[str, Any]]:
        return (await self.call("updates.check", {"id": program_id} if program_id else {}))["updates"]

    async def prewarm(self, program_id: str) -> Dict[str, Any]:
        return await self.call("programs.prewarm", {"id": program_id})

    async def restart(self, program_id: str) -> Dict[str, Any]:
        return await self.call("programs.restart", {"id": program_id})
