import Logging
import MiniAppJSON
import MiniAppModel
import MiniAppSystem
import Synchronization

/// How a dispatched call ended.
enum CallOutcome: Sendable {
    case result(JSONValue)
    case error(MiniAppError)
    /// An error object relayed from a host provider.
    case relayed(RPCErrorObject)
}

/// One worker's Bridge connection: the handler of its `LineConnection` and the owner of its
/// calls in flight. Loop-confined except `identity`.
final class WorkerSession: LineHandler, @unchecked Sendable {
    private struct Pending {
        var id: RPCId?
        var method: String
        var arrival: UInt64
        var arrivalWall: Int64
        var bytesIn: Int
        var params: JSONValue?
        var timer: ReactorTimer?
        var cancel: (() -> Void)?
    }

    let identity: CallerIdentity
    let broker: Broker  // strong: the cycle is broken when the connection closes
    var connection: LineConnection?
    /// Whether this call's record carries params and results (redacted later): payload mode,
    /// or a simulated program with an inspector listening.
    private var recordsPayloads: Bool { broker.wantsPayloads || (identity.simulated && broker.inspector.isActive) }
    private var pending: [UInt64: Pending] = [:]
    private var nextToken: UInt64 = 1
    private var readEnded = false
    /// The call being dispatched synchronously (0 = none) and its answer if it came at once.
    private var buckets: RateLimiter.ProgramBuckets?
    private var malformed = 0
    private var syncToken: UInt64 = 0
    private var syncOutcome: CallOutcome?
    /// Messages received (every one counts, refused ones included); read by `counters()`.
    let calls = Atomic<UInt64>(0)
    /// Monotonic time (ns) of the last message, for the daemon's idle timeout.
    let lastCallNanos = Atomic<UInt64>(0)

    init(broker: Broker, identity: CallerIdentity) {
        self.broker = broker
        self.identity = identity
    }

    // MARK: LineHandler

    func connectionDidOpen(_ connection: LineConnection) {
        self.connection = connection
        buckets = broker.rateLimiter.retain(
            identity.programId, budget: broker.permissionReader.snapshot.catalogue.programBudget, lowered: identity.rateClasses,
            now: monotonicNanos())
    }

    func connection(_ connection: LineConnection, didReceiveLine line: UnsafeBufferPointer<UInt8>) {
        let arrival = monotonicNanos()
        let bytesIn = line.count + 1
        calls.add(1, ordering: .relaxed)
        lastCallNanos.store(arrival, ordering: .relaxed)
        let depth = broker.configuration.maxDepth
        if let fast = RPCCodec.decodeRequestFast(line, maxDepth: depth) {
            process(fast, arrival: arrival, bytesIn: bytesIn)
            return
        }
        let request: RPCRequest
        switch RPCCodec.parse(line, maxDepth: depth).flatMap(RPCCodec.decodeRequest) {
        case .success(let r): request = r
        case .failure(let e):
            logMalformed(e.message)
            answerNow(id: e.id, method: nil, decision: .refuse, error: e.error, arrival: arrival, bytesIn: bytesIn)
            return
        }
        process(request, arrival: arrival, bytesIn: bytesIn)
    }

    func connection(_ connection: LineConnection, didReceiveOversizeMessage size: Int) {
        broker.logger.notice("bridge: \(identity.workerId) sent a message over \(broker.configuration.maxMessageBytes) bytes; disconnecting")
        calls.add(1, ordering: .relaxed)
        let err = MiniAppError(.messageTooLarge, "message exceeds \(broker.configuration.maxMessageBytes) bytes; the connection is closed")
        answerNow(id: .null, method: nil, decision: .refuse, error: err, arrival: monotonicNanos(), bytesIn: size)
    }

    func connectionDidReachEOF(_ connection: LineConnection) {
        // Half-close: answer what is in flight, then close.
        readEnded = true
        if pending.isEmpty { connection.closeAfterFlush() }
    }

    func connectionDidClose(_ connection: LineConnection, reason: LineConnection.CloseReason) {
        for (_, p) in pending {
            if let t = p.timer { broker.reactor.cancel(t) }
            p.cancel?()
        }
        pending.removeAll()
        if buckets != nil { broker.rateLimiter.release(identity.programId) }
        buckets = nil
        broker.sessionEnded(self)
    }

    /// Malformed input is logged (and audited); a flood is summarised, not copied into the log:
    /// the first few per worker, then every 1000th.
    private func logMalformed(_ what: String) {
        malformed += 1
        guard malformed <= 5 || malformed % 1000 == 0 else { return }
        broker.logger.notice("bridge: malformed message #\(malformed) from \(identity.workerId) (\(identity.programId)): \(what)")
    }

