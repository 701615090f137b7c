import Foundation
import MiniAppBroker
import MiniAppJSON
import MiniAppModel
import MiniAppTestSupport
import Synchronization
import Testing

/// A real HTTPS server on 127.0.0.1 with a test CA made by the `openssl` CLI. The names the
/// tests use all resolve to it through the resolver override.
final class TLSServer {
    let dir: String
    let server: FixtureServer
    var port: Int { server.port }

    /// Names the DNS-rebinding test answers itself (`RebindingResolver`).
    static let rebindingNames = ["flip.partner.test", "trap.partner.test", "hop.partner.test"]

    static let names = [
        "api.partner.test", "cdn.partner.test", "x.cdn.partner.test", "a.b.cdn.partner.test", "other.partner.test",
        "evil.test",
    ]

    init() throws {
        dir = try makeTempDir("tls")
        let san = (Self.names + ["rebind.partner.test", "meta.partner.test"] + Self.rebindingNames).map { "DNS:\($0)" }
            .joined(separator: ",")
        let steps: [[String]] = [
            ["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-keyout", "ca.key",
             "-out", "ca.pem", "-days", "2", "-subj", "/CN=miniappd test CA",
             "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign,cRLSign"],
            ["req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-keyout", "server.key",
             "-out", "server.csr", "-subj", "/CN=api.partner.test"],
            ["x509", "-req", "-in", "server.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial",
             "-out", "server.pem", "-days", "2", "-extfile", "ext.cnf"],
        ]
        try "subjectAltName=\(san)\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n"
            .write(toFile: dir + "/ext.cnf", atomically: true, encoding: .utf8)
        for args in steps {
            let r = try runProcess("/usr/bin/openssl", args, cwd: dir)
            guard r.status == 0 else { throw MiniAppError(.internal, "openssl \(args[0]) failed: \(r.err)") }
        }
        server = try FixtureServer([debianPython, packageRoot() + "/Tests/ServiceTests/Fixtures/tls_server.py", dir + "/server.pem", dir + "/server.key"])
    }

    func stop() {
        server.stop()
        removeTree(dir)
    }

    /// A config that trusts the test CA, maps the test names to loopback, allows 127.0.0.0/8
    /// and the server's port.
    func config(_ tweak: (inout ServicesConfig) -> Void = { _ in }) -> ServicesConfig {
        var c = ServicesConfig(hostVersion: "1.0.0")
        c.net.caFile = dir + "/ca.pem"
        c.net.allowedPorts = [port]
        c.net.allowedPrivateCIDRs = ["127.0.0.0/8"]
        var map: [String: [String]] = [:]
        for n in Self.names { map[n] = ["127.0.0.1"] }
        map["rebind.partner.test"] = ["10.1.2.3"]
        map["meta.partner.test"] = ["169.254.169.254"]
        map["mixed.partner.test"] = ["127.0.0.1", "10.9.9.9"]
        c.net.resolverOverride = map
        tweak(&c)
        return c
    }

    func url(_ host: String, _ path: String) -> String { "https://\(host):\(port)\(path)" }
}

func withTLSServer(_ body: (TLSServer) async throws -> Void) async throws {
    let server = try TLSServer()
    defer { server.stop() }
    try await body(server)
}

@Suite struct NetServiceTests {
    static let program = caller(
        "com.partner.loans", domains: ["api.partner.test", "*.cdn.partner.test", "meta.partner.test", "rebind.partner.test", "mixed.partner.test"],
        permissions: ["network"])

    func request(_ net: NetService, _ url: String, _ extra: [(String, JSONValue)] = []) async -> Result<JSONValue, MiniAppError> {
        var params: JSONObject = ["url": .string(url)]
        for (k, v) in extra { params[k] = v }
        return await call(net, "net.request", .object(params), as: Self.program)
    }

