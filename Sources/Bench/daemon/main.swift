// bench-daemon: the spec's end-to-end rows, through a real `miniappd` with real jailed workers
// and the real storage service (spec/cli-and-config.md "Benchmarks"):
//
//   launch.cold        programs.launch → first Bridge reply received inside the worker (warmJails off)
//   launch.cold.registry_hang  launch.cold while the configured registry accepts connections and
//                      never answers (every launch starts an update check of its program)
//   launch.pool        the same with a warm jail waiting (the default daemon, spawner_warm.c)
//   resume.warm        programs.resume of a suspended worker → its next Bridge reply
//   bridge.rtt         one storage.get round trip timed inside a jailed worker
//   bridge.rtt.host    one ui.toast round trip (worker → daemon → this process as host, through
//                      the MiniAppHost library → back)
//   bridge.throughput  storage.get calls/s summed over 8 jailed workers, pipelined
//   daemon.rss_idle    the RSS (KiB, in the throughput column) of a freshly started daemon with N idle workers
//
// Usage: bench-daemon POLICY_DIR [SCALE] [IDLE_WORKERS]
// The daemon runs on a private state dir with a copy of POLICY_DIR whose rate limits are raised
// (a benchmark measures the path, not the token bucket) plus a bench partner. This process is
// the host runtime: it holds the control connection, serves `ui.toast` as host provider and
// reads the workers' reports from it. Prints `RESULT|name|p50|p99|p999|throughput|unit|notes`.
import Foundation
import BenchSupport
import MiniAppHost
import MiniAppJSON
import MiniAppSystem

let args = CommandLine.arguments
guard args.count >= 2 else { fatalError("usage: bench-daemon POLICY_DIR [SCALE] [IDLE_WORKERS]") }
let scale = args.count > 2 ? Double(args[2]) ?? 1 : 1
let idleWorkers = args.count > 3 ? Int(args[3]) ?? 200 : 200
let env = BenchEnvironment(name: "bench-daemon", policyDir: args[1])

@MainActor func now() -> UInt64 { monotonicNanos() }

// MARK: setup

/// The packages of the bench programs.
@MainActor func prepare() -> [String] {
    var zips: [String] = []
    for i in 0..<8 { zips.append(env.pack("com.bench.w\(i)", entry: "worker", file: env.binDir + "/bench-daemon-worker")) }
    if let probe = launchProbe { zips.append(env.pack("com.bench.launch", entry: "launch_probe", file: probe)) }
    for i in 0..<idleWorkers { zips.append(env.pack("com.bench.idle\(i)", entry: "idle.sh", text: "#!/bin/sh\nexec cat <&3 >/dev/null\n")) }
    return zips
}

// MARK: the host side of the control connection

/// The bench as a host runtime, on the MiniAppHost library: blocking control calls, and the
/// workers' `ui.toast` calls served as host provider. The rtt.host samples (`message: "x"`) are
/// answered at once by the handler; every other toast waits in `toasts` for the bench's
/// `answer` (resume.warm answers while the worker is frozen).
final class Host: @unchecked Sendable {
    typealias Reply = CheckedContinuation<JSONValue, Never>
    let client: HostClient
    private let cond = NSCondition()
    private var toasts: [(Reply, JSONObject)] = []
    private var exited: Set<String> = []

    /// Connects, retrying for up to 10 s while the daemon starts; nil if it never answers.
    init?(socket: String) {
        var options = HostOptions()
        options.reconnect = false
        options.callTimeoutMillis = 600_000
        var connected: HostClient?
        let box = ExitBox()
        options.onMessage = { m in
            if m["method"]?.stringValue == "program.exited", let w = m["params"]?["workerId"]?.stringValue { box.add(w) }
        }
        for _ in 0..<400 {
            if let c = try? HostClient(path: socket, options: options) { connected = c; break }
            CurrentProcess.sleep(micros: 25_000)
        }
        guard let connected else { return nil }
        client = connected
        box.host = self
    }

    /// Sends a request and returns its result.
    @discardableResult
    func call(_ method: String, _ params: JSONObject = [:]) -> JSONValue {
        do {
            return try client.callBlocking(method, params)
        } catch {
            fatalError("\(method) failed: \(error)")
        }
    }

    /// Serves `ui.toast` (see the type's doc).
    func provideToast() {
        do {
            try client.provideBlocking(["ui.toast"]) { [self] call in
                if call.params["message"] == "x" { return [:] }
                return await withCheckedContinuation { (c: Reply) in push(c, call.params) }
            }
        } catch {
            fatalError("bridge.provide failed: \(error)")
        }
    }

    private func push(_ reply: Reply, _ params: JSONObject) {
        cond.lock()
        toasts.append((reply, params))
        cond.signal()
        cond.unlock()
    }

