// Fuzz target: the Bridge's untrusted-input path up to the permission decision — NDJSON
// framing (with reads split at fuzzer-chosen points), strict JSON parsing, JSON-RPC request
// decoding, the permission table's decision, and the encoding of the answer.
//
// Properties checked besides "does not crash":
// - no framed line exceeds the limit, and the framer's buffer stays bounded;
// - every error answer we would send is one valid JSON line with the right numeric code;
// - a decision of `.allowed` only for methods that need no permission or whose permission is
//   both declared and granted (the table's one rule).
import FuzzSupport
import Glibc
import MiniAppBroker
import MiniAppJSON
import MiniAppModel

let maxLine = 4096
let catalogue: MethodCatalogue = {
    do {
        return try MethodCatalogue(
            methods: [
                MethodSpec(name: "storage.get", permission: nil, provider: .builtin, rateClass: "c", timeoutMillis: 1),
                MethodSpec(name: "net.request", permission: "network", provider: .builtin, rateClass: "c", timeoutMillis: 1),
                MethodSpec(name: "payment.pay", permission: "payment", provider: .host, rateClass: "c", timeoutMillis: 1),
            ],
            permissions: ["network": "", "payment": ""], classes: ["c": RateLimit(perSecond: 1, burst: 1)],
            programBudget: RateLimit(perSecond: 1, burst: 1))
    } catch { preconditionFailure("fuzz catalogue: \(error)") }
}()
let table = PermissionTable(catalogue: catalogue, grants: ["p": ["network"]])
let callers = [
    CallerIdentity(workerId: "w", programId: "a", version: "1", partnerId: "p", declaredPermissions: ["network", "payment"], allowedDomains: []),
    CallerIdentity(workerId: "w", programId: "b", version: "1", partnerId: "q", declaredPermissions: [], allowedDomains: []),
]

func checkAnswer(_ id: RPCId, _ error: MiniAppError) {
    var out: [UInt8] = []
    RPCCodec.writeError(id: id, error: error, into: &out)
    precondition(out.last == 0x0A && out.dropLast().firstIndex(of: 0x0A) == nil, "answer is not one line")
    let v = try? JSONValue.parse(out.dropLast())
    precondition(v?["error"]?["code"]?.intValue == Int64(error.code.rpcNumber), "answer lost its code")
}

/// The fast envelope decoder may only accept what the general path accepts, identically.
func checkFastPath(_ line: UnsafeBufferPointer<UInt8>, _ slow: Result<RPCRequest, RPCDecodeError>) {
    guard let fast = RPCCodec.decodeRequestFast(line) else { return }
    guard case .success(let r) = slow else { preconditionFailure("fast path accepted what the general path refuses") }
    precondition(fast.id == r.id && fast.method == r.method && fast.params == r.params, "fast path decoded differently")
}

/// The fast writer must produce the shared writer's bytes.
func checkWriter(_ v: JSONValue?) {
    guard let v else { return }
    var fast: [UInt8] = []
    FastJSONWriter.write(v, into: &fast)
    precondition(fast == v.serialized(), "FastJSONWriter differs from JSONValue.serialized()")
}

func handle(_ line: UnsafeBufferPointer<UInt8>) {
    precondition(line.count <= maxLine, "framer let an oversize line through")
    let slow = RPCCodec.parse(line).flatMap(RPCCodec.decodeRequest)
    checkFastPath(line, slow)
    if case .success(let v) = RPCCodec.parse(line) { checkWriter(v) }
    switch slow {
    case .failure(let e):
        checkAnswer(e.id, e.error)
    case .success(let r):
        for caller in callers {
            let d = table.snapshot.decide(method: r.method, caller: caller)
            if case .allowed(let spec) = d, let p = spec.permission {
                precondition(caller.declaredPermissions.contains(p) && table.snapshot.grants[caller.partnerId]?.contains(p) == true)
            }
            if case .methodNotFound = d { checkAnswer(r.id ?? .null, MiniAppError(.methodNotFound, r.method)) }
        }
    }
}

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzOne(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let input = UnsafeBufferPointer(start: data, count: size)
    guard let first = input.first else { return 0 }
    let chunk = Int(first % 61) + 1
    var framer = LineFramer(maxLineBytes: maxLine, initialCapacity: 64)
    var failed = false
    var i = 1
    while i < size && !failed {
        let n = min(chunk, size - i)
        framer.append(UnsafeBufferPointer(rebasing: input[i..<(i + n)]))
        i += n
        framer.drain { ev in
            switch ev {
            case .line(let l): handle(l)
            case .tooLarge: failed = true
            }
            return true
        }
        precondition(framer.bufferedBytes <= maxLine + chunk, "framer buffer grew without bound")
    }
    if !failed { framer.finish { if case .line(let l) = $0 { handle(l) } } }
    return 0
}

