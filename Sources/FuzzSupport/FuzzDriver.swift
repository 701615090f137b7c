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
    let trampoline: cfuzz_test_one_input = { data, size in
        // libFuzzer may pass NULL for the empty input; hand the body a valid pointer.
        let fallback: UInt8 = 0
        return withUnsafePointer(to: fallback) { p in currentBody!(data ?? p, size) }
    }
    let rc = cfuzz_run_driver(&argc, &argv, trampoline)
    if rc != -1 { cfuzz_exit(rc) }
    var replayed = 0
    for path in CommandLine.arguments.dropFirst() where !path.hasPrefix("-") {
        replayed += Int(cfuzz_replay_file(path, trampoline))
    }
    print("replayed \(replayed) inputs")
    cfuzz_exit(0)
}
