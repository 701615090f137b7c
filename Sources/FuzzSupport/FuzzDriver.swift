#if canImport(Glibc)
import Glibc
#endif
import CFuzzSupport

/// The libFuzzer entry point type.
public typealias FuzzTestOneInput = @convention(c) (UnsafePointer<UInt8>, Int) -> CInt

/// The property under test, read by the C trampoline (a C function pointer cannot capture).
nonisolated(unsafe) private var currentBody: FuzzTestOneInput?

/// Runs `body` under libFuzzer when the binary was built with `-sanitize=fuzzer` (so
/// `LLVMFuzzerRunDriver` is linked, see CFuzzSupport); otherwise replays every file named on the command line once
/// and exits 0 (a crash is the failure signal). Never returns.
public func runFuzzer(_ body: FuzzTestOneInput) -> Never {
    var argc = CommandLine.argc
    var argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>? = CommandLine.unsafeArgv
    currentBody = body
    let rc = cfuzz_run_driver(&argc, &argv) { data, size in
        // libFuzzer may pass NULL for the empty input; hand the body a valid pointer.
        let fallback: UInt8 = 0
        return withUnsafePointer(to: fallback) { p in currentBody!(data ?? p, size) }
    }
    if rc != -1 { exit(rc) }
    var replayed = 0
    for path in CommandLine.arguments.dropFirst() where !path.hasPrefix("-") {
        guard let f = fopen(path, "rb") else { continue }
        var bytes: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 65536)
        while true {
            let n = fread(&chunk, 1, chunk.count, f)
            if n <= 0 { break }
            bytes.append(contentsOf: chunk[0..<n])
        }
        fclose(f)
        bytes.withUnsafeBufferPointer { p in
            let base = p.baseAddress ?? UnsafePointer(bitPattern: 1)!
            _ = body(base, p.count)
        }
        replayed += 1
    }
    print("replayed \(replayed) inputs")
    exit(0)
}
