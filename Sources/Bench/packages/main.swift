// bench-packages: verification of a 20 MB package against `sha256sum` of the same file, in the
// same run (the anchor). Prints spec-format rows:
//   RESULT|name|p50_us|p99_us|p999_us|throughput|unit|notes
// The package holds 20 files of 1 MiB of random bytes (incompressible, so stored: the cost is
// reading, CRC-32 and SHA-256 of every byte, plus one RSA-3072 PSS verification) and a manifest.
import Foundation
import MiniAppModel
import MiniAppPackages
import MiniAppSystem

func now() -> UInt64 { DispatchTime.now().uptimeNanoseconds }

func percentile(_ xs: [Double], _ p: Double) -> Double {
    let s = xs.sorted()
    return s[min(s.count - 1, Int((Double(s.count) * p).rounded(.up)) - 1)]
}

func row(_ name: String, _ samples: [Double], bytes: Int, notes: String) {
    let p50 = percentile(samples, 0.50)
    let mbps = Double(bytes) / (p50 / 1e6) / 1e6
    print(String(format: "RESULT|%@|%.0f|%.0f|%.0f|%.1f|MB/s|%@", name, p50, percentile(samples, 0.99), percentile(samples, 0.999), mbps, notes))
}

let iterations = Int(CommandLine.arguments.dropFirst().first ?? "") ?? 40
let dir = NSTemporaryDirectory() + "bench-packages-\(CurrentProcess.pid)"
try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
defer { try? FileManager.default.removeItem(atPath: dir) }

let key = try RSAKey.generate(bits: 3072)
var files: [(String, [UInt8], UInt32)] = []
var rng = SystemRandomNumberGenerator()
for i in 0..<20 {
    files.append(("assets/blob\(i).bin", (0..<(1 << 20) / 8).flatMap { _ in withUnsafeBytes(of: rng.next() as UInt64) { Array($0) } }, 0o644))
}
files.append(("main.js", Array("console.log(1)\n".utf8), 0o644))
let manifest = Array(#"{"id":"com.bench.app","version":"1.0.0","minHostVersion":"1.0.0","entryPoint":"main.js","permissions":["ui"]}"#.utf8)
let zip = try PackagePacker.pack(manifest: manifest, files: files, key: key)
let path = dir + "/bench.zip"
_ = FileManager.default.createFile(atPath: path, contents: Data(zip))

let partners = try PartnerSet([PartnerRegistration(id: "com.bench", idPrefixes: ["com.bench."], publicKeys: [try key.publicPEM()], permissions: ["ui"])])
let verifier = PackageVerifier(partners: partners, options: VerifierOptions(hostVersion: SemVer("1.0.0")!))
_ = try verifier.verify(path: path)  // warm-up (page cache, lazy OpenSSL init)

var verifySamples: [Double] = []
var shaSamples: [Double] = []
for _ in 0..<iterations {
    var t = now()
    _ = try verifier.verify(path: path)
    verifySamples.append(Double(now() - t) / 1000)
    let p = Process()
    p.executableURL = URL(fileURLWithPath: "/usr/bin/sha256sum")
    p.arguments = [path]
    p.standardOutput = FileHandle.nullDevice
    t = now()
    try p.run()
    p.waitUntilExit()
    shaSamples.append(Double(now() - t) / 1000)
}
row("package.verify", verifySamples, bytes: zip.count, notes: "\(zip.count) B package, 21 files, read+CRC+SHA-256+RSA-3072-PSS, \(iterations) runs")
row("anchor.sha256sum", shaSamples, bytes: zip.count, notes: "sha256sum of the same file incl. process spawn, \(iterations) runs")
let ratio = percentile(verifySamples, 0.5) / percentile(shaSamples, 0.5)
print(String(format: "# package.verify p50 / sha256sum p50 = %.2f (target <= 1.5)", ratio))

// Whole installs into a store (verify + extract + fsync + publish), zlib in this process (the
// design before helpers: the baseline) and in `miniappd-helper extract` (the daemon's store),
// alternating so both see the same machine.
func installStore(_ tag: String, helper: Bool) throws -> PackageStore {
    var settings = HelperSettings()
    settings.executable = URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent().path + "/miniappd-helper"
    return try PackageStore(root: dir + "/store-" + tag, options: VerifierOptions(hostVersion: SemVer("1.0.0")!),
                            extractionHelper: helper ? ExtractionHelper(settings: settings) : nil) { partners }
}
let stores = [("inprocess", try installStore("inprocess", helper: false)), ("helper", try installStore("helper", helper: true))]
var installSamples: [String: [Double]] = [:]
for _ in 0..<max(5, iterations / 4) {
    for (tag, store) in stores {
        let t = now()
        _ = try store.install(path: path)
        installSamples[tag, default: []].append(Double(now() - t) / 1000)
        try store.remove("com.bench.app")
    }
}
for (tag, _) in stores {
    row("package.install.\(tag)", installSamples[tag]!, bytes: zip.count,
        notes: "\(zip.count) B package: verify, extract, fsync, publish; zlib \(tag == "helper" ? "in miniappd-helper extract" : "in this process (baseline)"), \(installSamples[tag]!.count) runs")
}
print(String(format: "# package.install helper p50 / in-process p50 = %.2f",
             percentile(installSamples["helper"]!, 0.5) / percentile(installSamples["inprocess"]!, 0.5)))
