import Foundation
@testable import MiniAppDaemon
import MiniAppJSON
import MiniAppModel
import Synchronization
import Testing

/// The supervisor's prewarm (Supervisor+Prewarm.swift) against the fakes of SupervisorTests;
/// PrewarmEndToEndTests runs the same through a real daemon and real runtimes.
@Suite struct PrewarmTests {
    static func env(_ f: SupervisorFixture, _ i: Int) -> [String] {
        f.spawner.requests.withLock { $0[i].environment(policy: [:]).map { "\($0.0)=\($0.1)" } }
    }

    @Test func theLaunchOfItsProgramReleasesThePrewarmedWorker() throws {
        let f = try SupervisorFixture()
        let pre = try f.supervisor.prewarm("com.p.app")
        #expect(pre.prewarmed)
        #expect(Self.env(f, 0).contains("MINIAPP_PREWARM=1"))
        #expect(f.supervisor.list().isEmpty)  // held, not running
        #expect(f.bridge.events.withLock { $0.isEmpty })
        let launched = try f.supervisor.launch("com.p.app", args: ["a"])
        #expect(launched.workerId == pre.workerId)
        #expect(f.spawner.spawned.withLock { $0.count } == 1)
        #expect(f.bridge.events.withLock { $0.map(\.1) } == ["lifecycle.launch"])
        #expect(f.bridge.events.withLock { $0.map(\.0) } == [pre.workerId])
        #expect(f.supervisor.prewarmedPrograms().isEmpty)
        #expect(f.supervisor.list().count == 1)
    }

    @Test func anotherProgramsLaunchNeverTakesIt() throws {
        let f = try SupervisorFixture()
        let pre = try f.supervisor.prewarm("com.p.a")
        let other = try f.supervisor.launch("com.p.b")
        #expect(other.workerId != pre.workerId)
        #expect(f.spawner.spawned.withLock { $0.count } == 2)
        #expect(!Self.env(f, 1).contains("MINIAPP_PREWARM=1"))
        #expect(f.bridge.events.withLock { $0.isEmpty })
        #expect(f.supervisor.prewarmedPrograms() == ["com.p.a"])
    }

    @Test func prewarmTwiceKeepsOneWorker() throws {
        let f = try SupervisorFixture()
        let a = try f.supervisor.prewarm("com.p.app")
        let b = try f.supervisor.prewarm("com.p.app")
        #expect(a.workerId == b.workerId)
        #expect(f.spawner.spawned.withLock { $0.count } == 1)
    }

    @Test func prewarmOfARunningProgramAnswersWithItsWorker() throws {
        let f = try SupervisorFixture()
        let running = try f.supervisor.launch("com.p.app")
        let pre = try f.supervisor.prewarm("com.p.app")
        #expect(pre.workerId == running.workerId)
        #expect(f.supervisor.prewarmedPrograms().isEmpty)
    }

    @Test func aPackageChangeDropsIt() throws {
        let f = try SupervisorFixture()
        let pre = try f.supervisor.prewarm("com.p.app")
        f.supervisor.dropPrewarmed(programId: "com.p.other")
        #expect(f.supervisor.prewarmedPrograms() == ["com.p.app"])
        f.supervisor.dropPrewarmed(programId: "com.p.app")
        #expect(f.supervisor.prewarmedPrograms().isEmpty)
        #expect(f.spawner.spawned.withLock { $0[0].killed.withLock { $0 } })
        let launched = try f.supervisor.launch("com.p.app")
        #expect(launched.workerId != pre.workerId)
        #expect(f.notes.named("program.exited").isEmpty)  // a dropped prewarm never ran: nothing to report
    }

    /// The backstop for a change that raced the prewarm: the release compares the program.
    @Test func aStaleWorkerIsNeverReleased() throws {
        let f = try SupervisorFixture()
        let pre = try f.supervisor.prewarm("com.p.app")
        f.resolver.version.withLock { $0 = "2.0.0" }
        let launched = try f.supervisor.launch("com.p.app")
        #expect(launched.workerId != pre.workerId)
        #expect(launched.version == "2.0.0")
        #expect(f.spawner.spawned.withLock { $0[0].killed.withLock { $0 } })
        #expect(f.bridge.events.withLock { $0.isEmpty })
        #expect(f.supervisor.list().count == 1)
    }

    /// Operator overrides are read at each launch: a worker prewarmed under other ones (or when
    /// they cannot be read now) is never released.
    @Test(arguments: [[PolicyOverride(storageQuotaBytes: 1000)], nil] as [[PolicyOverride]?])
    func changedOverridesAreNeverReleased(_ changed: [PolicyOverride]?) throws {
        let current = OverridesBox()
        let f = try SupervisorFixture { s in s.overridesOf = { _ in current.value.withLock { $0 } } }
        let pre = try f.supervisor.prewarm("com.p.app")
        current.value.withLock { $0 = changed }
        let launched = try f.supervisor.launch("com.p.app")
        #expect(launched.workerId != pre.workerId)
        #expect(f.spawner.spawned.withLock { $0[0].killed.withLock { $0 } })
        #expect(f.bridge.events.withLock { $0.isEmpty })
    }

    @Test func unchangedOverridesRelease() throws {
        let current = OverridesBox()
        current.value.withLock { $0 = [PolicyOverride(storageQuotaBytes: 1000)] }
        let f = try SupervisorFixture { s in s.overridesOf = { _ in current.value.withLock { $0 } } }
        let pre = try f.supervisor.prewarm("com.p.app")
        #expect(try f.supervisor.launch("com.p.app").workerId == pre.workerId)
    }

