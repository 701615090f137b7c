/// Rules for entry names of a package (spec step 1), shared by the zip reader, the manifest's
/// `entryPoint` and `miniapp pack`.
///
/// Why so strict: zip-slip (the CVE-2018-1002200 class: `../` or absolute names written outside
/// the extraction directory), Windows-style `..\\` separators that some extractors honour,
/// NUL truncation in C APIs, and names that collide on case-insensitive file systems (two
/// entries that verify separately but extract over each other).
public enum PackagePath {
    /// The default maximum entry-name length in bytes.
    public static let defaultMaxBytes = 1024

    /// nil when `path` is an acceptable relative file path, else what is wrong with it.
    /// A trailing `/` (directory entry) must be stripped by the caller first.
    public static func problem(_ path: String, maxBytes: Int = defaultMaxBytes) -> String? {
        let u = Array(path.utf8)
        if u.isEmpty { return "is empty" }
        if u.count > maxBytes { return "is \(u.count) bytes long; the limit is \(maxBytes)" }
        if u.contains(0) { return "contains a NUL byte" }
        if u.contains(92) { return "contains a backslash (\\)" }
        if u.first == 47 { return "is absolute" }
        if u.contains(where: { $0 < 32 || $0 == 127 }) { return "contains a control character" }
        // "C:foo" is relative on POSIX but absolute-ish on Windows tools: refuse drive letters.
        if u.count >= 2, u[1] == 58 { return "starts with a drive letter" }
        for comp in path.split(separator: "/", omittingEmptySubsequences: false) {
            if comp.isEmpty { return "has an empty component (//)" }
            if comp == "." || comp == ".." { return "has a '\(comp)' component" }
        }
        return nil
    }

    /// The case-folding key used to detect names that differ only in case.
    public static func foldKey(_ path: String) -> String { path.lowercased() }
}
