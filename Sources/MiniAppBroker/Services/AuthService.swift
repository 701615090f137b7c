public import MiniAppJSON
public import MiniAppModel
internal import MiniAppSystem
internal import Synchronization

/// `auth.getToken {scope?}` → `{token, expiresAt}`: a short-lived JWT (RFC 7519) that a
/// program hands to its partner's backend, which verifies it with the keys of the control
/// method `auth.keys` (`jwks()`), with any JWT library.
///
/// Token: header `{"alg":"EdDSA","typ":"JWT","kid":…}` (RFC 8037), claims
/// - `iss`: `config.auth.issuer`;
/// - `sub`: the user id the host set with `session.set` (`setSession`);
/// - `aud`: the calling program's id, from the connection — a token minted for program A is
///   useless to a backend expecting program B (token-substitution defence);
/// - `scope`: space-separated, each requested scope must be in `config.auth.allowedScopes`
///   (else INVALID_PARAMS); default `config.auth.defaultScope`;
/// - `iat`, `exp` = `iat` + 900 (15 minutes: a leaked token is short-lived), `jti` (128 random
///   bits, for replay detection by the backend);
/// - the session claims whose names are in `config.auth.forwardedClaims` (default none). The
///   host's session may hold its master session token or PII: nothing reaches a program unless
///   the operator lists it (fail closed). Registered names above can never be overridden.
///
/// Without a session, `auth.getToken` answers **PERMISSION_DENIED** with `data.reason =
/// "no-session"` and the message "no user session: the host must call session.set" — the
/// program is not allowed a user token until a user is signed in.
///
/// The signing key is Ed25519, kept in `stateDirectory/config.auth.keyFileName` (PKCS#8 PEM,
/// 0600), created on first start and reused across restarts so tokens stay verifiable.
public final class AuthService: BridgeService {
    public let methods = ["auth.getToken"]
    /// Token lifetime in seconds: fixed by the spec (cli-and-config.md, "Tokens").
    public static let tokenLifetime: Int64 = 900

    private struct Session {
        var userId: String
        var claims: JSONObject
    }

