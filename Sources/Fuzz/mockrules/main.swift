// Fuzz target: the mock bridge's rules file and a recording (`miniapp replay FILE` reads a
// recording someone else sent with a bug report). Property: no trap; accepted rules answer
// calls (glob and subset matching over whatever they hold) without trapping.
import FuzzSupport
import MiniAppBridgeMock
import MiniAppJSON

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzOne(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let bytes = Array(UnsafeBufferPointer(start: data, count: size))
    if let rules = try? MockRules.parse(bytes) {
        let engine = MockBridge(rules: rules)
        for r in rules.rules.prefix(8) {
            _ = engine.answer(method: r.method, params: r.params)
            _ = engine.answer(method: "storage.get", params: ["key": .string(r.method)])
        }
    }
    if let replay = try? Recording.rules(from: bytes) {
        let engine = MockBridge(rules: replay.rules)
        for r in replay.rules.rules.prefix(8) { _ = engine.answer(method: r.method, params: r.params) }
    }
    return 0
}

runFuzzer(fuzzOne)
