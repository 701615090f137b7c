"""An in-process mock of miniapp_bridge for unit tests: the same rules file as
``miniapp mock-bridge`` (README "Mock bridge"), the same calls and the same errors
(``miniapp_bridge.BridgeError`` with ``code``, ``message``, ``rpc_code``, ``data``).

    from miniapp_bridge import mock
    bridge = mock.MockBridge({"rules": [
        {"method": "payment.pay", "params": {"currency": "USD"}, "result": {"transactionId": "tx-1"}},
    ]})
    bridge.call("payment.pay", {"orderId": "o-1", "currency": "USD"})   # {"transactionId": "tx-1"}
    await bridge.aio.call("system.info")                                 # the awaitable form
    bridge.calls                                                         # every call, in order
    bridge.emit("lifecycle.show", {})                                    # host events

Rules: ordered, first match wins; ``method`` exact or a glob (``*``, ``?``); ``params`` a subset
the call must contain; ``result`` or ``error: {code, message, data?}``; ``delayMs``; ``times``
(the rule answers that many calls). Unmatched calls: ``storage.*`` from an in-memory dict and
``system.info``, else METHOD_NOT_FOUND naming the method. ``MockBridge.from_file(path)`` reads a
rules file.
"""

import asyncio
import copy
import json
import re
import time

import miniapp_bridge

__all__ = ["MockBridge", "parse_rules"]

_NUMBER_BY_CODE = {code: number for number, code in miniapp_bridge._CODE_BY_NUMBER.items()}
_NUMBER_BY_CODE.update({"NOT_FOUND": -32010, "ALREADY_RUNNING": -32011, "INVALID_PACKAGE": -32012,
                        "HOST_UPDATE_REQUIRED": -32013, "UNAUTHORIZED": -32014})
_RULE_KEYS = ("method", "params", "result", "error", "delayMs", "times")
_CODE = re.compile(r"[A-Z0-9_]{1,64}")


def _integer_in(rule, name, lo, hi, where):
    v = rule.get(name)
    if v is None:
        return None
    if not isinstance(v, int) or isinstance(v, bool) or not lo <= v <= hi:
        raise ValueError(f'{where}: "{name}" must be an integer in {lo}…{hi}')
    return v


def _parse_error(e, where):
    if not isinstance(e, dict) or not isinstance(e.get("code"), str) or not _CODE.fullmatch(e["code"]) \
            or not isinstance(e.get("message"), str):
        raise ValueError(f'{where}: "error" must be {{"code": "PERMISSION_DENIED" (A-Z, 0-9, _), "message": "…"}}')
    extra = [k for k in e if k not in ("code", "message", "data")]
    if extra:
        raise ValueError(f'{where}: "error" has an unknown member "{extra[0]}" (allowed: code, message, data)')
    if "data" in e and not isinstance(e["data"], dict):
        raise ValueError(f'{where}: "error.data" must be an object')
    data = dict(e.get("data") or {})
    data["code"] = e["code"]
    return {"code": _NUMBER_BY_CODE.get(e["code"], -32000), "message": e["message"], "data": data}


def parse_rules(doc):
    """Validates a rules document (a dict or its JSON text) as strictly as the Swift parser."""
    if isinstance(doc, (str, bytes)):
        doc = json.loads(doc)
    if not isinstance(doc, dict) or not isinstance(doc.get("rules"), list):
        raise ValueError('the rules file must be {"rules": [ … ]}')
    extra = [k for k in doc if k != "rules"]
    if extra:
        raise ValueError(f'the rules file has an unknown member "{extra[0]}"; only "rules" is allowed')
    rules = []
    for i, r in enumerate(doc["rules"]):
        where = f"rules[{i}]"
        if not isinstance(r, dict):
            raise ValueError(f"{where}: must be an object")
        unknown = [k for k in r if k not in _RULE_KEYS]
        if unknown:
            raise ValueError(f'{where}: unknown member "{unknown[0]}" (allowed: {", ".join(_RULE_KEYS)})')
        if not isinstance(r.get("method"), str) or not r["method"]:
            raise ValueError(f'{where}: needs "method": a method name or glob such as "payment.*"')
        if "params" in r and not isinstance(r["params"], dict):
            raise ValueError(f'{where}: "params" must be an object (the members to match)')
        if ("result" in r) == ("error" in r):
            raise ValueError(f'{where}: needs exactly one of "result" or "error"')
        rules.append({
            "method": r["method"], "params": r.get("params"),
            "answer": {"result": r["result"]} if "result" in r else {"error": _parse_error(r["error"], where)},
            "delay": (_integer_in(r, "delayMs", 0, 60000, where) or 0) / 1000.0,
            "times": _integer_in(r, "times", 1, 1000000, where), "used": 0,
        })
    return rules


