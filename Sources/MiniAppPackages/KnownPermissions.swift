public import MiniAppModel
import MiniAppJSON
internal import MiniAppSystem

/// Where the verifier's set of known permission names comes from.
///
/// The method catalogue (`<policy-dir>/methods.json`, owned by the Bridge broker) is the source
/// of truth: its `"permissions"` object's keys, plus every name its methods list (`"permissions"`
/// arrays, or the older single `"permission"` string). When no catalogue exists there, the built-in list
/// `PermissionName.builtIn` (payment, geolocation, network, ui) is used, so
/// `miniapp verify` works against a bare policy directory.
public enum KnownPermissions {
    /// Loads the set for `policyDir`.
    public static func load(policyDir: String) throws(MiniAppError) -> Set<String> {
        let path = policyDir + "/methods.json"
        guard FileSystem.exists(path) else { return PermissionName.builtIn }
        let bytes: [UInt8]
        do {
            bytes = try OwnedFD.open(path).readAll(limit: 16 << 20)
        } catch {
            throw MiniAppError(.internal, "cannot read \(path): \(error)")
        }
        guard let doc = try? JSONValue.parse(bytes, options: .policy) else {
            throw MiniAppError(.internal, "\(path) is not valid JSON; fix the method catalogue")
        }
        var names = Set<String>()
        collect(doc, into: &names)
        return names
    }

    private static func collect(_ v: JSONValue, into names: inout Set<String>) {
        guard let o = v.objectValue else {
            for item in v.arrayValue ?? [] { collect(item, into: &names) }
            return
        }
        for (key, value) in o.members {
            if key == "permissions" {
                if let p = value.objectValue { names.formUnion(p.keys) }
                for s in value.arrayValue ?? [] { if let s = s.stringValue { names.insert(s) } }
            } else if key == "permission", let s = value.stringValue {
                names.insert(s)
            } else {
                collect(value, into: &names)
            }
        }
    }
}
