import Foundation
import MiniAppBroker
@testable import MiniAppDaemon
import MiniAppJail
import MiniAppJSON
import MiniAppModel
import Synchronization
import Testing

/// Fakes for the far side of the supervisor's seams; the real jail and broker are exercised by
/// the end-to-end tests.
final class FakeWorker: WorkerHandle, @unchecked Sendable {
    let pid: Int32
    let onExit: @Sendable (WorkerExitInfo) -> Void
    let frozen = Mutex(false)
    let memoryBytes: Int64
    let killed = Mutex(false)
    init(pid: Int32, memoryBytes: Int64 = 4096, onExit: @escaping @Sendable (WorkerExitInfo) -> Void) {
        self.pid = pid
        self.memoryBytes = memoryBytes
        self.onExit = onExit
    }
    func suspend() throws(MiniAppError) { frozen.withLock { $0 = true } }
    func resume() throws(MiniAppError) { frozen.withLock { $0 = false } }
    /// As the real jail does: a stop it carried out is reported as `stopped`.
    func stop(graceMillis: Int) { onExit(WorkerExitInfo(status: 143, signal: "SIGTERM", reason: .stopped)) }
    func kill() {
        killed.withLock { $0 = true }
        onExit(WorkerExitInfo(status: 137, signal: "SIGKILL", reason: .signal))
    }
    func usage() -> (memoryBytes: Int64, cpuMicros: Int64) { (memoryBytes, 10) }
}

final class FakeSpawner: WorkerSpawner, @unchecked Sendable {
    let spawned = Mutex<[FakeWorker]>([])
    let requests = Mutex<[JailLaunch]>([])
    /// Reported from inside `spawn`, before it returns: a program that exits at once, seen by
    /// the jail's reaper before the supervisor got the handle.
    let exitDuringSpawn = Mutex<WorkerExitInfo?>(nil)
    /// Runs inside `spawn` (the launch is then between admission and registration).
    let duringSpawn = Mutex<(@Sendable () -> Void)?>(nil)
    /// What `usage()` reports for the workers spawned from now on.
    let memoryPerWorker = Mutex<Int64>(4096)

    func spawn(_ r: JailLaunch, onExit: @escaping @Sendable (WorkerExitInfo) -> Void) throws(MiniAppError) -> any WorkerHandle {
        let w = FakeWorker(
            pid: Int32(1000 + spawned.withLock { $0.count }), memoryBytes: memoryPerWorker.withLock { $0 }, onExit: onExit)
        spawned.withLock { $0.append(w) }
        requests.withLock { $0.append(r) }
        duringSpawn.withLock { $0 }?()
        if let exit = exitDuringSpawn.withLock({ $0 }) { onExit(exit) }
        return w
    }
}

final class Observed: Sendable {
    let items = Mutex<[WorkerExitInfo]>([])
}

/// A monotonic clock the test moves by hand.
final class ManualClock: Sendable {
    let nanos = Mutex<UInt64>(1_000_000_000)
    func advance(seconds: UInt64) { nanos.withLock { $0 += seconds * 1_000_000_000 } }
    func now() -> UInt64 { nanos.withLock { $0 } }
}

final class FakeResolver: ProgramResolver, Sendable {
    /// The version every program resolves to (a test changes it to model an update).
    let version = Mutex("1.0.0")

    func launchable(_ id: String) throws(MiniAppError) -> LaunchableProgram {
        guard id.hasPrefix("com.") else { throw MiniAppError(.notFound, "no package \(id)") }
        return LaunchableProgram(
            id: id, version: version.withLock { $0 }, partnerId: id.hasPrefix("com.q.") ? "com.q" : "com.p", appDir: "/nonexistent",
            entryPoint: id.hasSuffix(".native") ? "main" : "main.js", runtime: id.hasSuffix(".native") ? .native : .node,
            permissions: [], allowedDomains: [])
    }
    func dataDirectory(_ id: String) throws(MiniAppError) -> String { "/nonexistent/\(id)" }
}

final class FakeBridge: BridgeAttacher, @unchecked Sendable {
    let attached = Mutex<Set<String>>([])
    let events = Mutex<[(String, String)]>([])
    func attach(identity: CallerIdentity) throws(MiniAppError) -> Int32 {
        attached.withLock { _ = $0.insert(identity.workerId) }
        return dup(0)
    }
    func detach(workerId: String) { attached.withLock { _ = $0.remove(workerId) } }
    func sendEvent(workerId: String, name: String, data: JSONValue) throws(MiniAppError) {
        events.withLock { $0.append((workerId, name)) }
    }
    func activity(workerId: String) -> (calls: Int64, lastCallNanos: UInt64) { (3, 0) }
}

