import Dispatch
import Glibc
import MiniAppBroker
import MiniAppJSON
import MiniAppModel
import MiniAppSystem
import Synchronization
import Testing

struct TestFailure: Error, CustomStringConvertible {
    var description: String
    init(_ d: String) { description = d }
}

/// The repository's catalogue (policies/methods.json).
func standardCatalogue() throws -> MethodCatalogue {
    let path = String(#filePath).split(separator: "/").dropLast(3).joined(separator: "/")
    let fd = try OwnedFD.open("/" + path + "/policies/methods.json", O_RDONLY)
    return try MethodCatalogue.parse(try fd.readAll())
}

/// A small catalogue with tight limits for rate-limit and timeout tests. A tight class (burst
/// under 1000) refills at one token per 1000 s: nothing refills while a test runs.
func tightCatalogue(storageBurst: Double = 3, hostBurst: Double = 1000, hostTimeoutMillis: Int = 50) throws -> MethodCatalogue {
    try MethodCatalogue(
        methods: [
            MethodSpec(name: "storage.get", permission: nil, provider: .builtin, rateClass: "storage", timeoutMillis: 1000),
            MethodSpec(name: "log.write", permission: nil, provider: .builtin, rateClass: "log", timeoutMillis: hostTimeoutMillis),
            MethodSpec(name: "payment.pay", permission: "payment", provider: .host, rateClass: "host", timeoutMillis: hostTimeoutMillis),
        ],
        permissions: ["payment": "pay"],
        classes: [
            "storage": RateLimit(perSecond: 0.001, burst: storageBurst), "log": RateLimit(perSecond: 1000, burst: 1000),
            "host": RateLimit(perSecond: hostBurst < 1000 ? 0.001 : 1000, burst: hostBurst),
        ],
        programBudget: RateLimit(perSecond: 1000, burst: 1000))
}

// MARK: Fake services (the real ones come from the services branch)

/// storage.* in memory, answering synchronously on the loop thread.
final class FakeStorage: BridgeService {
    let methods = ["storage.get", "storage.set", "storage.remove", "storage.keys"]
    private let data = Mutex<[String: JSONValue]>(["theme": "dark"])

    func handle(method: String, params: JSONValue?, caller: CallerIdentity, reply: @escaping BridgeReply) {
        guard case .string(let key)? = params?["key"] else {
            if method == "storage.keys" { return reply(.success(["keys": .array(data.withLock { $0.keys.sorted().map { .string($0) } })])) }
            return reply(.failure(MiniAppError(.invalidParams, "key must be a string")))
        }
        let k = caller.programId + ":" + key
        switch method {
        case "storage.get": reply(.success(["value": data.withLock { $0[k] ?? $0[key] } ?? .null]))
        case "storage.set":
            data.withLock { $0[k] = params?["value"] ?? .null }
            reply(.success([:]))
        default:
            data.withLock { $0[k] = nil }
            reply(.success([:]))
        }
    }
}

/// system.info, auth.getToken and net.request, synchronous; counts the calls it receives.
final class FakeMisc: BridgeService {
    let methods = ["system.info", "auth.getToken", "net.request"]
    let calls = Atomic<Int>(0)

    func handle(method: String, params: JSONValue?, caller: CallerIdentity, reply: @escaping BridgeReply) {
        calls.add(1, ordering: .relaxed)
        switch method {
        case "system.info": reply(.success(["programId": .string(caller.programId), "version": .string(caller.version)]))
        case "auth.getToken": reply(.success(["token": "tok-SECRET-123", "expiresAt": 1_900_000_000]))
        default: reply(.success(["status": 200]))
        }
    }
}

/// log.write held until the test releases it, then answered from another thread.
final class GateService: BridgeService {
    let methods = ["log.write"]
    private let held = Mutex<[BridgeReply]>([])

    func handle(method: String, params: JSONValue?, caller: CallerIdentity, reply: @escaping BridgeReply) {
        held.withLock { $0.append(reply) }
    }

    var heldCount: Int { held.withLock { $0.count } }

    /// Answers every held call on the calling thread.
    func releaseHere() {
        let replies = held.withLock { h -> [BridgeReply] in
            defer { h.removeAll() }
            return h
        }
        for r in replies { r(.success(["released": true])) }
    }

    /// Answers every held call from a fresh thread (not the loop).
    func releaseAll() {
        let replies = held.withLock { h -> [BridgeReply] in
            defer { h.removeAll() }
            return h
        }
        let done = DispatchSemaphore(value: 0)
        DispatchQueue.global().async {
            for r in replies { r(.success(["released": true])) }
            done.signal()
        }
        done.wait()
    }
}

// MARK: Harness

/// A reactor + broker, and workers connected through real socketpairs.
final class Harness {
    let reactor: Reactor
    let broker: Broker
    let misc = FakeMisc()
    let gate = GateService()

    init(
        catalogue: MethodCatalogue? = nil, grants: [String: Set<String>] = [:],
        configuration: BrokerConfiguration = .init()
    ) throws {
        reactor = try Reactor()
        try reactor.start()
        broker = try Broker(
            reactor: reactor, catalogue: try catalogue ?? standardCatalogue(), grants: grants,
            services: [FakeStorage(), misc, gate], configuration: configuration)
    }

    deinit { reactor.shutdown() }

    /// Attaches a worker and returns the program's end of its socket.
    func worker(
        _ workerId: String, program: String = "com.partner.app", partner: String = "com.partner",
        declared: Set<String> = [], rateClasses: [String: RateLimit] = [:]
    ) throws -> Peer {
        let pair = try UnixSocket.pair()
        let identity = CallerIdentity(
            workerId: workerId, programId: program, version: "1.0.0", partnerId: partner,
            declaredPermissions: declared, allowedDomains: [], rateClasses: rateClasses)
        try broker.attach(workerFD: pair.daemonSide, identity: identity)
        return Peer(fd: pair.workerSide.take())
    }

    /// Waits until the loop has completed two full turns (so before-sleep hooks such as the
    /// audit flush have run after everything queued so far).
    func settle() {
        for _ in 0..<2 {
            let s = DispatchSemaphore(value: 0)
            reactor.execute { s.signal() }
            s.wait()
        }
        broker.flushAudit()
    }
}

/// The far end of a line socket, driven synchronously by a test (the program or the host).
final class Peer {
    let fd: Int32
    private var buffer: [UInt8] = []

    init(fd: Int32) {
        self.fd = fd
        var tv = timeval(tv_sec: 10, tv_usec: 0)  // a hung test fails instead of hanging CI
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
    }

    deinit { close(fd) }

    func sendRaw(_ bytes: [UInt8]) throws {
        var off = 0
        while off < bytes.count {
            let n = bytes.withUnsafeBytes { send(fd, $0.baseAddress! + off, $0.count - off, Int32(MSG_NOSIGNAL)) }
            if n < 0 {
                if errno == EINTR { continue }
                throw TestFailure("send failed: errno \(errno)")
            }
            off += n
        }
    }

    func sendLine(_ s: String) throws { try sendRaw(Array(s.utf8) + [0x0A]) }

    func shutdownWrite() { shutdown(fd, Int32(SHUT_WR)) }

    /// The next line, or nil at EOF.
    func readLine() throws -> String? {
        while true {
            if let nl = buffer.firstIndex(of: 0x0A) {
                let line = String(decoding: buffer[..<nl], as: UTF8.self)
                buffer.removeSubrange(...nl)
                return line
            }
            var chunk = [UInt8](repeating: 0, count: 65536)
            let n = chunk.withUnsafeMutableBytes { read(fd, $0.baseAddress!, $0.count) }
            if n == 0 { return nil }
            if n < 0 {
                if errno == EINTR { continue }
                throw TestFailure("read failed or timed out: errno \(errno)")
            }
            buffer.append(contentsOf: chunk[..<n])
        }
    }

    func readJSON() throws -> JSONValue {
        guard let line = try readLine() else { throw TestFailure("EOF while waiting for a message") }
        return try JSONValue.parse(line)
    }

    /// Sends one request and reads one answer.
    func call(_ id: Int, _ method: String, _ params: String = "{}") throws -> JSONValue {
        try sendLine(#"{"jsonrpc":"2.0","id":\#(id),"method":"\#(method)","params":\#(params)}"#)
        return try readJSON()
    }

    /// True when the daemon closed the connection (after any remaining lines).
    func readsEOF() throws -> Bool {
        while let _ = try readLine() {}
        return true
    }
}

extension JSONValue {
    /// `error.data.code` of an answer, nil for a result.
    var errorCode: String? { self["error"]?["data"]?["code"]?.stringValue }
    /// True for an answer carrying `result`.
    var isResult: Bool { self["result"] != nil }
}

/// A host runtime's control connection, served by the broker's reactor, answering nothing by
/// itself: the test reads `bridge.call`s on `peer` and answers them.
final class ProviderRouter: LineHandler {
    let broker: Broker
    init(broker: Broker) { self.broker = broker }

    func connection(_ connection: LineConnection, didReceiveLine line: UnsafeBufferPointer<UInt8>) {
        guard case .success(let v) = RPCCodec.parse(line), case .success(.response(let r)) = RPCCodec.decodeMessage(v)
        else { return }
        broker.hostProviders.handleResponse(r, from: connection)
    }
}

extension Harness {
    /// Connects a host provider for `methods`; returns the host's end.
    func provider(_ methods: [String]) throws -> (Peer, LineConnection) {
        let pair = try UnixSocket.pair()
        let conn = try reactor.adopt(pair.daemonSide, handler: ProviderRouter(broker: broker))
        try broker.hostProviders.provide(methods: methods, connection: conn)
        settle()
        return (Peer(fd: pair.workerSide.take()), conn)
    }
}
