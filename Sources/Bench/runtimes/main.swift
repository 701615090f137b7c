// bench-runtimes: launch speed of real node and Python programs through a real `miniappd` (default
// config: warm jails on) and real jailed workers, with the runtimes' own start-up as anchors, all
// measured in this one run and interleaved sample by sample (the machine is shared: a burst of
// foreign load hits every row alike instead of one row):
//
//   launch.node             programs.launch → the node program's first Bridge call answered (it uses
//                           the injected global `MiniAppBridge`, as `node --require preload.js` gives it)
//   launch.python           the same for a Python program doing `import miniapp_bridge`
//   launch.node.prewarmed, launch.python.prewarmed
//                           the same after `programs.prewarm` (not timed), once the prewarmed
//                           worker is blocked in the SDK loader waiting for its launch
//   anchor.node_bare        posix_spawn + wait of `node -e 0`
//   anchor.node_bwrap       the same inside the `anchor.bwrap_true` command line (bwrap --unshare-all …)
//   anchor.python_bare      `python3 -c pass` (/usr/bin/python3: the interpreter the workers run)
//   anchor.python_bwrap     the same inside the bwrap command line
//
// The programs take CLOCK_MONOTONIC when their first call's reply arrived (the clock is shared
// with the host: the jail has no time namespace) and report it through `ui.toast`, which this
// process serves as host provider.
// Usage: bench-runtimes POLICY_DIR [SCALE]. Prints `RESULT|name|p50|p99|p999|throughput|unit|notes`.
import BenchSupport
import Foundation
import MiniAppJSON
import MiniAppSystem

let args = CommandLine.arguments
guard args.count >= 2 else { fatalError("usage: bench-runtimes POLICY_DIR [SCALE]") }
let scale = args.count > 2 ? Double(args[2]) ?? 1 : 1
let env = BenchEnvironment(name: "bench-runtimes", policyDir: args[1])

/// The node program: the SDK is the global the preload injects; one storage.get, then the time
/// its reply arrived goes to the bench; then it waits until stopped.
let nodeMain = """
    const tmain = Number(process.hrtime.bigint());
    MiniAppBridge.keepAlive(true);
    MiniAppBridge.call('storage.get', { key: 'bench' }).then(() => {
      const t = Number(process.hrtime.bigint());
      const u = process.cpuUsage();
      const up = process.uptime() * 1000, cpu = (u.user + u.system) / 1000;
      const fs = require('fs');
      let wait = 0;  // ms its threads waited for a CPU (run queue), field 2 of schedstat
      for (const tid of fs.readdirSync('/proc/self/task')) wait += Number(fs.readFileSync(`/proc/self/task/${tid}/schedstat`, 'utf8').split(' ')[1]) / 1e6;
      return MiniAppBridge.call('ui.toast', { message: 'launch', t, tmain, up, cpu, wait });
    });

    """

/// The Python program: imports the SDK as programs do, same calls, then blocks until the Bridge
/// closes (programs.stop).
let pythonMain = """
    import time
    tmain = time.monotonic_ns()
    import os
    import miniapp_bridge as bridge
    bridge.call("storage.get", {"key": "bench"})
    t = time.monotonic_ns()
    bridge.call("ui.toast", {"message": "launch", "t": t, "tmain": tmain, "cpu": time.process_time() * 1000})
    while os.read(3, 4096):
        pass

    """

/// The anchors' bwrap command line (run_anchors.sh BWRAP_ARGS), the runtime instead of /bin/true.
let bwrap = [
    "/usr/bin/bwrap", "--unshare-all", "--die-with-parent", "--ro-bind", "/usr", "/usr", "--symlink", "usr/lib", "/lib",
    "--symlink", "usr/lib64", "/lib64", "--symlink", "usr/bin", "/bin", "--proc", "/proc", "--dev", "/dev",
]

/// The anchors' environment: what a worker gets besides its MINIAPP_* variables. Not this
/// process's: a variable such as NODE_EXTRA_CA_CERTS (set in some shells) makes node parse a
/// CA bundle at start (~40 ms of CPU), which no worker does.
let anchorEnv = ["PATH=/usr/bin:/bin", "LANG=C.UTF-8", "HOME=/tmp"]