def _glob(pattern, text):
    regex = "".join(".*" if c == "*" else "." if c == "?" else re.escape(c) for c in pattern)
    return re.fullmatch(regex, text, re.DOTALL) is not None


def _subset(have, want):
    if not isinstance(want, dict):
        return have == want
    if not isinstance(have, dict):
        return False
    return all(k in have and _subset(have[k], v) for k, v in want.items())


def _wire_error(code, message):
    return {"error": {"code": _NUMBER_BY_CODE.get(code, -32000), "message": message, "data": {"code": code}}}


class _Aio:
    def __init__(self, bridge):
        self._bridge = bridge

    async def call(self, method, params=None):
        answer, delay = self._bridge._answer(method, params)
        if delay:
            await asyncio.sleep(delay)
        return self._bridge._settle(answer)

    def on_event(self, name, callback):
        self._bridge.on_event(name, callback)


class MockBridge:
    """A mock bridge answering by ``rules`` (a rules document, its JSON text, or a path via
    ``from_file``). ``program_id``, ``version``, ``host_version``: what ``system.info`` answers."""

    def __init__(self, rules, program_id="com.example.mock", version="0.0.0", host_version="1.1.0"):
        self._rules = parse_rules(rules)
        self._identity = {"programId": program_id, "version": version, "hostVersion": host_version}
        self._listeners = {}
        self.storage = {}
        self.calls = []
        self.aio = _Aio(self)

    @classmethod
    def from_file(cls, path, **identity):
        with open(path, encoding="utf-8") as f:
            return cls(f.read(), **identity)

    def call(self, method, params=None):
        """Returns the rule's ``result`` or raises ``miniapp_bridge.BridgeError``."""
        answer, delay = self._answer(method, params)
        if delay:
            time.sleep(delay)
        return self._settle(answer)

    def on_event(self, name, callback):
        """``callback(data)`` for host event ``name``; ``"*"`` gets ``callback(name, data)``."""
        self._listeners.setdefault(name, []).append(callback)

    def emit(self, name, data=None):
        """Delivers a host event, as the daemon's ``event`` notification would."""
        for cb in list(self._listeners.get(name, ())):
            cb(data)
        for cb in list(self._listeners.get("*", ())):
            cb(name, data)

    def poll_events(self, timeout=None):
        """Nothing to read: events come from ``emit``."""

    def _answer(self, method, params):
        if not isinstance(method, str) or not method:
            return _wire_error("INVALID_REQUEST", "method must be a non-empty string"), 0
        if params is not None and not isinstance(params, dict):
            return _wire_error("INVALID_PARAMS", "params must be an object"), 0
        try:
            wire = json.loads(json.dumps(params if params is not None else {}, allow_nan=False))
        except (TypeError, ValueError) as err:
            return _wire_error("INVALID_PARAMS", f"params are not serializable: {err}"), 0
        answer, delay = None, 0
        for r in self._rules:
            if (r["times"] is None or r["used"] < r["times"]) and _glob(r["method"], method) \
                    and (r["params"] is None or _subset(wire, r["params"])):
                r["used"] += 1
                answer, delay = r["answer"], r["delay"]
                break
        if answer is None:
            answer = self._builtin(method, wire)
        self.calls.append({"method": method, "params": params, **copy.deepcopy(answer)})
        return answer, delay

    def _builtin(self, method, p):
        if method == "system.info":
            return {"result": dict(self._identity)}
        if method in ("storage.get", "storage.set", "storage.remove"):
            key = p.get("key")
            if not isinstance(key, str) or not key:
                return _wire_error("INVALID_PARAMS", f"{method}: params.key must be a string of 1…256 bytes")
            if method == "storage.get":
                return {"result": {"value": copy.deepcopy(self.storage.get(key))}}
            if method == "storage.remove":
                self.storage.pop(key, None)
                return {"result": {}}
            if "value" not in p:
                return _wire_error("INVALID_PARAMS", "storage.set: params.value is required (any JSON)")
            self.storage[key] = p["value"]
            return {"result": {}}
        if method == "storage.keys":
            prefix = p.get("prefix") if isinstance(p.get("prefix"), str) else ""
            return {"result": {"keys": sorted(k for k in self.storage if k.startswith(prefix))}}
        return _wire_error("METHOD_NOT_FOUND", f'the mock bridge has no rule for {method}: '
                                               f'add {{"method": "{method}", "result": {{…}}}} to the rules file')

    @staticmethod
    def _settle(answer):
        if "error" in answer:
            raise miniapp_bridge.BridgeError.from_wire(copy.deepcopy(answer["error"]))
        return copy.deepcopy(answer["result"])