final class Notes: @unchecked Sendable {
    let items = Mutex<[(String, JSONValue)]>([])
    func add(_ m: String, _ p: JSONValue) { items.withLock { $0.append((m, p)) } }
    func named(_ m: String) -> [JSONValue] { items.withLock { $0.filter { $0.0 == m }.map(\.1) } }
}

struct SupervisorFixture {
    let dir: String
    let spawner = FakeSpawner()
    let bridge = FakeBridge()
    let notes = Notes()
    let clock = ManualClock()
    /// Every exit as the supervisor reported it to its observer (the metrics).
    let observed = Observed()
    let resolver = FakeResolver()
    let supervisor: Supervisor

    init(_ tweak: (inout SupervisorSettings) -> Void = { _ in }) throws {
        dir = NSTemporaryDirectory() + "sup-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        var settings = SupervisorSettings()
        settings.restartBackoffMillis = 10
        tweak(&settings)
        let (notes, clock, observed) = (self.notes, self.clock, self.observed)
        supervisor = Supervisor(
            settings: settings, ids: try WorkerIDAllocator(path: dir + "/workers.seq"), spawner: spawner,
            resolver: resolver, bridge: bridge, notify: { m, p in notes.add(m, p) },
            observeExit: { info in observed.items.withLock { $0.append(info) } }, clock: { clock.now() })
    }
}

extension SupervisorFixture {
    /// Makes the next spawn start a shutdown (on another thread) and wait until it began; the
    /// semaphore is signalled when the shutdown returned.
    func shutDownDuringSpawn() -> DispatchSemaphore {
        let done = DispatchSemaphore(value: 0)
        let supervisor = self.supervisor
        spawner.duringSpawn.withLock {
            $0 = {
                Thread.detachNewThread {
                    supervisor.shutdown(graceMillis: 10)
                    done.signal()
                }
                while !supervisor.isShuttingDown { usleep(1000) }
            }
        }
        return done
    }
}

@Suite struct SupervisorTests {
    @Test func secondLaunchAnswersWithTheRunningWorker() throws {
        let f = try SupervisorFixture()
        let a = try f.supervisor.launch("com.p.app")
        let b = try f.supervisor.launch("com.p.app")
        #expect(a.workerId == b.workerId)
        #expect(f.spawner.spawned.withLock { $0.count } == 1)
        #expect(f.supervisor.list().count == 1)
    }

