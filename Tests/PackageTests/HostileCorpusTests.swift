import Foundation
import MiniAppJSON
import MiniAppModel
import MiniAppPackages
import MiniAppSystem
import Testing

/// One hostile or broken package: how to build it, the stable code it must fail with, and a
/// string the message must contain (the entry or field it names).
struct HostileCase: CustomTestStringConvertible, Sendable {
    let name: String
    let code: ErrorCode
    let names: String
    let build: @Sendable () -> [UInt8]
    var limits = ZipLimits()
    var partners: @Sendable () -> PartnerSet = { partnerSet() }
    var installed: String?
    var testDescription: String { name }
}

private func with(_ f: (inout Fixture) -> Void) -> Fixture {
    var x = Fixture()
    f(&x)
    return x
}

private func addEntry(_ name: String, _ data: [UInt8] = bytes("x"), mode: UInt32 = 0o100644) -> @Sendable () -> [UInt8] {
    { Fixture().zip { $0.append(ZipWriter.Entry(name: name, data: data, unixMode: mode)) } }
}

private func rawName(_ raw: [UInt8]) -> @Sendable () -> [UInt8] {
    {
        Fixture().zip {
            var e = ZipWriter.Entry(name: "x", data: bytes("x"))
            e.name = raw
            $0.append(e)
        }
    }
}

/// Patches the archive bytes after writing (header disagreement, flags, zip64 markers).
private func patched(_ patch: @escaping @Sendable (inout [UInt8], ZipWriter) -> Void) -> @Sendable () -> [UInt8] {
    {
        var w = ZipWriter()
        var b = w.write(Fixture().entries())
        patch(&b, w)
        return b
    }
}

private func manifestCase(_ name: String, names: String, _ f: @escaping @Sendable (inout JSONObject) -> Void) -> HostileCase {
    HostileCase(name: name, code: .manifestInvalid, names: names, build: { with { f(&$0.manifest) }.zip() })
}

private func rawManifest(_ text: String) -> @Sendable () -> [UInt8] {
    {
        Fixture().zip { $0[0] = ZipWriter.Entry(name: "manifest.json", data: bytes(text)) }
    }
}

private let pkcs1: @Sendable ([UInt8]) -> [UInt8] = { statement in
    let dir = tempDir("pkcs1")
    defer { cleanup(dir) }
    write(dir + "/key.pem", bytes(try! TestKeys.partner.privatePEM()))
    write(dir + "/st", statement)
    _ = try! run("/usr/bin/openssl", ["dgst", "-sha256", "-sign", dir + "/key.pem", "-out", dir + "/sig", dir + "/st"])
    return Array(FileManager.default.contents(atPath: dir + "/sig")!)
}

