// The host side of the end-to-end benchmarks (bench-daemon, bench-runtimes): a private state dir
// with a real `miniappd`, bench packages, and one blocking control connection that is also the
// host provider of `ui.toast` (through which the jailed bench programs report their timings).
public import Foundation
public import MiniAppJSON
import MiniAppSystem

/// Runs `argv` to completion with stdout discarded; a failure ends the benchmark.
public func benchRun(_ argv: [String]) {
    let p = Process()
    p.executableURL = URL(fileURLWithPath: argv[0])
    p.arguments = Array(argv.dropFirst())
    p.standardOutput = FileHandle.nullDevice
    try! p.run()
    p.waitUntilExit()
    guard p.terminationStatus == 0 else { fatalError("failed: \(argv.joined(separator: " "))") }
}

/// (p50, p99, p99.9), nearest rank.
public func benchPercentiles(_ xs: [Double]) -> (Double, Double, Double) {
    let s = xs.sorted()
    func p(_ q: Double) -> Double { s[min(s.count - 1, Int(Double(s.count) * q))] }
    return (p(0.5), p(0.99), p(0.999))
}

/// One `RESULT|name|p50|p99|p999|throughput|unit|notes` line (the anchors' PROJECT_BENCH format).
public func benchRow(_ name: String, _ p: (Double, Double, Double), _ tput: Double, _ unit: String, _ notes: String) {
    print(String(format: "RESULT|%@|%.1f|%.1f|%.1f|%.1f|%@|%@", name, p.0, p.1, p.2, tput, unit, notes))
    CurrentProcess.flushStandardOutput()
}

/// A row that is a rate or a size, not a latency: its percentile columns are `-` (no p50/p99 in
/// bench-results.json rather than a misleading 0).
public func benchValueRow(_ name: String, _ value: Double, _ unit: String, _ notes: String) {
    print(String(format: "RESULT|%@|-|-|-|%.1f|%@|%@", name, value, unit, notes))
    CurrentProcess.flushStandardOutput()
}

/// A bench state: work dir, policies with raised rate limits (a benchmark measures the path, not
/// the token bucket), a signing key and the bench partner `com.bench` (permission `ui`).
public struct BenchEnvironment: Sendable {
    public let work: String
    public let binDir: String

    public init(name: String, policyDir: String) {
        binDir = URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent().path
        work = FileManager.default.temporaryDirectory.appendingPathComponent("\(name)-\(CurrentProcess.pid)").path
        try? FileManager.default.removeItem(atPath: work)
        try! FileManager.default.createDirectory(atPath: work + "/programs", withIntermediateDirectories: true)
        benchRun(["/bin/cp", "-r", policyDir, work + "/policies"])
        let methods = work + "/policies/methods.json"
        var text = try! String(contentsOfFile: methods, encoding: .utf8)
        for key in ["perSecond", "burst"] {
            text = text.replacingOccurrences(of: "\"\(key)\": *[0-9]+", with: "\"\(key)\": 10000000", options: .regularExpression)
        }
        try! text.write(toFile: methods, atomically: true, encoding: .utf8)
        benchRun([binDir + "/miniapp", "keygen", "--out", work + "/key"])
        let pub = try! String(contentsOfFile: work + "/key.pub", encoding: .utf8)
        try! FileManager.default.createDirectory(atPath: work + "/policies/partners", withIntermediateDirectories: true)
        let partner: JSONValue = ["id": "com.bench", "idPrefixes": ["com.bench."], "publicKeys": [.string(pub)], "permissions": ["ui"]]
        try! Data(partner.serialized()).write(to: URL(fileURLWithPath: work + "/policies/partners/com.bench.json"))
    }

    /// Packs and signs program `id` (permission `ui`) with `entry` copied from `file` or written
    /// from `text`; returns the zip's path.
    public func pack(_ id: String, entry: String, runtime: String = "native", file: String? = nil, text: String? = nil) -> String {
        let dir = work + "/programs/" + id
        try! FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        if let file { benchRun(["/bin/cp", file, dir + "/" + entry]) }
        if let text { try! text.write(toFile: dir + "/" + entry, atomically: true, encoding: .utf8) }
        try! FileSystem.setPermissions(dir + "/" + entry, 0o755)
        let manifest: JSONValue = [
            "id": .string(id), "version": "1.0.0", "minHostVersion": "0.1.0", "entryPoint": .string(entry),
            "runtime": .string(runtime), "permissions": ["ui"],
        ]
        try! Data(manifest.serialized()).write(to: URL(fileURLWithPath: dir + "/manifest.json"))
        let zip = work + "/programs/" + id + ".zip"
        benchRun([binDir + "/miniapp", "pack", dir, "--key", work + "/key.key", "--out", zip])
        return zip
    }

    /// The daemon's control socket.
    public var socket: String { work + "/control.sock" }

    /// Starts miniappd on this state dir with `config` (a JSON object's text) and connects as the
    /// host provider of `ui.toast`.
    public func startDaemon(config: String, name: String) -> (Process, BenchHost) {
        let daemon = startDaemonProcess(config: config, name: name)
        guard let host = BenchHost(socket: socket) else { Self.giveUp(daemon, socket) }
        host.call("bridge.provide", ["methods": ["ui.toast"]])
        return (daemon, host)
    }

