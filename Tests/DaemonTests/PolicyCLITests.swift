import Foundation
import MiniAppJSON
import MiniAppModel
import MiniAppTestSupport
import Testing

/// `miniapp policy lint | explain | diff` and `miniapp jail --help`, run as the built binary.
@Suite struct PolicyCLITests {
    static let cli = productsDirectory() + "/miniapp"

    /// A planted change to a copy of the repo's policies.
    struct Plant: Sendable, CustomStringConvertible {
        var name: String
        /// (file, from, to): a textual edit that must apply exactly once.
        var edits: [(String, String, String)] = []
        /// (file, contents): files written.
        var writes: [(String, String)] = []
        var exit: Int32
        var code: String
        /// A word the finding's message must contain.
        var says: String
        var description: String { name }
    }

    static let allowlistHead = #""action": "SCMP_ACT_ALLOW",\#n      "names": [\#n        "accept", "#
    static func allow(_ names: String...) -> (String, String, String) {
        ("seccomp/default.json", allowlistHead, allowlistHead + names.map { "\"\($0)\", " }.joined())
    }

    static let plants: [Plant] = [
        Plant(name: "no network namespace", edits: [("jail.json", #""net": true"#, #""net": false"#)], exit: 1, code: "JAIL_NO_NET_NAMESPACE", says: "network"),
        Plant(name: "Landlock off", edits: [("jail.json", #""mode": "bestEffort""#, #""mode": "off""#)], exit: 1, code: "JAIL_NO_LANDLOCK", says: "landlock.mode is off"),
        Plant(name: "cgroup limits off", edits: [("jail.json", #""version": "auto""#, #""version": "none""#)], exit: 1, code: "JAIL_LIMITS_OFF", says: "fork bombs"),
        Plant(name: "secret bind", edits: [("jail.json", #""readOnlyHostPaths": ["/usr"]"#, #""readOnlyHostPaths": ["/usr", "/home"]"#)], exit: 1, code: "JAIL_SECRET_BIND", says: "/home"),
        Plant(name: "ptrace", edits: [allow("ptrace")], exit: 1, code: "SECCOMP_RISKY_SYSCALL", says: "ptrace"),
        Plant(name: "unshare", edits: [allow("unshare")], exit: 1, code: "SECCOMP_RISKY_SYSCALL", says: "unshare"),
        Plant(name: "mount", edits: [allow("mount")], exit: 1, code: "SECCOMP_RISKY_SYSCALL", says: "mount"),
        Plant(name: "bpf", edits: [allow("bpf")], exit: 1, code: "SECCOMP_RISKY_SYSCALL", says: "bpf"),
        Plant(name: "keyctl", edits: [allow("keyctl")], exit: 1, code: "SECCOMP_RISKY_SYSCALL", says: "keyctl"),
        Plant(name: "io_uring", edits: [allow("io_uring_setup", "io_uring_enter")], exit: 1, code: "SECCOMP_RISKY_SYSCALL", says: "io_uring_setup"),
        Plant(name: "clone with namespace flags", edits: [("seccomp/default.json", #""value": 2114060416, "valueTwo": 0"#, #""value": 256, "valueTwo": 0"#)], exit: 1, code: "SECCOMP_CLONE_NAMESPACES", says: "0x7e020000"),
        Plant(name: "clone3 allowed", edits: [("seccomp/default.json", #""names": ["clone3"], "action": "SCMP_ACT_ERRNO", "errnoRet": 38"#, #""names": ["clone3"], "action": "SCMP_ACT_ALLOW""#)], exit: 1, code: "SECCOMP_CLONE3", says: "ENOSYS"),
        Plant(name: "ioctl without the TIOCSTI mask", edits: [("seccomp/default.json", #""valueTwo": 21522"#, #""valueTwo": 21523"#)], exit: 1, code: "SECCOMP_IOCTL_TIOCSTI", says: "TIOCSTI"),
        Plant(name: "TIOCSTI compared on 64 bits", edits: [("seccomp/default.json", #"{"index": 1, "value": 4294967295, "valueTwo": 21522, "op": "SCMP_CMP_MASKED_EQ"}"#, #"{"index": 1, "value": 21522, "op": "SCMP_CMP_EQ"}"#)], exit: 1, code: "SECCOMP_IOCTL_TIOCSTI", says: "low 32 bits"),
        Plant(name: "default allow", edits: [("seccomp/default.json", #""defaultAction": "SCMP_ACT_ERRNO""#, #""defaultAction": "SCMP_ACT_ALLOW""#)], exit: 1, code: "SECCOMP_DEFAULT_ALLOW", says: "denylist"),
        Plant(name: "jail unknown key", edits: [("jail.json", #""hostname": "miniapp""#, #""hostnam": "miniapp""#)], exit: 2, code: "JAIL_INVALID", says: "hostnam"),
        Plant(name: "jail // comment", edits: [("jail.json", #""hostname": "miniapp","#, "\"hostname\": \"miniapp\", // old style\n")], exit: 2, code: "JAIL_INVALID", says: "comment"),
        Plant(name: "unknown syscall", edits: [allow("ptracex")], exit: 2, code: "SECCOMP_UNKNOWN_SYSCALL", says: "ptracex"),
        Plant(name: "method with an undefined permission", edits: [("methods.json", #""permissions": ["geolocation"]"#, #""permissions": ["geolocation", "camera"]"#)], exit: 2, code: "CATALOGUE_UNKNOWN_PERMISSION", says: "camera"),
        Plant(name: "method with an undefined class", edits: [("methods.json", #""class": "device""#, #""class": "devices""#)], exit: 2, code: "CATALOGUE_UNKNOWN_CLASS", says: "devices"),
        Plant(name: "partner granted an undefined permission", writes: [("partners/com.x.json", partner("com.x", ["com.x."], ["contacts"]))], exit: 2, code: "PARTNER_UNKNOWN_PERMISSION", says: "contacts"),
        Plant(name: "partners whose prefixes overlap", writes: [("partners/com.x.json", partner("com.x", ["com.x."], [])), ("partners/com.y.json", partner("com.y", ["com.x.games."], []))], exit: 2, code: "PARTNER_PREFIX_OVERLAP", says: "com.x.games."),
        Plant(name: "partner key that does not parse", writes: [("partners/com.x.json", partner("com.x", ["com.x."], [], key: "-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n"))], exit: 2, code: "PARTNER_KEY_INVALID", says: "RSA"),
        Plant(name: "partner file with an unknown member", writes: [("partners/com.x.json", #"{"id": "com.x", "idPrefixes": ["com.x."], "publicKeys": [], "permissions": [], "grants": []}"#)], exit: 2, code: "PARTNER_INVALID", says: "grants"),
        Plant(name: "program override that widens", writes: [("programs/com.e2e.app.json", #"{"limits": {"pids": 128}}"#)], exit: 2, code: "OVERRIDE_WIDENS", says: "pids"),
        Plant(name: "program override that switches the CPU limit off", writes: [("programs/com.e2e.app.json", #"{"limits": {"cpuPercent": 0}}"#)], exit: 2, code: "OVERRIDE_WIDENS", says: "unlimited"),
        Plant(name: "program override that raises a rate class", writes: [("programs/com.e2e.app.json", #"{"classes": {"net": {"perSecond": 100, "burst": 40}}}"#)], exit: 2, code: "OVERRIDE_WIDENS", says: "classes.net"),
        Plant(name: "program override of an undefined rate class", writes: [("programs/com.e2e.app.json", #"{"classes": {"video": {"perSecond": 1, "burst": 1}}}"#)], exit: 2, code: "OVERRIDE_WIDENS", says: "video"),
        Plant(name: "program override reaching a private network", writes: [("programs/com.e2e.app.json", #"{"allowedPrivateCIDRs": ["10.20.0.0/16"]}"#)], exit: 1, code: "OVERRIDE_PRIVATE_NETWORK", says: "10.20.0.0/16"),
        Plant(name: "program override with a malformed CIDR", writes: [("programs/com.e2e.app.json", #"{"allowedPrivateCIDRs": ["10.20.0.0/40"]}"#)], exit: 2, code: "OVERRIDE_INVALID", says: "CIDR"),
        Plant(name: "program override with an unknown member", writes: [("programs/com.e2e.app.json", #"{"limit": {"pids": 8}}"#)], exit: 2, code: "OVERRIDE_INVALID", says: "limit"),
        Plant(name: "partner override that widens", writes: [("partners/com.x.json", partner("com.x", ["com.x."], [], overrides: #"{"limits": {"memoryBytes": 1099511627776}}"#))], exit: 2, code: "OVERRIDE_WIDENS", says: "memoryBytes"),
        Plant(name: "docs naming an undefined permission", edits: [("partners/README.md", "`geolocation`, `network`, `ui`)", "`geolocation`, `network`, `camera`, `ui`)")], exit: 2, code: "DOC_UNKNOWN_PERMISSION", says: "camera"),
    ]

    static func partner(_ id: String, _ prefixes: [String], _ permissions: [String], key: String? = nil, overrides: String? = nil) -> String {
        let registration: JSONValue = [
            "id": .string(id), "idPrefixes": .array(prefixes.map { .string($0) }), "publicKeys": [.string(key ?? E2EPartner.pub)],
            "permissions": .array(permissions.map { .string($0) }),
        ]
        var text = registration.jsonString
        if let overrides { text = String(text.dropLast()) + #", "overrides": "# + overrides + "}" }
        return text
    }

    /// A copy of the repo's policies with `plant` applied.
    static func planted(_ plant: Plant, in dir: TempDir) throws -> String {
        let policies = dir.file("policies")
        #expect(try run(["/bin/cp", "-r", repositoryRoot() + "/policies", policies]).status == 0)
        for (file, from, to) in plant.edits {
            let path = policies + "/" + file
            let text = try String(contentsOfFile: path, encoding: .utf8)
            try #require(text.components(separatedBy: from).count == 2, "edit of \(file) does not apply once: \(from)")
            try text.replacingOccurrences(of: from, with: to).write(toFile: path, atomically: true, encoding: .utf8)
        }
        for (file, text) in plant.writes { _ = try dir.write("policies/" + file, text) }
        return policies
    }

    @Test func theRepositoryPoliciesAreClean() throws {
        let r = try run([Self.cli, "policy", "lint", "--policy-dir", repositoryRoot() + "/policies"])
        #expect(r.status == 0, "\(r.stdout)\(r.stderr)")
        #expect(r.stdout.contains("clean (0 invalid, 0 risky)"), "\(r.stdout)")
        let json = try run([Self.cli, "policy", "lint", "--policy-dir", repositoryRoot() + "/policies", "--json"])
        #expect(try JSONValue.parse(json.stdout)["result"] == "clean")
    }

    @Test func withoutPolicyDirTheBuiltInPoliciesAreLinted() throws {
        let r = try run([Self.cli, "policy", "lint"])
        #expect(r.status == 0, "\(r.stdout)\(r.stderr)")
        // The system directory when the host has one, else the copy built into the binary.
        #expect(r.stdout.contains("built-in: clean") || r.stdout.contains("/etc/miniappd/policies:"), "\(r.stdout)")
    }

    @Test("planted risky and invalid policies are flagged with their reason", arguments: plants)
    func planted(_ plant: Plant) throws {
        let dir = try TempDir("lint")
        let policies = try Self.planted(plant, in: dir)
        let r = try run([Self.cli, "policy", "lint", "--policy-dir", policies, "--json"])
        #expect(r.status == plant.exit, "\(r.stdout)\(r.stderr)")
        let findings = try JSONValue.parse(r.stdout)["findings"]?.arrayValue ?? []
        let mine = findings.filter { $0["code"]?.stringValue == plant.code }
        #expect(!mine.isEmpty, "no \(plant.code) in \(r.stdout)")
        #expect(mine.contains { $0["message"]?.stringValue?.contains(plant.says) == true }, "\(mine)")
        let expected = plant.exit == 2 ? "invalid" : "risky"
        #expect(mine.allSatisfy { $0["severity"]?.stringValue == expected }, "\(mine)")
    }

    // MARK: explain

    func explain(_ world: E2EWorld, _ target: String, extra: [String] = []) throws -> (RunResult, JSONValue) {
        let r = try run([Self.cli, "policy", "explain", target, "--policy-dir", world.policyDir, "--state-dir", world.dir.file("state"), "--json"] + extra)
        return (r, (try? JSONValue.parse(r.stdout)) ?? .null)
    }

    static func method(_ doc: JSONValue, _ name: String) -> JSONValue? {
        doc["bridge"]?["methods"]?.arrayValue?.first { $0["method"]?.stringValue == name }
    }

    @Test func explainAPackageGivesEachMethodItsVerdictAndReason() throws {
        let world = try E2EWorld()  // partner com.e2e granted payment and ui
        var manifest = E2EWorld.manifest(id: E2EPartner.programId("explain"), entry: "main.sh", permissions: ["payment", "ui"])
        manifest["allowedDomains"] = ["api.example.com"]
        let zip = try world.package(manifest, files: ["main.sh": "#!/bin/sh\n"])
        let (r, doc) = try explain(world, zip)
        #expect(r.status == 0, "\(r.stderr)")
        let pay = try #require(Self.method(doc, "payment.pay"))
        #expect(pay["allowed"] == true)
        let payNeeds = pay["permissions"]?.arrayValue?.first
        #expect(payNeeds?["declared"] == true && payNeeds?["granted"] == true)
        #expect(payNeeds?["grantedBy"]?.stringValue == "local file partners/com.e2e.json", "\(pay)")
        #expect(Self.method(doc, "storage.get")?["why"] == "needs no permission")
        let net = try #require(Self.method(doc, "net.request"))
        #expect(net["allowed"] == false && net["why"]?.stringValue?.contains("does not declare") == true, "\(net)")
        #expect(doc["bridge"]?["netRequestDomains"] == ["api.example.com"])
        #expect(Self.method(doc, "ui.toast")?["class"] == "ui")
        // The jail: namespaces, the mount plan, limits with their origin, seccomp groups with reasons.
        #expect(doc["jail"]?["namespaces"]?.arrayValue?.contains("net") == true)
        let mounts = doc["jail"]?["mounts"]?.arrayValue ?? []
        #expect(mounts.contains { $0["target"] == "/usr" && $0["mode"] == "ro" && $0["kind"] == "bind" }, "\(mounts)")
        #expect(mounts.contains { $0["target"] == "/data" && $0["mode"] == "rw" })
        #expect(mounts.contains { $0["target"] == "/sdk" && $0["mode"] == "ro" })
        let pids = doc["jail"]?["limits"]?.arrayValue?.first { $0["name"] == "pids" }
        #expect(pids?["value"] == "64" && pids?["from"] == "jail.json", "\(String(describing: pids))")
        let rules = doc["jail"]?["seccomp"]?["rules"]?.arrayValue ?? []
        #expect(rules.contains { $0["names"] == ["clone3"] && $0["action"] == "errno 38" && $0["comment"]?.stringValue?.contains("ENOSYS") == true })
        #expect(doc["jail"]?["seccomp"]?["deniedNotable"]?.arrayValue?.contains("ptrace") == true)

        // Text output names the same verdicts.
        let text = try run([Self.cli, "policy", "explain", zip, "--policy-dir", world.policyDir, "--state-dir", world.dir.file("state")])
        #expect(text.status == 0 && text.stdout.contains("✓ payment.pay") && text.stdout.contains("✗ net.request"), "\(text.stdout)\(text.stderr)")

        // Revoking the ui grant changes the verdict (and the install verdict).
        try world.register(permissions: ["payment"])
        let (r2, after) = try explain(world, zip)
        #expect(r2.status == 0, "\(r2.stderr)")
        let toast = try #require(Self.method(after, "ui.toast"))
        #expect(toast["allowed"] == false && toast["why"]?.stringValue?.contains("not granted") == true, "\(toast)")
        let toastNeeds = toast["permissions"]?.arrayValue?.first
        #expect(toastNeeds?["declared"] == true && toastNeeds?["granted"] == false)
        #expect(after["source"]?.stringValue?.contains("PERMISSION_NOT_GRANTED") == true, "\(String(describing: after["source"]))")
        #expect(Self.method(after, "payment.pay")?["allowed"] == true)
    }

    @Test func explainShowsAMultiPermissionMethodAndOverrideOrigins() throws {
        let world = try E2EWorld()
        let methods = world.policyDir + "/methods.json"
        let text = try String(contentsOfFile: methods, encoding: .utf8)
        try text.replacingOccurrences(
            of: #""log.write":"#,
            with: #""payment.nearby": { "provider": "host", "permissions": ["payment", "ui"], "class": "payment", "timeoutMillis": 1000 },"# + "\n    \"log.write\":"
        ).write(toFile: methods, atomically: true, encoding: .utf8)
        let id = E2EPartner.programId("multi")
        _ = try world.dir.write("policies/programs/\(id).json", #"{"comment": "small", "limits": {"pids": 16}, "classes": {"payment": {"perSecond": 0.5, "burst": 1}}, "storageQuotaBytes": 4096}"#)
        let zip = try world.package(E2EWorld.manifest(id: id, entry: "main.sh", permissions: ["payment"]), files: ["main.sh": "#!/bin/sh\n"])
        let (r, doc) = try explain(world, zip)
        #expect(r.status == 0, "\(r.stderr)")
        let m = try #require(Self.method(doc, "payment.nearby"))
        #expect(m["allowed"] == false && m["why"]?.stringValue?.contains("needs ui") == true, "\(m)")
        #expect(m["permissions"]?.arrayValue?.count == 2)
        let pids = doc["jail"]?["limits"]?.arrayValue?.first { $0["name"] == "pids" }
        #expect(pids?["value"] == "16" && pids?["from"]?.stringValue?.contains("programs/\(id).json") == true, "\(String(describing: pids))")
        #expect(doc["bridge"]?["storageQuotaBytes"]?["bytes"] == 4096, "\(String(describing: doc["bridge"]?["storageQuotaBytes"]))")
        let classes = doc["bridge"]?["rateClasses"]?.arrayValue ?? []
        let payment = classes.first { $0["class"] == "payment" }
        #expect(payment?["burst"]?.doubleValue == 1 && payment?["from"]?.stringValue?.contains("programs/\(id).json") == true, "\(classes)")
        #expect(classes.first { $0["class"] == "net" }?["from"] == "methods.json")
        #expect(m["burst"]?.doubleValue == 1, "the method's class shows the lowered budget")
    }

    // MARK: diff

    struct DiffRow: Sendable, CustomStringConvertible {
        var name: String
        var edits: [(String, String, String)] = []
        var writes: [(String, String)] = []
        var widening: Bool
        /// The subject of the line, and a word of its change.
        var subject: String
        var says: String
        var description: String { name }
    }

    static let diffRows: [DiffRow] = [
        DiffRow(name: "limit loosened", edits: [("jail.json", #""pids": 64"#, #""pids": 128"#)], widening: true, subject: "limits.pids", says: "loosened"),
        DiffRow(name: "limit tightened", edits: [("jail.json", #""pids": 64"#, #""pids": 32"#)], widening: false, subject: "limits.pids", says: "tightened"),
        DiffRow(name: "wall clock limit set", edits: [("jail.json", #""wallClockSeconds": 0"#, #""wallClockSeconds": 60"#)], widening: false, subject: "limits.wallClockSeconds", says: "tightened"),
        DiffRow(name: "syscall newly allowed", edits: [allow("ptrace")], widening: true, subject: "syscall ptrace", says: "newly allowed"),
        DiffRow(name: "syscall no longer allowed", edits: [("seccomp/default.json", #""chmod", "#, "")], widening: false, subject: "syscall chmod", says: "denied"),
        DiffRow(name: "mount added", edits: [("jail.json", #""readOnlyHostPaths": ["/usr"]"#, #""readOnlyHostPaths": ["/usr", "/opt"]"#)], widening: true, subject: "mount (read-only host path)", says: "+ /opt"),
        DiffRow(name: "mount removed", edits: [("jail.json", #", "/etc/localtime""#, "")], widening: false, subject: "mount (/etc file)", says: "- /etc/localtime"),
        DiffRow(name: "namespace off", edits: [("jail.json", #""net": true"#, #""net": false"#)], widening: true, subject: "namespaces.net", says: "false"),
        DiffRow(name: "Landlock required", edits: [("jail.json", #""mode": "bestEffort""#, #""mode": "required""#)], widening: false, subject: "landlock.mode", says: "required"),
        DiffRow(name: "permission granted", writes: [("partners/com.e2e.json", partner("com.e2e", ["com.e2e."], ["payment", "ui", "network"]))], widening: true, subject: "partner com.e2e granted", says: "+ network"),
        DiffRow(name: "permission revoked", writes: [("partners/com.e2e.json", partner("com.e2e", ["com.e2e."], ["payment"]))], widening: false, subject: "partner com.e2e granted", says: "- ui"),
        DiffRow(name: "method needs no permission any more", edits: [("methods.json", #""permissions": ["network"]"#, #""permissions": []"#)], widening: true, subject: "method net.request needs", says: "- network"),
        DiffRow(name: "rate class raised", edits: [("methods.json", #""auth":    { "perSecond": 5,"#, #""auth":    { "perSecond": 50,"#)], widening: true, subject: "rate class auth.perSecond", says: "50"),
        DiffRow(name: "program override lowers a rate class", writes: [("programs/com.e2e.app.json", #"{"classes": {"net": {"perSecond": 5, "burst": 40}}}"#)], widening: false, subject: "programs/com.e2e.app.json class net.perSecond", says: "5.0"),
        DiffRow(name: "program override adds a private network", writes: [("programs/com.e2e.app.json", #"{"allowedPrivateCIDRs": ["10.20.0.0/16"]}"#)], widening: true, subject: "programs/com.e2e.app.json allowedPrivateCIDRs", says: "+ 10.20.0.0/16"),
        DiffRow(name: "program override lowers the storage quota", writes: [("programs/com.e2e.app.json", #"{"storageQuotaBytes": 65536}"#)], widening: false, subject: "programs/com.e2e.app.json storageQuotaBytes", says: "65536"),
        DiffRow(name: "program override lowers a limit", writes: [("programs/com.e2e.app.json", #"{"limits": {"memoryBytes": 67108864}}"#)], widening: false, subject: "programs/com.e2e.app.json limits.memoryBytes", says: "tightened"),
    ]

    @Test("diff of two policy directories marks each change", arguments: diffRows)
    func diffDirectories(_ row: DiffRow) throws {
        let world = try E2EWorld()
        let dir = try TempDir("diff")
        let new = try Self.planted(Plant(name: row.name, edits: row.edits, writes: row.writes, exit: 0, code: "", says: ""), in: dir)
        _ = try? run(["/bin/cp", world.policyDir + "/partners/com.e2e.json", new + "/partners/com.e2e.json"])
        for (file, text) in row.writes { _ = try dir.write("policies/" + file, text) }
        let r = try run([Self.cli, "policy", "diff", world.policyDir, new, "--json"])
        #expect(r.status == (row.widening ? 1 : 0), "\(r.stdout)\(r.stderr)")
        let changes = try JSONValue.parse(r.stdout)["changes"]?.arrayValue ?? []
        let line = changes.first { $0["subject"]?.stringValue == row.subject }
        #expect(line?["kind"]?.stringValue == (row.widening ? "widening" : "narrowing"), "\(changes)")
        #expect(line?["change"]?.stringValue?.contains(row.says) == true, "\(changes)")
    }

    @Test func diffOfTheSamePoliciesIsEmpty() throws {
        let r = try run([Self.cli, "policy", "diff", repositoryRoot() + "/policies", repositoryRoot() + "/policies"])
        #expect(r.status == 0 && r.stdout.contains("0 change(s)"), "\(r.stdout)\(r.stderr)")
    }

    @Test func diffOfTwoPackageVersions() throws {
        let world = try E2EWorld()
        let id = E2EPartner.programId("versions")
        var v1 = E2EWorld.manifest(id: id, version: "1.0.0", entry: "main.sh", permissions: ["ui"])
        v1["allowedDomains"] = ["a.example.com"]
        var v2 = E2EWorld.manifest(id: id, version: "1.1.0", entry: "main.sh", permissions: ["ui", "payment"])
        v2["allowedDomains"] = ["b.example.com"]
        let old = try world.package(v1, files: ["main.sh": "#!/bin/sh\n"])
        let new = try world.package(v2, files: ["main.sh": "#!/bin/sh\n"])
        let r = try run([Self.cli, "policy", "diff", old, new, "--policy-dir", world.policyDir])
        #expect(r.status == 1, "\(r.stdout)\(r.stderr)")
        #expect(r.stdout.contains("WIDENING  permission declared: + payment"), "\(r.stdout)")
        #expect(r.stdout.contains("WIDENING  net.request domain: + b.example.com"), "\(r.stdout)")
        #expect(r.stdout.contains("narrowing net.request domain: - a.example.com"), "\(r.stdout)")
        let back = try run([Self.cli, "policy", "diff", new, old, "--policy-dir", world.policyDir])
        #expect(back.stdout.contains("narrowing permission declared: - payment"), "\(back.stdout)")
    }

    // MARK: jail

    @Test func jailHelpPrintsHelp() throws {
        let r = try run([Self.cli, "jail", "--help"])
        #expect(r.status == 0, "\(r.stderr)")
        #expect(r.stdout.contains("USAGE: miniapp jail"), "\(r.stdout)")
        #expect(r.stdout.contains("/etc/miniappd/policies"), "\(r.stdout)")
    }
}
