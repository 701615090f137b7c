/// `allowedDomains` entries: lowercase host names, or `*.example.com` which matches subdomains
/// only (never `example.com` itself). No IP literals, ports, schemes, paths or trailing dots:
/// egress is decided by name, and an IP literal would bypass the name policy entirely.
public enum DomainPattern {
    /// nil when `pattern` is acceptable, else what is wrong with it.
    public static func problem(_ pattern: String) -> String? {
        var host = Substring(pattern)
        var wildcard = false
        if host.hasPrefix("*.") {
            wildcard = true
            host = host.dropFirst(2)
        }
        guard !host.isEmpty, host.utf8.count <= 253 else { return "must be a host name of 1 to 253 bytes" }
        if host.contains(":") || host.contains("/") || host.contains("[") || host.contains("@") {
            return "must be a bare host name: no scheme, port, path or IPv6 literal"
        }
        let labels = host.split(separator: ".", omittingEmptySubsequences: false)
        for label in labels {
            let u = Array(label.utf8)
            guard !u.isEmpty, u.count <= 63 else { return "has an empty or over-long label" }
            guard u.allSatisfy({ ($0 >= 97 && $0 <= 122) || ($0 >= 48 && $0 <= 57) || $0 == 45 }) else {
                return "must be lowercase letters, digits, '-' and '.' (a single leading '*.' allowed)"
            }
            if u.first == 45 || u.last == 45 { return "has a label starting or ending with '-'" }
        }
        // A numeric last label means an IPv4 literal in one of its many spellings (1.2.3.4, 0x7f.1…).
        if let last = labels.last, last.utf8.allSatisfy({ $0 >= 48 && $0 <= 57 }) {
            return "must not be an IP address"
        }
        if wildcard && labels.count < 2 { return "wildcard must cover a registrable domain (*.example.com, not *.com)" }
        return nil
    }

    /// Whether `host` (lowercase) is allowed by `pattern`.
    public static func matches(_ pattern: String, host: String) -> Bool {
        if pattern.hasPrefix("*.") {
            let suffix = pattern.dropFirst(1)  // ".example.com"
            return host.hasSuffix(suffix) && host.utf8.count > suffix.utf8.count
        }
        return host == pattern
    }
}
