import Foundation
import MiniAppJail
import MiniAppModel
@testable import MiniAppSystem
import Testing

/// Warm jails in pooled cgroups (spawner_warm.c, WarmJailCgroups): a warm jail is put into a
/// cgroup of the daemon's when it is made, and the launch that takes it moves no task (no
/// `cgroup.procs` write: on cgroup v1 the first one of a move waits for an RCU grace period).
@Suite("warm jails in pooled cgroups (privileged mode, cgroup v1)", .serialized)
struct WarmJailCgroupTests {
    /// A jailer as the daemon runs it (cgroups made ahead, warm jails), on a spawner of its own.
    static func jailer(_ name: String) throws -> Jailer {
        let j = try Jailer(configuration: try JailHarness.configuration(), stateDir: WarmJailTests.stateDir(name), mode: .privileged,
                           warmCgroups: 2, warmJails: true, spawner: SpawnerSlot())
        j.fillPools()
        return j
    }

    /// Waits until `j`'s pool has cgroups ready (the daemon fills it at its start, long before
    /// a first launch; here the pool thread is shared with other suites' pools).
    static func poolReady(_ j: Jailer) async throws {
        try await WarmJailTests.waitUntil { j.readyCgroups.count >= 2 }
        try #require(j.readyCgroups.count >= 2)
    }

    /// The memory hierarchy's mount and the path of `pid`'s cgroup in it (/proc/PID/cgroup).
    static func memoryCgroup(_ pid: Int32) -> String? {
        guard let text = try? String(contentsOfFile: "/proc/\(pid)/cgroup", encoding: .utf8) else { return nil }
        for line in text.split(separator: "\n") {
            let f = line.split(separator: ":", maxSplits: 2, omittingEmptySubsequences: false)
            if f.count == 3, f[1].split(separator: ",").contains("memory") { return "/sys/fs/cgroup/memory" + f[2] }
        }
        return nil
    }

    /// The directory's inode (a rename keeps it: the same cgroup under another name).
    static func inode(_ path: String) -> UInt64? {
        var st = stat()
        return stat(path, &st) == 0 ? UInt64(st.st_ino) : nil
    }

    static func pooled(_ dir: String) -> Bool { (dir as NSString).lastPathComponent.hasPrefix("p-") }

    /// Launches `/bin/true` with `limits` until the jailer's waiting warm jails are two and each
    /// sits in a pooled cgroup (the first launches' jails may not: a cold launch lends none).
    /// Returns each jail's pid → (its cgroup's memory directory, that directory's inode).
    static func warmUp(_ j: Jailer, _ name: String, limits: JailLimits) async throws -> [Int32: (dir: String, inode: UInt64)] {
        for _ in 0..<8 {
            var launch = JailLaunch(programId: "test.warm-cgroup", argv: ["/bin/true"])
            launch.limitsOverride = limits
            _ = await (try j.spawn(launch)).exit
            try await WarmJailTests.waitUntil { WarmJailTests.ownWarmJails(name).count >= 2 }
            var found: [Int32: (String, UInt64)] = [:]
            for pid in WarmJailTests.ownWarmJails(name) {
                if let dir = memoryCgroup(pid), pooled(dir), let ino = inode(dir) { found[pid] = (dir, ino) }
            }
            if found.count >= 2 { return found }
        }
        Issue.record("the warm jails never all sat in pooled cgroups")
        return [:]
    }

    @Test("a warm jail waits in its pooled cgroup, and the launch that takes it runs there: nothing is moved")
    func launchMovesNothing() async throws {
        let j = try Self.jailer("cg-move")
        defer { j.drainPools() }
        let jails = try await Self.warmUp(j, "cg-move", limits: j.configuration.policy.limits)
        try #require(jails.count >= 2)
        // Each jail has a cgroup of its own.
        #expect(Set(jails.values.map(\.inode)).count == jails.count, "\(jails)")
        let w = try j.spawn(JailLaunch(programId: "test.warm-cgroup", argv: ["/bin/sh", "-c", "sleep 30"]))
        #expect(w.startedWarm)
        let before = try #require(jails[w.pid], "the launch took one of the waiting jails: \(w.pid) not in \(jails.keys)")
        // Renamed to the worker's name, the same directory: the worker never left the cgroup
        // its warm jail was put in when it was made (a move would have put it in the launch's own).
        let dir = try await JailSpawnPathTests.settledLocation(w)
        #expect((dir as NSString).lastPathComponent.hasPrefix("w-test.warm-cgroup-"), "\(dir)")
        #expect(Self.inode(dir) == before.inode, "\(dir) is not \(before.dir)")
        #expect(Self.memoryCgroup(w.pid) == dir)
        w.kill()
        await w.removed
        #expect(JailSpawnPathTests.v1Dirs(dir, j).allSatisfy { !JailSpawnPathTests.exists($0) })
    }