    @Test func aGrantChangeOfItsPartnerDropsIt() throws {
        let f = try SupervisorFixture()
        _ = try f.supervisor.prewarm("com.p.app")
        _ = try f.supervisor.prewarm("com.q.app")
        f.supervisor.dropPrewarmed(partners: ["com.q"])
        #expect(f.supervisor.prewarmedPrograms() == ["com.p.app"])
    }

    @Test(arguments: [
        ([:], ["com.p": Set(["ui"])], ["com.p"]),  // a partner added
        (["com.p": Set(["ui", "payment"])], ["com.p": Set(["ui"])], ["com.p"]),  // revoked
        (["com.p": Set(["ui"])], ["com.p": Set(["ui", "payment"])], ["com.p"]),  // granted
        (["com.p": Set(["ui"]), "com.q": Set(["ui"])], ["com.q": Set(["ui"])], ["com.p"]),  // a partner removed
        (["com.p": Set(["ui"])], ["com.p": Set(["ui"])], []),  // nothing changed
    ] as [([String: Set<String>], [String: Set<String>], Set<String>)])
    func grantChangesAreFoundPerPartner(old: [String: Set<String>], new: [String: Set<String>], changed: Set<String>) {
        #expect(GrantsChanges.changed(old, new) == changed)
        let changes = GrantsChanges(initial: old)
        let seen = Mutex<(grants: [String: Set<String>], ids: Set<String>)>(([:], []))
        changes.subscribe { c in seen.withLock { $0 = (c.grants, $0.ids.union(c.changed)) } }
        changes.publish(new)
        #expect(seen.withLock { $0.ids } == changed)
        #expect(seen.withLock { $0.grants } == new)
    }

    @Test func theWorkerBudgetEvictsTheLeastRecentlyPrewarmed() throws {
        let f = try SupervisorFixture { $0.prewarmMaxWorkers = 2 }
        for name in ["a", "b", "c"] {
            _ = try f.supervisor.prewarm("com.p.\(name)")
            f.clock.advance(seconds: 1)
        }
        #expect(f.supervisor.prewarmedPrograms() == ["com.p.b", "com.p.c"])
        #expect(f.spawner.spawned.withLock { $0[0].killed.withLock { $0 } })
    }

    @Test func theMemoryBudgetHolds() throws {
        let f = try SupervisorFixture {
            $0.prewarmMaxWorkers = 10
            $0.prewarmMaxMemoryBytes = 250 << 20
        }
        f.spawner.memoryPerWorker.withLock { $0 = 100 << 20 }
        for name in ["a", "b", "c", "d"] {
            _ = try f.supervisor.prewarm("com.p.\(name)")
            f.clock.advance(seconds: 1)
            let held = f.supervisor.prewarmedList().map(\.memoryBytes).reduce(0, +)
            #expect(held <= 250 << 20)
        }
        #expect(f.supervisor.prewarmedPrograms() == ["com.p.c", "com.p.d"])
        // One worker over the whole budget is not kept either.
        f.spawner.memoryPerWorker.withLock { $0 = 300 << 20 }
        _ = try f.supervisor.prewarm("com.p.e")
        #expect(f.supervisor.prewarmedPrograms() == ["com.p.c", "com.p.d"])
    }

    @Test func nativeProgramsAndPrewarmOffAreRefused() throws {
        let f = try SupervisorFixture()
        do { _ = try f.supervisor.prewarm("com.p.tool.native"); Issue.record("prewarmed a native program") } catch {
            #expect(error.code == .invalidParams)
        }
        let off = try SupervisorFixture { $0.prewarmMaxWorkers = 0 }
        do { _ = try off.supervisor.prewarm("com.p.app"); Issue.record("prewarm while off") } catch { #expect(error.code == .invalidParams) }
        #expect(f.spawner.spawned.withLock { $0.isEmpty } && off.spawner.spawned.withLock { $0.isEmpty })
    }

    @Test func shutdownStopsPrewarmedWorkers() throws {
        let f = try SupervisorFixture()
        _ = try f.supervisor.prewarm("com.p.app")
        f.supervisor.shutdown(graceMillis: 100)
        #expect(f.spawner.spawned.withLock { $0[0].killed.withLock { $0 } })
        #expect(f.supervisor.prewarmedPrograms().isEmpty)
    }

    @Test func prewarmRacingShutdownLeavesNoWorker() throws {
        let f = try SupervisorFixture()
        let shutdownDone = f.shutDownDuringSpawn()
        let supervisor = f.supervisor
        do { _ = try supervisor.prewarm("com.p.app"); Issue.record("prewarmed during shutdown") } catch {
            #expect(error.code == .hostUnavailable)
        }
        #expect(shutdownDone.wait(timeout: .now() + 10) == .success, "shutdown returned")
        #expect(f.spawner.spawned.withLock { $0[0].killed.withLock { $0 } })
        #expect(supervisor.prewarmedPrograms().isEmpty)
        #expect(f.notes.named("program.exited").isEmpty)
    }

    @Test func recentProgramsArePrewarmedAgainAfterACleanStop() throws {
        let f = try SupervisorFixture { $0.prewarmRecent = true }
        let w = try f.supervisor.launch("com.p.app").workerId
        try f.supervisor.stop(w, graceMillis: 10) { _ in }
        #expect(SupervisorFixture.eventually { f.supervisor.prewarmedPrograms() == ["com.p.app"] })
    }
}

/// The overrides a test's `overridesOf` answers with.
final class OverridesBox: Sendable {
    let value = Mutex<[PolicyOverride]?>([])
}

extension SupervisorFixture {
    /// Polls `condition` for up to 5 s (background work on the supervisor's timer queue).
    static func eventually(_ condition: () -> Bool) -> Bool {
        for _ in 0..<500 {
            if condition() { return true }
            usleep(10_000)
        }
        return condition()
    }
}
