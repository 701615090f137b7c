// Fuzz target: manifest parsing and validation, SemVer, and the canonical form used in the
// signature statement. Property: no trap; an accepted manifest canonicalizes, and its
// canonical form parses back to an accepted manifest with the same id and version.
import FuzzSupport
import MiniAppJSON
import MiniAppModel

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzOne(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let bytes = Array(UnsafeBufferPointer(start: data, count: size))
    if let text = String(validating: bytes, as: UTF8.self), let v = SemVer(text) {
        precondition(!(v < v) && v == v, "SemVer order is not irreflexive")
    }
    guard let m = try? Manifest.parse(bytes, requireSignature: false) else { return 0 }
    guard let canon = try? m.canonicalWithoutSignature() else { return 0 }
    guard canon.count <= Manifest.maxBytes else { return 0 }
    let again = try? Manifest.parse(canon, requireSignature: false)
    precondition(again?.id == m.id && again?.version == m.version, "canonical manifest does not round-trip")
    return 0
}

runFuzzer(fuzzOne)