    /// Starts miniappd on this state dir with `config` (a JSON object's text) and `extraArgs`,
    /// and waits (up to 10 s) for its control socket to appear.
    public func startDaemonProcess(config: String, name: String, extraArgs: [String] = []) -> Process {
        let configPath = work + "/config-\(name).json"
        try! Data(config.utf8).write(to: URL(fileURLWithPath: configPath))
        try? FileManager.default.removeItem(atPath: socket)
        let daemon = Process()
        let args = ["--state-dir", work + "/state", "--control-socket", socket, "--policy-dir", work + "/policies",
                    "--config", configPath] + extraArgs
        // setpriv --pdeathsig: the daemon (and so its workers) dies with this bench even if the
        // bench crashes, instead of running on as an orphan that skews the rows measured after it.
        if FileManager.default.isExecutableFile(atPath: "/usr/bin/setpriv") {
            daemon.executableURL = URL(fileURLWithPath: "/usr/bin/setpriv")
            daemon.arguments = ["--pdeathsig", "TERM", "--", binDir + "/miniappd"] + args
        } else {
            daemon.executableURL = URL(fileURLWithPath: binDir + "/miniappd")
            daemon.arguments = args
        }
        daemon.standardOutput = FileHandle(forWritingAtPath: "/dev/null")!
        daemon.standardError = FileHandle.standardError
        var env = ProcessInfo.processInfo.environment
        env["MINIAPPD_LOG_LEVEL"] = "warning"
        daemon.environment = env
        try! daemon.run()
        for _ in 0..<400 where !FileManager.default.fileExists(atPath: socket) { CurrentProcess.sleep(micros: 25_000) }
        return daemon
    }

    /// The daemon never answered: stop it and end the benchmark.
    public static func giveUp(_ daemon: Process, _ socket: String) -> Never {
        stopDaemon(daemon)
        CurrentProcess.writeStandardError("bench: miniappd never answered on \(socket)\n")
        CurrentProcess.exit(1)
    }

    /// SIGTERM and wait.
    public static func stopDaemon(_ d: Process) {
        Processes.signal(d.processIdentifier, Signal.term)
        d.waitUntilExit()
    }

    /// Removes the work dir.
    public func cleanUp() { try? FileManager.default.removeItem(atPath: work) }
}

/// A blocking control connection: requests with ids, and `bridge.call` requests from the
/// daemon (the workers' ui.toast), which `nextToast` returns.
public final class BenchHost {
    let fd: Int32
    var buf: [UInt8] = []
    var id = 0
    var toasts: [JSONObject] = []
    var exited: Set<String> = []

    /// Connects, retrying for up to 10 s while the daemon starts; nil if it never answers.
    init?(socket: String) {
        for _ in 0..<400 {
            if let c = try? UnixSocket.connect(path: socket) { fd = c.take(); return }
            CurrentProcess.sleep(micros: 25_000)
        }
        return nil
    }

    func write(_ v: JSONValue) {
        var line = v.serialized()
        line.append(10)
        do { try UnixSocket.sendAll(fd, line) } catch { preconditionFailure("control socket write failed: \(error)") }
    }

    func readMessage() -> JSONObject {
        while true {
            if let nl = buf.firstIndex(of: 10) {
                let line = Array(buf[..<nl])
                buf.removeSubrange(...nl)
                return try! JSONValue.parse(line, options: .strict).objectValue!
            }
            var chunk = [UInt8](repeating: 0, count: 65536)
            let n = (try? chunk.withUnsafeMutableBytes { p throws(SystemError) in try UnixSocket.receive(fd, into: p) }) ?? -1
            precondition(n > 0, "daemon closed the control connection")
            buf.append(contentsOf: chunk[..<n])
        }
    }

    /// Sends a request and returns its result; queues bridge.calls that arrive meanwhile.
    @discardableResult
    public func call(_ method: String, _ params: JSONValue = [:]) -> JSONValue {
        id += 1
        write(["jsonrpc": "2.0", "id": .int(Int64(id)), "method": .string(method), "params": params])
        while true {
            let m = readMessage()
            if m["method"]?.stringValue == "bridge.call" { toasts.append(m); continue }
            if m["method"] != nil { note(m); continue }
            guard m["id"]?.intValue == Int64(id) else { continue }
            if let e = m["error"] { fatalError("\(method) failed: \(e)") }
            return m["result"] ?? .null
        }
    }

    /// The next ui.toast call a worker made: (rpc id, its params).
    public func nextToast() -> (JSONValue, JSONObject) {
        let m: JSONObject
        if !toasts.isEmpty {
            m = toasts.removeFirst()
        } else {
            var got: JSONObject?
            while got == nil {
                let x = readMessage()
                if x["method"]?.stringValue == "bridge.call" { got = x } else { note(x) }
            }
            m = got!
        }
        let inner = m["params"]?.objectValue?["params"]?.objectValue ?? [:]
        return (m["id"]!, inner)
    }

    func note(_ m: JSONObject) {
        if m["method"]?.stringValue == "program.exited", let w = m["params"]?.objectValue?["workerId"]?.stringValue {
            exited.insert(w)
        }
    }

    /// Waits for `program.exited` of `workerId`.
    public func waitExited(_ workerId: String) {
        while !exited.contains(workerId) {
            let m = readMessage()
            if m["method"]?.stringValue == "bridge.call" { toasts.append(m) } else { note(m) }
        }
    }

    /// Answers a ui.toast call with an empty result.
    public func answer(_ id: JSONValue) { write(["jsonrpc": "2.0", "id": id, "result": [:]]) }
}
