import Foundation
import MiniAppDaemon
import MiniAppJSON
import MiniAppModel
import MiniAppPackages
import MiniAppSystem
import MiniAppTestSupport
import Testing

/// `RegistryPublisher` and `miniapp registry publish|partners`: the tree they write is what the
/// daemon's parsers accept, and nothing unverifiable is ever published.
@Suite struct RegistryPublisherTests {
    let world: E2EWorld
    let site: TempDir
    let id = E2EPartner.programId("pub")

    init() throws {
        world = try E2EWorld()
        site = try TempDir("site")
    }

    func verifier() throws -> PackageVerifier {
        PackageVerifier(
            partners: try PartnerDirectory.load(policyDir: world.policyDir),
            options: VerifierOptions(hostVersion: SemVer("999.0.0")!, knownPermissions: try KnownPermissions.load(policyDir: world.policyDir)))
    }

    func package(_ version: String, body: String = "1\n", minHost: String = "1.0.0") throws -> String {
        try world.package(E2EWorld.manifest(id: id, version: version, minHostVersion: minHost, entry: "main.js"), files: ["main.js": body])
    }

    func publish(_ zip: String, rollout: Double = 1) throws -> JSONValue {
        try RegistryPublisher.publish(site: site.path, packagePath: zip, rollout: rollout, verifier: try verifier())
    }

    var versionPath: String { site.file("mini-programs/\(id)/version") }

    @Test func documentIsWhatTheDaemonParses() throws {
        let zip = try package("1.2.3", minHost: "5.0.0")
        _ = try publish(zip, rollout: 0.25)
        let bytes = try Array(Data(contentsOf: URL(fileURLWithPath: versionPath)))
        let v = try RegistryVersion.parse(bytes, expectedId: id, base: "https://cdn.example/reg/")
        let zipBytes = try Array(Data(contentsOf: URL(fileURLWithPath: zip)))
        #expect(v.version == "1.2.3")
        #expect(v.minHostVersion == "5.0.0", "copied for the devices to judge, not checked against this machine")
        #expect(v.url == "https://cdn.example/reg/mini-programs/\(id)/1.2.3.zip")
        #expect(v.sha256 == SHA256Hasher.hex(SHA256Hasher.digest(zipBytes)))
        #expect(v.size == zipBytes.count)
        #expect(v.rollout == 0.25)
        #expect(try Array(Data(contentsOf: URL(fileURLWithPath: site.file("mini-programs/\(id)/1.2.3.zip")))) == zipBytes)
        // Atomic replacement leaves no temporary files beside them.
        #expect(try FileManager.default.contentsOfDirectory(atPath: site.file("mini-programs/\(id)")).sorted() == ["1.2.3.zip", "version"])
    }

    /// Refused before anything is written: a package the installs would refuse.
    @Test func unverifiablePackagesAreNotPublished() throws {
        let m = E2EWorld.manifest(id: id, version: "1.0.0", entry: "main.js")
        let tampered = try world.tamperedPackage(m, signed: ["main.js": "good\n"], shipped: ["main.js": "evil\n"])
        #expect(throws: MiniAppError.self) { try publish(tampered) }
        let stranger = try world.package(m, files: ["main.js": "1\n"], key: try RSAKey.generate(bits: 2048))
        let e = #expect(throws: MiniAppError.self) { try publish(stranger) }
        #expect(e?.code == .badSignature)
        let unknown = try world.package(E2EWorld.manifest(id: "com.nobody.app", entry: "main.js"), files: ["main.js": "1\n"])
        #expect((#expect(throws: MiniAppError.self) { try publish(unknown) })?.code == .unknownPartner)
        #expect(!FileManager.default.fileExists(atPath: site.file("mini-programs")))
        #expect((#expect(throws: MiniAppError.self) { try publish(try package("1.0.0"), rollout: 1.5) })?.code == .invalidParams)
    }

    @Test func downgradeAndChangedContentAreRefusedRolloutCanChange() throws {
        let v2 = try package("2.0.0")
        _ = try publish(v2, rollout: 0.1)
        #expect((#expect(throws: MiniAppError.self) { try publish(try package("1.0.0")) })?.code == .downgrade)
        #expect((#expect(throws: MiniAppError.self) { try publish(try package("2.0.0", body: "other\n")) })?.code == .alreadyInstalled)
        #expect(try publish(v2, rollout: 0.5)["rollout"]?.doubleValue == 0.5)
        #expect(try publish(try package("2.0.1"))["version"] == "2.0.1")
    }

    @Test func partnersDocumentVerifiesWithThePlatformKey() throws {
        let reg = PartnerRegistration(id: "com.e2e", idPrefixes: ["com.e2e."], publicKeys: [E2EPartner.pub], permissions: ["ui"])
        let bytes = try RegistryPublisher.publishPartners(site: site.path, platformKey: Platform.key, registrations: [reg], issuedAt: 1_700_000_000)
        #expect(try Array(Data(contentsOf: URL(fileURLWithPath: site.file("partners")))) == bytes)
        let doc = try PartnersDocument.parse(bytes)
        try doc.verify(platformKey: Platform.key)
        #expect(throws: MiniAppError.self) { try doc.verify(platformKey: Platform.impostor) }
        #expect(doc.issuedAt == 1_700_000_000)
        #expect(doc.entries.count == 1)
        #expect(throws: MiniAppError.self) {
            try RegistryPublisher.publishPartners(site: site.path, platformKey: Platform.key, registrations: [reg, reg], issuedAt: 1)
        }
    }

    /// The CLI end to end: `registry partners` with a PEM key and registration files, then the
    /// daemon's own parser and verifier; `registry publish` exits 1 with the code first.
    @Test func cliWritesTheTree() throws {
        let keyPath = try site.write("../platform-\(UUID().uuidString.prefix(6)).pem", try Platform.key.privatePEM())
        let regPath = world.policyDir + "/partners/com.e2e.json"
        let miniapp = productsDirectory() + "/miniapp"
        let r = try run([miniapp, "registry", "partners", "--dir", site.path, "--key", keyPath, regPath])
        #expect(r.status == 0, "\(r.stderr)")
        let doc = try PartnersDocument.parse(try Array(Data(contentsOf: URL(fileURLWithPath: site.file("partners")))))
        try doc.verify(platformKey: Platform.key)
        #expect(abs(doc.issuedAt - Int64(Date().timeIntervalSince1970)) < 600)

        let ok = try run([miniapp, "registry", "publish", "--dir", site.path, "--policy-dir", world.policyDir, "--rollout", "0.5", try package("1.0.0")])
        #expect(ok.status == 0, "\(ok.stderr)")
        let bad = try run([miniapp, "registry", "publish", "--dir", site.path, "--policy-dir", world.policyDir, try package("0.9.0")])
        #expect(bad.status == 1)
        #expect(bad.stderr.hasPrefix("DOWNGRADE "))
    }
}
