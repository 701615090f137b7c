internal import MiniAppModel
internal import MiniAppSystem

/// An IPv4 or IPv6 address as bytes (4 or 16).
struct IPAddress: Hashable, CustomStringConvertible {
    let bytes: [UInt8]

    /// Parses a numeric address in canonical inet_pton syntax (no brackets, no zone).
    init?(_ text: String) {
        guard let b = InetAddress.parse(text) else { return nil }
        bytes = b
    }

    init(bytes: [UInt8]) { self.bytes = bytes }

    var isV4: Bool { bytes.count == 4 }

    /// inet_ntop form: what the connection pin compares against.
    var description: String { InetAddress.format(bytes) }

    /// The IPv4 address embedded in an IPv4-mapped (`::ffff:a.b.c.d`) IPv6 address.
    var mappedV4: IPAddress? {
        guard bytes.count == 16, bytes[0..<10].allSatisfy({ $0 == 0 }), bytes[10] == 0xff, bytes[11] == 0xff else {
            return nil
        }
        return IPAddress(bytes: Array(bytes[12..<16]))
    }
}

/// Whether `text` is a CIDR the broker accepts (`10.0.0.0/8`, `fc00::/7`): the check an operator
/// override's `allowedPrivateCIDRs` passes before a worker starts.
public func isValidCIDR(_ text: String) -> Bool { CIDR(text) != nil }

/// A network in CIDR notation (`10.0.0.0/8`, `fc00::/7`).
struct CIDR: CustomStringConvertible {
    let network: IPAddress
    let prefix: Int

    init?(_ text: String) {
        let parts = text.split(separator: "/", omittingEmptySubsequences: false)
        guard parts.count == 2, let addr = IPAddress(String(parts[0])), let p = Int(parts[1]),
            p >= 0, p <= addr.bytes.count * 8
        else { return nil }
        network = addr
        prefix = p
    }

    func contains(_ a: IPAddress) -> Bool {
        guard a.bytes.count == network.bytes.count else { return false }
        var bits = prefix
        for i in 0..<a.bytes.count where bits > 0 {
            let mask: UInt8 = bits >= 8 ? 0xff : ~(0xff >> UInt8(bits))
            if a.bytes[i] & mask != network.bytes[i] & mask { return false }
            bits -= 8
        }
        return true
    }

    var description: String { "\(network)/\(prefix)" }
}

/// Which addresses `net.request` may connect to.
///
/// An egress proxy that connects wherever DNS points is an SSRF gateway into the host's own
/// network: the 2019 Capital One breach read IAM credentials from the EC2 metadata service at
/// 169.254.169.254 through such a proxy. So every resolved address must be public unicast:
/// loopback, RFC 1918, CGNAT, link-local (metadata), ULA (incl. AWS's fd00:ec2::254), multicast,
/// unspecified, documentation/benchmark ranges, and IPv6 transition forms that embed an IPv4
/// address (NAT64, 6to4, Teredo, IPv4-compatible) are refused; IPv4-mapped IPv6 is judged by
/// its IPv4 address. Tests exempt ranges with `allowedPrivateCIDRs`.
struct NetAddressPolicy {
    static let forbidden: [CIDR] = [
        "0.0.0.0/8", "10.0.0.0/8", "100.64.0.0/10", "127.0.0.0/8", "169.254.0.0/16", "172.16.0.0/12",
        "192.0.0.0/24", "192.0.2.0/24", "192.88.99.0/24", "192.168.0.0/16", "198.18.0.0/15", "198.51.100.0/24",
        "203.0.113.0/24", "224.0.0.0/4", "240.0.0.0/4",
        "::/96", "::1/128", "64:ff9b::/96", "64:ff9b:1::/48", "100::/64", "2001::/32", "2001:db8::/32", "2002::/16",
        "fc00::/7", "fe80::/10", "fec0::/10", "ff00::/8",
    ].compactMap(CIDR.init)

    /// Cloud metadata endpoints (AWS/GCP/Azure 169.254.169.254, AWS ECS 169.254.170.2, AWS IPv6
    /// fd00:ec2::254, Alibaba 100.100.100.200): refused even inside an exempt range, because
    /// credentials sit behind them.
    static let metadata: [CIDR] = [
        "169.254.169.254/32", "169.254.170.2/32", "fd00:ec2::254/128", "100.100.100.200/32",
    ].compactMap(CIDR.init)

    let exempt: [CIDR]

    /// Throws INTERNAL for a malformed CIDR in the configuration (fail at start, not per call).
    init(allowedPrivateCIDRs: [String]) throws(MiniAppError) {
        var list: [CIDR] = []
        for text in allowedPrivateCIDRs {
            guard let c = CIDR(text) else {
                throw MiniAppError(.internal, "net: allowedPrivateCIDRs entry '\(text)' is not a CIDR like 127.0.0.0/8")
            }
            list.append(c)
        }
        exempt = list
    }

    /// True when the address is public unicast, or inside an exempt range — the daemon's, or
    /// `extra` (the caller's own, from an operator override) — but metadata never.
    func permits(_ a: IPAddress, extra: [CIDR] = []) -> Bool {
        if let v4 = a.mappedV4 { return permits(v4, extra: extra) }
        if Self.metadata.contains(where: { $0.contains(a) }) { return false }
        if exempt.contains(where: { $0.contains(a) }) || extra.contains(where: { $0.contains(a) }) { return true }
        return !Self.forbidden.contains { $0.contains(a) }
    }

    /// Resolves `host` (an ASCII DNS name) to its addresses with getaddrinfo(3), or from the
    /// override table. Blocking: runs on the HTTP client's threads only.
    static func resolve(_ host: String, override: [String: [String]]) -> [IPAddress] {
        if let fixed = override[host] { return fixed.compactMap(IPAddress.init) }
        let out = InetAddress.resolve(host).map(IPAddress.init(bytes:))
        var seen = Set<IPAddress>()
        return out.filter { seen.insert($0).inserted }
    }

    /// True when `host` is any numeric IPv4 form getaddrinfo/inet_aton would accept
    /// (`127.1`, `2130706433`, `0x7f.1`) or an IPv6 literal.
    static func isIPLiteral(_ host: String) -> Bool {
        if host.hasPrefix("[") { return true }
        if InetAddress.isLegacyIPv4(host) { return true }
        // WHATWG URL: a host whose last label is numeric is parsed as IPv4; refuse those too.
        if let last = host.split(separator: ".").last, last.allSatisfy({ $0.isNumber }) { return true }
        return false
    }
}
