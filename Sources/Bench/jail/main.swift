// bench-jail: jail benchmarks in the anchors' PROJECT_BENCH format
// (RESULT|name|p50_us|p99_us|p999_us|throughput|unit|notes), as scripts/bench.d/jail reports it.
//
//   jail.spawn_true     spawn + reap of /bin/true in the full default jail (namespaces incl. net,
//                       tmpfs root + binds, cgroups, caps, Landlock, seccomp, PID-1 reaper),
//                       back to back, synchronous, as the daemon runs (warm jails on)
//   jail.spawn_true.cold the same without warm jails: every spawn clones and builds its jail
//   jail.suspend_resume one freezer round trip (freeze until FROZEN, then thaw) of a live worker
//
// Usage: bench-jail [ITERATIONS] [POLICY_DIR] [STATE_DIR]   (ITERATIONS scaled by $SCALE)
import Dispatch
import MiniAppJail
import MiniAppModel
import MiniAppSystem

func now() -> UInt64 { monotonicNanos() }

func percentile(_ sorted: [Double], _ p: Double) -> Double {
    guard !sorted.isEmpty else { return 0 }
    let rank = Int((p / 100 * Double(sorted.count)).rounded(.up)) - 1
    return sorted[max(0, min(sorted.count - 1, rank))]
}

func fmt(_ x: Double) -> String {
    let tenths = Int((x * 10).rounded())
    return "\(tenths / 10).\(tenths % 10)"
}

func report(_ name: String, _ samplesNs: [UInt64], totalNs: UInt64, notes: String) {
    let us = samplesNs.map { Double($0) / 1000 }.sorted()
    let p999 = us.count >= 1000 ? fmt(percentile(us, 99.9)) : "-"
    let tput = Double(samplesNs.count) / (Double(totalNs) / 1e9)
    print("RESULT|\(name)|\(fmt(percentile(us, 50)))|\(fmt(percentile(us, 99)))|\(p999)|\(fmt(tput))|ops/s|\(notes)")
}

func cgroupName(_ d: CgroupDriver) -> String {
    switch d {
    case .v1: "v1"
    case .v2: "v2"
    case .none: "none"
    }
}

/// spawn + reap of /bin/true, back to back, `iterations` times after a warm-up.
func spawnTrue(_ jailer: Jailer, iterations: Int) async throws(MiniAppError) -> (samples: [UInt64], total: UInt64, warm: Int) {
    for _ in 0..<max(3, iterations / 20) { _ = try jailer.spawn(JailLaunch(programId: "bench.true", argv: ["/bin/true"])).waitExit() }
    var samples: [UInt64] = []
    var warm = 0
    let t0 = now()
    for _ in 0..<iterations {
        let s = now()
        // Synchronous, as posix_spawn + waitpid in the anchor (and as the daemon's control
        // handlers spawn: they block their Dispatch thread).
        let w = try jailer.spawn(JailLaunch(programId: "bench.true", argv: ["/bin/true"]))
        let e = w.waitExit()
        samples.append(now() - s)
        if w.startedWarm { warm += 1 }
        if e.status != 0 { throw MiniAppError(.internal, "/bin/true failed in the jail: \(e)") }
    }
    return (samples, now() - t0, warm)
}

func bench(iterations: Int, policyDir: String, stateDir: String) async throws(MiniAppError) {
    let config = try JailPolicy.load(policyDir: policyDir)
    let privileged = CurrentProcess.isRoot
    let what = "full default jail (\(config.landlockABI > 0 ? "landlock abi \(config.landlockABI)" : "no landlock"), cgroup \(cgroupName(config.cgroupDriver)))"
    // Cold: every spawn clones and sets up its jail (cgroups and network namespaces made ahead
    // in the background, as the daemon does).
    let cold = try Jailer(configuration: config, stateDir: stateDir + "/cold", mode: privileged ? .privileged : .rootless, warmCgroups: 2)
    let c = try await spawnTrue(cold, iterations: iterations)
    cold.drainPools()
    report("jail.spawn_true.cold", c.samples, totalNs: c.total, notes: "spawn+reap /bin/true, \(what), no warm jail")
    // As the daemon runs: warm jails too (privileged mode), made after each launch's exec.
    let jailer = try Jailer(configuration: config, stateDir: stateDir, mode: privileged ? .privileged : .rootless, warmCgroups: 2,
                            warmJails: privileged)
    defer { jailer.drainPools() }
    let r = try await spawnTrue(jailer, iterations: iterations)
    report("jail.spawn_true", r.samples, totalNs: r.total,
           notes: "spawn+reap /bin/true, \(what), as the daemon runs: \(r.warm) of \(iterations) took a warm jail")

    let w = try jailer.spawn(JailLaunch(programId: "bench.freeze", argv: ["/bin/sh", "-c", "sleep 1000"]))
    var fs: [UInt64] = []
    let f0 = now()
    for _ in 0..<(iterations * 2) {
        let s = now()
        try w.suspend()
        try w.resume()
        fs.append(now() - s)
    }
    report("jail.suspend_resume", fs, totalNs: now() - f0, notes: "freeze until FROZEN + thaw of a live worker")
    w.kill()
    _ = await w.exit
}

let args = CommandLine.arguments
let scale = Double(CurrentProcess.environment("SCALE") ?? "1") ?? 1
let iterations = max(20, Int(Double(args.count > 1 ? Int(args[1]) ?? 400 : 400) * scale))
let policyDir = args.count > 2 ? args[2] : "policies"
let stateDir = args.count > 3 ? args[3] : "/tmp/miniapp-bench-\(CurrentProcess.uid)"
let done = DispatchSemaphore(value: 0)
nonisolated(unsafe) var failure: MiniAppError?
Task.detached { // detached: top-level code is main-actor isolated and the main thread waits below
    do throws(MiniAppError) { try await bench(iterations: iterations, policyDir: policyDir, stateDir: stateDir) } catch { failure = error }
    done.signal()
}
done.wait()
if let failure {
    CurrentProcess.writeStandardError("bench-jail: \(failure)\n")
    CurrentProcess.exit(1)
}
