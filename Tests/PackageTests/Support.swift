import Foundation
import MiniAppJSON
import MiniAppModel
import MiniAppPackages
import MiniAppSystem

/// Keys generated once per test process (2048 bits keeps generation fast; the CLI uses 3072).
enum TestKeys {
    static let partner: RSAKey = try! RSAKey.generate(bits: 2048)  // test setup, not input
    static let other: RSAKey = try! RSAKey.generate(bits: 2048)
    static let partnerPub: String = try! partner.publicPEM()
    static let otherPub: String = try! other.publicPEM()
}

enum Paths {
    /// The package root (…/Tests/PackageTests/Support.swift → …).
    static let root: String = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent().path
    static let miniapp = root + "/.build/debug/miniapp"
    static let fixtures = root + "/Tests/PackageTests/Fixtures"
}

/// A fresh temporary directory, removed by `cleanup`.
func tempDir(_ tag: String = "pk") -> String {
    let p = NSTemporaryDirectory() + "miniapp-\(tag)-\(UUID().uuidString.prefix(8))"
    try! FileManager.default.createDirectory(atPath: p, withIntermediateDirectories: true)
    return p
}

func cleanup(_ path: String) {
    _ = try? run("/bin/chmod", ["-R", "u+w", path])
    try? FileManager.default.removeItem(atPath: path)
}

/// Runs a program, returns (status, stdout+stderr).
@discardableResult
func run(_ exe: String, _ args: [String], env: [String: String] = [:], cwd: String? = nil) throws -> (Int32, String) {
    let p = Process()
    p.executableURL = URL(fileURLWithPath: exe)
    p.arguments = args
    var e = ProcessInfo.processInfo.environment
    for (k, v) in env { e[k] = v }
    p.environment = e
    if let cwd { p.currentDirectoryURL = URL(fileURLWithPath: cwd) }
    let pipe = Pipe()
    p.standardOutput = pipe
    p.standardError = pipe
    try p.run()
    let data = pipe.fileHandleForReading.readDataToEndOfFile()
    p.waitUntilExit()
    let status = p.terminationReason == .uncaughtSignal ? -p.terminationStatus : p.terminationStatus
    return (status, String(decoding: data, as: UTF8.self))
}

func write(_ path: String, _ bytes: [UInt8]) {
    _ = FileManager.default.createFile(atPath: path, contents: Data(bytes))
}

func bytes(_ s: String) -> [UInt8] { Array(s.utf8) }

/// The partner the fixtures are signed for: `com.partner.*`, granted payment and ui.
func partnerSet(extra: [PartnerRegistration] = [], keys: [String] = [TestKeys.partnerPub]) -> PartnerSet {
    let p = PartnerRegistration(id: "com.partner", idPrefixes: ["com.partner."], publicKeys: keys, permissions: ["payment", "ui"])
    return try! PartnerSet([p] + extra)
}

func verifier(limits: ZipLimits = ZipLimits(), partners: PartnerSet = partnerSet(), host: String = "3.0.0") -> PackageVerifier {
    PackageVerifier(partners: partners, options: VerifierOptions(hostVersion: SemVer(host)!, limits: limits))
}

/// A package under construction: the manifest and files are signed as given, then `zip()` lets a
/// test change the archive *after* signing (tampering, hostile entries).
struct Fixture {
    var manifest: JSONObject = [
        "id": "com.partner.loans", "version": "2.3.1", "minHostVersion": "3.0.0", "entryPoint": "main.js",
        "permissions": ["payment"], "allowedDomains": ["api.partner.com", "*.cdn.partner.com"],
    ]
    var files: [(String, [UInt8])] = [("main.js", bytes("console.log('loans')\n")), ("lib/util.js", bytes("export const x = 1\n"))]
    var key: RSAKey = TestKeys.partner
    /// Replaces the signature bytes (e.g. PKCS#1 v1.5 from the openssl CLI).
    var signer: (([UInt8]) -> [UInt8])?

    func statement() -> [UInt8] {
        let canonical = (try? JSONValue.object(manifest).canonicalized()) ?? []
        let entries = files.map { StatementEntry(path: $0.0, sha256Hex: SHA256Hasher.hex(SHA256Hasher.digest($0.1)), size: UInt64($0.1.count)) }
        return SignatureStatement.build(canonicalManifest: canonical, entries: entries)
    }

    /// Manifest bytes with a valid signature over `manifest` + `files`.
    func signedManifest() -> [UInt8] {
        let st = statement()
        let sig = signer?(st) ?? (try! RSAPSS.sign(st, key: key))
        var m = manifest
        m["signature"] = .string(SignatureField.encode(sig))
        return JSONValue.object(m).serialized()
    }

    func entries() -> [ZipWriter.Entry] {
        [ZipWriter.Entry(name: "manifest.json", data: signedManifest())] + files.map { ZipWriter.Entry(name: $0.0, data: $0.1) }
    }

    func zip(_ mutate: (inout [ZipWriter.Entry]) -> Void = { _ in }) -> [UInt8] {
        var e = entries()
        mutate(&e)
        var w = ZipWriter()
        return w.write(e)
    }
}

/// Writes a policy dir with the test partner; returns its path.
func policyDir(in dir: String, grants: [String] = ["payment", "ui"]) -> String {
    let p = dir + "/policy"
    try! FileManager.default.createDirectory(atPath: p + "/partners", withIntermediateDirectories: true)
    let reg = PartnerRegistration(id: "com.partner", idPrefixes: ["com.partner."], publicKeys: [TestKeys.partnerPub], permissions: Set(grants))
    write(p + "/partners/com.partner.json", reg.json.serialized())
    return p
}
