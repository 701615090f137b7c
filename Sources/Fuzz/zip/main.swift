// Fuzz target: the zip reader (step 1 structure checks) and entry streaming with limits.
// Property: no input traps, hangs or allocates without bound; every accepted entry streams to
// exactly its declared size or fails with a MiniAppError. Pattern: see Sources/Fuzz/json.
import FuzzSupport
import MiniAppModel
import MiniAppPackages

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzOne(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    var limits = ZipLimits()
    limits.maxInflatedBytes = 8 << 20
    limits.maxArchiveBytes = 1 << 20
    guard let archive = try? ZipArchive(bytes: Array(UnsafeBufferPointer(start: data, count: size)), limits: limits) else {
        return 0
    }
    var budget = limits.maxInflatedBytes
    for e in archive.entries where e.kind == .file {
        var n: UInt64 = 0
        do {
            try archive.stream(e, budget: &budget) { n += UInt64($0.count) }
            precondition(n == e.uncompressedSize, "streamed size differs from declared size")
        } catch {
            precondition(error is MiniAppError, "stream threw a non-MiniAppError")
        }
    }
    return 0
}

runFuzzer(fuzzOne)
