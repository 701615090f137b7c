import Foundation
import Glibc
import Logging
import MiniAppBroker
import MiniAppJSON
import MiniAppModel
import MiniAppSystem
import Synchronization
import Testing
import MiniAppTestSupport

// The broker with the daemon's real built-in services — SQLite storage in a temp dir, the
// Ed25519 token signer, the libcurl egress proxy, system.info, log.write — driven through real
// socketpairs, as a jailed worker drives it. (Support.swift's fakes stay for the broker's own
// mechanics: timeouts, out-of-order replies, counters.)

/// Log lines written through swift-log, kept for assertions: the daemon's log as an operator
/// reads it.
final class CapturedLog: Sendable {
    private let lines = Mutex<[String]>([])

    /// Every line so far: `level message key=value…`.
    var all: [String] { lines.withLock { $0 } }

    /// A logger writing here.
    var logger: Logger { Logger(label: "miniappd.broker") { [self] _ in Handler(sink: self) } }

    func append(_ line: String) { lines.withLock { $0.append(line) } }

    struct Handler: LogHandler {
        let sink: CapturedLog
        var metadata: Logger.Metadata = [:]
        var logLevel: Logger.Level = .trace

        subscript(metadataKey key: String) -> Logger.Metadata.Value? {
            get { metadata[key] }
            set { metadata[key] = newValue }
        }

        func log(event: LogEvent) {
            let meta = (event.metadata ?? [:]).sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }
            sink.append((["\(event.level)", "\(event.message)"] + meta).joined(separator: " "))
        }
    }
}

/// A reactor + broker serving the real `BuiltinServices` on a private state directory.
final class ServiceHarness {
    let dir: String
    let reactor: Reactor
    let broker: Broker
    let services: BuiltinServices
    /// The broker's log.
    let log = CapturedLog()
    /// What `log.write` forwarded.
    let programLog = CapturedLog()

    init(
        catalogue: MethodCatalogue? = nil, grants: [String: Set<String>] = ["com.partner": ["network"]],
        configuration: BrokerConfiguration = .init(), configure: (inout ServicesConfig) -> Void = { _ in }
    ) throws {
        dir = try TempDir.makeDirectory("broker-svc")
        var config = ServicesConfig(hostVersion: "3.1.4")
        configure(&config)
        let programLog = self.programLog
        services = try BuiltinServices(stateDirectory: dir + "/services", config: config) { level, program, worker, message in
            programLog.append("\(level) \(program) \(worker) \(message)")
        }
        reactor = try Reactor()
        try reactor.start()
        broker = try Broker(
            reactor: reactor, catalogue: try catalogue ?? standardCatalogue(), grants: grants, services: services.all,
            configuration: configuration, logger: log.logger)
    }

    deinit {
        reactor.shutdown()
        services.shutdown()
        try? FileManager.default.removeItem(atPath: dir)
    }

    /// Attaches a worker of `program` (declaring `network`, allowed `api.partner.test`).
    func worker(
        _ workerId: String, program: String = "com.partner.app", declared: Set<String> = ["network"],
        domains: [String] = ["api.partner.test"]
    ) throws -> Peer {
        let pair = try UnixSocket.pair()
        let identity = CallerIdentity(
            workerId: workerId, programId: program, version: "1.0.0", partnerId: "com.partner",
            declaredPermissions: declared, allowedDomains: domains)
        try broker.attach(workerFD: pair.daemonSide, identity: identity)
        return Peer(fd: pair.workerSide.take())
    }

    /// Runs the loop twice and writes the audit batch (see `Harness.settle`).
    func settle() {
        for _ in 0..<2 {
            let s = DispatchSemaphore(value: 0)
            reactor.execute { s.signal() }
            s.wait()
        }
        broker.flushAudit()
    }
}

extension Peer {
    /// Sends `params` (a JSON value) and reads one answer.
    func call(_ id: Int, _ method: String, json params: JSONValue) throws -> JSONValue {
        try call(id, method, params.jsonString)
    }
}

/// A TCP port on 127.0.0.1 where nothing listens (bound, then closed).
func closedLoopbackPort() throws -> Int {
    let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    guard fd >= 0 else { throw TestFailure("socket: errno \(errno)") }
    defer { close(fd) }
    var addr = sockaddr_in()
    addr.sin_family = sa_family_t(AF_INET)
    addr.sin_addr.s_addr = inet_addr("127.0.0.1")
    var len = socklen_t(MemoryLayout<sockaddr_in>.size)
    let bound = withUnsafeMutablePointer(to: &addr) { a in
        a.withMemoryRebound(to: sockaddr.self, capacity: 1) { sa -> Bool in
            bind(fd, sa, len) == 0 && getsockname(fd, sa, &len) == 0
        }
    }
    guard bound else { throw TestFailure("bind: errno \(errno)") }
    return Int(UInt16(bigEndian: addr.sin_port))
}

