internal import COpenSSL
#if canImport(Glibc)
import Glibc
#endif

/// A failure of the crypto layer: which libcrypto call, and OpenSSL's error text.
public struct CryptoError: Error, Sendable, CustomStringConvertible {
    /// What was being done.
    public let operation: String
    /// OpenSSL's first queued error, if any.
    public let detail: String

    init(_ operation: String) {
        self.operation = operation
        let code = ERR_get_error()
        if code != 0 {
            var buf = [CChar](repeating: 0, count: 256)
            ERR_error_string_n(code, &buf, buf.count)
            detail = String(decoding: buf.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
        } else {
            detail = "no OpenSSL detail"
        }
        ERR_clear_error()
    }

    public var description: String { "\(operation): \(detail)" }
}

/// An owned libcrypto `EVP_PKEY` holding an RSA key.
public final class RSAKey: @unchecked Sendable {
    // @unchecked: the EVP_PKEY is never mutated after construction; OpenSSL 3 allows concurrent
    // use of a const key for signing/verifying from several threads.
    let pkey: OpaquePointer

    /// The minimum key size accepted (spec: at least 2048 bits).
    public static let minimumBits = 2048

    private init(pkey: OpaquePointer) { self.pkey = pkey }
    deinit { EVP_PKEY_free(pkey) }

    /// Key size in bits.
    public var bits: Int { Int(EVP_PKEY_get_bits(pkey)) }

    /// Parses a PEM `PUBLIC KEY` (SubjectPublicKeyInfo), refusing non-RSA keys and keys under
    /// 2048 bits (`PEM_read_bio_PUBKEY`).
    public static func publicKey(pem: String) throws(CryptoError) -> RSAKey {
        try load(pem: pem, what: "public key") { bio in PEM_read_bio_PUBKEY(bio, nil, nil, nil) }
    }

    /// Parses a PEM private key (PKCS#8 or traditional RSA), without passphrase
    /// (`PEM_read_bio_PrivateKey`).
    public static func privateKey(pem: String) throws(CryptoError) -> RSAKey {
        try load(pem: pem, what: "private key") { bio in PEM_read_bio_PrivateKey(bio, nil, nil, nil) }
    }

    private static func load(pem: String, what: String, _ read: (OpaquePointer) -> OpaquePointer?) throws(CryptoError)
        -> RSAKey
    {
        // BIO_new_mem_buf does not copy: the BIO must be used and freed while the buffer is
        // pinned, i.e. inside withUnsafeBytes. (Letting the pointer escape worked in debug
        // builds and read freed memory in release ones: `miniapp pack` refused valid keys.)
        let bytes = Array(pem.utf8)
        let loaded: OpaquePointer?? = bytes.withUnsafeBytes { buf -> OpaquePointer?? in
            guard let bio = BIO_new_mem_buf(buf.baseAddress, Int32(buf.count)) else { return .none }
            defer { BIO_free(bio) }
            return .some(read(bio))
        }
        guard let result = loaded else { throw CryptoError("BIO_new_mem_buf") }
        guard let pkey = result else { throw CryptoError("reading PEM \(what)") }
        let key = RSAKey(pkey: pkey)
        let type = EVP_PKEY_get_base_id(pkey)
        guard type == EVP_PKEY_RSA || type == EVP_PKEY_RSA_PSS else {
            throw CryptoError("\(what) is not an RSA key")
        }
        guard key.bits >= minimumBits else { throw CryptoError("\(what) has \(key.bits) bits; at least 2048 are required") }
        return key
    }

    /// Generates a new RSA key (`EVP_PKEY_keygen`, public exponent 65537).
    public static func generate(bits: Int = 3072) throws(CryptoError) -> RSAKey {
        guard let ctx = EVP_PKEY_CTX_new_id(EVP_PKEY_RSA, nil) else { throw CryptoError("EVP_PKEY_CTX_new_id") }
        defer { EVP_PKEY_CTX_free(ctx) }
        guard EVP_PKEY_keygen_init(ctx) == 1, EVP_PKEY_CTX_set_rsa_keygen_bits(ctx, Int32(bits)) == 1 else {
            throw CryptoError("EVP_PKEY_keygen_init")
        }
        var pkey: OpaquePointer?
        guard EVP_PKEY_keygen(ctx, &pkey) == 1, let pkey else { throw CryptoError("EVP_PKEY_keygen") }
        return RSAKey(pkey: pkey)
    }

    /// The private key as PKCS#8 PEM (`PEM_write_bio_PrivateKey`, unencrypted).
    public func privatePEM() throws(CryptoError) -> String {
        try pem { bio in PEM_write_bio_PrivateKey(bio, pkey, nil, nil, 0, nil, nil) }
    }

