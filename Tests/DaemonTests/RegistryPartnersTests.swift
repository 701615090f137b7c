import Foundation
@testable import MiniAppDaemon
import MiniAppJSON
import MiniAppModel
import MiniAppPackages
import MiniAppSystem
import MiniAppTestSupport
import Synchronization
import Testing

/// The registry's partner grants over real HTTP on loopback (Fixtures/registry_server.py, the
/// daemon's libcurl transport): fetched, verified with the platform key, refused when stale or
/// forged or too large, cached, and used offline.
@Suite struct RegistryPartnersTests {
    /// A policy dir with one local partner, a state dir for the cache, a running registry, and
    /// the platform public key file.
    final class World: @unchecked Sendable {
        let dir: TempDir
        let server: RegistryServer
        let log = CapturedLog()
        var policyDir: String { dir.file("policies") }
        var cachePath: String { dir.file("state/partners.json") }
        /// What the sink (the broker's updateGrants) received last.
        let applied = Mutex<[String: Set<String>]?>(nil)

        init() throws {
            dir = try TempDir("regp")
            server = try RegistryServer()
            try FileManager.default.createDirectory(atPath: dir.file("state"), withIntermediateDirectories: true)
            try dir.write("policies/partners/com.local.json", String(decoding: reg("com.local", ["ui"]).json.serialized(), as: UTF8.self))
        }

        func grants(timeoutMillis: Int = 3000, key: RSAKey = Platform.key, registry: Bool = true) -> PartnerGrants {
            let r = RegistryPartners(
                registry: registry ? server.url : nil, platformKey: key, transport: CurlRegistryTransport(), cachePath: cachePath,
                timeoutMillis: timeoutMillis)
            let g = PartnerGrants(policyDir: policyDir, registry: r, logger: log.logger)
            g.changes.subscribe { [weak self] change in self?.applied.withLock { $0 = change.grants } }
            return g
        }

        func publish(_ issuedAt: Int64, _ partners: [PartnerRegistration], key: RSAKey = Platform.key) throws -> [UInt8] {
            let bytes = try Platform.signed(Platform.document(issuedAt: issuedAt, partners), with: key)
            try server.publish("partners", bytes)
            return bytes
        }

        func cache() -> [UInt8]? { FileManager.default.contents(atPath: cachePath).map { Array($0) } }
    }

    static func reg(_ id: String, _ permissions: [String]) -> PartnerRegistration {
        PartnerRegistration(id: id, idPrefixes: [id + "."], publicKeys: [E2EPartner.pub], permissions: Set(permissions))
    }

    /// First start (no cache): fetched before the grants exist, cached as received; then a
    /// revocation and a new grant each take effect on the next refresh, published to the sink.
    @Test func goodDocumentsAreAppliedAndCached() throws {
        let w = try World()
        let v1 = try w.publish(100, [Self.reg("com.reg", ["payment", "ui"])])
        let g = w.grants()
        #expect(g.fetchedAtStart)
        #expect(g.grants == ["com.local": ["ui"], "com.reg": ["payment", "ui"]])
        #expect(w.cache() == v1)
        #expect(try g.partners.partner(for: "com.reg.app").publicKeys == [E2EPartner.pub], "the registry's keys verify packages")

        let v2 = try w.publish(200, [Self.reg("com.reg", ["ui"])])
        let r2 = g.refresh().json
        #expect(r2["registry"]?["status"] == "applied")
        #expect(r2["registry"]?["issuedAt"] == 200)
        #expect(w.applied.withLock { $0 } == ["com.local": ["ui"], "com.reg": ["ui"]], "revoked")
        #expect(w.cache() == v2)

        _ = try w.publish(300, [Self.reg("com.reg", ["ui", "geolocation"]), Self.reg("com.new", ["payment"])])
        #expect(g.refresh().json["registry"]?["status"] == "applied")
        #expect(w.applied.withLock { $0 } == ["com.local": ["ui"], "com.reg": ["geolocation", "ui"], "com.new": ["payment"]])
        #expect(g.refresh().json["registry"]?["status"] == "unchanged")
    }

