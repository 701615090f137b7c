package import MiniAppJSON

/// One line from the daemon, classified. The daemon is trusted more than a program, but its
/// bytes are still parsed defensively: a host library that crashed, or matched a garbled line
/// to the wrong call, on a daemon bug or a socket mix-up (another service behind the path)
/// would take the host runtime down with it. Anything that is not one of these three shapes is
/// a protocol violation (`PARSE_ERROR`, `INVALID_REQUEST`). Fuzzed by `fuzz-host`.
package enum HostInbound {
    /// A request to this host (`bridge.call`, or one it does not serve).
    case request(method: String, id: JSONValue, params: JSONObject, raw: JSONObject)
    /// A notification (`program.exited`, `bridge.cancel`, …).
    case notification(method: String, params: JSONObject)
    /// A response to request `id` (null: one the daemon could not attribute).
    case response(id: JSONValue, outcome: Result<JSONValue, HostError>, raw: JSONObject)

    /// Classifies `line` (without its newline); `maxBytes` bounds the JSON parser.
    package static func parse(_ line: ArraySlice<UInt8>, maxBytes: Int) -> Result<HostInbound, HostError> {
        guard let value = try? JSONValue.parse(line, options: JSONParseOptions(maxBytes: maxBytes)), let msg = value.objectValue else {
            return .failure(HostError(HostError.Code.parseError, "miniappd sent a line that is not a JSON object: \(preview(line))"))
        }
        if let method = msg["method"] {
            guard let name = method.stringValue else {
                return .failure(HostError(HostError.Code.invalidRequest, "miniappd sent a message whose method is not a string"))
            }
            guard let params = (msg["params"] ?? .object([:])).objectValue else {
                return .failure(HostError(HostError.Code.invalidRequest, "miniappd sent \(name) with params that are not an object"))
            }
            if let id = msg["id"] { return .success(.request(method: name, id: id, params: params, raw: msg)) }
            return .success(.notification(method: name, params: params))
        }
        if let id = msg["id"] {
            if let error = msg["error"]?.objectValue { return .success(.response(id: id, outcome: .failure(HostError(rpcError: error)), raw: msg)) }
            if let result = msg["result"] { return .success(.response(id: id, outcome: .success(result), raw: msg)) }
        }
        return .failure(HostError(HostError.Code.invalidRequest, "miniappd sent a message that is neither a request nor a response"))
    }

    /// The start of `line` for a message, control characters replaced.
    static func preview(_ line: ArraySlice<UInt8>) -> String {
        let text = String(decoding: line.prefix(80), as: UTF8.self)
        return String(text.unicodeScalars.map { $0.value < 0x20 || $0.value == 0x7F ? "?" : Character($0) }) + (line.count > 80 ? "…" : "")
    }
}
