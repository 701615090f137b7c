// Fuzz target: the registry's documents, which arrive from the network untrusted — the
// version document (`RegistryVersion.parse`, with the rollout rule applied to what it accepts)
// and the partners document envelope (`PartnersDocument.parse`). Property: no trap; an
// accepted version document has a SemVer version, a size in range, a rollout in 0…1 and an
// http(s) package URL; an accepted partners document's statement is framed as specified.
import FuzzSupport
import MiniAppDaemon
import MiniAppModel

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzOne(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let bytes = Array(UnsafeBufferPointer(start: data, count: size))
    if let v = try? RegistryVersion.parse(bytes, expectedId: "com.partner.app", base: "https://registry.example/base") {
        precondition(SemVer(v.version) != nil && SemVer(v.minHostVersion) != nil, "accepted a non-SemVer version")
        precondition(v.size > 0 && (0...1).contains(v.rollout), "accepted a size or rollout out of range")
        precondition(v.url.hasPrefix("https://") || v.url.hasPrefix("http://"), "accepted a non-http package URL")
        _ = Rollout.takes(deviceId: "fuzz", programId: v.id, version: v.version, fraction: v.rollout)
    }
    if let doc = try? PartnersDocument.parse(bytes) {
        precondition(doc.statement.starts(with: Array("miniapp-partners-v1\n".utf8)) && doc.statement.last == 0x0A, "statement framing")
        _ = doc.entries
    }
    return 0
}

runFuzzer(fuzzOne)
