// Fuzz target: the host library's classification of a line from the daemon (HostInbound) and
// the typed notifications and results built on it (HostEvent), on arbitrary bytes.
// Properties: never a crash; a violation is PARSE_ERROR or INVALID_REQUEST; a response's error
// always carries a non-empty code.
import FuzzSupport
import MiniAppHost
import MiniAppJSON

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzOne(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let line = Array(UnsafeBufferPointer(start: data, count: size))[...]
    switch HostInbound.parse(line, maxBytes: 1 << 20) {
    case .failure(let e):
        precondition(e.code == "PARSE_ERROR" || e.code == "INVALID_REQUEST", "unexpected violation code \(e.code)")
    case .success(.notification(let method, let params)):
        _ = HostEvent(HostNotification(method: method, params: params))
        for known in ["program.exited", "inspector.event", "package.staged", "package.activated", "package.rolledBack", "package.updateFailed"] {
            _ = HostEvent(HostNotification(method: known, params: params))
        }
    case .success(.request):
        break
    case .success(.response(_, let outcome, _)):
        if case .failure(let e) = outcome { precondition(!e.code.isEmpty, "an error without a code") }
    }
    return 0
}

runFuzzer(fuzzOne)