    // MARK: The pipeline

    /// Catalogue → permission → rate limit → params → dispatch (spec order).
    private func process(_ request: RPCRequest, arrival: UInt64, bytesIn: Int) {
        let snapshot = broker.permissionReader.snapshot
        let spec: MethodSpec
        switch snapshot.decide(method: request.method, caller: identity) {
        case .allowed(let s): spec = s
        case .methodNotFound:
            let e = MiniAppError(.methodNotFound, "no method '\(request.method)' in the Bridge catalogue")
            answerNow(request, decision: .refuse, error: e, arrival: arrival, bytesIn: bytesIn)
            return
        case .notDeclared(let p):
            let e = MiniAppError(.permissionDenied, "\(request.method) needs permission '\(p)', which the program's manifest does not declare", data: ["permission": p])
            answerNow(request, decision: .deny, error: e, arrival: arrival, bytesIn: bytesIn)
            return
        case .notGranted(let p):
            let e = MiniAppError(.permissionDenied, "\(request.method) needs permission '\(p)', which is not granted to partner '\(identity.partnerId)'", data: ["permission": p])
            answerNow(request, decision: .deny, error: e, arrival: arrival, bytesIn: bytesIn)
            return
        }
        if let e = admit(spec, snapshot: snapshot, arrival: arrival) {
            answerNow(request, decision: .refuse, error: e, arrival: arrival, bytesIn: bytesIn)
            return
        }
        if case .array? = request.params {
            let e = MiniAppError(.invalidParams, "\(request.method) takes its params as an object")
            answerNow(request, decision: .refuse, error: e, arrival: arrival, bytesIn: bytesIn)
            return
        }
        dispatch(request, spec: spec, arrival: arrival, bytesIn: bytesIn)
    }

    private func admit(_ spec: MethodSpec, snapshot: PermissionTable.Snapshot, arrival: UInt64) -> MiniAppError? {
        if pending.count >= broker.configuration.maxInFlightPerWorker {
            return MiniAppError(.rateLimited, "too many calls in flight (\(broker.configuration.maxInFlightPerWorker)); wait for answers", data: ["limit": "inFlight"])
        }
        guard let buckets, broker.rateLimiter.admit(buckets, rateClass: spec.rateClass, catalogue: snapshot.catalogue, now: arrival) else {
            return MiniAppError(.rateLimited, "over the call budget of class '\(spec.rateClass)' or of the program; slow down", data: ["class": spec.rateClass])
        }
        return nil
    }

    private func dispatch(_ request: RPCRequest, spec: MethodSpec, arrival: UInt64, bytesIn: Int) {
        let token = nextToken
        nextToken += 1
        let call = Pending(
            id: request.id, method: request.method, arrival: arrival, arrivalWall: wallClockMicros(), bytesIn: bytesIn,
            params: recordsPayloads ? request.params : nil)
        switch spec.provider {
        case .builtin:
            guard let service = broker.services[spec.name] else {
                let cause = MiniAppError(.internal, "the catalogue lists \(spec.name) as built-in but no service registered it")
                finish(call, .error(MiniAppError(.internal, "\(spec.name) is not available in this daemon", cause: cause)))
                return
            }
            // A service that answers before returning (storage.get from memory) is finished
            // right here: no pending entry, no timer.
            syncToken = token
            service.handle(method: spec.name, params: request.params, caller: identity, reply: makeReply(token))
            syncToken = 0
            if let outcome = syncOutcome {
                syncOutcome = nil
                finish(call, outcome)
                return
            }
            pending[token] = call
        case .host:
            pending[token] = call
            let cancel = broker.hostProviders.forward(spec: spec, params: request.params, caller: identity) { [self] outcome in
                complete(token, outcome)
            }
            pending[token]?.cancel = cancel
        }
        // Still pending after the synchronous part: arm the timeout.
        if pending[token] != nil {
            let nanos = UInt64(spec.timeoutMillis) * 1_000_000
            pending[token]?.timer = broker.reactor.schedule(afterNanos: nanos) { [self] in
                pending[token]?.timer = nil
                let e = MiniAppError(.timeout, "\(spec.name) did not answer within \(spec.timeoutMillis) ms")
                complete(token, .error(e))
            }
        }
    }

    /// The service's reply callback: on the loop thread it completes in place (no hop, the
    /// answer joins the current write batch); from any other thread it is handed to the loop.
    private func makeReply(_ token: UInt64) -> BridgeReply {
        let reactor = broker.reactor
        return { [self] result in
            let outcome: CallOutcome
            switch result {
            case .success(let v): outcome = .result(v)
            case .failure(let e): outcome = .error(e)
            }
            if reactor.isInLoopThread {
                if token == syncToken && syncOutcome == nil {
                    syncOutcome = outcome
                } else {
                    complete(token, outcome)
                }
            } else {
                reactor.execute { [self] in complete(token, outcome) }
            }
        }
    }

