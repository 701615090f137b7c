import MiniAppModel
import MiniAppSystem

/// The registry side of the partner grants (spec/registry.md): `GET {registry}/partners`,
/// bounded by `timeoutMillis` and capped at `PartnersDocument.maxBytes` while it is received,
/// verified with the platform key, and cached (`STATE/partners.json`, the document exactly as
/// received) so the daemon starts offline with the grants it last verified.
///
/// Stateless apart from the cache file: which document is current, and the freshness rule
/// against it, belong to `PartnerGrants`.
final class RegistryPartners: Sendable {
    /// `{registry}/partners`; nil when no registry is configured (the cache alone is used).
    let url: String?
    let platformKey: RSAKey
    let transport: any RegistryTransport
    let cachePath: String
    let timeoutMillis: Int

    init(registry: String?, platformKey: RSAKey, transport: any RegistryTransport, cachePath: String, timeoutMillis: Int) {
        url = registry.map { ($0.hasSuffix("/") ? String($0.dropLast()) : $0) + "/partners" }
        self.platformKey = platformKey
        self.transport = transport
        self.cachePath = cachePath
        self.timeoutMillis = timeoutMillis
    }

    /// Reads the platform key file (a PEM public key, RSA, at least 2048 bits). A key that
    /// cannot be used stops the start: running without it would silently drop every grant
    /// the registry issues.
    static func loadPlatformKey(_ path: String) throws(MiniAppError) -> RSAKey {
        let bytes: [UInt8]
        do { bytes = try OwnedFD.open(path).readAll(limit: 64 << 10) } catch {
            throw MiniAppError(.keyInvalid, "cannot read the platform key \(path): \(error); check --platform-key")
        }
        do { return try RSAKey.publicKey(pem: String(decoding: bytes, as: UTF8.self)) } catch {
            throw MiniAppError(.keyInvalid, "the platform key \(path) is not a usable RSA public key (PEM, at least 2048 bits): \(error)")
        }
    }

    /// The cached document, verified again (the platform key may have been rotated since it
    /// was written); nil when there is none.
    func loadCache() throws(MiniAppError) -> PartnersDocument? {
        guard FileSystem.exists(cachePath) else { return nil }
        let bytes: [UInt8]
        do { bytes = try OwnedFD.open(cachePath, options: .noFollow).readAll(limit: PartnersDocument.maxBytes) } catch {
            throw MiniAppError(.internal, "cannot read the cached partners document \(cachePath): \(error)")
        }
        return try decode(bytes)
    }

    /// Writes `doc` as the cache (atomically: a crash leaves the old or the new one).
    func store(_ doc: PartnersDocument) throws(MiniAppError) {
        do { try AtomicFile.write(path: cachePath, bytes: doc.raw, mode: 0o600) } catch {
            throw MiniAppError(.internal, "cannot write the partners cache \(cachePath): \(error); check the state directory")
        }
    }

    /// Fetches and verifies the registry's current document. Throws `TIMEOUT`,
    /// `HOST_UNAVAILABLE` (down, HTTP error), `REGISTRY_TOO_LARGE`, `REGISTRY_INVALID`,
    /// `REGISTRY_BAD_SIGNATURE`. Freshness is the caller's check.
    func fetch() throws(MiniAppError) -> PartnersDocument {
        guard let url else {
            throw MiniAppError(.hostUnavailable, "no registry is configured (--registry); the cached partners document is used")
        }
        let status: Int
        let body: [UInt8]
        do {
            (status, body) = try transport.get(url, maxBytes: PartnersDocument.maxBytes, timeoutMillis: timeoutMillis)
        } catch where error.code == .quotaExceeded {
            throw MiniAppError(
                .registryTooLarge, "the registry's partners document at \(url) is over \(PartnersDocument.maxBytes) bytes; the download was cut off",
                data: ["reason": "REGISTRY_TOO_LARGE"])
        }
        guard status == 200 else {
            throw MiniAppError(.hostUnavailable, "the registry answered HTTP \(status) for \(url); the cached partners document stays in effect")
        }
        return try decode(body)
    }

    /// Envelope and statement, then the signature; the registrations are read only from a
    /// document whose signature verified (`PartnersDocument.entries`, by the caller).
    private func decode(_ bytes: [UInt8]) throws(MiniAppError) -> PartnersDocument {
        let doc = try PartnersDocument.parse(bytes)
        try doc.verify(platformKey: platformKey)
        return doc
    }
}