    @Test func unknownProgramIsNotFound() throws {
        let f = try SupervisorFixture()
        #expect(throws: MiniAppError.self) { try f.supervisor.launch("nope") }
        do { _ = try f.supervisor.launch("nope") } catch { #expect(error.code == .notFound) }
    }

    @Test func stopReportsStoppedAndDetachesTheBridge() throws {
        let f = try SupervisorFixture()
        let wid = try f.supervisor.launch("com.p.app").workerId
        let status = Mutex<Int32?>(nil)
        try f.supervisor.stop(wid, graceMillis: 10) { s in status.withLock { $0 = s } }
        #expect(status.withLock { $0 } == 143)
        let exited = f.notes.named("program.exited")
        #expect(exited.count == 1)
        #expect(exited.first?["reason"] == "stopped")
        #expect(exited.first?["signal"] == "SIGTERM")
        #expect(f.bridge.attached.withLock { $0.isEmpty })
        #expect(f.supervisor.list().isEmpty)
        #expect(throws: MiniAppError.self) { try f.supervisor.stop(wid, graceMillis: 1) { _ in } }
    }

    @Test func shutdownReportsDaemonShutdown() throws {
        let f = try SupervisorFixture()
        let wid = try f.supervisor.launch("com.p.app").workerId
        f.supervisor.shutdown(graceMillis: 10)
        let exited = f.notes.named("program.exited")
        #expect(exited.count == 1)
        #expect(exited.first?["workerId"]?.stringValue == wid)
        #expect(exited.first?["reason"] == "daemon-shutdown")
        #expect(throws: MiniAppError.self) { try f.supervisor.launch("com.p.other") }
    }

    @Test func suspendResumeFollowTheStateMachine() throws {
        let f = try SupervisorFixture()
        let wid = try f.supervisor.launch("com.p.app").workerId
        #expect(throws: MiniAppError.self) { try f.supervisor.resume(wid) }
        try f.supervisor.suspend(wid)
        #expect(f.supervisor.list().first?.state == "suspended")
        #expect(throws: MiniAppError.self) { try f.supervisor.suspend(wid) }
        try f.supervisor.resume(wid)
        #expect(f.supervisor.list().first?.state == "running")
    }

    @Test func crashRestartsWithBackoffThenGivesUp() async throws {
        let f = try SupervisorFixture { $0.maxRestarts = 2 }
        _ = try f.supervisor.launch("com.p.app")
        for round in 1...3 {
            let w = f.spawner.spawned.withLock { $0.last! }
            w.onExit(WorkerExitInfo(status: 1, reason: .exit))
            if round < 3 {
                for _ in 0..<200 where f.spawner.spawned.withLock({ $0.count }) == round { try await Task.sleep(for: .milliseconds(10)) }
            } else {
                try await Task.sleep(for: .milliseconds(200))
            }
        }
        #expect(f.spawner.spawned.withLock { $0.count } == 3, "two restarts, then no more")
        #expect(f.notes.named("program.restarted").count == 2)
        #expect(f.notes.named("program.exited").count == 3)
    }

    @Test func workerIdsAreNeverReusedAcrossRestarts() throws {
        let dir = NSTemporaryDirectory() + "ids-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        let a = try WorkerIDAllocator(path: dir + "/seq", block: 4)
        let first = try (0..<6).map { _ in try a.next() }
        let b = try WorkerIDAllocator(path: dir + "/seq", block: 4)  // as after a crash
        let second = try b.next()
        #expect(Set(first).count == 6)
        #expect(!first.contains(second))
    }

    /// Only a missing counter starts at w-1; an unreadable or corrupt one stops the start.
    @Test(arguments: ["directory", "under-a-file", "corrupt", "zero", "missing"])
    func unreadableIdCounterFailsTheStart(_ kind: String) throws {
        let dir = NSTemporaryDirectory() + "ids-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        var path = dir + "/workers.seq"
        switch kind {
        case "directory": try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: false)  // EISDIR
        case "under-a-file":
            _ = FileManager.default.createFile(atPath: dir + "/file", contents: Data("x".utf8))
            path = dir + "/file/workers.seq"  // ENOTDIR
        case "corrupt": _ = FileManager.default.createFile(atPath: path, contents: Data("seven\n".utf8))
        case "zero": _ = FileManager.default.createFile(atPath: path, contents: Data("0\n".utf8))
        default: break
        }
        if kind == "missing" {
            #expect(try WorkerIDAllocator(path: path).next() == "w-1")
        } else {
            #expect(throws: MiniAppError.self, "\(kind)") { try WorkerIDAllocator(path: path) }
        }
    }

    @Test func idleWorkersAreStopped() throws {
        let f = try SupervisorFixture { $0.idleTimeoutSeconds = 1 }
        _ = try f.supervisor.launch("com.p.app")
        f.supervisor.stopIdleWorkers()
        #expect(f.notes.named("program.exited").isEmpty)
        f.clock.advance(seconds: 2)
        f.supervisor.stopIdleWorkers()
        #expect(f.notes.named("program.exited").first?["detail"] == "idle timeout")
    }

    /// The phantom-worker race: the jail reports the exit before `spawn` returned. The exit is
    /// reported, the dead worker never enters the table, and the next launch starts afresh.
    @Test func exitBeforeRegistrationIsReportedAndForgotten() throws {
        let f = try SupervisorFixture()
        f.spawner.exitDuringSpawn.withLock { $0 = WorkerExitInfo(status: 0, reason: .exit) }
        let first = try f.supervisor.launch("com.p.app")
        let exited = f.notes.named("program.exited")
        #expect(exited.count == 1)
        #expect(exited.first?["workerId"]?.stringValue == first.workerId)
        #expect(exited.first?["reason"] == "exit")
        #expect(f.supervisor.list().isEmpty)
        #expect(!f.supervisor.isRunning(programId: "com.p.app"))
        #expect(f.bridge.attached.withLock { $0.isEmpty })
        f.spawner.exitDuringSpawn.withLock { $0 = nil }
        let second = try f.supervisor.launch("com.p.app")
        #expect(second.workerId != first.workerId)
        #expect(f.supervisor.list().count == 1)
        let status = Mutex<Int32?>(nil)
        try f.supervisor.stop(second.workerId, graceMillis: 1) { s in status.withLock { $0 = s } }
        #expect(status.withLock { $0 } == 143, "stop of the new worker replies")
    }

