internal import COpenSSL

/// Streaming SHA-256 through libcrypto's EVP interface (`EVP_DigestInit_ex`/`Update`/`Final_ex`),
/// which uses the CPU's SHA extensions where present.
public final class SHA256Hasher {
    private let ctx: OpaquePointer

    /// A fresh hasher.
    public init() {
        // Allocation failure of a 200-byte context is not an input error: trap.
        ctx = EVP_MD_CTX_new()!
        precondition(EVP_DigestInit_ex(ctx, EVP_sha256(), nil) == 1, "EVP_DigestInit_ex(sha256) failed")
    }

    deinit { EVP_MD_CTX_free(ctx) }

    /// Adds bytes.
    public func update(_ buffer: UnsafeRawBufferPointer) {
        guard let base = buffer.baseAddress, buffer.count > 0 else { return }
        _ = EVP_DigestUpdate(ctx, base, buffer.count)
    }

    /// Adds bytes.
    public func update(_ bytes: some ContiguousByteSource) {
        bytes.withUnsafeBytes { update($0) }
    }

    /// The 32-byte digest; the hasher must not be used afterwards.
    public func finalize() -> [UInt8] {
        var out = [UInt8](repeating: 0, count: 32)
        var len: UInt32 = 0
        _ = EVP_DigestFinal_ex(ctx, &out, &len)
        return out
    }

    /// One-shot digest.
    public static func digest(_ bytes: some ContiguousByteSource) -> [UInt8] {
        let h = SHA256Hasher()
        h.update(bytes)
        return h.finalize()
    }

    /// Lowercase hex of `bytes`.
    public static func hex(_ bytes: [UInt8]) -> String {
        let digits = Array("0123456789abcdef".utf8)
        var out: [UInt8] = []
        out.reserveCapacity(bytes.count * 2)
        for b in bytes {
            out.append(digits[Int(b >> 4)])
            out.append(digits[Int(b & 15)])
        }
        return String(decoding: out, as: UTF8.self)
    }
}

/// `ContiguousByteSource` without Foundation: anything that lends its bytes.
public protocol ContiguousByteSource {
    /// Calls `body` with the bytes.
    func withUnsafeBytes<R>(_ body: (UnsafeRawBufferPointer) throws -> R) rethrows -> R
}

extension Array: ContiguousByteSource where Element == UInt8 {}
extension ArraySlice: ContiguousByteSource where Element == UInt8 {}