/// posix_spawn + waitpid of `argv` (stdout and stderr to /dev/null), in µs.
@MainActor func spawnWait(_ argv: [String]) -> Double {
    let t0 = monotonicNanos()
    guard let status = try? Processes.run(argv, environment: anchorEnv, files: [.devNull(1), .devNull(2)]) else { fatalError("cannot spawn \(argv[0])") }
    let t1 = monotonicNanos()
    guard status == 0 else { fatalError("\(argv.joined(separator: " ")) failed with status \(status)") }
    return Double(t1 - t0) / 1000
}

/// One timed launch of `program`: programs.launch → the reply to its first call, in µs; then
/// stopped. Also answers the launched worker's id, and whether a warm jail took it.
/// What the programs measured themselves at their first reply, per row: ms since the runtime
/// started (node: process.uptime), ms of CPU (all threads) — where a launch's time goes.
/// Also the time `programs.launch` took to answer (the daemon's part, before the program's).
var inWorker: [String: (up: [Double], cpu: [Double], answer: [Double], wait: [Double])] = [:]
/// Per row: µs from programs.launch to the entry's first line, and from there to the first reply.
var phases: [String: (toMain: [Double], mainToReply: [Double])] = [:]

@MainActor func timedLaunch(_ host: BenchHost, _ program: String, row: String) -> (Double, JSONValue, Bool) {
    let t0 = monotonicNanos()
    let w = host.call("programs.launch", ["id": .string(program)])
    inWorker[row, default: ([], [], [], [])].answer.append(Double(monotonicNanos() - t0) / 1_000_000)
    let (id, p) = host.nextToast()
    let t1 = UInt64(p["t"]!.intValue!)
    if let tm = p["tmain"]?.intValue {
        phases[row, default: ([], [])].toMain.append(Double(Int64(UInt64(tm)) - Int64(t0)) / 1000)
        phases[row, default: ([], [])].mainToReply.append(Double(Int64(t1) - tm) / 1000)
    }
    if let up = p["up"]?.doubleValue { inWorker[row, default: ([], [], [], [])].up.append(up) }
    if let cpu = p["cpu"]?.doubleValue { inWorker[row, default: ([], [], [], [])].cpu.append(cpu) }
    if let wait = p["wait"]?.doubleValue { inWorker[row, default: ([], [], [], [])].wait.append(wait) }
    host.answer(id)
    host.call("programs.stop", ["workerId": w.objectValue!["workerId"]!, "graceMillis": 2000])
    return (Double(t1 - t0) / 1000, w.objectValue!["workerId"]!, w.objectValue?["warm"]?.boolValue == true)
}

/// Waits (up to 10 s) until `pid`'s main thread blocks in the SDK loader: node's in its event
/// loop (epoll_wait/epoll_pwait: the loader has run and returned), Python's reading the Bridge
/// (fd 3, recvfrom(2) with MSG_PEEK).
/// The worker's pid may be the jail's PID-1 reaper: its children are looked at too.
@MainActor func waitHeld(_ pid: Int64) {
    func read(_ path: String) -> String { (try? String(contentsOfFile: path, encoding: .utf8)) ?? "" }
    for _ in 0..<10_000 {
        let children = read("/proc/\(pid)/task/\(pid)/children").split(separator: " ").map(String.init)
        for p in ["\(pid)"] + children {
            let text = read("/proc/\(p)/syscall")
            if text.hasPrefix("45 0x3 ") || text.hasPrefix("232 ") || text.hasPrefix("281 ") { return }
        }
        CurrentProcess.sleep(micros: 1000)
    }
    fatalError("the prewarmed worker \(pid) never reached its loader's wait")
}

