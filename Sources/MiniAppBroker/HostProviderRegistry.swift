import MiniAppJSON
public import MiniAppModel
public import MiniAppSystem
import Logging

/// Host runtimes that serve host-provided Bridge methods (`payment.pay`, `geolocation.get`,
/// `ui.*`) over their control connection (spec/control-api.md, `bridge.provide`).
///
/// A call that passed every check is forwarded as
/// `{"jsonrpc":"2.0","id":"p-17","method":"bridge.call","params":{"method","params","program":{"id","version"},"workerId"}}`
/// and the provider's answer to `p-17` is routed back to the worker. Only calls that passed the
/// permission check ever reach a provider. No provider → `HOST_UNAVAILABLE`; the provider's
/// connection closes → its pending calls fail `HOST_UNAVAILABLE`; no answer in the method's
/// `timeoutMillis` → `TIMEOUT` (the late answer is then ignored). A forwarded call that ends
/// without the provider's answer (timeout, the worker exited) is announced to the provider as
/// the notification `bridge.cancel {id}`, so a host library can cancel the work it started.
///
/// The latest `provide` for a method wins: a host runtime that restarts re-registers before its
/// old connection is noticed dead. Loop-confined; the public methods may be called from any
/// thread (they hop to the loop when needed).
public final class HostProviderRegistry: @unchecked Sendable {
    private struct PendingHostCall {
        var connectionId: UInt64
        var complete: (CallOutcome) -> Void
    }

    private let reactor: Reactor
    private let permissions: PermissionTable
    private let counters: CounterStore
    private let logger: Logger
    private var providers: [String: LineConnection] = [:]
    private var pending: [String: PendingHostCall] = [:]
    private var nextId: UInt64 = 1

    init(reactor: Reactor, permissions: PermissionTable, counters: CounterStore, logger: Logger) {
        self.reactor = reactor
        self.permissions = permissions
        self.counters = counters
        self.logger = logger
    }

    /// `bridge.provide`: `connection` serves `methods` from now on. Every method must be a
    /// host-provided method of the catalogue (`INVALID_PARAMS` otherwise, and nothing changes).
    /// The registration ends when the connection closes.
    public func provide(methods: [String], connection: LineConnection) throws(MiniAppError) {
        let catalogue = permissions.snapshot.catalogue
        for m in methods {
            guard let spec = catalogue.spec(for: m) else {
                throw MiniAppError(.invalidParams, "'\(m)' is not in the Bridge method catalogue")
            }
            guard spec.provider == .host else {
                throw MiniAppError(.invalidParams, "'\(m)' is served by the daemon, not by a host")
            }
        }
        let body: @Sendable () -> Void = { [self] in
            for m in methods { providers[m] = connection }
            connection.addCloseObserver { [weak self] in self?.providerClosed(connection) }
        }
        if reactor.isInLoopThread { body() } else { reactor.execute(body) }
    }

    /// Routes a provider's answer (a response received on a control connection) to the worker
    /// waiting for it. Returns false when no call with that id is pending from that connection
    /// (unknown, late after a timeout, or answered by the wrong connection: ignored). Loop thread.
    @discardableResult
    public func handleResponse(_ response: RPCResponse, from connection: LineConnection) -> Bool {
        guard case .string(let id) = response.id, let call = pending[id], call.connectionId == connection.id else {
            logger.debug("bridge: host answer with unknown id \(response.id) from connection \(connection.id)")
            return false
        }
        pending[id] = nil
        counters.setPendingHostCalls(pending.count)
        switch response.outcome {
        case .success(let v): call.complete(.result(v))
        case .failure(let e): call.complete(.relayed(Self.sanitized(e.object)))
        }
        return true
    }

    /// The methods each open provider connection serves (loop thread).
    public var registrations: [String: UInt64] { providers.compactMapValues { $0.isOpen ? $0.id : nil } }

