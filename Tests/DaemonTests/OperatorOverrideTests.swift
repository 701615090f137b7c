import Foundation
import MiniAppJSON
import MiniAppModel
import MiniAppTestSupport
import Testing

/// Operator overrides (`programs/ID.json`, a partner's `overrides`) reach a running daemon's
/// next worker — seen in the worker's own cgroup — and a widening one refuses the launch.
@Suite struct OperatorOverrideTests {
    /// The value of cgroup file `names` (the first that exists) of the running worker of
    /// `programId` under daemon `pid`.
    static func cgroupValue(_ pid: Int32, _ programId: String, _ names: [String]) -> String? {
        for dir in E2EProbe.workerCgroups(daemonPid: pid) where dir.contains("/w-\(programId)-") {
            for n in names {
                if let v = try? String(contentsOfFile: dir + "/" + n, encoding: .utf8) { return v.trimmingCharacters(in: .whitespacesAndNewlines) }
            }
        }
        return nil
    }

    static let pidsFiles = ["pids.max"]
    static let memoryFiles = ["memory.limit_in_bytes", "memory.max"]

    /// Launches `id`, waits until its cgroup shows, returns (worker id, pids.max, memory limit).
    func launch(_ host: E2EHost, _ daemon: DaemonHarness, _ id: String) throws -> (String, String?, String?) {
        let wid = try #require(try host.call("programs.launch", ["id": .string(id)])["workerId"]?.stringValue)
        let pid = daemon.process.processIdentifier
        _ = E2EProbe.eventually { Self.cgroupValue(pid, id, Self.pidsFiles) != nil }
        return (wid, Self.cgroupValue(pid, id, Self.pidsFiles), Self.cgroupValue(pid, id, Self.memoryFiles))
    }

    func stop(_ host: E2EHost, _ wid: String) throws {
        try host.call("programs.stop", ["workerId": .string(wid)])
        _ = try host.exited(wid)
    }

    @Test func anOverrideReachesTheNextWorkerAndAWideningOneIsRefused() throws {
        let world = try E2EWorld()
        let id = E2EPartner.programId("limits")
        let zip = try world.package(E2EWorld.manifest(id: id, entry: "main.sh"), files: ["main.sh": E2EPrograms.blockOnBridge])
        let daemon = try world.daemon()
        defer { daemon.stop() }
        let host = try E2EHost(daemon)
        try host.call("packages.install", ["path": .string(zip)])

        let (w1, pids1, memory1) = try launch(host, daemon, id)
        #expect(pids1 == "64", "the platform's pids limit")
        #expect(memory1 == "268435456", "the platform's memory limit")

        // A program file, written while the daemon runs: the running worker keeps its limits,
        // the next one gets the lower value.
        _ = try world.dir.write("policies/programs/\(id).json", #"{"comment": "test", "limits": {"pids": 16}}"#)
        #expect(Self.cgroupValue(daemon.process.processIdentifier, id, Self.pidsFiles) == "64")
        try stop(host, w1)
        let (w2, pids2, memory2) = try launch(host, daemon, id)
        #expect(pids2 == "16", "programs/ID.json lowered pids for the next worker")
        #expect(memory2 == "268435456")
        try stop(host, w2)

        // The partner's overrides, re-read by permissions.refresh (as by the directory watch or SIGHUP).
        let registration: JSONValue = [
            "id": .string(E2EPartner.id), "idPrefixes": ["com.e2e."], "publicKeys": [.string(E2EPartner.pub)],
            "permissions": .array(E2EPartner.grants.map { .string($0) }), "overrides": ["limits": ["memoryBytes": 134_217_728, "pids": 32]],
        ]
        try world.writePartnerFile("com.e2e.json", registration.jsonString)
        try host.call("permissions.refresh")
        let (w3, pids3, memory3) = try launch(host, daemon, id)
        #expect(memory3 == "134217728", "the partner's override lowered memory")
        #expect(pids3 == "16", "the program's lower pids still wins over the partner's 32")
        try stop(host, w3)

        // `policy explain ID` reads the installed program from the daemon's state directory and
        // shows the same effective values with their origin.
        let explained = try run([
            PolicyCLITests.cli, "policy", "explain", id, "--policy-dir", world.policyDir, "--state-dir", daemon.dir.file("state"), "--json",
        ])
        #expect(explained.status == 0, "\(explained.stderr)")
        let limits = (try? JSONValue.parse(explained.stdout))?["jail"]?["limits"]?.arrayValue ?? []
        let pids = limits.first { $0["name"] == "pids" }, memory = limits.first { $0["name"] == "memoryBytes" }
        #expect(pids?["value"] == "16" && pids?["from"]?.stringValue?.hasPrefix("program") == true, "\(limits)")
        #expect(memory?["value"] == "134217728" && memory?["from"]?.stringValue?.hasPrefix("partner com.e2e") == true, "\(limits)")

        // A file that would raise a limit refuses the launch (fail closed, never clamped).
        _ = try world.dir.write("policies/programs/\(id).json", #"{"limits": {"pids": 1000}}"#)
        let refused = try host.rawCall("programs.launch", ["id": .string(id)])
        #expect(refused["error"] != nil, "\(refused)")
        #expect(JSONValue.object(refused).jsonString.contains("POLICY_INVALID"), "\(refused)")
        #expect(JSONValue.object(refused).jsonString.contains("pids"), "\(refused)")

        // The Bridge side is read at the same moment: a rate class raised above methods.json's
        // refuses the launch too, and a lowered one is accepted.
        _ = try world.dir.write("policies/programs/\(id).json", #"{"classes": {"ui": {"perSecond": 1000, "burst": 1000}}}"#)
        let raised = try host.rawCall("programs.launch", ["id": .string(id)])
        #expect(JSONValue.object(raised).jsonString.contains("classes.ui"), "\(raised)")
        _ = try world.dir.write("policies/programs/\(id).json", #"{"classes": {"ui": {"perSecond": 1, "burst": 2}}, "storageQuotaBytes": 4096}"#)
        let (w4, _, _) = try launch(host, daemon, id)
        try stop(host, w4)
    }
}