let hostileCases: [HostileCase] = [
    // Step 1: names (zip-slip, CVE-2018-1002200 class)
    HostileCase(name: "zip-slip ../", code: .badPath, names: "../evil.js", build: addEntry("../evil.js")),
    HostileCase(name: "zip-slip nested ..", code: .badPath, names: "lib/../../evil", build: addEntry("lib/../../evil")),
    HostileCase(name: "absolute path", code: .badPath, names: "/etc/cron.d/x", build: addEntry("/etc/cron.d/x")),
    HostileCase(name: "backslash traversal", code: .badPath, names: "..\\evil", build: addEntry("..\\evil")),
    HostileCase(name: "dot component", code: .badPath, names: "./main2.js", build: addEntry("./main2.js")),
    HostileCase(name: "empty component", code: .badPath, names: "lib//x.js", build: addEntry("lib//x.js")),
    HostileCase(name: "too deep", code: .badPath, names: "d/d/d/d", build: addEntry(String(repeating: "d/", count: 40) + "x")),
    HostileCase(name: "directory too large", code: .tooManyEntries, names: "flat", build: {
        Fixture().zip { for i in 0..<2001 { $0.append(ZipWriter.Entry(name: "flat/f\(i)", data: bytes("x"))) } }
    }),
    HostileCase(name: "NUL in name", code: .badPath, names: "a\\u{0}b", build: rawName([97, 0, 98])),
    HostileCase(name: "invalid UTF-8 name", code: .badPath, names: "\\xff", build: rawName([0xff, 0x61])),
    HostileCase(name: "path over 1024 bytes", code: .badPath, names: "aaaa", build: addEntry(String(repeating: "a", count: 1100))),
    HostileCase(name: "drive letter", code: .badPath, names: "C:evil", build: addEntry("C:evil")),
    // Step 1: entry types
    HostileCase(name: "symlink entry", code: .badEntryType, names: "link", build: addEntry("link", bytes("/etc/passwd"), mode: 0o120777)),
    HostileCase(name: "symlink then file through it", code: .badEntryType, names: "escape", build: {
        Fixture().zip {
            $0.append(ZipWriter.Entry(name: "escape", data: bytes("/tmp"), unixMode: 0o120777))
            $0.append(ZipWriter.Entry(name: "escape/owned.sh", data: bytes("x")))
        }
    }),
    HostileCase(name: "hard link (PKWARE unix extra)", code: .badEntryType, names: "hard", build: {
        Fixture().zip {
            var e = ZipWriter.Entry(name: "hard", data: [])
            e.extra = [0x0d, 0x00, 23, 0] + [UInt8](repeating: 0, count: 12) + bytes("/etc/sh")
            $0.append(e)
        }
    }),
    HostileCase(name: "character device", code: .badEntryType, names: "tty", build: addEntry("tty", [], mode: 0o020666)),
    HostileCase(name: "block device", code: .badEntryType, names: "sda", build: addEntry("sda", [], mode: 0o060660)),
    HostileCase(name: "FIFO", code: .badEntryType, names: "pipe", build: addEntry("pipe", [], mode: 0o010644)),
    HostileCase(name: "socket", code: .badEntryType, names: "sock", build: addEntry("sock", [], mode: 0o140644)),
    // Step 1: duplicates
    HostileCase(name: "duplicate name", code: .duplicateEntry, names: "main.js", build: addEntry("main.js", bytes("evil()"))),
    HostileCase(name: "case-only duplicate", code: .duplicateEntry, names: "Main.js", build: addEntry("Main.js", bytes("evil()"))),
    HostileCase(name: "file used as directory", code: .duplicateEntry, names: "main.js/x", build: addEntry("main.js/x")),
    // Step 1: bombs and sizes
    HostileCase(name: "ratio bomb", code: .zipBomb, names: "zeros", build: addEntry("zeros", [UInt8](repeating: 0, count: 8 << 20))),
    HostileCase(name: "declared small, inflates big", code: .zipBomb, names: "liar", build: {
        Fixture().zip {
            var e = ZipWriter.Entry(name: "liar", data: [UInt8](repeating: 7, count: 4096))
            e.overrideUncompressedSize = 10
            $0.append(e)
        }
    }),
    HostileCase(name: "total inflated size", code: .archiveTooLarge, names: "big", build: addEntry("big", (0..<300_000).map { UInt8(truncatingIfNeeded: $0 &* 2654435761 >> 13) }),
        limits: { var l = ZipLimits(); l.maxInflatedBytes = 256 << 10; return l }()),
    HostileCase(name: "archive file too large", code: .archiveTooLarge, names: "limit", build: { Fixture().zip() },
        limits: { var l = ZipLimits(); l.maxArchiveBytes = 200; return l }()),
    HostileCase(name: "too many entries", code: .tooManyEntries, names: "10003 entries", build: {
        Fixture().zip { e in
            for i in 0..<10_000 {
                var x = ZipWriter.Entry(name: "f/\(i)", data: [])
                x.compress = false
                e.append(x)
            }
        }
    }),
    // Step 1: structure
    HostileCase(name: "encrypted entry", code: .archiveInvalid, names: "main.js", build: patched { b, w in
        b[w.localOffsets[1] + 6] |= 1
        b[w.centralOffset + centralRecordOffset(b, w, 1) + 8] |= 1
    }),
    HostileCase(name: "unsupported method", code: .archiveInvalid, names: "main.js", build: patched { b, w in
        b[w.localOffsets[1] + 8] = 12
        b[w.centralOffset + centralRecordOffset(b, w, 1) + 10] = 12
    }),
    HostileCase(name: "local/central name disagree", code: .archiveInvalid, names: "main.js", build: patched { b, w in
        b[w.localOffsets[1] + 30] = UInt8(ascii: "M")
    }),
    HostileCase(name: "CRC mismatch", code: .archiveInvalid, names: "main.js", build: {
        Fixture().zip { $0[1].overrideCRC = 0xdeadbeef }
    }),
    HostileCase(name: "zip64 marker", code: .archiveInvalid, names: "zip64", build: patched { b, _ in
        let eocd = b.count - 22
        for i in 16..<20 { b[eocd + i] = 0xff }
    }),
    HostileCase(name: "truncated archive", code: .archiveInvalid, names: "archive", build: { Array(Fixture().zip().dropLast(30)) }),
    HostileCase(name: "not a zip", code: .archiveInvalid, names: "archive", build: { bytes(String(repeating: "hello ", count: 20)) }),
    // Step 2: manifest
    HostileCase(name: "manifest missing", code: .manifestInvalid, names: "manifest.json", build: { Fixture().zip { $0.removeFirst() } }),
    manifestCase("unknown manifest field", names: "\"debug\"") { $0["debug"] = true },
    manifestCase("uppercase id", names: "Com.Partner.Loans") { $0["id"] = "Com.Partner.Loans" },
    manifestCase("one-label id", names: "loans") { $0["id"] = "loans" },
    manifestCase("id over 128 bytes", names: "\"id\"") { $0["id"] = .string("com.partner." + String(repeating: "a", count: 120)) },
    manifestCase("version not SemVer", names: "1.0") { $0["version"] = "1.0" },
    manifestCase("version leading zero", names: "01.0.0") { $0["version"] = "01.0.0" },
    manifestCase("version as number", names: "\"version\"") { $0["version"] = 2 },
    manifestCase("IP literal domain", names: "10.0.0.1") { $0["allowedDomains"] = ["10.0.0.1"] },
    manifestCase("domain with port", names: "api.partner.com:443") { $0["allowedDomains"] = ["api.partner.com:443"] },
    manifestCase("domain with scheme", names: "https://api.partner.com") { $0["allowedDomains"] = ["https://api.partner.com"] },
    manifestCase("entry point escapes", names: "../main.js") { $0["entryPoint"] = "../main.js" },
    manifestCase("bad runtime", names: "runtime") { $0["runtime"] = "java" },
    HostileCase(name: "duplicate JSON keys", code: .manifestInvalid, names: "manifest.json",
        build: rawManifest(#"{"id":"com.partner.loans","id":"com.partner.other","version":"1.0.0","minHostVersion":"1.0.0","entryPoint":"main.js","signature":"rsa-pss-sha256:AAAA"}"#)),
    HostileCase(name: "manifest over 64 KiB", code: .manifestInvalid, names: "64 KiB", build: {
        with { $0.manifest["x-pad"] = .string(String(repeating: "p", count: 70_000)) }.zip()
    }),
    HostileCase(name: "manifest unsigned", code: .manifestInvalid, names: "signature", build: {
        Fixture().zip { $0[0] = ZipWriter.Entry(name: "manifest.json", data: JSONValue.object(Fixture().manifest).serialized()) }
    }),
    // Step 3: partner
    HostileCase(name: "unknown partner", code: .unknownPartner, names: "org.other.app", build: { with { $0.manifest["id"] = "org.other.app" }.zip() }),
    HostileCase(name: "id matching two partners", code: .ambiguousPartner, names: "com.partner.loans", build: { Fixture().zip() },
        partners: { partnerSet(extra: [PartnerRegistration(id: "com.partner.loans-team", idPrefixes: ["com.partner.loans"], publicKeys: [TestKeys.partnerPub], permissions: [])]) }),
    // Step 4: signature
    HostileCase(name: "tampered file", code: .badSignature, names: "signature", build: { Fixture().zip { $0[1].data = bytes("steal()") } }),
    HostileCase(name: "added file", code: .badSignature, names: "signature", build: addEntry("extra.js", bytes("evil()"))),
    HostileCase(name: "removed file", code: .badSignature, names: "signature", build: { Fixture().zip { $0.removeLast() } }),
    HostileCase(name: "tampered manifest field", code: .badSignature, names: "signature", build: {
        Fixture().zip {
            var m = (try! JSONValue.parse($0[0].data)).objectValue!
            m["allowedDomains"] = ["evil.example"]
            $0[0] = ZipWriter.Entry(name: "manifest.json", data: JSONValue.object(m).serialized())
        }
    }),
    HostileCase(name: "PKCS#1 v1.5 instead of PSS", code: .badSignature, names: "signature", build: { with { $0.signer = pkcs1 }.zip() }),
    HostileCase(name: "wrong key", code: .badSignature, names: "signature", build: { with { $0.key = TestKeys.other }.zip() }),
    HostileCase(name: "signature not base64", code: .badSignature, names: "signature", build: {
        Fixture().zip {
            var m = (try! JSONValue.parse($0[0].data)).objectValue!
            m["signature"] = "rsa-pss-sha256:!!!!"
            $0[0] = ZipWriter.Entry(name: "manifest.json", data: JSONValue.object(m).serialized())
        }
    }),
    // Steps 5–8
    HostileCase(name: "minHostVersion above host", code: .hostUpdateRequired, names: "3.1.0", build: { with { $0.manifest["minHostVersion"] = "3.1.0" }.zip() }),
    HostileCase(name: "unknown permission", code: .unknownPermission, names: "teleport", build: { with { $0.manifest["permissions"] = ["payment", "teleport"] }.zip() }),
    HostileCase(name: "permission not granted", code: .permissionNotGranted, names: "network", build: { with { $0.manifest["permissions"] = ["network"] }.zip() }),
    HostileCase(name: "entry point missing", code: .entryPointMissing, names: "app.js", build: { with { $0.manifest["entryPoint"] = "app.js" }.zip() }),
    HostileCase(name: "entry point is a directory", code: .entryPointMissing, names: "lib", build: { with { $0.manifest["entryPoint"] = "lib" }.zip() }),
    HostileCase(name: "downgrade", code: .downgrade, names: "2.4.0", build: { Fixture().zip() }, installed: "2.4.0"),
]

/// Offset of central record `index` relative to the central directory start.
func centralRecordOffset(_ b: [UInt8], _ w: ZipWriter, _ index: Int) -> Int {
    var off = 0
    for _ in 0..<index {
        let base = w.centralOffset + off
        let n = Int(b[base + 28]) | Int(b[base + 29]) << 8
        let x = Int(b[base + 30]) | Int(b[base + 31]) << 8
        let c = Int(b[base + 32]) | Int(b[base + 33]) << 8
        off += 46 + n + x + c
    }
    return off
}

@Suite("Hostile and broken packages")
struct HostileCorpusTests {
    @Test("corpus has at least 30 cases")
    func corpusSize() { #expect(hostileCases.count >= 30) }

    @Test("each is rejected with its stable code and a message naming the entry", arguments: hostileCases)
    func rejected(_ c: HostileCase) {
        let v = verifier(limits: c.limits, partners: c.partners())
        do {
            let ok = try v.verify(bytes: c.build(), installedVersion: c.installed.flatMap(SemVer.init))
            Issue.record("\(c.name): accepted as \(ok.manifest.id) \(ok.manifest.version)")
        } catch {
            #expect(error.code == c.code, "\(c.name): \(error)")
            #expect(error.message.contains(c.names), "\(c.name): message does not name \(c.names): \(error.message)")
        }
    }

    @Test("the unmodified fixture verifies")
    func baseline() throws {
        let v = try verifier().verify(bytes: Fixture().zip())
        #expect(v.manifest.id == "com.partner.loans")
        #expect(v.manifest.runtime == .node)
        #expect(Set(v.files.map(\.path)) == ["lib/util.js", "main.js"])
    }
}
