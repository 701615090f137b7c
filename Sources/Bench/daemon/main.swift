// bench-daemon: the spec's end-to-end rows, through a real `miniappd` with real jailed workers
// and the real storage service (spec/cli-and-config.md "Benchmarks"):
//
//   launch.cold        programs.launch → first Bridge reply received inside the worker (warmJails off)
//   launch.pool        the same with a warm jail waiting (the default daemon, spawner_warm.c)
//   resume.warm        programs.resume of a suspended worker → its next Bridge reply
//   bridge.rtt         one storage.get round trip timed inside a jailed worker
//   bridge.rtt.host    one ui.toast round trip (worker → daemon → this process as host → back)
//   bridge.throughput  storage.get calls/s summed over 8 jailed workers, pipelined
//   daemon.rss_idle    the RSS (KiB, in the throughput column) of a freshly started daemon with N idle workers
//
// Usage: bench-daemon POLICY_DIR [SCALE] [IDLE_WORKERS]
// The daemon runs on a private state dir with a copy of POLICY_DIR whose rate limits are raised
// (a benchmark measures the path, not the token bucket) plus a bench partner. This process is
// the host runtime: it holds the control connection, serves `ui.toast` as host provider and
// reads the workers' reports from it. Prints `RESULT|name|p50|p99|p999|throughput|unit|notes`.
import Foundation
import Glibc
import BenchSupport
import MiniAppJSON
import MiniAppSystem

let args = CommandLine.arguments
guard args.count >= 2 else { fatalError("usage: bench-daemon POLICY_DIR [SCALE] [IDLE_WORKERS]") }
let scale = args.count > 2 ? Double(args[2]) ?? 1 : 1
let idleWorkers = args.count > 3 ? Int(args[3]) ?? 200 : 200
let env = BenchEnvironment(name: "bench-daemon", policyDir: args[1])
typealias Host = BenchHost

@MainActor func now() -> UInt64 { monotonicNanos() }

// MARK: setup

/// Packages for the bench programs.
@MainActor func prepare() -> [String] {
    var zips: [String] = []
    for i in 0..<8 { zips.append(env.pack("com.bench.w\(i)", entry: "worker", file: env.binDir + "/bench-daemon-worker")) }
    if let probe = launchProbe { zips.append(env.pack("com.bench.launch", entry: "launch_probe", file: probe)) }
    for i in 0..<idleWorkers { zips.append(env.pack("com.bench.idle\(i)", entry: "idle.sh", text: "#!/bin/sh\nexec cat <&3 >/dev/null\n")) }
    return zips
}

// MARK: measurements

/// The launch.cold program: scripts/bench.d/daemon builds Sources/Bench/launch-probe (a static C
/// binary: the Bridge's /bin/true, as the row is stated against bwrap running /bin/true); run
/// without it, the static Swift worker stands in (slower to exec).
let launchProbe = ProcessInfo.processInfo.environment["BENCH_LAUNCH_PROBE"]

/// launch.cold (a daemon without warm jails: nothing pre-created waits) or launch.pool (the
/// default daemon: a warm jail made after the previous launch waits, spawner_warm.c).
@MainActor func launchRow(_ host: Host, name: String, iterations: Int) {
    var samples: [Double] = []
    var warm = 0
    let (program, what) = launchProbe != nil ? ("com.bench.launch", "static C program") : ("com.bench.w0", "static Swift program")
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
    let jails = name == "launch.pool" ? "\(warm) of \(samples.count) took a warm jail" : "no warm jails (warmJails: false)"
    benchRow(name, benchPercentiles(samples), 0, "us", "programs.launch to the first Bridge reply inside the worker (\(what), full default jail, real storage.get; \(jails))")
}

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
    usleep(500_000)
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

/// Starts miniappd on the bench's state dir (`warmJails`: its config setting) and connects as
/// the host provider.
@MainActor func startDaemon(warmJails: Bool) -> (Process, Host) {
    env.startDaemon(config: #"{"warmJails": \#(warmJails)}"#, name: "\(warmJails)")
}

@MainActor func stopDaemon(_ d: Process) { BenchEnvironment.stopDaemon(d) }

let zips = prepare()
defer { env.cleanUp() }
let n = max(20, Int(200 * scale))
do { // launch.cold: nothing made ahead waits for the launch
    let (cold, host) = startDaemon(warmJails: false)
    for z in zips { host.call("packages.install", ["path": .string(z)]) }
    launchRow(host, name: "launch.cold", iterations: n)
    stopDaemon(cold)
}
let (daemon, host) = startDaemon(warmJails: true)
launchRow(host, name: "launch.pool", iterations: n)
resumeWarm(host, iterations: n)
rtt(host, program: "com.bench.w2", mode: "rtt", name: "bridge.rtt", iterations: max(2000, Int(50_000 * scale)), notes: "storage.get timed inside a jailed worker, real storage service, permission check included")
rtt(host, program: "com.bench.w3", mode: "rtthost", name: "bridge.rtt.host", iterations: max(1000, Int(10_000 * scale)), notes: "ui.toast from a jailed worker, answered by a host provider process")
throughput(host, seconds: max(1, Int(3 * scale)), depth: 16)
stopDaemon(daemon)
// Memory on a fresh daemon (the one above has the heap the rows before grew): what idle workers
// cost, not what the benchmark left behind.
let (fresh, freshHost) = startDaemon(warmJails: true)
idleRSS(freshHost, daemonPid: fresh.processIdentifier)
stopDaemon(fresh)
