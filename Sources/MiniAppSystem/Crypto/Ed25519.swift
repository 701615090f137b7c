internal import COpenSSL
#if canImport(Glibc)
internal import Glibc
#endif

/// A failed libcrypto or file operation on an Ed25519 key.
public struct Ed25519Error: Error, Sendable, CustomStringConvertible {
    /// What was being done ("keygen", "sign", "load", "save", …).
    public let operation: String
    /// What went wrong, including OpenSSL's error queue or errno text.
    public let message: String

    public init(_ operation: String, _ message: String) {
        self.operation = operation
        self.message = message
    }

    /// Captures (and clears) OpenSSL's thread-local error queue.
    static func openssl(_ operation: String) -> Ed25519Error {
        var parts: [String] = []
        while true {
            let code = ERR_get_error()
            if code == 0 { break }
            var buf = [CChar](repeating: 0, count: 256)
            ERR_error_string_n(code, &buf, buf.count)
            parts.append(String(decoding: buf.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self))
        }
        return Ed25519Error(operation, parts.isEmpty ? "libcrypto failed" : parts.joined(separator: "; "))
    }

    public var description: String { "ed25519 \(operation): \(message)" }
}

/// An Ed25519 private key (RFC 8032) held by libcrypto, for signing JWTs (`alg: EdDSA`,
/// RFC 8037). Deterministic signatures: no per-signature randomness to get wrong (the nonce
/// reuse that leaked the PS3 ECDSA key cannot happen).
public final class Ed25519PrivateKey: @unchecked Sendable {
    // @unchecked: the EVP_PKEY is never mutated after creation, and libcrypto allows concurrent
    // signing with one key when each call uses its own EVP_MD_CTX (as `sign` does).
    private let pkey: OpaquePointer

    private init(pkey: OpaquePointer) { self.pkey = pkey }

    deinit { EVP_PKEY_free(pkey) }

    /// A new random key (libcrypto's CSPRNG).
    public static func generate() throws(Ed25519Error) -> Ed25519PrivateKey {
        guard let ctx = EVP_PKEY_CTX_new_id(EVP_PKEY_ED25519, nil) else { throw .openssl("keygen") }
        defer { EVP_PKEY_CTX_free(ctx) }
        var key: OpaquePointer?
        guard EVP_PKEY_keygen_init(ctx) == 1, EVP_PKEY_keygen(ctx, &key) == 1, let key else {
            throw .openssl("keygen")
        }
        return Ed25519PrivateKey(pkey: key)
    }

    /// Parses a PKCS#8 PEM private key; refuses any key type other than Ed25519.
    public static func fromPEM(_ pem: [UInt8]) throws(Ed25519Error) -> Ed25519PrivateKey {
        // BIO_new_mem_buf does not copy: read while the buffer is pinned (see RSAKey.load).
        let loaded: OpaquePointer?? = pem.withUnsafeBytes { buf -> OpaquePointer?? in
            guard let bio = BIO_new_mem_buf(buf.baseAddress, Int32(buf.count)) else { return .none }
            defer { BIO_free(bio) }
            return .some(PEM_read_bio_PrivateKey(bio, nil, nil, nil))
        }
        guard let result = loaded, let key = result else { throw .openssl("load") }
        if EVP_PKEY_get_id(key) != EVP_PKEY_ED25519 {
            EVP_PKEY_free(key)
            throw Ed25519Error("load", "the key file holds a key that is not Ed25519")
        }
        return Ed25519PrivateKey(pkey: key)
    }

    /// The key as unencrypted PKCS#8 PEM (`-----BEGIN PRIVATE KEY-----`).
    public func pem() throws(Ed25519Error) -> [UInt8] {
        guard let bio = BIO_new(BIO_s_mem()) else { throw .openssl("save") }
        defer { BIO_free(bio) }
        guard PEM_write_bio_PrivateKey(bio, pkey, nil, nil, 0, nil, nil) == 1 else { throw .openssl("save") }
        var out = [UInt8](repeating: 0, count: 4096)
        let n = out.withUnsafeMutableBytes { BIO_read(bio, $0.baseAddress, Int32($0.count)) }
        guard n > 0 else { throw .openssl("save") }
        return Array(out[0..<Int(n)])
    }

    /// The 32-byte raw public key (the JWK `x` member, RFC 8037 §2).
    public func rawPublicKey() throws(Ed25519Error) -> [UInt8] {
        var len = 32
        var out = [UInt8](repeating: 0, count: 32)
        guard EVP_PKEY_get_raw_public_key(pkey, &out, &len) == 1, len == 32 else { throw .openssl("public key") }
        return out
    }

    /// The 64-byte Ed25519 signature of `message` (PureEdDSA: no pre-hash).
    public func sign(_ message: [UInt8]) throws(Ed25519Error) -> [UInt8] {
        guard let ctx = EVP_MD_CTX_new() else { throw .openssl("sign") }
        defer { EVP_MD_CTX_free(ctx) }
        guard EVP_DigestSignInit(ctx, nil, nil, nil, pkey) == 1 else { throw .openssl("sign") }
        var sig = [UInt8](repeating: 0, count: 64)
        var len = 64
        let rc = message.withUnsafeBufferPointer { m in
            EVP_DigestSign(ctx, &sig, &len, m.baseAddress, m.count)
        }
        guard rc == 1, len == 64 else { throw .openssl("sign") }
        return sig
    }

