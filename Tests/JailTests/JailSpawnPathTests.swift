import CJail
import Foundation
import MiniAppJail
import MiniAppModel
@testable import MiniAppSystem
import Testing

/// The spawn path: the spawner process, the spec blob it receives, cgroups made ahead, and
/// cgroup removal on every way a worker can end.
@Suite("spawn path: spawner process, spec blob, cgroup pool (privileged mode)", .serialized)
struct JailSpawnPathTests {
    /// A jailer as the daemon runs it: two cgroups made ahead.
    static let jailer: Jailer? = {
        guard let c = try? JailHarness.configuration() else { return nil }
        return try? Jailer(configuration: c, stateDir: "\(JailHarness.base)/state-pool", mode: .privileged, warmCgroups: 2)
    }()

    /// Every hierarchy's directory of a v1 worker cgroup (the hierarchies' bases differ: the
    /// daemon's own cgroup is not the same path in each).
    static func v1Dirs(_ location: String, _ jailer: Jailer) -> [String] {
        guard case .v1(_, let bases) = jailer.configuration.cgroupDriver else { return [location] }
        let name = (location as NSString).lastPathComponent
        return bases.values.sorted().map { "\($0)/\(name)" }
    }

    static func exists(_ path: String) -> Bool { access(path, F_OK) == 0 }

    /// The worker's cgroup location once a cgroup made ahead got the worker's name (renamed
    /// off the spawn path, right after it).
    static func settledLocation(_ w: JailedWorker) async throws -> String {
        for _ in 0..<15000 {
            if let l = w.cgroupLocation, (l as NSString).lastPathComponent.hasPrefix("w-") { return l }
            try await Task.sleep(for: .milliseconds(2))
        }
        return try #require(w.cgroupLocation)
    }

    enum Ending: String, CaseIterable, Sendable { case exit, signal, stop, wallClock, pidsLimit, oom }

