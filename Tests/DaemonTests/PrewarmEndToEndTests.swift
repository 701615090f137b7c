import Foundation
import MiniAppDaemon
import MiniAppJSON
import MiniAppModel
import MiniAppTestSupport
import Testing

/// `programs.prewarm` through a real daemon with real jailed node and Python workers: the SDK
/// loaders hold the entry point until the launch, the launch of that program (and only that
/// one) releases the worker with its args, and a package update or a grant change drops it.
/// Serialized: each test blocks a thread for seconds (a real daemon and runtimes), and on a
/// 2-core machine two at once would hold the whole cooperative pool.
@Suite(.serialized) struct PrewarmEndToEndTests {
    /// Python: reports its argv, `__name__`, `sys.path[0]` and the program id it runs as.
    static let pythonReporter = """
        import json, os, sys
        import miniapp_bridge as bridge
        bridge.call("ui.toast", {"message": json.dumps({
            "argv": sys.argv, "name": __name__, "path0": sys.path[0],
            "program": os.environ["MINIAPP_PROGRAM_ID"], "prewarmEnv": "MINIAPP_PREWARM" in os.environ})})
        while os.read(3, 4096):
            pass
        """

    /// The prewarmed entry of `programId` in `programs.list`, if held.
    static func held(_ host: E2EHost, _ programId: String) throws -> JSONObject? {
        let list = try host.call("programs.list")
        return list["prewarmed"]?.arrayValue?.compactMap(\.objectValue).first { $0["id"]?.stringValue == programId }
    }

    struct Setup {
        let world: E2EWorld
        let daemon: DaemonHarness
        let host: E2EHost

        init() throws {
            world = try E2EWorld()
            daemon = try world.daemon()
            host = try E2EHost(daemon)
            host.answers["ui.toast"] = { _ in [:] }
            try host.call("bridge.provide", ["methods": ["ui.toast"]])
        }

        func install(_ id: String, version: String = "1.0.0", entry: String, _ text: String) throws {
            let zip = try world.package(E2EWorld.manifest(id: id, version: version, entry: entry, permissions: ["ui"]), files: [entry: text])
            try host.call("packages.install", ["path": .string(zip)])
        }
    }

    @Test func pythonWorkerIsHeldUntilItsOwnLaunchReleasesIt() throws {
        let s = try Setup()
        defer { s.daemon.stop() }
        let id = E2EPartner.programId("prewarm-py")
        let other = E2EPartner.programId("prewarm-other")
        try s.install(id, entry: "main.py", Self.pythonReporter)
        try s.install(other, entry: "main.py", Self.pythonReporter)

        let pre = try s.host.call("programs.prewarm", ["id": .string(id)])
        #expect(pre["prewarmed"] == true)
        // Held: not a running program, and its code has made no Bridge call (its first line does).
        usleep(700_000)
        let held = try #require(try Self.held(s.host, id))
        #expect(held["workerId"] == pre["workerId"])
        #expect(held["bridgeCalls"] == 0)
        #expect(try s.host.call("programs.list")["workers"]?.arrayValue?.isEmpty == true)

        // Another program's launch never takes it.
        let launchedOther = try s.host.call("programs.launch", ["id": .string(other)])
        #expect(launchedOther["workerId"] != pre["workerId"])
        #expect(try s.host.report(from: other)["program"]?.stringValue == other)
        #expect(try Self.held(s.host, id)?["workerId"] == pre["workerId"])

        let launched = try s.host.call("programs.launch", ["id": .string(id), "args": ["a1", "a 2"]])
        #expect(launched["workerId"] == pre["workerId"])
        #expect(launched["pid"] == pre["pid"])
        let report = try s.host.report(from: id)
        #expect(report["argv"] == ["/app/main.py", "a1", "a 2"])
        #expect(report["name"] == "__main__")
        #expect(report["path0"] == "/app")
        #expect(report["program"]?.stringValue == id)
        #expect(report["prewarmEnv"] == false)
        #expect(try Self.held(s.host, id) == nil)
    }

    @Test func nodeWorkerGetsTheLaunchArgs() throws {
        let s = try Setup()
        defer { s.daemon.stop() }
        let id = E2EPartner.programId("prewarm-node")
        try s.install(id, entry: "main.js", E2EPrograms.eventLoop)
        let pre = try s.host.call("programs.prewarm", ["id": .string(id)])
        usleep(700_000)
        #expect(try Self.held(s.host, id)?["bridgeCalls"] == 0)
        let launched = try s.host.call("programs.launch", ["id": .string(id), "args": ["x", "y z"]])
        #expect(launched["workerId"] == pre["workerId"])
        #expect(try s.host.report(from: id) == ["kind": "ready", "args": ["x", "y z"]])
        // Events reach the released program's Bridge as usual (nothing was left in the loader).
        try s.host.call("programs.send", ["workerId": launched["workerId"]!, "name": "ping", "data": ["n": 1]])
        #expect(try s.host.report(from: id, number: 2)["kind"] == "event")
    }

    @Test func updateDropsThePrewarmedWorker() throws {
        let s = try Setup()
        defer { s.daemon.stop() }
        let id = E2EPartner.programId("prewarm-update")
        try s.install(id, entry: "main.py", Self.pythonReporter)
        let pre = try s.host.call("programs.prewarm", ["id": .string(id)])
        let pid = try #require(pre["pid"]?.intValue)
        try s.install(id, version: "1.1.0", entry: "main.py", Self.pythonReporter)
        #expect(try Self.held(s.host, id) == nil)
        #expect(E2EProbe.eventually { !E2EProbe.isAlive(Int32(pid)) })
        let launched = try s.host.call("programs.launch", ["id": .string(id)])
        #expect(launched["workerId"] != pre["workerId"])
        #expect(launched["version"] == "1.1.0")
    }

    @Test func revocationDropsThePrewarmedWorker() throws {
        let s = try Setup()
        defer { s.daemon.stop() }
        let id = E2EPartner.programId("prewarm-revoke")
        try s.install(id, entry: "main.py", Self.pythonReporter)
        let pre = try s.host.call("programs.prewarm", ["id": .string(id)])
        #expect(try Self.held(s.host, id) != nil)
        try s.world.register(permissions: ["payment"])  // `ui` revoked
        try s.host.call("permissions.refresh")
        #expect(try Self.held(s.host, id) == nil)
        let pid = try #require(pre["pid"]?.intValue)
        #expect(E2EProbe.eventually { !E2EProbe.isAlive(Int32(pid)) })
    }
}
