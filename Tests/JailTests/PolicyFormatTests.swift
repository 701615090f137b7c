import Foundation
import MiniAppJSON
import MiniAppJail
import MiniAppModel
import MiniAppSystem
import Testing

/// Every shipped policy file is plain JSON that standard tools read as it is (jq, Python's
/// json module; Docker and Podman for the seccomp profiles), and the daemon's parsers stay
/// strict about everything else.
@Suite("policy files: standard JSON, remarks in comment members")
struct PolicyFormatTests {
    static let shippedFiles = ["jail.json", "methods.json", "seccomp/default.json", "seccomp/docker-default.json"]

    @Test("jq and python3 -m json.tool read every shipped policy file unchanged", arguments: shippedFiles)
    func standardToolsRead(_ name: String) {
        let path = "\(JailHarness.policyDir)/\(name)"
        let (jq, out) = JailHarness.capture("/usr/bin/jq", ["-e", "type == \"object\" and (.comment | type == \"string\")", path])
        #expect(jq == 0 && out.contains("true"), "jq on \(name): \(out)")
        #expect(JailHarness.run("/usr/bin/python3", ["-m", "json.tool", path]) == 0, "python3 -m json.tool on \(name)")
    }

    @Test("jq lists the seccomp rules with their comments, as Docker's tooling does")
    func jqReadsRuleComments() {
        let path = "\(JailHarness.policyDir)/seccomp/default.json"
        let (status, out) = JailHarness.capture("/usr/bin/jq", ["-r", ".syscalls[] | select(.names == [\"clone3\"]) | .comment", path])
        #expect(status == 0 && out.contains("ENOSYS"), "\(out)")
    }

    @Test("the profile's comments reach the parsed model (explain groups syscalls by them)")
    func commentsParsed() throws {
        let bytes = Array(FileManager.default.contents(atPath: "\(JailHarness.policyDir)/seccomp/default.json") ?? Data())
        let p = try SeccompProfile.parse(bytes, source: "default.json")
        #expect(p.comment?.contains("ALLOWLIST") == true)
        #expect(p.syscalls.allSatisfy { $0.comment?.isEmpty == false })
    }

    /// Hostile or stale documents: each refused as POLICY_INVALID naming where.
    static let badJail: [(String, String, String)] = [
        ("// old style\n{}", "", "comment"),
        ("{\"limits\": {\"pids\": 8} // trailing\n}", "", "comment"),
        (#"{"comment": 1}"#, "comment", "string"),
        (#"{"limits": {"comment": {"pids": 8}}}"#, "limits.comment", "string"),
        (#"{"limits": {"pid": 8}}"#, "limits.pid", "not a known member"),
        (#"{"comments": "typo"}"#, "comments", "not a known member"),
    ]

    @Test("jail.json: // lines, non-string comments and unknown keys are refused", arguments: badJail)
    func badJailFiles(_ text: String, _ field: String, _ says: String) {
        do {
            _ = try JailPolicy.parse(Array(text.utf8))
            Issue.record("accepted: \(text)")
        } catch {
            #expect(error.code == .policyInvalid && error.data["field"] == field && error.message.contains(says), "\(error)")
        }
    }

    @Test("jail.json: comment members are accepted in every section")
    func commentsEverywhere() throws {
        let p = try JailPolicy.parse(Array(#"{"comment": "a", "limits": {"comment": "b", "pids": 8}, "landlock": {"comment": "c"}}"#.utf8))
        #expect(p.limits.pids == 8)
    }

    static let badProfiles: [(String, String)] = [
        ("// x\n{\"defaultAction\": \"SCMP_ACT_ERRNO\"}", "comment"),
        (#"{"defaultAction": "SCMP_ACT_ERRNO", "comment": ["a"]}"#, "string"),
        (#"{"defaultAction": "SCMP_ACT_ERRNO", "syscalls": [{"names": ["read"], "action": "SCMP_ACT_ALLOW", "comment": 3}]}"#, "string"),
        (#"{"defaultAction": "SCMP_ACT_ERRNO", "syscalls": [{"names": ["read"], "action": "SCMP_ACT_ALLOW", "note": "x"}]}"#, "not a known member"),
    ]

    @Test("seccomp profiles: // lines, non-string comments and unknown keys are refused", arguments: badProfiles)
    func badProfileFiles(_ text: String, _ says: String) {
        do {
            _ = try SeccompProfile.parse(Array(text.utf8), source: "p.json")
            Issue.record("accepted: \(text)")
        } catch {
            #expect(error.code == .policyInvalid && error.message.contains(says), "\(error)")
        }
    }

    static let badCatalogues: [(String, CatalogueError.Reason)] = [
        ("// x\n{}", .notJSON),
        (#"{"version": 1, "comment": 2, "permissions": {}, "classes": {}, "programBudget": {"perSecond": 1, "burst": 1}, "methods": {}}"#, .wrongType),
        (catalogue(#"{"provider": "builtin", "permissions": "network", "class": "c", "timeoutMillis": 1}"#), .wrongType),
        (catalogue(#"{"provider": "builtin", "permissions": ["network", "network"], "class": "c", "timeoutMillis": 1}"#), .wrongType),
        (catalogue(#"{"provider": "builtin", "permissions": ["camera"], "class": "c", "timeoutMillis": 1}"#), .unknownPermission),
        (catalogue(#"{"provider": "builtin", "permissions": [], "permission": null, "class": "c", "timeoutMillis": 1}"#), .unknownField),
        (catalogue(#"{"provider": "builtin", "class": "c", "timeoutMillis": 1}"#), .missingField),
        (catalogue(#"{"provider": "builtin", "permissions": [1], "class": "c", "timeoutMillis": 1}"#), .wrongType),
    ]

    static func catalogue(_ method: String) -> String {
        #"{"version": 1, "permissions": {"network": "n"}, "classes": {"c": {"perSecond": 1, "burst": 1}}, "programBudget": {"perSecond": 1, "burst": 1}, "methods": {"a.b": "# + method + "}}"
    }

    @Test("methods.json: // lines, bad permission lists and unknown names are refused", arguments: badCatalogues)
    func badCatalogueFiles(_ text: String, _ reason: CatalogueError.Reason) {
        do {
            _ = try MethodCatalogue.parse(Array(text.utf8))
            Issue.record("accepted: \(text)")
        } catch {
            #expect(error.reason == reason, "\(error)")
        }
    }

    @Test("methods.json: permission lists, the older single permission, and comment members")
    func catalogueForms() throws {
        let c = try MethodCatalogue.parse(Array(Self.catalogue(#"{"comment": "r", "provider": "builtin", "permission": "network", "class": "c", "timeoutMillis": 1}"#).utf8))
        #expect(c.spec(for: "a.b")?.permissions == ["network"])
        let shipped = try MethodCatalogue.parse(Array(FileManager.default.contents(atPath: "\(JailHarness.policyDir)/methods.json") ?? Data()))
        #expect(shipped.spec(for: "storage.get")?.permissions == [])
        #expect(!shipped.knownPermissions.contains("comment"))
    }
}
