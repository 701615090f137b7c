@testable import MiniAppBroker
import Testing

@Suite struct NetAddressPolicyTests {
    @Test(arguments: [
        ("8.8.8.8", true), ("1.1.1.1", true), ("2606:4700:4700::1111", true), ("::ffff:8.8.8.8", true),
        ("0.0.0.0", false), ("10.0.0.1", false), ("100.64.0.1", false), ("127.0.0.1", false), ("127.255.0.9", false),
        ("169.254.169.254", false), ("169.254.1.1", false), ("172.16.0.1", false), ("172.31.255.255", false),
        ("192.168.1.1", false), ("198.18.0.1", false), ("224.0.0.1", false), ("255.255.255.255", false),
        ("::", false), ("::1", false), ("::ffff:127.0.0.1", false), ("::ffff:169.254.169.254", false),
        ("fd00:ec2::254", false), ("fc00::1", false), ("fe80::1", false), ("ff02::1", false),
        ("64:ff9b::7f00:1", false), ("2002:7f00:1::1", false), ("2001:db8::1", false), ("2001::1", false),
        ("172.32.0.1", true), ("100.128.0.1", true),
    ])
    func productionPolicy(_ address: String, _ permitted: Bool) throws {
        let policy = try NetAddressPolicy(allowedPrivateCIDRs: [])
        let ip = try #require(IPAddress(address))
        #expect(policy.permits(ip) == permitted)
    }

    @Test func exemptionsNeverCoverMetadata() throws {
        let policy = try NetAddressPolicy(allowedPrivateCIDRs: ["127.0.0.0/8", "169.254.0.0/16", "fd00::/8"])
        #expect(policy.permits(try #require(IPAddress("127.0.0.1"))))
        #expect(policy.permits(try #require(IPAddress("169.254.1.1"))))
        #expect(!policy.permits(try #require(IPAddress("169.254.169.254"))))
        #expect(!policy.permits(try #require(IPAddress("fd00:ec2::254"))))
        #expect(!policy.permits(try #require(IPAddress("10.0.0.1"))))
    }

    @Test(arguments: ["10.0.0.0", "10.0.0.0/33", "x/8", "::/129", ""])
    func malformedCIDRFailsAtStart(_ cidr: String) {
        #expect(throws: (any Error).self) { try NetAddressPolicy(allowedPrivateCIDRs: [cidr]) }
    }

    @Test(arguments: [("127.0.0.1", true), ("2130706433", true), ("0x7f.1", true), ("127.1", true), ("[::1]", true),
                      ("api.example.com", false), ("1e100.net", false), ("example.123", true)])
    func ipLiterals(_ host: String, _ literal: Bool) {
        #expect(NetAddressPolicy.isIPLiteral(host) == literal)
    }
}