    /// The next ui.toast call a worker made: (its pending reply, its params).
    func nextToast() -> (Reply, JSONObject) {
        cond.lock()
        defer { cond.unlock() }
        while toasts.isEmpty { cond.wait() }
        return toasts.removeFirst()
    }

    func noteExit(_ workerId: String) {
        cond.lock()
        exited.insert(workerId)
        cond.broadcast()
        cond.unlock()
    }

    /// Waits for `program.exited` of `workerId`.
    func waitExited(_ workerId: String) {
        cond.lock()
        defer { cond.unlock() }
        while !exited.contains(workerId) { cond.wait() }
    }

    func answer(_ reply: Reply) { reply.resume(returning: [:]) }
}

/// Routes `program.exited` from the reader thread to the host (set once it exists).
final class ExitBox: @unchecked Sendable {
    weak var host: Host?

    /// (No program runs before `host` is set: the bench launches after connecting.)
    func add(_ w: String) { host?.noteExit(w) }
}

// MARK: measurements

/// The launch.cold program: scripts/bench.d/daemon builds Sources/Bench/launch-probe (a static C
/// binary: the Bridge's /bin/true, as the row is stated against bwrap running /bin/true); run
/// without it, the static Swift worker stands in (slower to exec).
let launchProbe = ProcessInfo.processInfo.environment["BENCH_LAUNCH_PROBE"]

/// `iterations` launches (after 3 warm-ups) of the launch program, each stopped again: the
/// latencies (µs) and how many took a warm jail.
@MainActor func launchSamples(_ host: Host, iterations: Int) -> (samples: [Double], warm: Int) {
    var samples: [Double] = []
    var warm = 0
    let program = launchProbe != nil ? "com.bench.launch" : "com.bench.w0"
    for i in 0..<(iterations + 3) {
        let t0 = now()
        let w = host.call("programs.launch", ["id": .string(program), "args": ["launch"]])
        let (id, p) = host.nextToast()
        let t1 = UInt64(p["t"]!.intValue!)
        host.answer(id)
        if i >= 3 {
            samples.append(Double(t1 - t0) / 1000)
            if w.objectValue?["warm"]?.boolValue == true { warm += 1 }
        }
        host.call("programs.stop", ["workerId": w.objectValue!["workerId"]!, "graceMillis": 2000])
    }
    return (samples, warm)
}

/// launch.cold (a daemon without warm jails: nothing pre-created waits) or launch.pool (the
/// default daemon: a warm jail made after the previous launch waits, spawner_warm.c).
@MainActor func launchRow(_ name: String, _ samples: [Double], warm: Int, extra: String = "") {
    let what = launchProbe != nil ? "static C program" : "static Swift program"
    let jails = name == "launch.pool" ? "\(warm) of \(samples.count) took a warm jail" : "no warm jails (warmJails: false)"
    benchRow(name, benchPercentiles(samples), 0, "us", "programs.launch to the first Bridge reply inside the worker (\(what), full default jail, real storage.get; \(jails)\(extra))")
}

/// launch.cold and launch.cold.registry_hang in alternating blocks (a daemon each, started
/// afresh per block on the same state dir), so a burst of other load on the machine falls on
/// both rows alike instead of on whichever ran second.
/// launch.cold.single is launch.cold with the single-process design (`--no-drop`: the daemon
/// stays root), in the same alternation, the anchor of the privilege separation's cost.
@MainActor func coldRows(iterations: Int, blocks: Int = 4) {
    let registry = hangingRegistry()
    var cold: [Double] = [], hung: [Double] = [], single: [Double] = []
    for _ in 0..<blocks {
        for variant in 0..<(dropUser == nil ? 2 : 3) {
            let (d, host) = startDaemon(warmJails: false, registry: variant == 1 ? registry : nil, drop: variant != 2)
            let part = launchSamples(host, iterations: max(5, iterations / blocks)).samples
            switch variant {
            case 0: cold += part
            case 1: hung += part
            default: single += part
            }
            stopDaemon(d)
        }
    }
    launchRow("launch.cold", cold, warm: 0, extra: "; \(blocks) blocks alternating with launch.cold.registry_hang\(separationNote)")
    launchRow("launch.cold.registry_hang", hung, warm: 0, extra: "; --registry accepts and never answers, a check per launch")
    if !single.isEmpty { launchRow("launch.cold.single", single, warm: 0, extra: "; the single-process design (--no-drop: root throughout), same blocks") }
}

