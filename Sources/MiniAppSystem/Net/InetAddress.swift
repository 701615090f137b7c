#if canImport(Glibc)
import Glibc
#endif

/// IPv4/IPv6 addresses as bytes (4 or 16), through the C library's parsers and the resolver.
/// The policy on them (which ranges a program may reach) is the broker's.
public enum InetAddress {
    /// `inet_pton(3)`: a numeric address in canonical syntax (no brackets, no zone), or nil.
    public static func parse(_ text: String) -> [UInt8]? {
        var v4 = in_addr()
        var v6 = in6_addr()
        if inet_pton(AF_INET, text, &v4) == 1 { return withUnsafeBytes(of: &v4) { Array($0) } }
        if inet_pton(AF_INET6, text, &v6) == 1 { return withUnsafeBytes(of: &v6) { Array($0) } }
        return nil
    }

    /// `inet_ntop(3)` form of 4 or 16 bytes.
    public static func format(_ bytes: [UInt8]) -> String {
        var buf = [CChar](repeating: 0, count: 64)
        var copy = bytes
        let family = bytes.count == 4 ? AF_INET : AF_INET6
        _ = copy.withUnsafeMutableBytes { inet_ntop(family, $0.baseAddress, &buf, 64) }
        return String(decoding: buf.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    /// Whether `inet_aton(3)` accepts `text` (it takes `127.1`, `2130706433`, `0x7f.1`: forms a
    /// URL parser or resolver would turn into an address).
    public static func isLegacyIPv4(_ text: String) -> Bool {
        var a = in_addr()
        return inet_aton(text, &a) != 0
    }

    /// Resolves `host` with `getaddrinfo(3)` (blocking) to its addresses, in the resolver's order.
    public static func resolve(_ host: String) -> [[UInt8]] {
        var hints = addrinfo()
        hints.ai_family = AF_UNSPEC
        hints.ai_socktype = Int32(SOCK_STREAM.rawValue)
        var res: UnsafeMutablePointer<addrinfo>?
        guard getaddrinfo(host, nil, &hints, &res) == 0, let first = res else { return [] }
        defer { freeaddrinfo(first) }
        var out: [[UInt8]] = []
        var cur: UnsafeMutablePointer<addrinfo>? = first
        while let ai = cur {
            if let sa = ai.pointee.ai_addr {
                if ai.pointee.ai_family == AF_INET {
                    out.append(sa.withMemoryRebound(to: sockaddr_in.self, capacity: 1) { p in withUnsafeBytes(of: p.pointee.sin_addr) { Array($0) } })
                } else if ai.pointee.ai_family == AF_INET6 {
                    out.append(sa.withMemoryRebound(to: sockaddr_in6.self, capacity: 1) { p in withUnsafeBytes(of: p.pointee.sin6_addr) { Array($0) } })
                }
            }
            cur = ai.pointee.ai_next
        }
        return out
    }
}
