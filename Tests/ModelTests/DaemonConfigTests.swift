import MiniAppJSON
import MiniAppModel
import Testing

@Suite struct DaemonConfigTests {
    @Test func defaultsNeedNoFile() {
        let c = DaemonConfig()
        #expect(c.stateDir == "/var/lib/miniappd")
        #expect(c.policyDir == nil)
        #expect(c.maxMessageBytes == 1 << 20)
        #expect(c.controlAllowedGroups == ["miniappd"], "the socket unit's group")
    }

    @Test func fileOverridesDefaults() throws {
        var c = DaemonConfig()
        try c.apply(file: JSONValue.parse("""
            // operators may comment
            {"stateDir": "/srv/m", "idleTimeoutSeconds": 30, "workerMode": "rootless", "controlAllowedGids": [1000],
             "controlAllowedGroups": [], "spawnerSocket": "/run/miniappd/spawner.sock",
             "services": {"storage": {"quotaBytes": 1024}}}
            """, options: .policy))
        #expect(c.stateDir == "/srv/m")
        #expect(c.idleTimeoutSeconds == 30)
        #expect(c.workerMode == "rootless")
        #expect(c.controlAllowedGIDs == [1000])
        #expect(c.controlAllowedGroups == [])
        #expect(c.spawnerSocket == "/run/miniappd/spawner.sock")
        #expect(DaemonConfig().spawnerSocket == nil, "by default the daemon starts its own spawner")
        #expect(c.services["storage"]?["quotaBytes"]?.intValue == 1024)
    }

    @Test(arguments: [
        ("{\"stateDri\": \"/x\"}", "stateDri"),
        ("{\"idleTimeoutSeconds\": -1}", "idleTimeoutSeconds"),
        ("{\"maxWorkers\": \"many\"}", "maxWorkers"),
        ("{\"workerMode\": \"root\"}", "workerMode"),
        ("{\"controlAllowedUids\": [-1]}", "controlAllowedUids[0]"),
        ("{\"stateDir\": \"\"}", "stateDir"),
        ("{\"controlAllowedGroups\": \"miniappd\"}", "controlAllowedGroups"),
        ("{\"controlAllowedGroups\": [\"\"]}", "controlAllowedGroups[0]"),
        ("{\"controlAllowedGroups\": [100]}", "controlAllowedGroups[0]"),
        ("{\"spawnerSocket\": 3}", "spawnerSocket"),
        ("[]", "(root)"),
        ("{\"updateCheckMinIntervalSeconds\": -1}", "updateCheckMinIntervalSeconds"),
        ("{\"rollbackCrashCount\": 1.5}", "rollbackCrashCount"),
        ("{\"rollbackWindowSeconds\": 0}", "rollbackWindowSeconds"),
    ])
    func refusesBadSettings(_ text: String, _ field: String) throws {
        var c = DaemonConfig()
        #expect(throws: ConfigError.self) { try c.apply(file: JSONValue.parse(text, options: .policy)) }
        do { try c.apply(file: JSONValue.parse(text, options: .policy)) } catch let e as ConfigError { #expect(e.field == field) }
    }

    @Test func updateSettings() throws {
        var c = DaemonConfig()
        #expect((c.updateCheckMinIntervalSeconds, c.rollbackCrashCount, c.rollbackWindowSeconds) == (300, 3, 60))
        try c.apply(file: JSONValue.parse(#"{"updateCheckMinIntervalSeconds": 0, "rollbackCrashCount": 0, "rollbackWindowSeconds": 5}"#))
        #expect((c.updateCheckMinIntervalSeconds, c.rollbackCrashCount, c.rollbackWindowSeconds) == (0, 0, 5))
    }
}