    /// Forwards one call (loop thread). Returns a cancel action that forgets the pending call.
    func forward(
        spec: MethodSpec, params: JSONValue?, caller: CallerIdentity, complete: @escaping (CallOutcome) -> Void
    ) -> (() -> Void)? {
        guard let conn = providers[spec.name], conn.isOpen else {
            complete(.error(MiniAppError(.hostUnavailable, "no host runtime provides \(spec.name) right now")))
            return nil
        }
        let id = "p-\(nextId)"
        nextId += 1
        let callParams: JSONValue = [
            "method": .string(spec.name),
            "params": params ?? .object([:]),
            "program": ["id": .string(caller.programId), "version": .string(caller.version)],
            "workerId": .string(caller.workerId),
        ]
        pending[id] = PendingHostCall(connectionId: conn.id, complete: complete)
        conn.appendOutput { RPCCodec.writeRequest(id: .string(id), method: "bridge.call", params: callParams, into: &$0) }
        guard conn.isOpen else {
            // The provider did not read and was cut off by the write: fail now.
            pending[id] = nil
            complete(.error(MiniAppError(.hostUnavailable, "the host runtime providing \(spec.name) went away")))
            return nil
        }
        counters.setPendingHostCalls(pending.count)
        return { [weak self, weak conn] in
            guard let self, pending.removeValue(forKey: id) != nil else { return }
            counters.setPendingHostCalls(pending.count)
            // Tell the provider the call is over (timed out, or its worker went away), so it can
            // stop working on it; its late answer would be ignored anyway (`handleResponse`).
            if let conn, conn.isOpen {
                conn.appendOutput { RPCCodec.writeNotification(method: "bridge.cancel", params: ["id": .string(id)], into: &$0) }
            }
        }
    }

    private func providerClosed(_ connection: LineConnection) {
        providers = providers.filter { $0.value !== connection }
        let lost = pending.filter { $0.value.connectionId == connection.id }
        for (id, call) in lost {
            pending[id] = nil
            call.complete(.error(MiniAppError(.hostUnavailable, "the host runtime serving this call disconnected")))
        }
        counters.setPendingHostCalls(pending.count)
        if !lost.isEmpty { logger.notice("bridge: host provider \(connection.id) closed with \(lost.count) calls pending") }
    }

    /// A provider's error relayed to an untrusted program: only a bounded message and a
    /// well-formed `data.code` go through (no stack traces or internal data of the host), and
    /// `error.code` always agrees with `data.code`. Without that, a host answering
    /// `{"code":-32001,"data":{"code":"CANCELLED"}}` would reach the program as "-32001 =
    /// PERMISSION_DENIED" to an SDK reading the number and "CANCELLED" to one reading the
    /// string — two clients of the same answer deciding differently.
    ///
    /// - `data.code` is one of the spec's codes (`ErrorCode` with a table number) → that code
    ///   and the table's number, whatever number the host sent.
    /// - `data.code` is a host-defined code (`[A-Z0-9_]{1,64}`, e.g. `CANCELLED`) → kept; the
    ///   host's number is kept only if it is not one of the table's numbers, else it becomes
    ///   -32000 (JSON-RPC's generic "server error"), so the number never names another code.
    /// - `data.code` absent → derived from the number when it is a table number, else
    ///   `INTERNAL` / -32603. Malformed (`"bad code!"`, over 64 bytes, not a string) → `INTERNAL`.
    static func sanitized(_ e: RPCErrorObject) -> RPCErrorObject {
        let message = e.message.utf8.count <= 1024 ? e.message : String(decoding: e.message.utf8.prefix(1024), as: UTF8.self)
        let (code, number) = relayedCode(dataCode: e.data?["code"], number: e.code)
        return RPCErrorObject(code: number, message: message, data: ["code": .string(code)])
    }

    /// The `(data.code, error.code)` pair relayed for a host's pair (see `sanitized`).
    static func relayedCode(dataCode: JSONValue?, number: Int64) -> (String, Int64) {
        let byNumber = ErrorCode(rpcNumber: number)
        guard let dataCode else { return byNumber.map { ($0.rawValue, number) } ?? (ErrorCode.internal.rawValue, -32603) }
        guard case .string(let c) = dataCode, !c.isEmpty, c.utf8.count <= 64,
            c.utf8.allSatisfy({ ($0 >= 0x41 && $0 <= 0x5A) || ($0 >= 0x30 && $0 <= 0x39) || $0 == 0x5F })
        else { return (ErrorCode.internal.rawValue, -32603) }
        let known = ErrorCode(rawValue: c)
        if known == .internal || known.rpcNumber != ErrorCode.internal.rpcNumber {
            return (c, Int64(known.rpcNumber))
        }
        return (c, byNumber == nil ? number : -32000)
    }
}
