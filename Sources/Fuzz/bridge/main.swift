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
            if case .allowed(let spec) = d {
                for p in spec.permissions {
                    precondition(caller.declaredPermissions.contains(p) && table.snapshot.grants[caller.partnerId]?.contains(p) == true)
                }
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

runFuzzer(fuzzOne)
