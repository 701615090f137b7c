// Fuzz target: the strict JSON parser and the RFC 8785 writer.
//
// Pattern shared by every Sources/Fuzz/* target: `fuzzOne` is the property; built with
// `-sanitize=fuzzer` (scripts/fuzz) main hands it to libFuzzer's LLVMFuzzerRunDriver, found with
// dlsym so the same source also links in ordinary builds, where main replays the files given
// as arguments (the regression corpus in Tests/Fixtures/fuzz/<target>/).
import FuzzSupport
import MiniAppJSON

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzOne(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let buf = UnsafeBufferPointer(start: data, count: size)
    for options in [JSONParseOptions.strict, .policy] {
        guard let v = try? JSONValue.parse(buffer: buf, options: options) else { continue }
        // Property: what we write, we read back to the same value.
        let again = try? JSONValue.parse(v.serialized(), options: .init(maxDepth: 1000, maxBytes: 1 << 30))
        precondition(again == v || v.hasNonFinite, "round trip changed the value")
        if let canon = try? v.canonicalized() {
            precondition((try? JSONValue.parse(canon, options: .init(maxDepth: 1000, maxBytes: 1 << 30))) != nil)
        }
    }
    return 0
}

extension JSONValue {
    var hasNonFinite: Bool {
        switch self {
        case .double(let d): !d.isFinite
        case .array(let a): a.contains { $0.hasNonFinite }
        case .object(let o): o.members.contains { $0.value.hasNonFinite }
        default: false
        }
    }
}

runFuzzer(fuzzOne)
