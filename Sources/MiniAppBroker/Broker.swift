public import MiniAppJSON
public import MiniAppModel
public import MiniAppSystem
public import Logging
import Synchronization

/// Settings of the broker.
public struct BrokerConfiguration: Sendable {
    /// Largest Bridge message, newline excluded (spec default 1 MiB).
    public var maxMessageBytes: Int
    /// Unsent output per worker before it is disconnected as a non-reader.
    public var maxQueuedOutputBytes: Int
    /// Calls one worker may have in flight; more are answered `RATE_LIMITED`. Bounds the
    /// memory a pipelining worker can pin in the daemon.
    public var maxInFlightPerWorker: Int
    /// Maximum JSON nesting in a Bridge message.
    public var maxDepth: Int
    /// The audit log; nil = none (tests, simulator).
    public var audit: AuditConfiguration?
    /// Inspector events carry (redacted) params and results.
    public var inspectorPayloads: Bool
    /// Peek requests and consume them after answering (`LineConnection.Limits.deferConsume`).
    /// Off: each request is read with one `recv` into the connection's framer (the tail of a
    /// partial message stays there), three syscalls per call on the loop instead of four. The
    /// peek spares a worker blocked in `read` the wake-up that consuming its request gives it
    /// before the answer exists, but the answer's own `send` and the consume that follows it are
    /// not free either: when the worker preempts the loop after the `send` and is already
    /// waiting for its next answer, the deferred consume wakes it anyway; `bridge.rtt` was
    /// lower without the peek in five of six interleaved pairs of runs (median gain ~1 µs). Node's
    /// SDK waits in epoll, whose readiness callback ignores the sender-side wake-up altogether.
    public var deferConsume: Bool = false

    public init(
        maxMessageBytes: Int = 1 << 20, maxQueuedOutputBytes: Int = 8 << 20, maxInFlightPerWorker: Int = 256,
        maxDepth: Int = 64, audit: AuditConfiguration? = nil, inspectorPayloads: Bool = false
    ) {
        self.maxMessageBytes = maxMessageBytes
        self.maxQueuedOutputBytes = maxQueuedOutputBytes
        self.maxInFlightPerWorker = maxInFlightPerWorker
        self.maxDepth = maxDepth
        self.audit = audit
        self.inspectorPayloads = inspectorPayloads
    }
}

/// The Bridge broker: serves every worker's fd-3 socket on a `Reactor` and decides every call
/// (DESIGN.md, "The Bridge broker"; spec/bridge-protocol.md).
///
/// Per message, in the spec's order, the first failing check answers: framing and JSON-RPC
/// shape → method in the catalogue → permission (`PermissionTable`, the single choke point) →
/// rate limit → params shape → the built-in service or the host provider. The whole path runs
/// on the loop thread that read the bytes; a service that answers at once is answered in the
/// same `send(2)` batch. Every decision is counted, audited and streamed to the inspector.
///
/// Thread-safety: the public methods may be called from any thread; they hand work to the loop.
public final class Broker: @unchecked Sendable {
    /// The reactor serving the workers (and, typically, the control socket).
    public let reactor: Reactor
    /// The permission table (catalogue + partner grants).
    public let permissions: PermissionTable
    /// Host runtimes serving host-provided methods.
    public let hostProviders: HostProviderRegistry
    /// The inspector stream.
    public let inspector: Inspector
    /// The configuration.
    public let configuration: BrokerConfiguration
    let logger: Logger
    let counterStore = CounterStore()
    let services: [String: any BridgeService]
    private let uniqueServices: [any BridgeService]
    private let sessions = Mutex<[String: WorkerSession]>([:])

    // Loop-confined.
    let permissionReader: PermissionTable.Reader
    let rateLimiter = RateLimiter()
    let audit: AuditLog?

    /// Creates a broker on `reactor` (started or not).
    ///
    /// - Parameters:
    ///   - catalogue: the method catalogue (`MethodCatalogue.parse` of `policies/methods.json`).
    ///   - grants: partnerId → permissions granted now.
    ///   - services: the built-in services; each serves the methods it lists (a method listed
    ///     twice is a programmer error and traps).
    /// - Throws: `SystemError` if the audit log cannot be opened.
    public init(
        reactor: Reactor, catalogue: MethodCatalogue, grants: [String: Set<String>], services: [any BridgeService],
        configuration: BrokerConfiguration = .init(), logger: Logger = Logger(label: "miniappd.broker")
    ) throws(SystemError) {
        self.reactor = reactor
        self.configuration = configuration
        self.logger = logger
        let table = PermissionTable(catalogue: catalogue, grants: grants)
        permissions = table
        permissionReader = PermissionTable.Reader(table)
        var byMethod: [String: any BridgeService] = [:]
        for s in services {
            for m in s.methods {
                precondition(byMethod[m] == nil, "two services registered for \(m)")
                byMethod[m] = s
            }
        }
        self.services = byMethod
        uniqueServices = services
        audit = try configuration.audit.map { c throws(SystemError) in try AuditLog(c, logger: logger) }
        inspector = Inspector(reactor: reactor, payloads: configuration.inspectorPayloads)
        hostProviders = HostProviderRegistry(reactor: reactor, permissions: table, counters: counterStore, logger: logger)
        if let audit {
            reactor.execute { [reactor] in reactor.addBeforeSleepHook { audit.loopWillSleep(reactor) } }
        }
    }

