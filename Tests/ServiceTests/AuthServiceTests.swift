import Foundation
import MiniAppBroker
import MiniAppJSON
import MiniAppModel
import Testing

/// Debian's python3 with python3-jwt and python3-cryptography: an independent JWT implementation.
let debianPython = "/usr/bin/python3"

@Suite struct AuthServiceTests {
    static let verifier = """
        import json, sys, jwt
        token, jwks_path, aud = sys.argv[1], sys.argv[2], sys.argv[3]
        jwks = json.load(open(jwks_path))
        header = jwt.get_unverified_header(token)
        keys = [k for k in jwks["keys"] if k["kid"] == header["kid"]]
        assert len(keys) == 1, "kid not in JWKS"
        key = jwt.PyJWK(keys[0]).key
        claims = jwt.decode(token, key, algorithms=["EdDSA"], audience=aud, options={"require": ["exp", "iat", "sub", "aud", "iss", "jti"]})
        print(json.dumps({"header": header, "claims": claims}))
        """

    func verify(_ token: String, jwks: JSONValue, audience: String, dir: String) throws -> JSONValue {
        let jwksPath = dir + "/jwks.json"
        let script = dir + "/verify.py"
        try Data(jwks.serialized()).write(to: URL(fileURLWithPath: jwksPath))
        try Self.verifier.write(toFile: script, atomically: true, encoding: .utf8)
        let r = try runProcess(debianPython, [script, token, jwksPath, audience])
        guard r.status == 0 else { throw MiniAppError(.internal, "PyJWT refused the token: \(r.err)") }
        return try JSONValue.parse(r.out)
    }