/// When the binary was not linked with a libFuzzer that exports `LLVMFuzzerRunDriver` (the
/// toolchain's static libFuzzer does not export it, so `runFuzzer` falls back to replay) but a
/// time budget was asked for (`-max_total_time=N`), mutate the corpus ourselves for N seconds:
/// byte flips, insertions, deletions, splices and line duplication, no coverage guidance. Still
/// useful under ASan, and it makes `scripts/fuzz bridge 20` fuzz for 20 s either way.
func mutationFallback() {
    let args = CommandLine.arguments.dropFirst()
    guard dlsym(UnsafeMutableRawPointer(bitPattern: 0), "LLVMFuzzerRunDriver") == nil,
        let budget = args.first(where: { $0.hasPrefix("-max_total_time=") }).flatMap({ Double($0.dropFirst(16)) })
    else { return }
    var seeds: [[UInt8]] = [Array("\u{07}{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"storage.get\",\"params\":{}}\n".utf8)]
    for dir in args where !dir.hasPrefix("-") {
        guard let d = opendir(dir) else { continue }
        while let e = readdir(d) {
            let name = withUnsafeBytes(of: e.pointee.d_name) { String(decoding: $0.prefix(while: { $0 != 0 }), as: UTF8.self) }
            guard !name.hasPrefix("."), let f = fopen(dir + "/" + name, "rb") else { continue }
            var bytes: [UInt8] = [], chunk = [UInt8](repeating: 0, count: 65536)
            while case let n = fread(&chunk, 1, chunk.count, f), n > 0 { bytes += chunk[0..<n] }
            fclose(f)
            seeds.append(bytes)
        }
        closedir(d)
    }
    var rng = SystemRandomNumberGenerator()
    let tokens = [#"""#, "{", "}", "[", "]", ",", ":", "\n", "\\", "\u{0}", "null", "\"2.0\"", "\"id\":", "\"method\":", "\"params\":", "-0", "1e999", "\u{FF}"].map { Array($0.utf8) }
    var execs = 0
    var start = timespec()
    clock_gettime(CLOCK_MONOTONIC, &start)
    while true {
        var input = seeds.randomElement(using: &rng) ?? []
        for _ in 0..<Int.random(in: 1...8, using: &rng) {
            let at = input.isEmpty ? 0 : Int.random(in: 0..<input.count, using: &rng)
            switch Int.random(in: 0..<5, using: &rng) {
            case 0 where !input.isEmpty: input[at] ^= UInt8(1 << Int.random(in: 0..<8, using: &rng))
            case 1: input.insert(contentsOf: tokens.randomElement(using: &rng)!, at: at)
            case 2 where !input.isEmpty: input.removeSubrange(at..<min(input.count, at + Int.random(in: 1...16, using: &rng)))
            case 3: input.insert(contentsOf: (seeds.randomElement(using: &rng) ?? []).prefix(64), at: at)
            default: input += input.prefix(Int.random(in: 0...256, using: &rng))
            }
        }
        input.withUnsafeBufferPointer { p in _ = fuzzOne(p.baseAddress ?? UnsafePointer(bitPattern: 1)!, p.count) }
        execs += 1
        if execs % 256 == 0 {
            var now = timespec()
            clock_gettime(CLOCK_MONOTONIC, &now)
            if Double(now.tv_sec - start.tv_sec) >= budget { break }
        }
    }
    print("mutation fallback: \(execs) executions in \(budget) s, no failure")
    exit(0)
}

mutationFallback()
runFuzzer(fuzzOne)
