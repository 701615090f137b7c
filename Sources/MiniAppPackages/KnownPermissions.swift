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
    /// Loads the set for `policyDir`: its catalogue read by the one parser of `methods.json`
    /// (`MethodCatalogue.parse`, as the broker reads it), or the built-in list without one.
    public static func load(policyDir: String) throws(MiniAppError) -> Set<String> {
        let path = policyDir + "/methods.json"
        guard FileSystem.exists(path) else { return PermissionName.builtIn }
        let bytes: [UInt8]
        do {
            bytes = try OwnedFD.open(path).readAll(limit: 16 << 20)
        } catch {
            throw MiniAppError(.internal, "cannot read \(path): \(error)")
        }
        do { return of(try MethodCatalogue.parse(bytes)) } catch {
            throw MiniAppError(.internal, "\(path) is not a valid method catalogue: \(error); fix it (miniapp policy lint)")
        }
    }

    /// The names a parsed catalogue knows: its `permissions` and every name its methods require.
    public static func of(_ catalogue: MethodCatalogue) -> Set<String> {
        catalogue.knownPermissions.union(catalogue.methods.values.flatMap(\.permissions))
    }
}