    /// The public key as SubjectPublicKeyInfo PEM (`PEM_write_bio_PUBKEY`).
    public func publicPEM() throws(CryptoError) -> String {
        try pem { bio in PEM_write_bio_PUBKEY(bio, pkey) }
    }

    private func pem(_ write: (OpaquePointer) -> Int32) throws(CryptoError) -> String {
        guard let bio = BIO_new(BIO_s_mem()) else { throw CryptoError("BIO_new") }
        defer { BIO_free(bio) }
        guard write(bio) == 1 else { throw CryptoError("PEM_write") }
        var ptr: UnsafeMutablePointer<CChar>?
        let len = BIO_ctrl(bio, BIO_CTRL_INFO, 0, &ptr)
        guard let ptr, len > 0 else { throw CryptoError("BIO_get_mem_data") }
        return String(decoding: UnsafeRawBufferPointer(start: ptr, count: len), as: UTF8.self)
    }
}

/// RSASSA-PSS with SHA-256, MGF1-SHA-256 and a 32-byte salt: the package and registry signature
/// scheme (spec/package-format.md). Byte-compatible with
/// `openssl dgst -sha256 -sign KEY -sigopt rsa_padding_mode:pss -sigopt rsa_pss_saltlen:32`.
public enum RSAPSS {
    /// The salt length in bytes.
    public static let saltLength: Int32 = 32

    /// Signs `message` (`EVP_DigestSign`).
    public static func sign(_ message: [UInt8], key: RSAKey) throws(CryptoError) -> [UInt8] {
        guard let md = EVP_MD_CTX_new() else { throw CryptoError("EVP_MD_CTX_new") }
        defer { EVP_MD_CTX_free(md) }
        var pctx: OpaquePointer?
        guard EVP_DigestSignInit(md, &pctx, EVP_sha256(), nil, key.pkey) == 1, let pctx else {
            throw CryptoError("EVP_DigestSignInit")
        }
        try configure(pctx)
        var len = 0
        guard EVP_DigestSign(md, nil, &len, message, message.count) == 1 else { throw CryptoError("EVP_DigestSign") }
        var sig = [UInt8](repeating: 0, count: len)
        guard EVP_DigestSign(md, &sig, &len, message, message.count) == 1 else { throw CryptoError("EVP_DigestSign") }
        return Array(sig.prefix(len))
    }

    /// `true` when `signature` is a valid RSA-PSS signature of `message` under `key`
    /// (`EVP_DigestVerify`). Any failure, including malformed signatures, is `false`.
    public static func verify(_ signature: [UInt8], of message: [UInt8], key: RSAKey) -> Bool {
        guard let md = EVP_MD_CTX_new() else { return false }
        defer {
            EVP_MD_CTX_free(md)
            ERR_clear_error()
        }
        var pctx: OpaquePointer?
        guard EVP_DigestVerifyInit(md, &pctx, EVP_sha256(), nil, key.pkey) == 1, let pctx,
            (try? configure(pctx)) != nil
        else { return false }
        return EVP_DigestVerify(md, signature, signature.count, message, message.count) == 1
    }

    /// `true` when one of `keys` verifies (key rotation: a partner may have several).
    public static func verify(_ signature: [UInt8], of message: [UInt8], anyOf keys: [RSAKey]) -> Bool {
        keys.contains { verify(signature, of: message, key: $0) }
    }

    private static func configure(_ pctx: OpaquePointer) throws(CryptoError) {
        guard EVP_PKEY_CTX_set_rsa_padding(pctx, RSA_PKCS1_PSS_PADDING) == 1,
            EVP_PKEY_CTX_set_rsa_pss_saltlen(pctx, saltLength) == 1,
            EVP_PKEY_CTX_set_rsa_mgf1_md(pctx, EVP_sha256()) == 1
        else { throw CryptoError("configuring RSA-PSS") }
    }
}

/// The `"rsa-pss-sha256:" + base64` signature field shared by packages and the registry's
/// partners document.
public enum SignatureField {
    /// The scheme prefix.
    public static let prefix = "rsa-pss-sha256:"

    /// The signature bytes of a field, or nil if the field is not `rsa-pss-sha256:` + strict base64.
    public static func decode(_ field: String) -> [UInt8]? {
        guard field.hasPrefix(prefix) else { return nil }
        return Base64.decode(String(field.dropFirst(prefix.count)))
    }

    /// The field for signature bytes.
    public static func encode(_ signature: [UInt8]) -> String { prefix + Base64.encode(signature) }

    /// Verifies `field` over `statement` with any of the PEM `keys` (unusable keys are skipped).
    public static func verify(_ field: String, statement: [UInt8], publicKeysPEM keys: [String]) -> Bool {
        guard let sig = decode(field) else { return false }
        let parsed = keys.compactMap { try? RSAKey.publicKey(pem: $0) }
        return RSAPSS.verify(sig, of: statement, anyOf: parsed)
    }
}
