import MiniAppJSON
import MiniAppModel
import MiniAppPackages
import MiniAppSystem
import Testing

@Suite("Package model: SemVer, manifest, domains, base64, partners, statement")
struct PackageModelTests {
    // semver.org §11 example chain, in increasing precedence.
    static let ordered = [
        "1.0.0-alpha", "1.0.0-alpha.1", "1.0.0-alpha.beta", "1.0.0-beta", "1.0.0-beta.2", "1.0.0-beta.11",
        "1.0.0-rc.1", "1.0.0", "1.0.1", "1.1.0", "2.0.0", "10.0.0",
    ]

    @Test("SemVer precedence follows semver.org §11")
    func precedence() {
        let v = Self.ordered.map { SemVer($0)! }
        for i in v.indices.dropLast() { #expect(v[i] < v[i + 1], "\(v[i]) < \(v[i + 1])") }
        #expect(SemVer("1.0.0+build.1")! == SemVer("1.0.0+other")!)
        #expect(SemVer("1.0.0-99999999999999999999999")! > SemVer("1.0.0-9")!)
    }

    @Test("invalid SemVer is refused", arguments: ["", "1", "1.0", "v1.0.0", "01.0.0", "1.0.0-", "1.0.0-01", "1.0.0+", "1.0.0-a..b", "1.0.0 ", "1.0.0-ä", "1.2.3.4", "99999999999999999999.0.0"])
    func invalidSemVer(_ s: String) { #expect(SemVer(s) == nil) }

    @Test("valid SemVer is accepted", arguments: ["0.0.0", "1.2.3", "1.0.0-0.3.7", "1.0.0-x.7.z.92", "1.0.0+20130313144700", "1.0.0-beta+exp.sha.5114f85", "1.0.0-x-y-z.--"])
    func validSemVer(_ s: String) { #expect(SemVer(s)?.text == s) }

    @Test("program ids", arguments: [
        ("com.partner.loans", true), ("a.b", true), ("com.part-ner.x1", true), ("com", false), ("Com.x", false),
        ("com..x", false), ("com.x.", false), ("1com.x", false), ("com.1x", false), ("com.x_y", false), ("com.é", false),
    ])
    func ids(_ id: String, _ ok: Bool) { #expect(Manifest.isValidId(id) == ok) }

    @Test("allowedDomains rules", arguments: [
        ("api.partner.com", true), ("*.partner.com", true), ("localhost", true), ("*.com", false), ("API.partner.com", false),
        ("1.2.3.4", false), ("0x7f.1", false), ("[::1]", false), ("api.partner.com:443", false), ("https://a.com", false),
        ("a.com/", false), ("a..com", false), ("-a.com", false), ("*.*.a.com", false), ("a.*.com", false), ("a.com.", false),
    ])
    func domains(_ d: String, _ ok: Bool) { #expect((DomainPattern.problem(d) == nil) == ok, "\(d)") }

    @Test("wildcards match subdomains only")
    func wildcard() {
        #expect(DomainPattern.matches("*.example.com", host: "a.example.com"))
        #expect(DomainPattern.matches("*.example.com", host: "a.b.example.com"))
        #expect(!DomainPattern.matches("*.example.com", host: "example.com"))
        #expect(!DomainPattern.matches("*.example.com", host: "badexample.com"))
    }

    @Test("runtime is inferred from the entry point", arguments: [("main.js", Runtime.node), ("a.mjs", .node), ("app.py", .python), ("bin/app", .native)])
    func runtime(_ entry: String, _ r: Runtime) { #expect(Runtime.inferred(from: entry) == r) }

    @Test("manifest defaults and x- keys")
    func manifestDefaults() throws {
        let m = try Manifest.parse(bytes(#"{"id":"com.p.a","version":"1.0.0","minHostVersion":"1.0.0","entryPoint":"run","x-extra":[1,2],"signature":"rsa-pss-sha256:AA=="}"#))
        #expect(m.permissions.isEmpty && m.allowedDomains.isEmpty && m.runtime == .native)
        #expect(String(decoding: try m.canonicalWithoutSignature(), as: UTF8.self)
            == #"{"entryPoint":"run","id":"com.p.a","minHostVersion":"1.0.0","version":"1.0.0","x-extra":[1,2]}"#)
    }

    @Test("strict base64", arguments: [("", [UInt8]()), ("AA==", [0]), ("AAE=", [0, 1]), ("AAEC", [0, 1, 2])])
    func base64(_ s: String, _ b: [UInt8]) {
        #expect(Base64.decode(s) == b)
        #expect(Base64.encode(b) == s)
    }

    @Test("non-canonical base64 is refused", arguments: ["A", "AB==", "AAF=", "AA=A", "AA =", "AA\n==", "=AAA", "AA-_"])
    func base64Refused(_ s: String) { #expect(Base64.decode(s) == nil) }

    @Test("the statement has the spec's exact shape")
    func statement() {
        let s = SignatureStatement.build(canonicalManifest: bytes(#"{"id":"a.b"}"#), entries: [
            StatementEntry(path: "b", sha256Hex: "bb", size: 2), StatementEntry(path: "a/z", sha256Hex: "aa", size: 10),
            StatementEntry(path: "manifest.json", sha256Hex: "cc", size: 1), StatementEntry(path: "B", sha256Hex: "dd", size: 0),
        ])
        #expect(String(decoding: s, as: UTF8.self) == "miniapp-package-v1\n{\"id\":\"a.b\"}\ndd 0 B\naa 10 a/z\nbb 2 b\n")
    }

    @Test("partner registrations are strict")
    func partnerParse() throws {
        let pem = TestKeys.partnerPub
        let good = PartnerRegistration(id: "com.p", idPrefixes: ["com.p."], publicKeys: [pem], permissions: ["ui"])
        #expect(try PartnerRegistration.parse(good.json.serialized(), source: "t") == good)
        for bad in [
            #"{"id":"com.p","idPrefixes":["com.p."],"publicKeys":[],"permissions":[]}"#,
            #"{"id":"com.p","idPrefixes":["com.p"],"publicKeys":["-----BEGIN PUBLIC KEY-----"],"permissions":[]}"#,
            #"{"id":"com.p","idPrefixes":["com.p."],"publicKeys":["-----BEGIN PUBLIC KEY-----"],"permissions":[],"admin":true}"#,
            #"{"id":"com.p","id":"x","idPrefixes":["com.p."],"publicKeys":["-----BEGIN PUBLIC KEY-----"],"permissions":[]}"#,
        ] {
            #expect(throws: MiniAppError.self) { try PartnerRegistration.parse(bytes(bad), source: "t") }
        }
    }

    @Test("RSA keys under 2048 bits are refused")
    func smallKey() throws {
        let small = try RSAKey.generate(bits: 1024)
        #expect(throws: CryptoError.self) { try RSAKey.publicKey(pem: small.publicPEM()) }
    }

    @Test("signature field round trip and key rotation")
    func rotation() throws {
        let st = bytes("statement")
        let field = SignatureField.encode(try RSAPSS.sign(st, key: TestKeys.other))
        #expect(SignatureField.verify(field, statement: st, publicKeysPEM: [TestKeys.partnerPub, TestKeys.otherPub]))
        #expect(!SignatureField.verify(field, statement: st, publicKeysPEM: [TestKeys.partnerPub]))
        #expect(!SignatureField.verify(field, statement: bytes("statemenT"), publicKeysPEM: [TestKeys.otherPub]))
    }

    @Test("known permissions come from methods.json when present, else the built-in list")
    func knownPermissions() throws {
        let dir = tempDir("perm")
        defer { cleanup(dir) }
        #expect(try KnownPermissions.load(policyDir: dir) == PermissionName.builtIn)
        write(dir + "/methods.json", bytes("""
            {"version": 1, "permissions": {"network": "x", "payment": "y", "camera": "z"},
             "classes": {"c": {"perSecond": 1, "burst": 1}}, "programBudget": {"perSecond": 1, "burst": 1},
             "methods": {"camera.snap": {"provider": "host", "permissions": ["camera"], "class": "c", "timeoutMillis": 1000},
                         "system.info": {"provider": "builtin", "permission": null, "class": "c", "timeoutMillis": 1000}}}
            """))
        #expect(try KnownPermissions.load(policyDir: dir) == ["network", "payment", "camera"])
        // One parser of methods.json: what the broker refuses (a `//` remark, a method naming a
        // permission the catalogue does not define) is refused here too, never read leniently.
        for text in [
            "// comment\n{\"version\": 1}",
            #"{"version": 1, "permissions": {}, "classes": {"c": {"perSecond": 1, "burst": 1}}, "programBudget": {"perSecond": 1, "burst": 1}, "methods": {"camera.snap": {"provider": "host", "permissions": ["camera"], "class": "c", "timeoutMillis": 1000}}}"#,
        ] {
            write(dir + "/methods.json", bytes(text))
            #expect(throws: MiniAppError.self) { try KnownPermissions.load(policyDir: dir) }
        }
    }
}
