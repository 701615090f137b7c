import MiniAppJSON

/// Reads the members of a daemon answer or notification; a missing or mistyped member is a
/// typed error (`INVALID_REQUEST`, naming the member), never a crash.
struct HostFields {
    let object: JSONObject
    let what: String

    init(_ value: JSONValue, _ what: String) throws(HostError) {
        guard let o = value.objectValue else { throw HostError(HostError.Code.invalidRequest, "miniappd sent \(what) that is not an object") }
        object = o
        self.what = what
    }

    init(object: JSONObject, _ what: String) {
        self.object = object
        self.what = what
    }

    private func bad(_ key: String, _ type: String) -> HostError {
        HostError(HostError.Code.invalidRequest, "miniappd sent \(what) whose '\(key)' is not \(type)")
    }

    func string(_ key: String) throws(HostError) -> String {
        guard let v = object[key]?.stringValue else { throw bad(key, "a string") }
        return v
    }

    func int(_ key: String) throws(HostError) -> Int64 {
        guard let v = object[key]?.intValue else { throw bad(key, "an integer") }
        return v
    }

    func bool(_ key: String) throws(HostError) -> Bool {
        guard let v = object[key]?.boolValue else { throw bad(key, "a boolean") }
        return v
    }

    func optionalString(_ key: String) throws(HostError) -> String? {
        guard let v = object[key], !v.isNull else { return nil }
        guard let s = v.stringValue else { throw bad(key, "a string") }
        return s
    }

    func optionalInt(_ key: String) throws(HostError) -> Int64? {
        guard let v = object[key], !v.isNull else { return nil }
        guard let n = v.intValue else { throw bad(key, "an integer") }
        return n
    }

    func objects(_ key: String) throws(HostError) -> [JSONObject] {
        try array(key, of: "objects") { $0.objectValue }
    }

    func strings(_ key: String) throws(HostError) -> [String] {
        try array(key, of: "strings") { $0.stringValue }
    }

    /// The array at `key` with every item read by `item` (nil: the item is not one of `kind`).
    private func array<T>(_ key: String, of kind: String, _ item: (JSONValue) -> T?) throws(HostError) -> [T] {
        guard let a = object[key]?.arrayValue else { throw bad(key, "an array") }
        var out: [T] = []
        for v in a {
            guard let x = item(v) else { throw bad(key, "an array of \(kind)") }
            out.append(x)
        }
        return out
    }
}