    @Test func allowAndDenyTable() async throws {
        try await withTLSServer { server in
            let net = try NetService(config: server.config())
            let cases: [(String, String, ErrorCode?)] = [
                ("allowed exact domain", server.url("api.partner.test", "/ok"), nil),
                ("wildcard subdomain", server.url("x.cdn.partner.test", "/ok"), nil),
                ("wildcard deeper subdomain", server.url("a.b.cdn.partner.test", "/ok"), nil),
                ("wildcard never matches the apex", server.url("cdn.partner.test", "/ok"), .domainNotAllowed),
                ("disallowed domain", server.url("evil.test", "/ok"), .domainNotAllowed),
                ("sibling of an exact domain", server.url("other.partner.test", "/ok"), .domainNotAllowed),
                ("http scheme", "http://api.partner.test:\(server.port)/ok", .invalidParams),
                ("IPv4 literal", server.url("127.0.0.1", "/ok"), .domainNotAllowed),
                ("decimal IPv4 literal", server.url("2130706433", "/ok"), .domainNotAllowed),
                ("IPv6 literal", server.url("[::1]", "/ok"), .domainNotAllowed),
                ("userinfo hiding the real host", "https://api.partner.test@evil.test:\(server.port)/ok", .invalidParams),
                ("credentials in URL", "https://u:p@api.partner.test:\(server.port)/ok", .invalidParams),
                ("rebinding to a private address", server.url("rebind.partner.test", "/ok"), .domainNotAllowed),
                ("cloud metadata address", server.url("meta.partner.test", "/ok"), .domainNotAllowed),
                ("one private address among several", server.url("mixed.partner.test", "/ok"), .domainNotAllowed),
                ("ftp scheme", "ftp://api.partner.test/x", .invalidParams),
                ("upper-case host is the same host", "https://API.Partner.TEST:\(server.port)/ok", nil),
                ("fragment hiding the real host", "https://evil.test:\(server.port)#@api.partner.test/ok", .domainNotAllowed),
                ("allowed name as a prefix", server.url("api.partner.test.evil.test", "/ok"), .domainNotAllowed),
                ("hex IPv4 literal", server.url("0x7f.1", "/ok"), .domainNotAllowed),
                ("percent-encoded host, decoded by the parser that also fetches", server.url("api%2epartner.test", "/ok"), nil),
                ("percent-encoded disallowed host", server.url("evil%2etest", "/ok"), .domainNotAllowed),
                ("backslash trick", "https://api.partner.test\\@evil.test:\(server.port)/ok", .invalidParams),
                ("IPv4-mapped IPv6 literal", server.url("[::ffff:127.0.0.1]", "/ok"), .domainNotAllowed),
                ("not a URL", "api.partner.test/ok", .invalidParams),
            ]
            for (name, url, expected) in cases {
                let r = await request(net, url)
                #expect(r.code == expected, "\(name): \(r)")
                if expected == nil {
                    #expect(r.value?["status"] == 200, "\(name)")
                    #expect(r.value?["body"]?.stringValue?.hasPrefix("hello from") == true, "\(name)")
                }
            }
        }
    }

    @Test func port443OnlyByDefault() async throws {
        try await withTLSServer { server in
            let net = try NetService(config: server.config { $0.net.allowedPorts = [443] })
            #expect(await request(net, server.url("api.partner.test", "/ok")).code == .invalidParams)
        }
    }

    @Test func untrustedCertificateFails() async throws {
        try await withTLSServer { server in
            let net = try NetService(config: server.config { $0.net.caFile = nil })  // system CAs do not know the test CA
            #expect(await request(net, server.url("api.partner.test", "/ok")).code == .hostUnavailable)
        }
    }

