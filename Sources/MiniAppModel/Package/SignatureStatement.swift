/// One regular-file line of the signature statement.
public struct StatementEntry: Sendable, Hashable {
    /// Entry path as in the archive (no trailing slash).
    public let path: String
    /// Lowercase hex SHA-256 of the inflated bytes.
    public let sha256Hex: String
    /// Inflated size in bytes.
    public let size: UInt64

    public init(path: String, sha256Hex: String, size: UInt64) {
        self.path = path
        self.sha256Hex = sha256Hex
        self.size = size
    }
}

/// Builds the bytes signed by a package signature (spec/package-format.md, "Signature"):
///
///     miniapp-package-v1\n
///     <RFC 8785 manifest without signature>\n
///     <sha256 hex> <size> <path>\n   — one per regular file other than manifest.json,
///                                      sorted by path in byte order
public enum SignatureStatement {
    /// The first line.
    public static let header = "miniapp-package-v1"

    /// The statement for a canonical manifest and the archive's file entries (any order; sorted
    /// here; `manifest.json` is skipped).
    public static func build(canonicalManifest: [UInt8], entries: [StatementEntry]) -> [UInt8] {
        var out = Array(header.utf8)
        out.append(10)
        out.append(contentsOf: canonicalManifest)
        out.append(10)
        let sorted = entries.filter { $0.path != "manifest.json" }
            .sorted { Array($0.path.utf8).lexicographicallyPrecedes(Array($1.path.utf8)) }
        for e in sorted {
            out.append(contentsOf: e.sha256Hex.utf8)
            out.append(32)
            out.append(contentsOf: String(e.size).utf8)
            out.append(32)
            out.append(contentsOf: e.path.utf8)
            out.append(10)
        }
        return out
    }
}