    /// A document signed the spec's way by other tools — `miniapp keygen`'s key, Python's JSON
    /// and `openssl dgst` — is accepted: the statement is what spec/registry.md says.
    @Test func documentSignedWithOpenSSLIsAccepted() throws {
        let w = try World()
        let kg = try run([productsDirectory() + "/miniapp", "keygen", "--out", w.dir.file("platform")])
        #expect(kg.status == 0, "\(kg.stderr)")
        let pem = try String(contentsOfFile: w.dir.file("platform.pub"), encoding: .utf8)
        let key = try RSAKey.publicKey(pem: pem)
        let loaded = try RegistryPartners.loadPlatformKey(w.dir.file("platform.pub"))
        #expect(loaded.bits == 3072)
        var doc = Platform.document(issuedAt: 1, [Self.reg("com.reg", ["payment"])])
        doc["issuedAt"] = "2026-11-25T10:00:00Z"
        try w.server.publish("partners", try Platform.signedWithOpenSSL(doc, keyPath: w.dir.file("platform.key")))
        let g = w.grants(key: key)
        #expect(g.grants["com.reg"] == ["payment"], "\(w.log.text)")
    }

    /// Documents that must be refused: the grants and the cache stay what they were, and the
    /// report says why with a stable code.
    @Test(arguments: [
        ("signed by another key", "REGISTRY_BAD_SIGNATURE", "refused"),
        ("changed after signing", "REGISTRY_BAD_SIGNATURE", "refused"),
        ("signature not base64", "REGISTRY_BAD_SIGNATURE", "refused"),
        ("older issuedAt", "REGISTRY_STALE", "refused"),
        ("over the size cap", "REGISTRY_TOO_LARGE", "refused"),
        ("not JSON", "REGISTRY_INVALID", "refused"),
        ("no signature", "REGISTRY_INVALID", "refused"),
        ("HTTP 500", "HOST_UNAVAILABLE", "unavailable"),
        ("HTTP 404", "HOST_UNAVAILABLE", "unavailable"),
        ("registry down", "HOST_UNAVAILABLE", "unavailable"),
    ])
    func refusedDocumentsKeepTheCache(_ what: String, _ code: String, _ status: String) throws {
        let w = try World()
        let good = try w.publish(200, [Self.reg("com.reg", ["payment"])])
        let g = w.grants()
        let revoking = Platform.document(issuedAt: 300, [Self.reg("com.reg", [])])
        switch what {
        case "signed by another key": _ = try w.publish(300, [Self.reg("com.reg", [])], key: Platform.impostor)
        case "changed after signing":
            // A man in the middle drops a revocation from a genuine document.
            var doc = try JSONValue.parse(try Platform.signed(revoking)).objectValue ?? [:]
            doc["partners"] = .array([Self.reg("com.reg", ["payment", "geolocation"]).json])
            try w.server.publish("partners", JSONValue.object(doc).serialized())
        case "signature not base64":
            var doc = revoking
            doc["signature"] = "rsa-pss-sha256:not*base64"
            try w.server.publish("partners", JSONValue.object(doc).serialized())
        case "older issuedAt": _ = try w.publish(100, [Self.reg("com.reg", [])])
        case "over the size cap":
            var doc = revoking
            doc["padding"] = .string(String(repeating: "x", count: PartnersDocument.maxBytes))
            try w.server.publish("partners", try Platform.signed(doc))
        case "not JSON": try w.server.publish("partners", Array("<html>maintenance</html>".utf8))
        case "no signature": try w.server.publish("partners", JSONValue.object(revoking).serialized())
        case "HTTP 500": try w.server.status("partners", 500)
        case "HTTP 404": unlink(w.server.root.file("partners"))
        default: w.server.stop()
        }
        let r = g.refresh().json
        #expect(r["registry"]?["code"]?.stringValue == code, "\(what): \(r)")
        #expect(r["registry"]?["status"]?.stringValue == status, "\(what)")
        #expect(r["registry"]?["issuedAt"] == 200, "the cached document stays in effect")
        #expect(g.grants["com.reg"] == ["payment"], "\(what)")
        let cacheKept = w.cache() == good
        #expect(cacheKept, "\(what): the cache is kept")
        #expect(w.log.text.contains(code), "logged")
    }