    @Test("a jail made without a pooled cgroup is replaced: after a few launches every waiting warm jail is in one")
    func bareJailsReplaced() async throws {
        let j = try Self.jailer("cg-early")
        defer { j.drainPools() }
        try await Self.poolReady(j)
        // The first (cold) launch lends a spare (the pool is filled before it, as the daemon
        // does); a jail made without one is replaced by a later refill left with a lent cgroup.
        // A refill stops early when a launch is waiting, so it may take one launch more.
        func allPooled() -> Bool {
            let jails = WarmJailTests.ownWarmJails("cg-early")
            return jails.count >= 2 && jails.allSatisfy { Self.memoryCgroup($0).map(Self.pooled) ?? false }
        }
        for _ in 0..<4 where !allPooled() {
            _ = await (try j.spawn(JailLaunch(programId: "test.warm-cgroup", argv: ["/bin/true"]))).exit
            try await WarmJailTests.waitUntil { WarmJailTests.ownWarmJails("cg-early").count >= 2 }
            // The replacement follows the refill (bounded: a miss goes on to the next launch).
            let until = ContinuousClock.now + .seconds(3)
            while !allPooled() && ContinuousClock.now < until { try await Task.sleep(for: .milliseconds(10)) }
        }
        let jails = WarmJailTests.ownWarmJails("cg-early")
        #expect(allPooled(), "\(jails.map { ($0, Self.memoryCgroup($0) ?? "?") })")
    }

    enum Limit: String, CaseIterable, Sendable { case pids, memory }

    @Test("the limits hold in the worker released from a pooled cgroup", arguments: Limit.allCases)
    func limitsHold(_ limit: Limit) async throws {
        #expect(JailHarness.probeBuilt)
        let name = "cg-\(limit.rawValue)"
        let j = try Self.jailer(name)
        defer { j.drainPools() }
        var l = j.configuration.policy.limits
        l.wallClockSeconds = 20
        if limit == .pids { l.pids = 16 } else { l.memoryBytes = 32 << 20 }
        // Warmed with these limits: the spawner's key holds them, so the jails' cgroups carry them.
        let jails = try await Self.warmUp(j, name, limits: l)
        try #require(jails.count >= 2)
        var launch = JailLaunch(programId: "test.warm-cgroup", argv: ["/app/probe", limit == .pids ? "forkbomb" : "membomb"])
        launch.appDir = "\(JailHarness.base)/app"
        launch.limitsOverride = l
        let w = try j.spawn(launch)
        #expect(w.startedWarm && jails[w.pid] != nil, "taken from a pooled cgroup: \(w.pid) in \(jails.keys)")
        let exit = await w.exit
        #expect(exit.reason == (limit == .pids ? .killedLimit(.pids) : .killedOOM), "\(exit)")
        await w.removed
    }

    @Test("a warm jail's launch with other limits does not take it")
    func otherLimitsSpawnCold() async throws {
        let j = try Self.jailer("cg-other")
        defer { j.drainPools() }
        let jails = try await Self.warmUp(j, "cg-other", limits: j.configuration.policy.limits)
        try #require(jails.count >= 2)
        var l = j.configuration.policy.limits
        l.pids = 55
        var launch = JailLaunch(programId: "test.warm-cgroup", argv: ["/bin/sh", "-c", "sleep 30"])
        launch.limitsOverride = l
        let w = try j.spawn(launch)
        #expect(jails[w.pid] == nil, "a jail whose cgroup carries other limits was taken")
        let dir = try await JailSpawnPathTests.settledLocation(w)
        let pidsDir = try #require(JailSpawnPathTests.v1Dirs(dir, j).first { $0.hasPrefix("/sys/fs/cgroup/pids/") })
        #expect((try? String(contentsOfFile: pidsDir + "/pids.max", encoding: .utf8))?.trimmingCharacters(in: .whitespacesAndNewlines) == "55")
        w.kill()
        await w.removed
    }

    @Test("nothing is left once the pools are drained: pooled cgroups, lent ones, their warm jails")
    func drainLeavesNothing() async throws {
        let j = try Self.jailer("cg-drain")
        let jails = try await Self.warmUp(j, "cg-drain", limits: j.configuration.policy.limits)
        try #require(jails.count >= 2)
        let lent = Set(WarmJailCgroups.lentNames)
        let dirs = jails.values.map(\.dir)
        #expect(dirs.allSatisfy { lent.contains(($0 as NSString).lastPathComponent) }, "\(dirs) lent: \(lent)")
        j.drainPools()
        for d in dirs { #expect(JailSpawnPathTests.v1Dirs(d, j).allSatisfy { !JailSpawnPathTests.exists($0) }, "left behind: \(d)") }
        #expect(Set(WarmJailCgroups.lentNames).isDisjoint(with: dirs.map { ($0 as NSString).lastPathComponent }))
        // The jails in them were killed with them, and are reaped.
        try await WarmJailTests.waitUntil { jails.keys.allSatisfy { !WarmJailTests.liveChild($0) } }
        #expect(jails.keys.allSatisfy { !WarmJailTests.liveChild($0) })
        #expect(try await WarmJailTests.lastingZombies().filter { jails[$0] != nil }.isEmpty)
    }
}