    // MARK: Workers

    /// Serves a worker's Bridge socket (the daemon's end of its socketpair). `identity` is the
    /// caller for every message on this connection, for its whole life: it comes from the
    /// verified manifest and the spawn, never from the program.
    ///
    /// - Throws: `MiniAppError(.internal)` if `identity.workerId` is already attached or the
    ///   fd cannot be served.
    public func attach(workerFD: consuming OwnedFD, identity: CallerIdentity) throws(MiniAppError) {
        let session = WorkerSession(broker: self, identity: identity)
        let fresh = sessions.withLock { s -> Bool in
            guard s[identity.workerId] == nil else { return false }
            s[identity.workerId] = session
            return true
        }
        guard fresh else { throw MiniAppError(.internal, "worker \(identity.workerId) is already attached") }
        let limits = LineConnection.Limits(
            maxLineBytes: configuration.maxMessageBytes, maxQueuedOutputBytes: configuration.maxQueuedOutputBytes,
            deferConsume: configuration.deferConsume)
        do {
            _ = try reactor.adopt(workerFD, limits: limits, handler: session)
        } catch {
            sessionEnded(session)
            throw MiniAppError(.internal, "cannot serve the Bridge socket of \(identity.workerId)", cause: error)
        }
    }

    /// Closes a worker's Bridge connection and forgets it; pending calls are dropped (their late
    /// answers are ignored). Idempotent; the daemon calls it when the worker exits.
    public func detach(workerId: String) {
        guard let session = sessions.withLock({ $0[workerId] }) else { return }
        reactor.execute { session.connection?.close() }
    }

    /// Sends `{"jsonrpc":"2.0","method":"event","params":{"name":…,"data":…}}` to a worker.
    /// Returns false when no such worker is attached.
    @discardableResult
    public func sendEvent(workerId: String, name: String, data: JSONValue = .object([:])) -> Bool {
        guard let session = sessions.withLock({ $0[workerId] }) else { return false }
        var buf: [UInt8] = []
        RPCCodec.writeNotification(method: "event", params: ["name": .string(name), "data": data], into: &buf)
        let line = buf
        reactor.execute { session.connection?.send(line) }
        return true
    }

    /// Replaces the partner grants: a revoked permission is denied from the next call on.
    public func updateGrants(_ grants: [String: Set<String>]) { permissions.updateGrants(grants) }

    /// The counters now (any thread).
    public func counters() -> BrokerCounters {
        let workers = sessions.withLock { s in s.mapValues { $0.calls.load(ordering: .relaxed) } }
        return counterStore.snapshot(workers: workers)
    }

    /// Messages received from a worker so far and the monotonic time (ns) of the last one
    /// (0 when none); (0, 0) for a worker that is not attached.
    public func activity(workerId: String) -> (calls: UInt64, lastCallNanos: UInt64) {
        guard let s = sessions.withLock({ $0[workerId] }) else { return (0, 0) }
        return (s.calls.load(ordering: .relaxed), s.lastCallNanos.load(ordering: .relaxed))
    }

    /// Writes every audit record of calls answered so far: hands the pending batch over on
    /// the loop (or here, once the loop has stopped) and waits for the writer. For shutdown
    /// and tests.
    public func flushAudit() {
        guard let audit else { return }
        if reactor.isInLoopThread || reactor.isStopped {
            audit.flush(force: true)
        } else {
            let done = CountingSemaphore()
            reactor.execute {
                audit.flush(force: true)
                done.signal()
            }
            done.wait()
        }
        audit.waitForWrites()
    }

    /// Identities of the attached workers.
    public var attachedWorkers: [CallerIdentity] { sessions.withLock { $0.values.map(\.identity) } }

    // MARK: Internal

    func sessionEnded(_ session: WorkerSession) {
        let removed = sessions.withLock { s -> Bool in
            guard s[session.identity.workerId] === session else { return false }
            s[session.identity.workerId] = nil
            return true
        }
        guard removed else { return }
        for s in uniqueServices { s.workerDetached(session.identity) }
    }

    /// Counts, audits and publishes one decision (loop thread). `known` says whether the method
    /// is in the catalogue (unknown names are counted together, see `BrokerCounters`).
    func record(_ r: CallRecord, known: Bool) {
        let key = r.method == nil ? "(invalid)" : known ? r.method! : "(unknown)"
        counterStore.count(methodKey: key, decision: r.decision, code: r.code?.rawValue, micros: r.micros)
        audit?.record(r)
        if inspector.isActive { inspector.publish(r) }
    }

    /// Whether records must carry payloads (loop thread).
    var wantsPayloads: Bool { (inspector.isActive && inspector.payloads) || (audit?.includePayloads ?? false) }
}