    /// Registry down at start: the cached document is used (offline start) without asking.
    @Test func offlineStartUsesTheCache() throws {
        let w = try World()
        _ = try w.publish(100, [Self.reg("com.reg", ["payment"])])
        _ = w.grants()
        w.server.stop()
        let t0 = Date()
        let g = w.grants()
        // (Elapsed-time bounds in these tests only tell a wait for the registry from none: 10 s,
        // half the slow registry's 20 s delay, never how fast a loaded host answers.)
        #expect(Date().timeIntervalSince(t0) < 10)
        #expect(!g.fetchedAtStart)
        #expect(g.grants["com.reg"] == ["payment"])
        // Without a registry configured at all, the cache still counts (the key verifies it).
        #expect(w.grants(registry: false).grants["com.reg"] == ["payment"])
    }

    /// A slow registry costs at most the configured bound: at start (no cache), and on refresh.
    @Test func slowRegistryIsBounded() throws {
        let w = try World()
        _ = try w.publish(100, [Self.reg("com.reg", ["payment"])])
        try w.server.delay("partners", 20)
        var t0 = Date()
        let cold = w.grants(timeoutMillis: 500)
        #expect(Date().timeIntervalSince(t0) < 10, "bounded by the timeout, far below the 20 s delay")
        #expect(cold.grants == ["com.local": ["ui"]], "no cache, no answer: local partners only")
        try w.server.delay("partners", nil)
        let g = w.grants(timeoutMillis: 500)  // no cache yet: asks, and gets it
        #expect(g.grants["com.reg"] == ["payment"])
        try w.server.delay("partners", 20)
        t0 = Date()
        let r = g.refresh().json
        #expect(Date().timeIntervalSince(t0) < 10)
        #expect(r["registry"]?["code"] == "TIMEOUT")
        #expect(g.grants["com.reg"] == ["payment"])
        // Started from the cache, the start does not ask at all.
        t0 = Date()
        #expect(w.grants(timeoutMillis: 500).fetchedAtStart == false)
        #expect(Date().timeIntervalSince(t0) < 10)
    }

    /// A cache that no longer verifies (platform key rotated, file edited) is not trusted.
    @Test func cacheThatDoesNotVerifyIsIgnored() throws {
        let w = try World()
        try Data(try Platform.signed(Platform.document(issuedAt: 100, [Self.reg("com.reg", ["payment"])]), with: Platform.impostor))
            .write(to: URL(fileURLWithPath: w.cachePath))
        let g = w.grants(registry: false)
        #expect(g.grants == ["com.local": ["ui"]])
        #expect(w.log.text.contains("REGISTRY_BAD_SIGNATURE") || w.log.text.contains("not signed by the platform key"))
    }

    /// Inside a verified document one bad registration blocks its partner only; a local file
    /// for a partner overrides the registry's entry (local files win per partner id).
    @Test func badEntryBlocksOnlyItsPartnerAndLocalFilesWin() throws {
        let w = try World()
        var doc = Platform.document(issuedAt: 100, [Self.reg("com.reg", ["payment"]), Self.reg("com.local", ["payment", "ui"])])
        doc["partners"] = .array((doc["partners"]?.arrayValue ?? []) + [["id": "com.broken", "idPrefixes": ["com.broken"]], 42])
        try w.server.publish("partners", try Platform.signed(doc))
        let g = w.grants()
        let r = g.refresh().json
        #expect(g.grants == ["com.local": ["ui"], "com.reg": ["payment"]])
        #expect(r["blocked"]?.arrayValue?.first?["id"] == "com.broken")
        #expect(r["invalid"]?.arrayValue?.first?["source"] == "registry partners[3]")
        let origins = (r["partners"]?.arrayValue ?? []).map { "\($0["id"]?.stringValue ?? "")=\($0["origin"]?.stringValue ?? "")" }
        #expect(origins == ["com.local=local", "com.reg=registry"])
    }

    /// A platform key that is not a usable RSA public key stops the start, with what to fix.
    @Test(arguments: ["missing", "not PEM", "1024 bits", "private key"])
    func unusablePlatformKeyIsAnError(_ what: String) throws {
        let dir = try TempDir("pk")
        let path = dir.file("platform.pub")
        switch what {
        case "not PEM": try dir.write("platform.pub", "ssh-rsa AAAA")
        case "1024 bits": try dir.write("platform.pub", try RSAKey.generate(bits: 1024).publicPEM())
        case "private key": try dir.write("platform.pub", try Platform.key.privatePEM())
        default: break
        }
        #expect {
            try RegistryPartners.loadPlatformKey(path)
        } throws: { e in
            (e as? MiniAppError)?.code == .keyInvalid && (e as? MiniAppError)?.message.contains(path) == true
        }
    }
}
