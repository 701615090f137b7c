import MiniAppBroker
import MiniAppDaemon
import MiniAppJSON
import MiniAppModel
import Testing

/// The config file's `services` member: every setting is read with its type and range, and
/// anything else is refused naming the field (a typo never keeps a permissive default).
@Suite struct ServicesSettingsTests {
    static func parse(_ text: String) throws -> ServicesConfig {
        try ServicesConfig(hostVersion: "1.0.0", json: try #require(try JSONValue.parse(text).objectValue))
    }

    @Test func everySectionIsRead() throws {
        let c = try Self.parse(
            """
            {"storage": {"maxKeyBytes": 100, "maxValueBytes": 200, "quotaBytesPerProgram": 300, "quotaKeysPerProgram": 7,
                         "maxPendingWritesPerProgram": 9},
             "auth": {"issuer": "me", "allowedScopes": ["a", "b"], "defaultScope": "b", "forwardedClaims": ["x"]},
             "net": {"allowedPorts": [443, 8443], "allowHTTP": true, "caFile": null, "resolverOverride": {"h.test": ["192.0.2.1"]},
                     "allowedPrivateCIDRs": ["10.0.0.0/8"], "maxRedirects": 0, "maxRequestBodyBytes": 5, "maxResponseBytes": 6,
                     "connectTimeoutSeconds": 2, "totalTimeoutSeconds": 3, "maxConcurrentRequests": 4,
                     "maxConcurrentRequestsPerProgram": 1},
             "log": {"maxMessageBytes": 1024}}
            """)
        #expect(c.storage.maxKeyBytes == 100 && c.storage.maxValueBytes == 200 && c.storage.quotaBytesPerProgram == 300)
        #expect(c.storage.quotaKeysPerProgram == 7 && c.storage.maxPendingWritesPerProgram == 9)
        #expect(c.auth.issuer == "me" && c.auth.allowedScopes == ["a", "b"] && c.auth.defaultScope == "b")
        #expect(c.auth.forwardedClaims == ["x"])
        #expect(c.net.allowedPorts == [443, 8443] && c.net.allowHTTP && c.net.caFile == nil)
        #expect(c.net.resolverOverride == ["h.test": ["192.0.2.1"]] && c.net.allowedPrivateCIDRs == ["10.0.0.0/8"])
        #expect(c.net.maxRedirects == 0 && c.net.maxRequestBodyBytes == 5 && c.net.maxResponseBytes == 6)
        #expect(c.net.connectTimeoutSeconds == 2 && c.net.totalTimeoutSeconds == 3)
        #expect(c.net.maxConcurrentRequests == 4 && c.net.maxConcurrentRequestsPerProgram == 1)
        #expect(c.log.maxMessageBytes == 1024)
        let defaults = try Self.parse("{}")
        #expect(defaults.storage.maxKeyBytes == ServicesConfig(hostVersion: "1.0.0").storage.maxKeyBytes)
    }

    @Test(arguments: [
        (#"{"cache": {}}"#, "services.cache"),
        (#"{"storage": 1}"#, "services.storage"),
        (#"{"storage": {"quota": 1}}"#, "services.storage.quota"),
        (#"{"storage": {"maxKeyBytes": 0}}"#, "services.storage.maxKeyBytes"),
        (#"{"auth": {"issuer": ""}}"#, "services.auth.issuer"),
        (#"{"auth": {"defaultScope": "admin"}}"#, "services.auth.defaultScope"),
        (#"{"net": {"allowedPorts": [0]}}"#, "services.net.allowedPorts[0]"),
        (#"{"net": {"allowHTTP": "yes"}}"#, "services.net.allowHTTP"),
        (#"{"net": {"resolverOverride": []}}"#, "services.net.resolverOverride"),
        (#"{"net": {"resolverOverride": {"h.test": "192.0.2.1"}}}"#, "services.net.resolverOverride.h.test"),
        (#"{"log": {"maxMessageBytes": "big"}}"#, "services.log.maxMessageBytes"),
        (#"{"log": {"level": 1}}"#, "services.log.level"),
    ])
    func refused(json: String, field: String) throws {
        let error = #expect(throws: ConfigError.self) { try Self.parse(json) }
        #expect(error?.field == field, "\(error.map { "\($0)" } ?? "")")
    }
}