/// launch.pool and, run as root, launch.pool.single (`--no-drop`) in alternating blocks, a
/// daemon each per block (3 warm-up launches each: the first makes its warm jails), for the
/// same reason as `coldRows`: the two rows are compared with each other.
@MainActor func poolRows(iterations: Int, blocks: Int = 4) {
    var pool: [Double] = [], single: [Double] = []
    var warm = 0, singleWarm = 0
    for _ in 0..<blocks {
        for drop in (dropUser == nil || !runs("single") ? [true] : [true, false]) {
            let (d, host) = startDaemon(warmJails: true, drop: drop)
            let part = launchSamples(host, iterations: max(5, iterations / blocks))
            if drop { pool += part.samples; warm += part.warm } else { single += part.samples; singleWarm += part.warm }
            stopDaemon(d)
        }
    }
    launchRow("launch.pool", pool, warm: warm, extra: "; \(blocks) blocks alternating with launch.pool.single\(separationNote)")
    if !single.isEmpty {
        benchRow("launch.pool.single", benchPercentiles(single), 0, "us", "launch.pool with the single-process design (--no-drop: root throughout), same blocks; \(singleWarm) of \(single.count) took a warm jail")
    }
}

/// Run as root, the daemon drops to this user (privilege separation, the default design);
/// the `.single` rows keep it root (`--no-drop`). nil when not root: rootless, no drop.
let dropUser: String? = CurrentProcess.isRoot ? (ProcessInfo.processInfo.environment["BENCH_DROP_USER"] ?? "60999:60999") : nil
let separationNote = dropUser.map { "; daemon dropped to \($0) (privilege separation)" } ?? ""

@MainActor func resumeWarm(_ host: Host, iterations: Int) {
    let w = host.call("programs.launch", ["id": "com.bench.w1", "args": ["resume"]])
    let workerId = w.objectValue!["workerId"]!
    var samples: [Double] = []
    var (id, _) = host.nextToast()
    for i in 0..<(iterations + 3) {
        host.call("programs.suspend", ["workerId": workerId])
        host.answer(id)  // queued in the frozen worker's socket
        let t0 = now()
        host.call("programs.resume", ["workerId": workerId])
        let (next, p) = host.nextToast()
        if i >= 3 { samples.append(Double(UInt64(p["t"]!.intValue!) - t0) / 1000) }
        id = next
    }
    host.answer(id)
    host.call("programs.stop", ["workerId": workerId, "graceMillis": 500])
    benchRow("resume.warm", benchPercentiles(samples), 0, "us", "programs.resume of a frozen worker to its next Bridge reply (cgroup v1 freezer)")
}

@MainActor func rtt(_ host: Host, program: String, mode: String, name: String, iterations: Int, notes: String) {
    let w = host.call("programs.launch", ["id": .string(program), "args": [.string(mode), .string("\(iterations)"), .string("\(iterations / 10)")]])
    while true {
        let (id, p) = host.nextToast()
        host.answer(id)
        if p["message"]?.stringValue == "report" {
            benchRow(name, (p["p50"]!.doubleValue!, p["p99"]!.doubleValue!, p["p999"]!.doubleValue!), p["rate"]!.doubleValue!, "calls/s", notes)
            break
        }
    }
    host.waitExited(w.objectValue!["workerId"]!.stringValue!)
}

@MainActor func throughput(_ host: Host, seconds: Int, depth: Int) {
    let start = now() + 1_500_000_000
    for i in 0..<8 {
        host.call("programs.launch", ["id": .string("com.bench.w\(i)"), "args": ["tput", .string("\(start)"), .string("\(seconds)"), .string("\(depth)")]])
    }
    var total = 0.0
    var reports = 0
    while reports < 8 {
        let (id, p) = host.nextToast()
        host.answer(id)
        if let c = p["count"]?.doubleValue { total += c; reports += 1 }
    }
    benchValueRow("bridge.throughput", total / Double(seconds), "calls/s", "storage.get summed over 8 jailed workers, \(depth) in flight each, real SQLite-backed storage service")
}

@MainActor func idleRSS(_ host: Host, daemonPid: Int32) {
    let before = rssKiB(daemonPid)
    var ids: [JSONValue] = []
    for i in 0..<idleWorkers {
        ids.append(host.call("programs.launch", ["id": .string("com.bench.idle\(i)")]).objectValue!["workerId"]!)
    }
    CurrentProcess.sleep(micros: 500_000)
    let after = rssKiB(daemonPid)
    benchValueRow("daemon.rss_idle", Double(after), "KiB", "VmRSS of a fresh miniappd with \(idleWorkers) idle workers (\(before) KiB with none)")
    for id in ids { host.call("programs.stop", ["workerId": id, "graceMillis": 200]) }
}

@MainActor func rssKiB(_ pid: Int32) -> Int {
    let status = (try? String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8)) ?? ""
    let line = status.split(separator: "\n").first { $0.hasPrefix("VmRSS:") } ?? ""
    return Int(line.split(separator: " ").dropFirst().first ?? "0") ?? 0
}

