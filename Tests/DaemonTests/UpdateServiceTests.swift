import Foundation
import Logging
@testable import MiniAppDaemon
import MiniAppJSON
import MiniAppModel
import MiniAppPackages
import MiniAppSystem
import MiniAppTestSupport
import Synchronization
import Testing

/// The crash-loop watch of `UpdateService` on a real package store: which worker ends count,
/// and what a rollback changes (store, notification, metric).
@Suite struct UpdateServiceTests {
    final class Recorder: Sendable {
        let notes = Mutex<[(String, JSONValue)]>([])
        let events = Mutex<[String]>([])
        let rollbacks = Atomic<Int>(0)
        func named(_ m: String) -> [JSONValue] { notes.withLock { $0.filter { $0.0 == m }.map(\.1) } }
    }

    let world: E2EWorld
    let store: PackageStore
    let id = E2EPartner.programId("svc")
    let recorder = Recorder()

    init() throws {
        world = try E2EWorld()
        let policyDir = world.policyDir
        let partners = try PartnerDirectory.load(policyDir: policyDir)
        store = try PackageStore(root: world.dir.file("store"), options: VerifierOptions(hostVersion: SemVer("9.0.0")!)) { partners }
        for v in ["1.0.0", "2.0.0"] {
            _ = try store.install(path: try world.package(E2EWorld.manifest(id: id, version: v, entry: "main.js"), files: ["main.js": v]))
        }
    }

    func service(crashCount: Int = 2, window: Int = 30) -> UpdateService {
        let r = recorder
        let s = UpdateService(
            checker: nil, store: store, settings: .init(minIntervalSeconds: 0, rollbackCrashCount: crashCount, rollbackWindowSeconds: window),
            notify: { m, p in r.notes.withLock { $0.append((m, p)) } },
            sendEvent: { id, name, data in r.events.withLock { $0.append("\(id) \(name) \(data["version"]?.stringValue ?? "")") } },
            onRollback: { r.rollbacks.add(1, ordering: .relaxed) }, logger: Logger(label: "test.updates"))
        s.activated(id, version: "2.0.0", previous: "1.0.0")
        return s
    }

    /// A worker end of `version`, `uptime` seconds after its start.
    func ended(_ s: UpdateService, _ version: String = "2.0.0", status: Int32 = 1, uptime: Double = 0.1, stop: Bool = false) {
        let start = Supervisor.nowMicros() - Int64(uptime * 1_000_000)
        let reason: WorkerExitInfo.Reason = stop ? .stopped : (status > 128 ? .signal : .exit)
        s.workerEnded(EndedWorker(
            programId: id, version: version, startMicros: start, exit: WorkerExitInfo(status: status, reason: reason), stopRequested: stop))
    }

    func state() throws -> ProgramState { try #require(try store.list().first { $0.id == id }).state }

    @Test func failuresAtStartRollBackAndRejectTheVersion() throws {
        let s = service()
        #expect(recorder.named("package.activated") == [["id": .string(id), "version": "2.0.0", "previous": "1.0.0"]])
        ended(s, status: 1)
        #expect(try state().active?.version.text == "2.0.0", "one failure is not a loop")
        ended(s, status: 128 + 11)
        let st = try state()
        #expect(st.active?.version.text == "1.0.0")
        #expect(st.rejected?.version.text == "2.0.0")
        #expect(st.rejected?.reason.hasPrefix("crash-loop") == true)
        #expect(recorder.named("package.rolledBack").first?["from"] == "2.0.0")
        #expect(recorder.named("package.rolledBack").first?["to"] == "1.0.0")
        #expect(recorder.rollbacks.load(ordering: .relaxed) == 1)
        // Persisted: a new store on the same directory reads it back.
        let partners = try PartnerDirectory.load(policyDir: world.policyDir)
        let reopened = try PackageStore(root: world.dir.file("store"), options: VerifierOptions(hostVersion: SemVer("9.0.0")!)) { partners }
        #expect(try reopened.list().first { $0.id == id }?.state.rejected?.version.text == "2.0.0")
        // Further ends change nothing (probation is over).
        ended(s, "1.0.0", status: 1)
        ended(s, status: 1)
        #expect(recorder.rollbacks.load(ordering: .relaxed) == 1)
    }

    /// What never counts: requested stops, another version's failures; what ends probation: a
    /// clean exit, or a failure after the window.
    @Test(arguments: ["stops", "otherVersion", "cleanExit", "lateFailure", "off"])
    func endsThatDoNotRollBack(_ kind: String) throws {
        let s = service(crashCount: kind == "off" ? 0 : 2, window: 30)
        switch kind {
        case "stops": for _ in 0..<5 { ended(s, status: 143, stop: true) }
        case "otherVersion": for _ in 0..<5 { ended(s, "1.0.0", status: 1) }
        case "cleanExit": ended(s, status: 0)
        case "lateFailure": ended(s, status: 1, uptime: 31)
        default: break
        }
        for _ in 0..<(kind == "stops" || kind == "otherVersion" ? 1 : 5) { ended(s, status: 1) }
        #expect(try state().active?.version.text == "2.0.0")
        #expect(try state().rejected == nil)
        #expect(recorder.named("package.rolledBack").isEmpty)
    }

    /// A worker that started while a check staged a newer version (before it could be sent
    /// events) hears `update.ready` once it is in the table; not when it runs that version.
    @Test func workerStartedDuringStagingHearsUpdateReady() throws {
        _ = try store.stage(path: try world.package(E2EWorld.manifest(id: id, version: "3.0.0", entry: "main.js"), files: ["main.js": "3"]))
        let s = service()
        s.record([UpdateCheckResult(id: id, from: "2.0.0", to: "3.0.0", outcome: .staged)])
        #expect(recorder.events.withLock { $0 } == ["\(id) update.ready 3.0.0"], "the running worker, if any")
        s.workerStarted(id, version: "2.0.0")
        #expect(recorder.events.withLock { $0 }.count == 2)
        s.workerStarted(id, version: "3.0.0")
        #expect(recorder.events.withLock { $0 }.count == 2, "it runs the staged version")
        s.activated(id, version: "3.0.0", previous: "2.0.0")
        s.workerStarted(id, version: "2.0.0")
        #expect(recorder.events.withLock { $0 }.count == 2, "nothing staged any more")
    }
}
