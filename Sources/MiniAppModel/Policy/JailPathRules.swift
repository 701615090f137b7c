/// Syntactic rules for paths and names in jail policies and launches. A path that is relative,
/// holds `..` or a NUL, or lands on a mountpoint the jail reserves could make a bind mount land
/// outside the new root or shadow a security-relevant mount; such input is refused up front.
public enum JailPathRules {
    /// Jail paths the mechanism owns; callers may not bind over them.
    public static let reserved: Set<String> = ["/", "/proc", "/dev", "/tmp", "/data", "/app", "/etc"]

    public static func checkAbsolute(_ p: String, field: String) throws(MiniAppError) {
        guard p.hasPrefix("/") else { throw PolicyFieldReader.invalid(field, "must be an absolute path, not '\(p)'") }
        guard !p.utf8.contains(0) else { throw PolicyFieldReader.invalid(field, "contains a NUL byte") }
        let parts = p.split(separator: "/", omittingEmptySubsequences: true)
        guard !parts.contains("..") && !parts.contains(".") else {
            throw PolicyFieldReader.invalid(field, "must not contain '.' or '..' components ('\(p)')")
        }
        guard p.utf8.count < 1024 else { throw PolicyFieldReader.invalid(field, "is too long") }
    }

    /// An absolute path that may become a mountpoint in the jail (not `/`, not reserved).
    public static func checkMountPath(_ p: String, field: String) throws(MiniAppError) {
        try checkAbsolute(p, field: field)
        let n = normalized(p)
        guard !reserved.contains(n) else { throw PolicyFieldReader.invalid(field, "'\(p)' is reserved by the jail") }
        guard !n.hasPrefix("/proc/") && !n.hasPrefix("/dev/") else {
            throw PolicyFieldReader.invalid(field, "'\(p)' is inside /proc or /dev, which the jail builds itself")
        }
    }

    public static func checkRelative(_ p: String, field: String) throws(MiniAppError) {
        guard !p.isEmpty, !p.hasPrefix("/"), !p.utf8.contains(0) else {
            throw PolicyFieldReader.invalid(field, "must be a non-empty relative path")
        }
        guard !p.split(separator: "/").contains("..") else { throw PolicyFieldReader.invalid(field, "must not contain '..'") }
    }

    public static func checkHostname(_ h: String, field: String) throws(MiniAppError) {
        let ok = !h.isEmpty && h.utf8.count <= 64
            && h.utf8.allSatisfy { ($0 >= 97 && $0 <= 122) || ($0 >= 48 && $0 <= 57) || $0 == 45 || $0 == 46 }
        guard ok else { throw PolicyFieldReader.invalid(field, "must be 1-64 characters of a-z, 0-9, '-', '.'") }
    }

    public static func checkEnvName(_ k: String, field: String) throws(MiniAppError) {
        let ok = !k.isEmpty && !k.utf8.contains(61) && !k.utf8.contains(0)
        guard ok else { throw PolicyFieldReader.invalid(field, "is not a valid environment variable name") }
    }

    /// `p` without trailing or doubled slashes.
    public static func normalized(_ p: String) -> String {
        "/" + p.split(separator: "/", omittingEmptySubsequences: true).joined(separator: "/")
    }
}