/// One launch of `program` after `programs.prewarm` (not timed): flagged when the launch
/// released the prewarmed worker.
@MainActor func prewarmedOnce(_ host: BenchHost, _ program: String, row: String) -> (Double, Bool) {
    let pre = host.call("programs.prewarm", ["id": .string(program)])
    waitHeld(pre.objectValue!["pid"]!.intValue!)
    let (us, worker, _) = timedLaunch(host, program, row: row)
    return (us, worker == pre.objectValue!["workerId"])
}

/// A row measured by `sample`: its samples, and a count of flagged ones (warm jails taken).
struct Row {
    let name: String
    let notes: String
    let sample: @MainActor () -> (Double, Bool)
    var samples: [Double] = []
    var flagged = 0
}

/// The four rows of one runtime: its anchors (bare, in bwrap), the launch, the prewarmed launch.
@MainActor func rows(_ host: BenchHost, runtime: String, anchor: [String], program: String, sdk: String) -> [Row] {
    [
        Row(name: "anchor.\(runtime)_bare", notes: "posix_spawn + wait of \(anchor.joined(separator: " ")) (env: PATH, LANG, HOME)") { (spawnWait(anchor), false) },
        Row(name: "anchor.\(runtime)_bwrap", notes: "\(anchor.joined(separator: " ")) inside the anchor.bwrap_true command line") {
            (spawnWait(bwrap + anchor), false)
        },
        Row(name: "launch.\(runtime)", notes: "programs.launch to the \(runtime) program's first Bridge call answered (\(sdk); full default jail; %WARM%)") {
            let (us, _, warm) = timedLaunch(host, program, row: "launch.\(runtime)")
            return (us, warm)
        },
        Row(name: "launch.\(runtime).prewarmed", notes: "launch.\(runtime) after programs.prewarm (%WARM%)") { prewarmedOnce(host, program, row: "launch.\(runtime).prewarmed") },
    ]
}

let zips = [
    env.pack("com.bench.node", entry: "main.js", runtime: "node", text: nodeMain),
    env.pack("com.bench.python", entry: "main.py", runtime: "python", text: pythonMain),
]
defer { env.cleanUp() }
let (daemon, host) = env.startDaemon(config: "{}", name: "default")
for z in zips { host.call("packages.install", ["path": .string(z)]) }
var table = rows(host, runtime: "node", anchor: ["/usr/bin/node", "-e", "0"], program: "com.bench.node", sdk: "global MiniAppBridge from the preload")
    + rows(host, runtime: "python", anchor: ["/usr/bin/python3", "-c", "pass"], program: "com.bench.python", sdk: "import miniapp_bridge")
let n = max(20, Int(100 * scale))
// Round robin, one sample of each row per round; the first 3 rounds warm the page cache.
for round in 0..<(n + 3) {
    for i in table.indices {
        let (us, flag) = table[i].sample()
        guard round >= 3 else { continue }
        table[i].samples.append(us)
        if flag { table[i].flagged += 1 }
    }
}
BenchEnvironment.stopDaemon(daemon)
for r in table {
    let what = r.name.hasSuffix(".prewarmed") ? "released the prewarmed worker" : "took a warm jail"
    var notes = r.notes.replacingOccurrences(of: "%WARM%", with: "\(r.flagged) of \(r.samples.count) \(what)")
    if let m = inWorker[r.name] {
        let median = { (xs: [Double]) in xs.sorted()[xs.count / 2] }
        let up = m.up.isEmpty ? "" : String(format: "%.1f ms after the runtime started, ", median(m.up))
        notes += String(format: "; programs.launch answered after %.1f ms", median(m.answer))
        if let ph = phases[r.name], !ph.toMain.isEmpty {
            notes += String(format: "; launch to the entry's first line %.2f ms, from there to the first reply %.2f ms (medians)", median(ph.toMain) / 1000, median(ph.mainToReply) / 1000)
        }
        if !m.cpu.isEmpty { notes += String(format: "; in the worker at the first reply (median): %@%.1f ms of CPU", up, median(m.cpu)) }
        if !m.wait.isEmpty { notes += String(format: ", its threads %.1f ms runnable but waiting for a CPU", median(m.wait)) }
    }
    benchRow(r.name, benchPercentiles(r.samples), 0, "us", notes)
}