    @Test("every way a worker ends removes its cgroup in every hierarchy", arguments: Ending.allCases)
    func cgroupRemoved(_ ending: Ending) async throws {
        let jailer = try #require(Self.jailer)
        #expect(JailHarness.probeBuilt)
        let argv = switch ending {
        case .exit: ["/bin/sh", "-c", "exit 3"]
        case .signal: ["/bin/sh", "-c", "kill -KILL $$"]
        case .stop, .wallClock: ["/bin/sh", "-c", "sleep 30"]
        case .pidsLimit: ["/app/probe", "forkbomb"]
        case .oom: ["/app/probe", "membomb"]
        }
        var launch = JailLaunch(programId: "test.cgroup-\(ending.rawValue.lowercased())", argv: argv)
        launch.appDir = "\(JailHarness.base)/app"
        var l = jailer.configuration.policy.limits
        l.wallClockSeconds = ending == .wallClock ? 0.3 : 20
        if ending == .pidsLimit { l.pids = 16 }
        if ending == .oom { l.memoryBytes = 32 << 20 }
        launch.limitsOverride = l
        let w = try jailer.spawn(launch)
        // Only a stopped worker surely runs here: the others, the 0.3 s wall clock included,
        // may already be over (a loaded host can take that long to get to this line).
        if ending == .stop {
            // Whatever its name is right now (a cgroup made ahead is renamed right after the
            // spawn, under the same lock this read takes).
            // Read again when the first name is gone: the rename may have come between the read
            // and the checks (it happens once, so the second read names the final directories).
            let first = Self.v1Dirs(try #require(w.cgroupLocation), jailer)
            let dirs = first.allSatisfy(Self.exists) ? first : Self.v1Dirs(try #require(w.cgroupLocation), jailer)
            #expect(dirs.allSatisfy(Self.exists), "the worker's cgroup exists while it runs: \(dirs)")
        }
        let exit = ending == .stop ? await w.stop(grace: 1) : await w.exit
        switch ending {
        case .exit: #expect(exit.reason == .exit && exit.status == 3, "\(exit)")
        case .signal: #expect(exit.reason == .signal && exit.signal == SIGKILL, "\(exit)")
        case .stop: #expect(exit.reason == .stopped, "\(exit)")
        case .wallClock: #expect(exit.reason == .killedLimit(.wallClock), "\(exit)")
        case .pidsLimit: #expect(exit.reason == .killedLimit(.pids), "\(exit)")
        case .oom: #expect(exit.reason == .killedOOM, "\(exit)")
        }
        await w.removed
        let dirs = Self.v1Dirs(try #require(w.cgroupLocation), jailer)
        #expect((dirs[0] as NSString).lastPathComponent.hasPrefix("w-test.cgroup-"), "\(dirs)")
        #expect(dirs.allSatisfy { !Self.exists($0) }, "left behind: \(dirs.filter(Self.exists))")
    }

    @Test("a cgroup made ahead is renamed to the worker's name and takes the launch's limits")
    func pooledCgroupTakesNameAndLimits() async throws {
        let jailer = try #require(Self.jailer)
        // A first spawn starts the refill; wait until two `p-` cgroups are ready.
        _ = await (try jailer.spawn(JailLaunch(programId: "test.pool-warm", argv: ["/bin/true"]))).exit
        guard case .v1(_, let bases) = jailer.configuration.cgroupDriver, let pidsBase = bases["pids"] else {
            Issue.record("this machine runs cgroup v1"); return
        }
        func ready() -> [String] {
            ((try? FileManager.default.contentsOfDirectory(atPath: pidsBase)) ?? []).filter { $0.hasPrefix("p-\(getpid())-") }
        }
        for _ in 0..<6000 where ready().count < 2 { try await Task.sleep(for: .milliseconds(5)) }
        let before = Set(ready())
        #expect(before.count >= 2, "\(before)") // (another pool of this process may have some too)
        let mineBefore = Set(jailer.readyCgroups.map { ($0 as NSString).lastPathComponent })

        var limits = jailer.configuration.policy.limits
        limits.pids = 77
        var launch = JailLaunch(programId: "test.pool-limits", argv: ["/bin/sh", "-c", "sleep 30"])
        launch.limitsOverride = limits
        let w = try jailer.spawn(launch)
        let dir = try await Self.settledLocation(w)
        #expect((dir as NSString).lastPathComponent.hasPrefix("w-test.pool-limits-\(getpid())-"), "\(dir)")
        let pidsDir = try #require(Self.v1Dirs(dir, jailer).first { $0.hasPrefix("/sys/fs/cgroup/pids/") })
        #expect((try? String(contentsOfFile: pidsDir + "/pids.max", encoding: .utf8))?.trimmingCharacters(in: .whitespacesAndNewlines) == "77")
        // Of this jailer's own pool (other suites' pools, warm jails' pooled cgroups among them,
        // come and go meanwhile): one of those ready before is no longer ready.
        #expect(!Set(jailer.readyCgroups.map { ($0 as NSString).lastPathComponent }).isSuperset(of: mineBefore), "one ready cgroup was used")
        w.kill()
        await w.removed
    }

    @Test("the sweep removes cgroups made ahead by a dead daemon, never a live one's")
    func sweepRemovesStalePoolCgroups() async throws {
        let jailer = try #require(Self.jailer)
        guard case .v1(_, let bases) = jailer.configuration.cgroupDriver else { Issue.record("cgroup v1 expected"); return }
        // A pid that is certainly dead: a reaped child of ours.
        let dead = try #require(try? jailer.spawn(JailLaunch(programId: "test.dead", argv: ["/bin/true"])))
        await dead.removed // not just `exit`: that comes with the program's status, before PID 1 is reaped
        let stale = "p-\(dead.pid)-1", live = "p-\(getpid())-999999"
        for base in bases.values { for n in [stale, live] { mkdir("\(base)/\(n)", 0o755) } }
        defer { for base in bases.values { rmdir("\(base)/\(live)") } }
        let report = jailer.sweepStaleWorkers()
        #expect(report.cgroups >= 1)
        #expect(bases.values.allSatisfy { !Self.exists("\($0)/\(stale)") })
        #expect(bases.values.allSatisfy { Self.exists("\($0)/\(live)") })
    }

    @Test("drainPools removes the cgroups made ahead")
    func drainRemovesReady() async throws {
        let c = try JailHarness.configuration()
        let j = try Jailer(configuration: c, stateDir: "\(JailHarness.base)/state-drain", mode: .privileged, warmCgroups: 2)
        _ = await (try j.spawn(JailLaunch(programId: "test.drain", argv: ["/bin/true"]))).exit
        for _ in 0..<6000 where j.readyCgroups.count < 2 { try await Task.sleep(for: .milliseconds(5)) }
        let mine = j.readyCgroups
        #expect(mine.count == 2 && mine.allSatisfy(Self.exists), "\(mine)")
        j.drainPools()
        #expect(mine.allSatisfy { dir in Self.v1Dirs(dir, j).allSatisfy { !Self.exists($0) } }, "\(mine)")
    }

    @Test("a spawner that died is replaced by the next spawn")
    func spawnerIsReplaced() async throws {
        // A spawner of its own: killing the shared one would fail other tests' spawns in flight.
        let slot = SpawnerSlot()
        let jailer = try Jailer(configuration: try JailHarness.configuration(), stateDir: "\(JailHarness.base)/state-respawn", mode: .privileged,
                                spawner: slot)
        _ = await (try jailer.spawn(JailLaunch(programId: "test.spawner", argv: ["/bin/true"]))).exit
        let first = try #require(JailSpawner.spawnerPID(slot))
        kill(first, SIGKILL)
        // Dead (a zombie until the next spawn notices and reaps it). A request the spawner took
        // before dying would fail its launch; one it never took is sent again to a new spawner.
        for _ in 0..<15000 {
            let stat = (try? String(contentsOfFile: "/proc/\(first)/stat", encoding: .utf8)) ?? ""
            if let close = stat.lastIndex(of: ")"), stat[stat.index(close, offsetBy: 2)] == "Z" { break }
            try await Task.sleep(for: .milliseconds(2))
        }
        let exit = await (try jailer.spawn(JailLaunch(programId: "test.spawner", argv: ["/bin/sh", "-c", "exit 4"]))).exit
        #expect(exit.status == 4, "\(exit)")
        let second = try #require(JailSpawner.spawnerPID(slot))
        #expect(second != first)
    }

    @Test("the spec blob survives the trip and every corrupted offset is refused")
    func blobIsChecked() throws {
        var plan = JailSpawnPlan()
        plan.rootPath = "/tmp/root"
        plan.mounts = [.dir(target: "/tmp/root/a", mode: 0o755), .bind(source: "/usr", target: "/tmp/root/usr", isDir: true, attrs: 1),
                       .file(target: "/tmp/root/f", contents: [], mode: 0o644)]
        plan.rlimits = [(7, 64, 64)]
        plan.landlockRules = [("/usr", 1)]
        plan.filters = [[UInt8](repeating: 0, count: 16)]
        plan.execPaths = ["/bin/true"]
        plan.argv = ["true", "x"]
        plan.env = ["A=b"]
        let good = CSpecBlob.make(plan)

        func unpack(_ bytes: [UInt8]) -> (Int32, cjail_spec?) {
            let p = UnsafeMutableRawPointer.allocate(byteCount: max(bytes.count, 8), alignment: 8)
            defer { p.deallocate() }
            bytes.withUnsafeBytes { p.copyMemory(from: $0.baseAddress!, byteCount: bytes.count) }
            var out = cjail_spec()
            let r = cjail_spec_unpack(p, bytes.count, &out)
            defer { cjail_spec_release(&out) }
            return (r, r == 0 ? out : nil)
        }
        let (r, spec) = unpack(good)
        #expect(r == 0)
        let s = try #require(spec)
        #expect(s.mount_count == 3 && s.rlimit_count == 1 && s.filter_count == 1 && s.exec_path_count == 1)

        // Truncated anywhere: refused (every item lies behind the header).
        for cut in [0, MemoryLayout<cjail_spec>.stride - 1, MemoryLayout<cjail_spec>.stride, good.count - 1] {
            #expect(unpack(Array(good.prefix(cut))).0 == -EINVAL, "cut at \(cut)")
        }
        // Every 8-byte word of the header that holds an offset, pointed past the end: refused.
        var refused = 0
        for off in stride(from: 0, to: MemoryLayout<cjail_spec>.stride, by: 8) {
            var bad = good
            let word = bad[off..<off + 8].withUnsafeBytes { $0.loadUnaligned(as: UInt64.self) }
            guard word >= UInt64(MemoryLayout<cjail_spec>.stride) && word < UInt64(good.count) else { continue }
            withUnsafeBytes(of: UInt64(good.count + 64)) { bad.replaceSubrange(off..<off + 8, with: $0) }
            if unpack(bad).0 == -EINVAL { refused += 1 } else { Issue.record("offset word at \(off) accepted past the end") }
        }
        #expect(refused >= 10, "pointer fields checked: \(refused)")
        // argv without its NULL terminator: refused.
        var open = good
        let field = try #require(MemoryLayout<cjail_spec>.offset(of: \cjail_spec.argv))
        let argvOff = Int(good[field..<field + 8].withUnsafeBytes { $0.loadUnaligned(as: UInt64.self) })
        let zeros = open.indices.filter { $0 >= argvOff && ($0 - argvOff) % 8 == 0 }.first { i in open[i..<min(i + 8, open.count)].allSatisfy { $0 == 0 } }
        let z = try #require(zeros, "argv's terminator")
        withUnsafeBytes(of: UInt64(good.count + 8)) { open.replaceSubrange(z..<z + 8, with: $0) }
        #expect(unpack(open).0 == -EINVAL)
    }

    /// The spec travels sealed (shrink, grow, write): a sender that could still truncate it
    /// killed the spawner with SIGBUS, one that could write it could change it after the check.
    @Test("the spec memfd is sealed, and the spawner refuses one that is not and keeps serving")
    func sealedSpec() throws {
        let bytes: [UInt8] = Array("not a spec blob, but long enough to be mapped".utf8)
        let sealed = bytes.withUnsafeBytes { cjail_sealed_memfd("test-spec", $0.baseAddress, $0.count) }
        #expect(sealed >= 0)
        defer { close(sealed) }
        #expect(cjail_memfd_is_sealed(sealed) != 0)
        #expect(ftruncate(sealed, 0) != 0 && errno == EPERM, "shrink")
        #expect(ftruncate(sealed, 1 << 20) != 0 && errno == EPERM, "grow")
        #expect(pwrite(sealed, "x", 1, 0) < 0 && errno == EPERM, "write")
        let plain = cjail_memfd("test-plain")
        defer { close(plain) }
        _ = bytes.withUnsafeBytes { write(plain, $0.baseAddress, $0.count) }
        #expect(cjail_memfd_is_sealed(plain) == 0)

        // A spawner of this test's own, started directly: not through SpawnerProcess, whose
        // notice watch on the shared jail event loop must not outlive its socket.
        var spawnerPid: Int32 = 0, socket: Int32 = -1
        #expect(cjail_spawner_start(SpawnerProcess.executablePath(), &spawnerPid, &socket) == 0)
        defer {
            close(socket)
            var status: Int32 = 0
            while waitpid(spawnerPid, &status, 0) < 0 && errno == EINTR {}
        }
        func result(_ blob: Int32) -> Int32? {
            var pair: [Int32] = [-1, -1]
            guard cjail_seqpacket_pair(&pair) == 0 else { return nil }
            defer { close(pair[0]) }
            var header = cjail_spawn_request()
            header.blob_len = UInt64(bytes.count)
            var fds = [Int32](repeating: -1, count: Int(CJAIL_SPAWN_FD_COUNT.rawValue))
            fds[Int(CJAIL_SPAWN_FD_BLOB.rawValue)] = blob
            fds[Int(CJAIL_SPAWN_FD_REPLY.rawValue)] = pair[1]
            let sent = fds.withUnsafeBufferPointer { cjail_spawner_send(socket, &header, $0.baseAddress) }
            close(pair[1])
            guard sent == 0 else { return nil }
            var ready = pollfd(fd: pair[0], events: Int16(POLLIN), revents: 0)
            guard poll(&ready, 1, 30_000) == 1 else { return nil }  // bounded: a hang fails the test
            var reply = cjail_spawn_reply()
            var child = cjail_child()
            var exitFD: Int32 = -1
            guard cjail_spawner_read_reply(pair[0], &reply, &child, &exitFD) == 0 else { return nil }
            return reply.result
        }
        #expect(result(plain) == -EPERM, "an unsealed spec is refused before it is mapped")
        #expect(kill(spawnerPid, 0) == 0, "the spawner is alive")
        // Still serving: the sealed one reaches the blob check (and fails it: it is no spec).
        #expect(result(sealed) == -EINVAL)
        #expect(kill(spawnerPid, 0) == 0)
    }
}

/// Warm jails (spawner_warm.c): made ahead of time from an earlier launch, taken by the next
/// launch of the same policy, discarded and reaped when they die or are evicted.
@Suite("warm jails (privileged mode)", .serialized)
struct WarmJailTests {
    /// A jailer of its own (its own state dir is its own warm-jail key), by default on a spawner
    /// of its own too: the shared one's four warm jails are other tests' to take and evict.
    static func jailer(_ name: String, spawner: SpawnerSlot = SpawnerSlot()) throws -> Jailer {
        try Jailer(configuration: try JailHarness.configuration(), stateDir: stateDir(name), mode: .privileged,
                   warmJails: true, spawner: spawner)
    }

    static func stateDir(_ name: String) -> String { "\(JailHarness.base)/state-warm-\(name)" }

    /// The waiting warm jails made for the jailer on `stateDir`: their mount table holds its root.
    static func ownWarmJails(_ name: String) -> [Int32] {
        let root = stateDir(name) + "/jail/root"
        return waitingWarmJails().filter { pid in
            ((try? String(contentsOfFile: "/proc/\(pid)/mountinfo", encoding: .utf8)) ?? "").contains(" \(root) ")
        }
    }

    /// Our children (workers and warm jails are: CLONE_PARENT) named miniapp-init, with state.
    static func jailChildren() -> [(pid: Int32, state: Character)] {
        let me = getpid()
        return ((try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? []).compactMap { name -> (Int32, Character)? in
            guard let pid = Int32(name), let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
                  let open = stat.firstIndex(of: "("), let close = stat.lastIndex(of: ")") else { return nil }
            let fields = stat[stat.index(close, offsetBy: 2)...].split(separator: " ")
            guard stat[stat.index(after: open)..<close] == "miniapp-init", fields.count > 1, fields[1] == "\(me)" else { return nil }
            return (pid, fields[0].first ?? "?")
        }
    }

    /// Warm jails waiting for a launch: jail children blocked in recvmsg (x86_64 syscall 47) on
    /// their channel; a worker's PID 1 waits in wait4 instead.
    static func waitingWarmJails() -> [Int32] {
        jailChildren().filter { c in
            c.state == "S" && ((try? String(contentsOfFile: "/proc/\(c.pid)/syscall", encoding: .utf8))?.hasPrefix("47 ") ?? false)
        }.map(\.pid)
    }

    /// Waits until at least `n` warm jails wait.
    static func waitForWarm(_ n: Int) async throws -> [Int32] {
        try await waitUntil { waitingWarmJails().count >= n }
        return waitingWarmJails()
    }

    /// Polls `condition` until it holds or 30 s pass. The bound is only a hang guard, and it is
    /// kept in time, not in tries: a check that scans /proc takes long on a busy host.
    static func waitUntil(_ condition: () -> Bool) async throws {
        let deadline = ContinuousClock.now + .seconds(30)
        while !condition() && ContinuousClock.now < deadline { try await Task.sleep(for: .milliseconds(4)) }
    }

    /// The state of `pid` when it is a child of this process (nil otherwise): one stat read,
    /// where `jailChildren` scans every process.
    static func childState(_ pid: Int32) -> Character? {
        guard let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8), let close = stat.lastIndex(of: ")") else { return nil }
        let fields = stat[stat.index(close, offsetBy: 2)...].split(separator: " ")
        guard fields.count > 1, fields[1] == "\(getpid())" else { return nil }
        return fields[0].first
    }

    /// Whether `pid` is a child of ours that has not ended (not a zombie).
    static func liveChild(_ pid: Int32) -> Bool { childState(pid).map { $0 != "Z" && $0 != "X" } ?? false }

    /// Jail children that stay zombies: a worker's PID 1 is one for a moment before the event
    /// loop reaps it; one nobody reaps is still one 30 s later. (Waits for the reaping itself:
    /// on a loaded host the event loop may take more than a second to get to it.)
    static func lastingZombies() async throws -> [Int32] {
        let now = jailChildren().filter { $0.state == "Z" }.map(\.pid)
        let zombie = { (pid: Int32) in childState(pid) == "Z" }
        try await waitUntil { !now.contains(where: zombie) }
        return now.filter(zombie)
    }

    @Test("the next launch takes a warm jail; it runs like a cold one, and the jail held only its own descriptors")
    func nextLaunchTakesAWarmJail() async throws {
        let j = try Self.jailer("take")
        let first = try j.spawn(JailLaunch(programId: "test.warm", argv: ["/bin/true"]))
        #expect(!first.startedWarm)
        _ = await first.exit
        try await Self.waitUntil { Self.ownWarmJails("take").count >= 2 }
        let warm = Self.ownWarmJails("take")
        #expect(warm.count == 2, "two warm jails per policy: \(warm)")
        for pid in warm {
            // err pipe, status pipe, channel: nothing of the spawner (its daemon socket) or of
            // the launch it was made from.
            let fds = (try? FileManager.default.contentsOfDirectory(atPath: "/proc/\(pid)/fd")) ?? []
            #expect(fds.count == 3, "warm jail \(pid) holds \(fds)")
        }
        // (Other tests' jails may evict ours under a parallel run: a few tries.)
        let lines = Locked<[String]>([])
        var launch = JailLaunch(programId: "test.warm", argv: ["/bin/sh", "-c", "id -u; echo $$; cat /proc/1/comm; grep CapEff /proc/self/status; test -x /app/probe && echo app; touch /data/x && echo data"])
        // /app and /data reach a warm jail as the directories the spawner opened (mount trees
        // passed on its channel), not as paths it binds itself.
        _ = JailHarness.probeBuilt
        launch.appDir = "\(JailHarness.base)/app"
        launch.dataDir = JailHarness.newDataDir("warm-take")
        launch.output = { l in lines.withLock { $0.append(l.text) } }
        var second = try j.spawn(launch)
        for _ in 0..<5 where !second.startedWarm {
            _ = await second.exit
            lines.withLock { $0 = [] }
            _ = try await Self.waitForWarm(1)
            second = try j.spawn(launch)
        }
        #expect(second.startedWarm)
        let exit = await second.exit
        #expect(exit.reason == .exit && exit.status == 0, "\(exit)")
        let out = lines.withLock { $0 }
        // Its own uid, a fresh pid namespace (the shell is PID 2 under the reaper), no capabilities.
        #expect(out == ["\(second.uid)", "2", "miniapp-init", "CapEff:\t0000000000000000", "app", "data"], "\(out)")
    }

    @Test("a dead warm jail is discarded and reaped; the launch still runs")
    func deadWarmJailIsReaped() async throws {
        let j = try Self.jailer("dead")
        _ = await (try j.spawn(JailLaunch(programId: "test.warm", argv: ["/bin/true"]))).exit
        try await Self.waitUntil { Self.ownWarmJails("dead").count >= 2 }
        let ours = Self.ownWarmJails("dead")
        #expect(ours.count >= 2, "\(ours)")
        for pid in ours { kill(pid, SIGKILL) }
        // Dead, not dying: a jail killed at the very moment a launch takes it makes that launch
        // end by SIGKILL (as any worker killed then), which is not what this test is about.
        try await Self.waitUntil { !ours.contains(where: Self.liveChild) }
        let w = try j.spawn(JailLaunch(programId: "test.warm", argv: ["/bin/sh", "-c", "exit 5"]))
        #expect(await w.exit.status == 5, "a dead warm jail never fails a launch: it spawns cold")
        let z = try await Self.lastingZombies()
        #expect(z.isEmpty, "reaped through the spawner's notices: \(z)")
    }

    @Test("a spawner that dies leaves no warm jail behind: they exit and we reap them")
    func spawnerDeathReapsWarmJails() async throws {
        let slot = SpawnerSlot() // killing the shared spawner would disturb other tests
        let j = try Self.jailer("spawner-death", spawner: slot)
        _ = await (try j.spawn(JailLaunch(programId: "test.warm", argv: ["/bin/true"]))).exit
        try await Self.waitUntil { Self.ownWarmJails("spawner-death").count >= 2 }
        let ours = Self.ownWarmJails("spawner-death")
        #expect(ours.count >= 2, "\(ours)")
        let spawner = try #require(JailSpawner.spawnerPID(slot))
        kill(spawner, SIGKILL)
        try await Self.waitUntil { !ours.contains(where: Self.liveChild) }
        let z = try await Self.lastingZombies()
        #expect(!z.contains(where: ours.contains), "our warm jails exit with their spawner and are reaped: \(z)")
        // and the next launch gets a new spawner
        #expect(await (try j.spawn(JailLaunch(programId: "test.warm", argv: ["/bin/sh", "-c", "exit 6"]))).exit.status == 6)
    }

    @Test("warm jails of other policies are evicted (and reaped) when room is needed")
    func otherPoliciesAreEvicted() async throws {
        let slot = SpawnerSlot()
        for name in ["evict-a", "evict-b", "evict-c"] {
            let j = try Self.jailer(name, spawner: slot)
            _ = await (try j.spawn(JailLaunch(programId: "test.warm", argv: ["/bin/true"]))).exit
            try await Self.waitUntil { Self.ownWarmJails(name).count >= 2 }
            #expect(Self.ownWarmJails(name).count == 2, "\(name)")
        }
        // Four at most per spawner: the third policy's two evicted the oldest policy's (waited
        // for: the eviction's kill and reap may trail the new jails' readiness).
        try await Self.waitUntil { Self.ownWarmJails("evict-a").isEmpty }
        #expect(Self.ownWarmJails("evict-a").isEmpty && Self.ownWarmJails("evict-b").count == 2 && Self.ownWarmJails("evict-c").count == 2)
        let z = try await Self.lastingZombies()
        #expect(z.isEmpty, "\(z)")
    }
}

@Suite("cgroup parent directories held open")
struct CgroupBaseDirsTests {
    @Test("made at first use, reused, and replaced only when the directory itself was removed")
    func staleDescriptorIsReplaced() throws {
        let root = FileManager.default.temporaryDirectory.appendingPathComponent("cgbase-\(getpid())-\(UInt32.random(in: 0...UInt32.max))").path
        defer { try? FileManager.default.removeItem(atPath: root) }
        let base = "\(root)/a/b"
        let first = try CgroupBaseDirs.fd(base) // mkdir -p, then opened
        #expect(FileManager.default.fileExists(atPath: base))
        #expect(try CgroupBaseDirs.fd(base) == first)
        #expect(try CgroupBaseDirs.at(base) { mkdirat($0, "x", 0o755) } == 0)
        #expect(FileManager.default.fileExists(atPath: "\(base)/x"))
        // ENOENT for a name below a live directory: the caller's errno, the descriptor kept.
        #expect(try CgroupBaseDirs.at(base) { openat($0, "missing/file", O_RDONLY) } < 0)
        #expect(errno == ENOENT)
        #expect(try CgroupBaseDirs.fd(base) == first)
        // Removed and made again under us: the next call works on the new directory.
        try FileManager.default.removeItem(atPath: base)
        try FileManager.default.createDirectory(atPath: base, withIntermediateDirectories: false)
        #expect(try CgroupBaseDirs.at(base) { mkdirat($0, "y", 0o755) } == 0)
        #expect(FileManager.default.fileExists(atPath: "\(base)/y"))
        #expect(try CgroupBaseDirs.fd(base) != first)
    }
}