    /// The bytes every token header starts with; the `kid` value and `"}` follow. Written out
    /// rather than built from a `JSONValue`, so the prefix below is the header by construction.
    static let fixedHeader = Array(#"{"alg":"EdDSA","typ":"JWT","kid":""#.utf8)

    /// What every token this daemon issues starts with, whatever its key: the base64url form of
    /// the header's fixed bytes, cut at a multiple of 3 so the encoding does not depend on what
    /// follows (`eyJhbGciOiJFZERTQSIsInR5cCI6IkpXVCIsImtpZCI6`). The inspector and the audit log
    /// redact any string containing it (`Redactor`): a program can carry its token under any
    /// name, inside a storage value or a request body.
    public static let issuedTokenPrefix = Ed25519Base64URL.encode(fixedHeader.prefix(fixedHeader.count / 3 * 3))

    private let key: Ed25519PrivateKey
    private let kid: String
    /// The public half of the signing key, as `auth.keys` publishes it.
    public let publicKey: PublicJWK
    private let config: ServicesConfig.Auth
    private let session = Mutex<Session?>(nil)
    private let now: @Sendable () -> Int64

    /// Loads or creates the signing key in `stateDirectory`. `now` returns Unix seconds
    /// (injectable for tests; defaults to the system clock).
    public init(
        stateDirectory: String, config: ServicesConfig,
        now: (@Sendable () -> Int64)? = nil
    ) throws(MiniAppError) {
        self.config = config.auth
        self.now = now ?? { WallClock.unixSeconds() }
        let path = stateDirectory + "/" + config.auth.keyFileName
        do {
            key = try Ed25519PrivateKey.loadOrCreate(path: path)
            let x = Ed25519Base64URL.encode(try key.rawPublicKey())
            // RFC 7638 thumbprint: members in lexicographic order, no whitespace.
            let thumbprintInput = Array("{\"crv\":\"Ed25519\",\"kty\":\"OKP\",\"x\":\"\(x)\"}".utf8)
            kid = Ed25519Base64URL.encode(ed25519SHA256(thumbprintInput))
            publicKey = PublicJWK(x: x, kid: kid)
        } catch {
            throw MiniAppError(
                .internal, "cannot load or create the token signing key \(path); check its mode (0600) and owner",
                cause: error)
        }
    }

    /// Sets the signed-in user (control method `session.set {userId, claims?}`). Replaces any
    /// previous session. Throws INVALID_PARAMS for an empty or over-long user id.
    public func setSession(userId: String, claims: JSONObject? = nil) throws(MiniAppError) {
        if userId.isEmpty || userId.utf8.count > 256 {
            throw MiniAppError(.invalidParams, "session.set: userId must be 1…256 bytes")
        }
        let kept = claims ?? JSONObject()
        session.withLock { $0 = Session(userId: userId, claims: kept) }
    }

    /// Forgets the session (sign-out): later `auth.getToken` calls answer PERMISSION_DENIED.
    public func clearSession() {
        session.withLock { $0 = nil }
    }

    /// The verification keys for `auth.keys`: `{keys:[{kty:"OKP", crv:"Ed25519", x, kid,
    /// use:"sig", alg:"EdDSA"}]}` (RFC 7517 JWK Set).
    public func jwks() -> JSONValue {
        ["keys": [publicKey.json]]
    }

    /// The `kid` of the current signing key (its RFC 7638 thumbprint).
    public var keyId: String { kid }

    public func handle(method: String, params: JSONValue?, caller: CallerIdentity, reply: @escaping BridgeReply) {
        do throws(MiniAppError) {
            guard method == "auth.getToken" else { throw MiniAppError.unservedMethod(method, service: "auth") }
            let p = try ServiceParams(params, method: method, allowed: ["scope"])
            let scope = try validScope(try p.string("scope"))
            guard let current = session.withLock({ $0 }) else {
                throw MiniAppError(
                    .permissionDenied, "no user session: the host must call session.set", data: ["reason": "no-session"])
            }
            reply(.success(try mint(for: caller, session: current, scope: scope)))
        } catch {
            reply(.failure(error))
        }
    }

    private func validScope(_ requested: String?) throws(MiniAppError) -> String {
        guard let requested else { return config.defaultScope }
        let parts = requested.split(separator: " ", omittingEmptySubsequences: true).map(String.init)
        if parts.isEmpty { throw MiniAppError(.invalidParams, "auth.getToken: scope must not be empty") }
        var seen: [String] = []
        for part in parts where !seen.contains(part) {
            if !config.allowedScopes.contains(part) {
                let allowed = config.allowedScopes.sorted().joined(separator: ", ")
                throw MiniAppError(.invalidParams, "auth.getToken: scope '\(part)' is not allowed (allowed: \(allowed))")
            }
            seen.append(part)
        }
        return seen.joined(separator: " ")
    }

    private static let registeredClaims: Set<String> = ["iss", "sub", "aud", "scope", "iat", "exp", "nbf", "jti"]

    private func mint(for caller: CallerIdentity, session: Session, scope: String) throws(MiniAppError) -> JSONValue {
        let iat = now()
        let exp = iat + Self.tokenLifetime
        var jtiBytes = [UInt8](repeating: 0, count: 16)
        var rng = SystemRandomNumberGenerator()  // getrandom(2): a CSPRNG
        for i in jtiBytes.indices { jtiBytes[i] = rng.next() }
        var claims: JSONObject = [
            "iss": .string(config.issuer), "sub": .string(session.userId), "aud": .string(caller.programId),
            "scope": .string(scope), "iat": .int(iat), "exp": .int(exp), "jti": .string(Ed25519Base64URL.encode(jtiBytes)),
        ]
        for (name, value) in session.claims
        where config.forwardedClaims.contains(name) && !Self.registeredClaims.contains(name) {
            claims[name] = value
        }
        // kid is base64url: no JSON escaping needed.
        let header = Self.fixedHeader + Array(kid.utf8) + Array(#""}"#.utf8)
        let signingInput =
            Ed25519Base64URL.encode(header) + "." + Ed25519Base64URL.encode(JSONValue.object(claims).serialized())
        let signature: [UInt8]
        do {
            signature = try key.sign(Array(signingInput.utf8))
        } catch {
            throw MiniAppError(.internal, "could not sign the token", cause: error)
        }
        let token = signingInput + "." + Ed25519Base64URL.encode(signature)
        return ["token": .string(token), "expiresAt": .int(exp)]
    }
}

/// Wall-clock Unix seconds (JWT times are wall-clock, not monotonic).
enum WallClock {
    static func unixSeconds() -> Int64 {
        wallClockMicros() / 1_000_000
    }
}

/// An Ed25519 verification key as an RFC 7517 JWK (RFC 8037 `OKP`): `{kty:"OKP", crv:"Ed25519",
/// x, kid, use:"sig", alg:"EdDSA"}`.
public struct PublicJWK: Sendable, Equatable {
    /// The raw public key, base64url without padding.
    public var x: String
    /// Its RFC 7638 thumbprint.
    public var kid: String

    /// The key's own RFC 7517 serialization (the members a JWK Set lists).
    public var json: JSONValue {
        ["kty": "OKP", "crv": "Ed25519", "x": .string(x), "kid": .string(kid), "use": "sig", "alg": "EdDSA"]
    }
}
