import Foundation
import MiniAppModel
import MiniAppPackages
import MiniAppSystem
import Testing

/// Interop with partners' own tools: `zip`, Python and the `openssl` CLI, against the built
/// `miniapp` binary (.build/debug/miniapp).
@Suite("Interop with zip, Python and openssl", .serialized)
struct InteropTests {
    /// A source tree with a manifest, nested files, UTF-8 in the manifest and an `x-` key.
    func makeSource(_ dir: String, version: String = "2.3.1") {
        let src = dir + "/src"
        try! FileManager.default.createDirectory(atPath: src + "/lib/deep", withIntermediateDirectories: true)
        write(src + "/manifest.json", bytes("""
            {"id": "com.partner.loans", "version": "\(version)", "minHostVersion": "1.0.0", "entryPoint": "main.js",
             "permissions": ["payment"], "allowedDomains": ["api.partner.com", "*.cdn.partner.com"],
             "name": "Prêts ✓", "x-build": {"ci": 42}}
            """))
        write(src + "/main.js", bytes("console.log('loans')\n"))
        write(src + "/lib/util.js", bytes(String(repeating: "export const a = 1;\n", count: 500)))
        write(src + "/lib/deep/data.bin", (0..<5000).map { UInt8(truncatingIfNeeded: $0 * 31) })
    }

    @Test("a package signed with python + openssl + zip verifies with miniapp verify")
    func partnerToolsToMiniapp() throws {
        let dir = tempDir("interop1")
        defer { cleanup(dir) }
        makeSource(dir)
        let (kst, kout) = try run("/usr/bin/openssl", ["genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:3072", "-out", dir + "/partner.key"])
        #expect(kst == 0, "\(kout)")
        try run("/usr/bin/openssl", ["pkey", "-in", dir + "/partner.key", "-pubout", "-out", dir + "/partner.pub"])
        let (st, out) = try run("/usr/bin/python3", [Paths.fixtures + "/sign_package.py", dir + "/src", dir + "/partner.key", dir + "/pkg.zip"])
        #expect(st == 0, "\(out)")
        let policy = dir + "/policy"
        try FileManager.default.createDirectory(atPath: policy + "/partners", withIntermediateDirectories: true)
        let pub = String(decoding: FileManager.default.contents(atPath: dir + "/partner.pub")!, as: UTF8.self)
        let reg = PartnerRegistration(id: "com.partner", idPrefixes: ["com.partner."], publicKeys: [TestKeys.otherPub, pub], permissions: ["payment"])
        write(policy + "/partners/partner.json", reg.json.serialized())
        let (vst, vout) = try run(Paths.miniapp, ["verify", dir + "/pkg.zip", "--policy-dir", policy])
        #expect(vst == 0)
        #expect(vout == "OK com.partner.loans 2.3.1\n")
        // And the library agrees, including the zip tool's directory entries and extra fields.
        let v = try PackageVerifier(partners: PartnerSet([reg]), options: VerifierOptions(hostVersion: SemVer("1.0.0")!)).verify(path: dir + "/pkg.zip")
        #expect(v.files.count == 3)
    }

    @Test("a package made by miniapp pack verifies with openssl dgst -verify (statement rebuilt in Python)")
    func miniappToOpenSSL() throws {
        let dir = tempDir("interop2")
        defer { cleanup(dir) }
        makeSource(dir)
        let (gst, gout) = try run(Paths.miniapp, ["keygen", "--out", dir + "/p"])
        #expect(gst == 0, "\(gout)")
        var st = stat()
        #expect(stat(dir + "/p.key", &st) == 0 && st.st_mode & 0o777 == 0o600)
        let (pst, pout) = try run(Paths.miniapp, ["pack", dir + "/src", "--key", dir + "/p.key", "--out", dir + "/pkg.zip"])
        #expect(pst == 0, "\(pout)")
        let (rst, rout) = try run("/usr/bin/python3", [Paths.fixtures + "/statement_from_zip.py", dir + "/pkg.zip", dir + "/statement", dir + "/sig"])
        #expect(rst == 0, "\(rout)")
        let (ost, oout) = try run("/usr/bin/openssl", [
            "dgst", "-sha256", "-verify", dir + "/p.pub", "-sigopt", "rsa_padding_mode:pss", "-sigopt", "rsa_pss_saltlen:32",
            "-signature", dir + "/sig", dir + "/statement",
        ])
        #expect(ost == 0 && oout.contains("Verified OK"), "\(oout)")
        // `unzip -t` (Info-ZIP) accepts the archive too.
        let (ust, uout) = try run("/usr/bin/unzip", ["-tq", dir + "/pkg.zip"])
        #expect(ust == 0, "\(uout)")
    }

    @Test("miniapp verify prints the error code first on its line and exits 1")
    func verifyFailureOutput() throws {
        let dir = tempDir("interop3")
        defer { cleanup(dir) }
        let policy = policyDir(in: dir)
        write(dir + "/bad.zip", Fixture().zip { $0[1].data = bytes("tampered") })
        let (st, out) = try run(Paths.miniapp, ["verify", dir + "/bad.zip", "--policy-dir", policy, "--host-version", "3.0.0"])
        #expect(st == 1)
        #expect(out.hasPrefix("BAD_SIGNATURE "), "\(out)")
        write(dir + "/ok.zip", Fixture().zip())
        let (st2, out2) = try run(Paths.miniapp, ["verify", dir + "/ok.zip", "--policy-dir", policy, "--host-version", "2.9.0"])
        #expect(st2 == 1 && out2.hasPrefix("HOST_UPDATE_REQUIRED "), "\(out2)")
    }

    @Test("pack is deterministic")
    func deterministic() throws {
        let dir = tempDir("interop4")
        defer { cleanup(dir) }
        makeSource(dir)
        try run(Paths.miniapp, ["keygen", "--out", dir + "/p", "--bits", "2048"])
        try run(Paths.miniapp, ["pack", dir + "/src", "--key", dir + "/p.key", "--out", dir + "/a.zip"])
        try run(Paths.miniapp, ["pack", dir + "/src", "--key", dir + "/p.key", "--out", dir + "/b.zip"])
        let a = Array(FileManager.default.contents(atPath: dir + "/a.zip")!)
        let b = Array(FileManager.default.contents(atPath: dir + "/b.zip")!)
        // PSS is randomized: only the signature differs; the entry layout is identical.
        let ea = try ZipArchive(bytes: a).entries.dropFirst(), eb = try ZipArchive(bytes: b).entries.dropFirst()
        #expect(ea.map(\.path) == eb.map(\.path))
        #expect(ea.map(\.crc32) == eb.map(\.crc32) && ea.map(\.compressedSize) == eb.map(\.compressedSize))
        #expect(try ZipArchive(bytes: a).entries.first?.path == "manifest.json")
    }
}