    /// A crash exit at once, before registration, still counts as a crash: restarted.
    @Test func earlyCrashIsRestarted() async throws {
        let f = try SupervisorFixture { $0.maxRestarts = 1 }
        f.spawner.exitDuringSpawn.withLock { $0 = WorkerExitInfo(status: 3, reason: .exit) }
        _ = try f.supervisor.launch("com.p.app")
        for _ in 0..<200 where f.notes.named("program.restartFailed").isEmpty && f.notes.named("program.restarted").isEmpty {
            try await Task.sleep(for: .milliseconds(10))
        }
        #expect(f.spawner.spawned.withLock { $0.count } == 2)
        #expect(f.notes.named("program.exited").count == 2)
        #expect(f.supervisor.list().isEmpty)
    }

    @Test func crashRestartKeepsTheLaunchArgs() async throws {
        let f = try SupervisorFixture()
        _ = try f.supervisor.launch("com.p.app", args: ["--mode", "a b"])
        f.spawner.spawned.withLock { $0[0] }.onExit(WorkerExitInfo(status: 1, reason: .exit))
        for _ in 0..<200 where f.spawner.requests.withLock({ $0.count }) < 2 { try await Task.sleep(for: .milliseconds(10)) }
        let argv = f.spawner.requests.withLock { $0.map(\.argv) }
        #expect(argv.count == 2)
        #expect(argv.last?.suffix(2) == ["--mode", "a b"])
        #expect(argv.first == argv.last)
    }

    /// SIGTERM while a launch is between spawn and registration: the shutdown did not see the
    /// worker, so the launch stops it (reason daemon-shutdown) and shutdown waits for it.
    @Test func launchRacingShutdownLeavesNoWorker() throws {
        let f = try SupervisorFixture()
        let shutdownDone = f.shutDownDuringSpawn()
        let supervisor = f.supervisor
        #expect(throws: MiniAppError.self) { try supervisor.launch("com.p.app") }
        #expect(shutdownDone.wait(timeout: .now() + 10) == .success, "shutdown returned")
        let exited = f.notes.named("program.exited")
        #expect(exited.count == 1)
        #expect(exited.first?["reason"] == "daemon-shutdown")
        #expect(supervisor.list().isEmpty)
        #expect(f.observed.items.withLock { $0.map(\.reason) } == [.daemonShutdown])
    }

    /// A second launch during the first one's spawn waits and answers with the same worker.
    @Test func launchDuringSpawnJoinsIt() throws {
        let f = try SupervisorFixture()
        let supervisor = f.supervisor
        let joined = Mutex<Result<StartedWorker, MiniAppError>?>(nil)
        let joinedDone = DispatchSemaphore(value: 0)
        f.spawner.duringSpawn.withLock {
            $0 = {
                Thread.detachNewThread {
                    let r: Result<StartedWorker, MiniAppError>
                    do throws(MiniAppError) { r = .success(try supervisor.launch("com.p.app")) } catch { r = .failure(error) }
                    joined.withLock { $0 = r }
                    joinedDone.signal()
                }
                while supervisor.joinedLaunches(of: "com.p.app") == 0 { usleep(1000) }
            }
        }
        let first = try supervisor.launch("com.p.app")
        #expect(joinedDone.wait(timeout: .now() + 10) == .success)
        let second = try #require(joined.withLock { $0 })
        #expect(try second.get().workerId == first.workerId)
        #expect(f.spawner.spawned.withLock { $0.count } == 1)
    }

    /// The idle clock restarts at resume: a worker suspended longer than the idle timeout is
    /// not stopped the moment it is thawed, only after a full idle period.
    @Test func resumeRestartsTheIdleClock() throws {
        let f = try SupervisorFixture { $0.idleTimeoutSeconds = 10 }
        let wid = try f.supervisor.launch("com.p.app").workerId
        try f.supervisor.suspend(wid)
        f.clock.advance(seconds: 60)
        f.supervisor.stopIdleWorkers()
        #expect(f.notes.named("program.exited").isEmpty, "suspended workers are not idle-stopped")
        try f.supervisor.resume(wid)
        f.supervisor.stopIdleWorkers()
        #expect(f.notes.named("program.exited").isEmpty, "just resumed")
        f.clock.advance(seconds: 11)
        f.supervisor.stopIdleWorkers()
        #expect(f.notes.named("program.exited").first?["detail"] == "idle timeout")
    }

    /// The metrics see the reason the hosts see (daemon-shutdown, not the jail's `stopped`).
    @Test func exitObserverSeesTheReportedReason() throws {
        let f = try SupervisorFixture()
        let a = try f.supervisor.launch("com.p.a").workerId
        _ = try f.supervisor.launch("com.p.b")
        try f.supervisor.stop(a, graceMillis: 1) { _ in }
        f.supervisor.shutdown(graceMillis: 10)
        #expect(f.observed.items.withLock { $0.map(\.reason) } == [.stopped, .daemonShutdown])
    }
}