// MARK: main

/// A registry that accepts TCP connections on 127.0.0.1 and never answers: a thread accepts
/// and keeps every connection open without reading or writing. Returns its URL.
@MainActor func hangingRegistry() -> String {
    guard let fd = try? ListeningSocket.listen(.tcp(host: "127.0.0.1", port: 0)), let port = ListeningSocket.boundPort(fd) else {
        fatalError("hanging registry: cannot listen")
    }
    Thread.detachNewThread {
        var held: [Int32] = []
        while true {
            if let c = try? UnixSocket.accept(fd) { held.append(c.take()) }
        }
    }
    return "http://127.0.0.1:\(port)"
}

/// Starts miniappd on the bench's state dir (`warmJails`: its config setting; `registry`: with
/// a check at every launch) and connects as the host provider.
@MainActor func startDaemon(warmJails: Bool, registry: String? = nil, drop: Bool = true) -> (Process, Host) {
    let checks = registry == nil ? "" : #", "updateCheckMinIntervalSeconds": 0, "updateCheckIntervalSeconds": 0"#
    let daemon = env.startDaemonProcess(
        config: #"{"warmJails": \#(warmJails)\#(checks)}"#, name: "\(warmJails)-\(registry != nil)",
        extraArgs: (registry.map { ["--registry", $0] } ?? []) + separationArgs(drop))
    guard let host = Host(socket: env.socket) else { BenchEnvironment.giveUp(daemon, env.socket) }
    host.provideToast()
    return (daemon, host)
}

/// `--user` (the work dir made that user's, so it can bind the control socket there) or
/// `--no-drop`; nothing when not root.
@MainActor func separationArgs(_ drop: Bool) -> [String] {
    guard let dropUser else { return [] }
    guard drop else { return ["--no-drop"] }
    let ids = dropUser.split(separator: ":").compactMap { UInt32($0) }
    if ids.count == 2 { try? FileSystem.setOwner(env.work, uid: ids[0], gid: ids[1]) }
    return ["--user", dropUser]
}

@MainActor func stopDaemon(_ d: Process) { BenchEnvironment.stopDaemon(d) }

/// `BENCH_ROWS` (comma-separated: cold, pool, resume, rtt, rtthost, tput, single, rss) runs only
/// those groups, for profiling one path; unset runs them all.
let wanted = ProcessInfo.processInfo.environment["BENCH_ROWS"].map { Set($0.split(separator: ",").map(String.init)) }
@MainActor func runs(_ group: String) -> Bool { wanted?.contains(group) ?? true }

let zips = prepare()
defer { env.cleanUp() }
let n = max(20, Int(200 * scale))
do { // the packages, once
    let (d, host) = startDaemon(warmJails: false)
    for z in zips { host.call("packages.install", ["path": .string(z)]) }
    stopDaemon(d)
}
// launch.cold (nothing made ahead waits for the launch) beside launch.cold.registry_hang (the
// same, each launch starting a check the registry never answers).
if runs("cold") { coldRows(iterations: n) }
if runs("pool") { poolRows(iterations: n) }
let (daemon, host) = startDaemon(warmJails: true)
if runs("resume") { resumeWarm(host, iterations: n) }
if runs("rtt") {
    rtt(host, program: "com.bench.w2", mode: "rtt", name: "bridge.rtt", iterations: max(2000, Int(50_000 * scale)), notes: "storage.get timed inside a jailed worker, real storage service, permission check included")
}
if runs("rtthost") {
    rtt(host, program: "com.bench.w3", mode: "rtthost", name: "bridge.rtt.host", iterations: max(1000, Int(10_000 * scale)), notes: "ui.toast from a jailed worker, answered by a host provider process through the MiniAppHost library")
}
if runs("tput") { throughput(host, seconds: max(1, Int(3 * scale)), depth: 16) }
stopDaemon(daemon)
if dropUser != nil && runs("single") { // bridge.rtt with the single-process design, same run
    let (single, singleHost) = startDaemon(warmJails: true, drop: false)
    rtt(singleHost, program: "com.bench.w2", mode: "rtt", name: "bridge.rtt.single", iterations: max(2000, Int(50_000 * scale)), notes: "bridge.rtt with the single-process design (--no-drop)")
    stopDaemon(single)
}
// Memory on a fresh daemon (the one above has the heap the rows before grew): what idle workers
// cost, not what the benchmark left behind.
if runs("rss") {
    let (fresh, freshHost) = startDaemon(warmJails: true)
    idleRSS(freshHost, daemonPid: fresh.processIdentifier)
    stopDaemon(fresh)
}