    @Test func tokenVerifiesWithPyJWT() async throws {
        try #require(
            (try? runProcess(debianPython, ["-c", "import jwt, cryptography"]).status) == 0,
            "install python3-jwt and python3-cryptography (apt-get install python3-jwt python3-cryptography)")
        let dir = try makeTempDir("auth")
        defer { removeTree(dir) }
        var config = ServicesConfig(hostVersion: "1")
        config.auth.allowedScopes = ["basic", "profile"]
        config.auth.forwardedClaims = ["tier"]
        let auth = try AuthService(stateDirectory: dir, config: config)
        try auth.setSession(userId: "user-42", claims: ["tier": "gold", "masterToken": "SECRET", "aud": "evil"])
        let r = await call(auth, "auth.getToken", ["scope": "profile basic"], as: caller("com.partner.loans"))
        let token = try #require(r.value?["token"]?.stringValue)
        let decoded = try verify(token, jwks: auth.jwks(), audience: "com.partner.loans", dir: dir)
        let claims = try #require(decoded["claims"])
        #expect(decoded["header"] == ["alg": "EdDSA", "typ": "JWT", "kid": .string(auth.keyId)])
        #expect(claims["iss"] == "miniappd")
        #expect(claims["sub"] == "user-42")
        #expect(claims["aud"] == "com.partner.loans")
        #expect(claims["scope"] == "profile basic")
        #expect(claims["tier"] == "gold")
        #expect(claims["masterToken"] == nil)
        let iat = try #require(claims["iat"]?.intValue)
        let exp = try #require(claims["exp"]?.intValue)
        #expect(exp - iat == 900)
        #expect(r.value?["expiresAt"]?.intValue == exp)
        #expect(claims["jti"]?.stringValue?.count == 22)
        // A backend expecting another program refuses it.
        #expect(throws: (any Error).self) { try verify(token, jwks: auth.jwks(), audience: "com.other.app", dir: dir) }
    }

    /// The redaction of issued tokens (inspector, audit) keys on this prefix: every token
    /// must start with it, whatever the key.
    @Test func everyTokenStartsWithTheIssuedTokenPrefix() async throws {
        #expect(AuthService.issuedTokenPrefix == "eyJhbGciOiJFZERTQSIsInR5cCI6IkpXVCIsImtpZCI6")
        for _ in 0..<2 {
            let dir = try makeTempDir("auth")
            defer { removeTree(dir) }
            let auth = try AuthService(stateDirectory: dir, config: ServicesConfig(hostVersion: "1"))
            try auth.setSession(userId: "u")
            let token = try #require(await call(auth, "auth.getToken", nil, as: caller("com.partner.a")).value?["token"]?.stringValue)
            #expect(token.hasPrefix(AuthService.issuedTokenPrefix))
        }
    }

    @Test func keyPersistsAcrossRestarts() throws {
        let dir = try makeTempDir("auth")
        defer { removeTree(dir) }
        let config = ServicesConfig(hostVersion: "1")
        let first = try AuthService(stateDirectory: dir, config: config)
        let second = try AuthService(stateDirectory: dir, config: config)
        #expect(first.jwks() == second.jwks())
        let jwk = try #require(first.jwks()["keys"]?.arrayValue?.first)
        #expect(jwk["kty"] == "OKP")
        #expect(jwk["crv"] == "Ed25519")
        #expect(jwk["use"] == "sig")
        #expect(jwk["alg"] == "EdDSA")
        #expect(jwk["x"]?.stringValue?.count == 43)
        let mode = try FileManager.default.attributesOfItem(atPath: dir + "/auth-ed25519.pem")[.posixPermissions] as? Int
        #expect(mode == 0o600)
    }

    @Test func refusesAKeyFileOthersCanRead() throws {
        let dir = try makeTempDir("auth")
        defer { removeTree(dir) }
        let config = ServicesConfig(hostVersion: "1")
        _ = try AuthService(stateDirectory: dir, config: config)
        chmod(dir + "/auth-ed25519.pem", 0o644)
        #expect(throws: MiniAppError.self) { try AuthService(stateDirectory: dir, config: config) }
    }

    @Test func noSessionIsPermissionDenied() async throws {
        let dir = try makeTempDir("auth")
        defer { removeTree(dir) }
        let auth = try AuthService(stateDirectory: dir, config: ServicesConfig(hostVersion: "1"))
        let r = await call(auth, "auth.getToken", nil, as: caller("com.a.app"))
        #expect(r.code == .permissionDenied)
        if case .failure(let e) = r {
            #expect(e.message.contains("session.set"))
            #expect(e.data["reason"] == "no-session")
        }
        try auth.setSession(userId: "u")
        #expect(await call(auth, "auth.getToken", nil, as: caller("com.a.app")).code == nil)
        auth.clearSession()
        #expect(await call(auth, "auth.getToken", nil, as: caller("com.a.app")).code == .permissionDenied)
        #expect(throws: MiniAppError.self) { try auth.setSession(userId: "") }
    }

    @Test(arguments: ["admin", "", "basic admin", "  "])
    func scopeOutsideTheAllowedSetIsRefused(_ scope: String) async throws {
        let dir = try makeTempDir("auth")
        defer { removeTree(dir) }
        let auth = try AuthService(stateDirectory: dir, config: ServicesConfig(hostVersion: "1"))
        try auth.setSession(userId: "u")
        #expect(await call(auth, "auth.getToken", ["scope": .string(scope)], as: caller("com.a.app")).code == .invalidParams)
        #expect(await call(auth, "auth.getToken", ["scopes": "basic"], as: caller("com.a.app")).code == .invalidParams)
    }

    @Test func defaultScopeIsBasicAndTokensDiffer() async throws {
        let dir = try makeTempDir("auth")
        defer { removeTree(dir) }
        let auth = try AuthService(stateDirectory: dir, config: ServicesConfig(hostVersion: "1"), now: { 1_700_000_000 })
        try auth.setSession(userId: "u")
        let a = await call(auth, "auth.getToken", nil, as: caller("com.a.app")).value
        let b = await call(auth, "auth.getToken", nil, as: caller("com.a.app")).value
        #expect(a?["expiresAt"] == .int(1_700_000_900))
        #expect(a?["token"] != b?["token"])  // distinct jti
        let payload = try #require(a?["token"]?.stringValue?.split(separator: ".").dropFirst().first)
        var b64 = payload.replacingOccurrences(of: "-", with: "+").replacingOccurrences(of: "_", with: "/")
        while b64.count % 4 != 0 { b64 += "=" }
        let claims = try JSONValue.parse(Array(try #require(Data(base64Encoded: b64))))
        #expect(claims["scope"] == "basic")
    }
}

@Suite struct SmallServicesTests {
    @Test func systemInfo() async {
        let s = SystemInfoService(config: ServicesConfig(hostVersion: "2.0.1"))
        let r = await call(s, "system.info", nil, as: caller("com.a.app"))
        #expect(r.value == ["programId": "com.a.app", "version": "1.2.3", "hostVersion": "2.0.1"])
        #expect(await call(s, "system.info", ["x": 1], as: caller("com.a.app")).code == .invalidParams)
    }

    /// An issued token written to the log is redacted (the rest of the line is kept), as the
    /// inspector and the audit log redact it.
    @Test(arguments: ["t=%@ end", "%@", "Bearer %@.%@", "\u{0600}%@"])
    func logWriteRedactsIssuedTokens(_ shape: String) async throws {
        let lines = LockedLines()
        let s = LogService(config: ServicesConfig(hostVersion: "1")) { _, _, _, message in lines.append(message) }
        let token = AuthService.issuedTokenPrefix + "eyJzdWIiOiJ1In0.c2lnbmF0dXJlLWJ5dGVz"
        let message = shape.replacingOccurrences(of: "%@", with: token)
        #expect(await call(s, "log.write", ["level": "info", "message": .string(message)], as: caller("com.a.app")).value == [:])
        let logged = try #require(lines.all.first)
        #expect(Array(logged.utf8).firstRange(of: Array(AuthService.issuedTokenPrefix.utf8)) == nil, "\(logged)")
        #expect(Array(logged.utf8).firstRange(of: Array("c2lnbmF0dXJlLWJ5dGVz".utf8)) == nil, "\(logged)")
        #expect(logged.contains("[REDACTED]"))
        if shape.hasPrefix("t=") { #expect(logged == "t=[REDACTED] end") }
    }

    @Test func logWriteTagsAndEscapes() async {
        let lines = LockedLines()
        var config = ServicesConfig(hostVersion: "1")
        config.log.maxMessageBytes = 32
        let s = LogService(config: config) { level, program, worker, message in
            lines.append("\(level.rawValue)|\(program)|\(worker)|\(message)")
        }
        let a = caller("com.a.app")
        #expect(await call(s, "log.write", ["level": "warn", "message": "hi\nERROR forged"], as: a).value == [:])
        #expect(lines.all == ["warn|com.a.app|w-com.a.app|hi\\u{a}ERROR forged"])
        #expect(await call(s, "log.write", ["level": "fatal", "message": "x"], as: a).code == .invalidParams)
        #expect(await call(s, "log.write", ["level": "info"], as: a).code == .invalidParams)
        #expect(await call(s, "log.write", ["level": "info", "message": .string(String(repeating: "x", count: 33))], as: a).code == .invalidParams)
        #expect(lines.all.count == 1)
    }
}

final class LockedLines: @unchecked Sendable {
    private let lock = NSLock()
    private var lines: [String] = []
    func append(_ s: String) { lock.lock(); lines.append(s); lock.unlock() }
    var all: [String] { lock.lock(); defer { lock.unlock() }; return lines }
}

@Suite struct BuiltinServicesTests {
    @Test func constructsEveryBuiltInMethodOnce() async throws {
        let root = try makeTempDir("builtin")
        defer { removeTree(root) }
        let dir = root + "/state"
        let services = try BuiltinServices(stateDirectory: dir, config: ServicesConfig(hostVersion: "3.0.0")) { _, _, _, _ in }
        defer { services.shutdown() }
        let methods = services.all.flatMap(\.methods)
        #expect(Set(methods).count == methods.count)
        #expect(Set(methods) == [
            "system.info", "storage.get", "storage.set", "storage.remove", "storage.keys", "auth.getToken", "net.request",
            "log.write",
        ])
        let mode = try FileManager.default.attributesOfItem(atPath: dir)[.posixPermissions] as? Int
        #expect(mode == 0o700)
        #expect(await call(services.system, "system.info", nil, as: caller("com.a.app")).value?["hostVersion"] == "3.0.0")
    }

    /// Two daemons racing to create the key end up with the same key.
    @Test func concurrentKeyCreationAgrees() async throws {
        let dir = try makeTempDir("auth")
        defer { removeTree(dir) }
        let config = ServicesConfig(hostVersion: "1")
        let kids = await withTaskGroup(of: String?.self) { group in
            for _ in 0..<8 { group.addTask { try? AuthService(stateDirectory: dir, config: config).keyId } }
            var out: [String?] = []
            for await k in group { out.append(k) }
            return out
        }
        #expect(kids.allSatisfy { $0 != nil })
        #expect(Set(kids).count == 1)
    }
}