    @Test func responseShapeHeadersAndBodies() async throws {
        try await withTLSServer { server in
            let net = try NetService(config: server.config())
            let ok = try #require(await request(net, server.url("api.partner.test", "/ok")).value)
            #expect(ok["headers"]?["x-test"] == "1")
            #expect(ok["headers"]?["set-cookie"] == "a=1, b=2")
            #expect(ok["bodyEncoding"] == "utf8")
            let bin = try #require(await request(net, server.url("api.partner.test", "/binary")).value)
            #expect(bin["bodyEncoding"] == "base64")
            #expect(bin["body"]?.stringValue.flatMap { Data(base64Encoded: $0) } == Data((0...255).map { UInt8($0) }))
            let echo = try #require(await request(
                net, server.url("api.partner.test", "/echo"),
                [("method", "post"), ("body", ["base64": "AAEC"]),
                 ("headers", ["X-A": "b", "Host": "evil.test", "Connection": "close", "Cookie": "s=1"])]).value)
            let doc = try JSONValue.parse(try #require(echo["body"]?.stringValue))
            #expect(doc["method"] == "POST")
            #expect(doc["body"] == "AAEC")
            #expect(doc["headers"]?["x-a"] == "b")
            #expect(doc["headers"]?["cookie"] == "s=1")
            #expect(doc["headers"]?["host"] == .string("api.partner.test:\(server.port)"))
            #expect(doc["headers"]?["user-agent"] == "miniappd/1.0.0")
        }
    }

    @Test func invalidRequests() async throws {
        try await withTLSServer { server in
            let net = try NetService(config: server.config { $0.net.maxRequestBodyBytes = 4 })
            let u = server.url("api.partner.test", "/echo")
            #expect(await request(net, u, [("method", "CONNECT")]).code == .invalidParams)
            #expect(await request(net, u, [("headers", ["X-A": "a\r\nInjected: 1"])]).code == .invalidParams)
            #expect(await request(net, u, [("headers", ["Bad Name": "x"])]).code == .invalidParams)
            #expect(await request(net, u, [("method", "POST"), ("body", "12345")]).code == .invalidParams)
            #expect(await request(net, u, [("body", "x")]).code == .invalidParams)  // GET with a body
            #expect(await request(net, u, [("body", 5)]).code == .invalidParams)
            #expect(await request(net, u, [("extra", 1)]).code == .invalidParams)
            #expect(await call(net, "net.request", nil, as: Self.program).code == .invalidParams)
        }
    }

    @Test func redirectsAreCheckedAgain() async throws {
        try await withTLSServer { server in
            let net = try NetService(config: server.config { $0.net.maxRedirects = 3 })
            func via(_ target: String, code: Int = 302) -> String {
                let enc = target.addingPercentEncoding(withAllowedCharacters: .alphanumerics) ?? target
                return server.url("api.partner.test", "/redirect?code=\(code)&to=\(enc)")
            }
            let followed = await request(net, via(server.url("x.cdn.partner.test", "/ok")))
            #expect(followed.value?["status"] == 200)
            #expect(followed.value?["body"] == .string("hello from x.cdn.partner.test:\(server.port)"))
            #expect(await request(net, via("/ok")).value?["status"] == 200)  // relative Location
            #expect(await request(net, via(server.url("evil.test", "/ok"))).code == .domainNotAllowed)
            #expect(await request(net, via(server.url("rebind.partner.test", "/ok"))).code == .domainNotAllowed)
            #expect(await request(net, via("https://169.254.169.254/latest/meta-data/")).code != nil)
            #expect(await request(net, via("http://api.partner.test:\(server.port)/ok")).code == .invalidParams)
            let loop = server.url("api.partner.test", "/redirect?to=%2Fredirect%3Fto%3D%252Fok")
            #expect(await request(net, via(via(via(loop)))).code == .invalidParams)  // > 3 hops
            // 303 turns POST into GET; a 307 keeps it.
            let r303 = try #require(await request(net, via("/echo", code: 303), [("method", "POST"), ("body", "x")]).value)
            #expect(try JSONValue.parse(try #require(r303["body"]?.stringValue))["method"] == "GET")
            let r307 = try #require(await request(net, via("/echo", code: 307), [("method", "POST"), ("body", "x")]).value)
            #expect(try JSONValue.parse(try #require(r307["body"]?.stringValue))["method"] == "POST")
        }
    }

    @Test func crossOriginRedirectDropsCredentials() async throws {
        try await withTLSServer { server in
            let net = try NetService(config: server.config())
            let target = server.url("x.cdn.partner.test", "/echo").addingPercentEncoding(withAllowedCharacters: .alphanumerics)!
            let r = try #require(await request(
                net, server.url("api.partner.test", "/redirect?to=\(target)"),
                [("headers", ["Authorization": "Bearer t", "Cookie": "c=1", "X-Keep": "k"])]).value)
            let doc = try JSONValue.parse(try #require(r["body"]?.stringValue))
            #expect(doc["headers"]?["authorization"] == nil)
            #expect(doc["headers"]?["cookie"] == nil)
            #expect(doc["headers"]?["x-keep"] == "k")
        }
    }

    @Test func sizeAndTimeLimits() async throws {
        try await withTLSServer { server in
            let net = try NetService(config: server.config {
                $0.net.maxResponseBytes = 1000
                $0.net.totalTimeoutSeconds = 1
            })
            #expect(await request(net, server.url("api.partner.test", "/big?n=1000")).value?["status"] == 200)
            let big = await request(net, server.url("api.partner.test", "/big?n=1001"))
            #expect(big.code == .quotaExceeded)
            #expect(await request(net, server.url("api.partner.test", "/slow?s=3")).code == .timeout)
        }
    }

    /// One program cannot hold more than its share of the daemon's request threads.
    @Test func perProgramConcurrencyCap() async throws {
        try await withTLSServer { server in
            let net = try NetService(config: server.config { $0.net.maxConcurrentRequestsPerProgram = 1 })
            let slowURL = server.url("api.partner.test", "/slow?s=2")
            // The slow call retries while a probe holds the slot, so whichever comes first, it
            // takes the slot in the end; the probes go on until one is turned away (the cap seen)
            // or the slow call has finished. No sleep decides the order.
            let slowDone = DoneFlag()
            async let slow: Result<JSONValue, MiniAppError> = {
                var r = await request(net, slowURL)
                while r.code == .rateLimited { r = await request(net, slowURL) }
                slowDone.value.withLock { $0 = true }
                return r
            }()
            var second: ErrorCode? = nil
            while !slowDone.value.withLock({ $0 }) {
                second = await request(net, server.url("api.partner.test", "/ok")).code
                if second == .rateLimited { break }
            }
            #expect(second == .rateLimited)
            #expect(await slow.value?["status"] == 200)
            let other = caller("com.other.app", domains: ["api.partner.test"], permissions: ["network"])
            #expect(await call(net, "net.request", ["url": .string(server.url("api.partner.test", "/ok"))], as: other).code == nil)
        }
    }

    /// DNS rebinding: the resolver's answer changes after the first lookup. The daemon looks a
    /// name up once per hop, checks that answer, and connects to exactly that address.
    @Test func connectionIsPinnedToTheCheckedAnswer() async throws {
        try await withTLSServer { server in
            let resolver = RebindingResolver([
                // Checked: the server. Any later lookup would say 10.1.2.3 (refused): never made.
                "flip.partner.test": (["127.0.0.1"], ["10.1.2.3"]),
                // Checked: 127.0.0.3, where nothing listens. A later lookup would find the
                // server: the request fails, so the connect used the checked address.
                "trap.partner.test": (["127.0.0.3"], ["127.0.0.1"]),
                // A redirect is a new hop: looked up and checked again (the rebinding-by-
                // redirect variant), and this time the answer is private.
                "hop.partner.test": (["127.0.0.1"], ["10.1.2.3"]),
            ])
            let net = try NetService(config: server.config { $0.net.resolverHook = resolver.lookup })
            let anyPartner = caller("com.partner.loans", domains: ["*.partner.test"], permissions: ["network"])
            func get(_ host: String, _ path: String) async -> Result<JSONValue, MiniAppError> {
                await call(net, "net.request", ["url": .string(server.url(host, path))], as: anyPartner)
            }
            let flipped = await get("flip.partner.test", "/ok")
            #expect(flipped.value?["status"] == 200, "\(flipped)")
            #expect(resolver.lookups("flip.partner.test") == 1)
            let trapped = await get("trap.partner.test", "/ok")
            #expect(trapped.code == .hostUnavailable, "\(trapped)")
            #expect(resolver.lookups("trap.partner.test") == 1)
            let hopped = await get("hop.partner.test", "/redirect?to=%2Fok")
            #expect(hopped.code == .domainNotAllowed, "\(hopped)")
            #expect(resolver.lookups("hop.partner.test") == 2)
        }
    }

    @Test(arguments: [
        ("api.example.com", ["api.example.com"], true), ("API.example.com", ["api.example.com"], false),
        ("a.example.com", ["*.example.com"], true), ("a.b.example.com", ["*.example.com"], true),
        ("example.com", ["*.example.com"], false), ("badexample.com", ["*.example.com"], false),
        ("example.com.evil.test", ["example.com"], false), ("x.example.com", ["*.EXAMPLE.com"], true),
        ("x", ["*."], false),
    ])
    func domainMatching(_ host: String, _ patterns: [String], _ allowed: Bool) {
        // Hosts reach the matcher lowercased by the URL parser; patterns are lowercased here.
        #expect(NetService.domainAllowed(host, patterns: patterns) == allowed)
    }
}