    /// Loads the key at `path`, or creates one there if the file does not exist.
    ///
    /// The file is written 0600 (O_EXCL on a temporary name, fsync, link, fsync of the
    /// directory) so a crash never leaves a half-written key that the next start would reject,
    /// nor a window where the key is readable by others. An existing file that group or others
    /// can read, or that is a symlink, is refused: a leaked signing key lets anyone mint tokens
    /// a partner's backend will trust.
    public static func loadOrCreate(path: String) throws(Ed25519Error) -> Ed25519PrivateKey {
        let fd = Glibc.open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW)
        if fd >= 0 {
            defer { _ = Glibc.close(fd) }
            return try fromPEM(try readKeyFile(fd, path: path))
        }
        let err = Glibc.errno
        if err != ENOENT {
            throw Ed25519Error("load", "cannot open \(path): \(String(cString: strerror(err)))")
        }
        let key = try generate()
        if try !writeAtomically(try key.pem(), to: path) {
            // Another process created the key first: use that one, so both sign with one key.
            let again = Glibc.open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW)
            guard again >= 0 else { throw Ed25519Error("load", "cannot open \(path): \(String(cString: strerror(Glibc.errno)))") }
            defer { _ = Glibc.close(again) }
            return try fromPEM(try readKeyFile(again, path: path))
        }
        return key
    }

    private static func readKeyFile(_ fd: Int32, path: String) throws(Ed25519Error) -> [UInt8] {
        var st = stat()
        guard fstat(fd, &st) == 0 else { throw Ed25519Error("load", "cannot stat \(path)") }
        if st.st_mode & 0o077 != 0 {
            throw Ed25519Error("load", "\(path) is readable by group or others; run: chmod 600 \(path)")
        }
        if st.st_uid != geteuid() {
            throw Ed25519Error("load", "\(path) is not owned by the daemon's user; fix its owner")
        }
        var data: [UInt8] = []
        var buf = [UInt8](repeating: 0, count: 4096)
        while data.count < 65536 {
            let n = buf.withUnsafeMutableBytes { Glibc.read(fd, $0.baseAddress, $0.count) }
            if n < 0 && Glibc.errno == EINTR { continue }
            if n < 0 { throw Ed25519Error("load", "cannot read \(path): \(String(cString: strerror(Glibc.errno)))") }
            if n == 0 { break }
            data.append(contentsOf: buf[0..<n])
        }
        return data
    }

    /// Writes `bytes` to `path` without ever replacing an existing file (link(2) of a fsynced
    /// temporary): returns false when `path` already exists.
    private static func writeAtomically(_ bytes: [UInt8], to path: String) throws(Ed25519Error) -> Bool {
        // A random name: two creators (threads or processes) never share a temporary file.
        let tmp = path + ".tmp-\(getpid())-\(UInt64.random(in: 0...UInt64.max))"
        let fd = Glibc.open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0o600)
        guard fd >= 0 else { throw Ed25519Error("save", "cannot create \(tmp): \(String(cString: strerror(Glibc.errno)))") }
        var off = 0
        while off < bytes.count {
            let n = bytes.withUnsafeBytes { Glibc.write(fd, $0.baseAddress! + off, $0.count - off) }
            if n < 0 && Glibc.errno == EINTR { continue }
            if n <= 0 {
                _ = Glibc.close(fd)
                _ = unlink(tmp)
                throw Ed25519Error("save", "cannot write \(tmp): \(String(cString: strerror(Glibc.errno)))")
            }
            off += n
        }
        let synced = fsync(fd) == 0
        _ = Glibc.close(fd)
        let linked = synced ? link(tmp, path) : -1
        let linkErrno = Glibc.errno
        _ = unlink(tmp)
        if linked != 0 && synced && linkErrno == EEXIST { return false }
        guard linked == 0 else {
            throw Ed25519Error("save", "cannot store \(path): \(String(cString: strerror(linkErrno)))")
        }
        let dir = path.lastIndex(of: "/").map { String(path[..<$0]) } ?? "."
        let dfd = Glibc.open(dir.isEmpty ? "/" : dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        if dfd >= 0 {
            _ = fsync(dfd)
            _ = Glibc.close(dfd)
        }
        return true
    }
}

/// Base64url without padding (RFC 4648 §5), as JOSE uses it. Private to this file's users in
/// the auth service; the shared Crypto module has its own base64.
public enum Ed25519Base64URL {
    private static let alphabet = Array("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_".utf8)

    /// Encodes `bytes` as unpadded base64url.
    public static func encode(_ bytes: some Collection<UInt8>) -> String {
        let b = Array(bytes)
        var out: [UInt8] = []
        out.reserveCapacity((b.count + 2) / 3 * 4)
        var i = 0
        while i + 2 < b.count {
            let n = UInt32(b[i]) << 16 | UInt32(b[i + 1]) << 8 | UInt32(b[i + 2])
            out += [alphabet[Int(n >> 18)], alphabet[Int(n >> 12 & 63)], alphabet[Int(n >> 6 & 63)], alphabet[Int(n & 63)]]
            i += 3
        }
        if b.count - i == 1 {
            let n = UInt32(b[i]) << 16
            out += [alphabet[Int(n >> 18)], alphabet[Int(n >> 12 & 63)]]
        } else if b.count - i == 2 {
            let n = UInt32(b[i]) << 16 | UInt32(b[i + 1]) << 8
            out += [alphabet[Int(n >> 18)], alphabet[Int(n >> 12 & 63)], alphabet[Int(n >> 6 & 63)]]
        }
        return String(decoding: out, as: UTF8.self)
    }
}

/// SHA-256 through libcrypto's EVP (for the RFC 7638 JWK thumbprint used as `kid`).
public func ed25519SHA256(_ bytes: [UInt8]) -> [UInt8] {
    var out = [UInt8](repeating: 0, count: 32)
    var len: UInt32 = 32
    _ = bytes.withUnsafeBytes { EVP_Digest($0.baseAddress, $0.count, &out, &len, EVP_sha256(), nil) }
    return out
}