    /// Answers a dispatched call once; later answers (after a timeout, or a service replying
    /// twice) are ignored.
    func complete(_ token: UInt64, _ outcome: CallOutcome) {
        guard let p = pending.removeValue(forKey: token) else { return }
        if let t = p.timer { broker.reactor.cancel(t) }
        if case .error(let e) = outcome, e.code == .timeout || e.code == .hostUnavailable { p.cancel?() }
        finish(p, outcome)
    }

    /// Writes the answer of a dispatched call and records the decision.
    private func finish(_ p: Pending, _ outcome: CallOutcome) {
        var code: ErrorCode?
        var bytesOut = 0
        var payloadResult: JSONValue?
        // Logged before the answer goes out, so the log line exists by the time the program
        // (or a test) can see the answer.
        switch outcome {
        case .result(let v): payloadResult = recordsPayloads ? v : nil
        case .error(let e):
            code = e.code
            if e.code == .internal || (e.code == .hostUnavailable && e.cause != nil) { logFailure(e, method: p.method) }
        case .relayed(let o): code = ErrorCode(rawValue: o.dataCode ?? ErrorCode.internal.rawValue)
        }
        if let id = p.id, let conn = connection {
            conn.appendOutput { out in
                let before = out.count
                switch outcome {
                case .result(let v): RPCCodec.writeResult(id: id, result: v, into: &out)
                case .error(let e): RPCCodec.writeError(id: id, error: e, into: &out)
                case .relayed(let o): RPCCodec.writeError(id: id, code: o.code, message: o.message, data: o.data, into: &out)
                }
                bytesOut = out.count - before
            }
        }
        let now = monotonicNanos()
        broker.record(CallRecord(
            timeMicros: p.arrivalWall, workerId: identity.workerId, programId: identity.programId, method: p.method,
            decision: .allow, code: code, micros: Int64((now &- p.arrival) / 1000), bytesIn: p.bytesIn, bytesOut: bytesOut,
            params: p.params.map(Redactor.redact), result: payloadResult.map(Redactor.redact), simulated: identity.simulated), known: true)
        if readEnded && pending.isEmpty { connection?.closeAfterFlush() }
    }

    /// The program gets only the error's generic message (spec: INTERNAL details only in the
    /// daemon's log — a cause can hold paths, SQL, libcurl or TLS text that maps the host for an
    /// attacker); the operator gets the cause and the place it was raised, here. Every INTERNAL
    /// is logged (it is the daemon's fault by definition); HOST_UNAVAILABLE only with a cause
    /// (a TLS or connect failure of `net.request`), since "no provider registered" says all there
    /// is and a program could otherwise fill the log by calling an unserved method.
    private func logFailure(_ e: MiniAppError, method: String) {
        let metadata: Logger.Metadata = [
            "worker": "\(identity.workerId)", "program": "\(identity.programId)", "method": "\(method)",
            "code": "\(e.code.rawValue)", "cause": "\(e.cause ?? "none")", "at": "\(e.location)",
        ]
        if e.code == .internal {
            broker.logger.error("bridge: \(method) failed: \(e.message)", metadata: metadata)
        } else {
            broker.logger.warning("bridge: \(method) failed: \(e.message)", metadata: metadata)
        }
    }

    private func answerNow(_ r: RPCRequest, decision: CallDecision, error: MiniAppError, arrival: UInt64, bytesIn: Int) {
        // A notification gets no answer, not even an error (JSON-RPC 2.0 §4.1); it is audited.
        answerNow(id: r.id, method: r.method, decision: decision, error: error, arrival: arrival, bytesIn: bytesIn, reply: r.id != nil)
    }

    private func answerNow(
        id: RPCId?, method: String?, decision: CallDecision, error: MiniAppError, arrival: UInt64, bytesIn: Int, reply: Bool = true
    ) {
        var bytesOut = 0
        if reply, let conn = connection {
            conn.appendOutput { out in
                let before = out.count
                RPCCodec.writeError(id: id ?? .null, error: error, into: &out)
                bytesOut = out.count - before
            }
        }
        let now = monotonicNanos()
        broker.record(CallRecord(
            timeMicros: wallClockMicros(), workerId: identity.workerId, programId: identity.programId, method: method,
            decision: decision, code: error.code, micros: Int64((now &- arrival) / 1000), bytesIn: bytesIn,
            bytesOut: bytesOut, params: nil, result: nil, simulated: identity.simulated), known: error.code != .methodNotFound)
    }
}