/// A resolver whose answer for a name changes after the first lookup, counting lookups.
final class RebindingResolver: Sendable {
    private let state: Mutex<[String: (first: [String], later: [String], count: Int)]>

    init(_ script: [String: ([String], [String])]) {
        state = Mutex(script.mapValues { (first: $0.0, later: $0.1, count: 0) })
    }

    /// The hook for `ServicesConfig.Net.resolverHook`.
    var lookup: @Sendable (String) -> [String] {
        { [self] host in
            state.withLock { s in
                guard var entry = s[host] else { return [] }
                entry.count += 1
                s[host] = entry
                return entry.count == 1 ? entry.first : entry.later
            }
        }
    }

    /// How many times `host` was looked up.
    func lookups(_ host: String) -> Int { state.withLock { $0[host]?.count ?? 0 } }
}

/// An operator's per-program `allowedPrivateCIDRs` (partner or program override, carried by the
/// caller's identity) opens exactly that network for that program, never metadata.
@Suite struct NetPrivateNetworkOverrideTests {
    @Test func theCallersOwnPrivateNetworksAreReachableOnlyForIt() async throws {
        try await withTLSServer { server in
            let net = try NetService(config: server.config { $0.net.allowedPrivateCIDRs = [] })
            let domains = ["api.partner.test", "meta.partner.test"]
            let plain = caller("com.partner.plain", domains: domains, permissions: ["network"])
            var opened = caller("com.partner.opened", domains: domains, permissions: ["network"])
            opened.allowedPrivateCIDRs = ["127.0.0.0/8", "169.254.0.0/16"]
            let url = JSONValue.object(["url": .string(server.url("api.partner.test", "/ok"))])
            let refused = await call(net, "net.request", url, as: plain)
            #expect(refused.code == .domainNotAllowed, "\(refused)")
            let allowed = await call(net, "net.request", url, as: opened)
            #expect(allowed.value?["status"] == 200, "\(allowed)")
            // Metadata stays refused even inside a listed range.
            let meta = await call(net, "net.request", .object(["url": .string(server.url("meta.partner.test", "/ok"))]), as: opened)
            #expect(meta.code == .domainNotAllowed, "\(meta)")
        }
    }
}

/// A flag one task sets and another polls.
private final class DoneFlag: Sendable {
    let value = Mutex(false)
}
