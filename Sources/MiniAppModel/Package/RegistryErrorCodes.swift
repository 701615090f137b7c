/// Stable codes of the registry's partners document (spec/registry.md). They are reported by
/// `permissions.refresh` (`registry.code`) and logged; the document is refused and the cached
/// one kept. Codes are never renamed once shipped.
extension ErrorCode {
    /// The document is not `{"issuedAt", "partners": [...], "signature"}` as the spec says.
    public static let registryInvalid: ErrorCode = "REGISTRY_INVALID"
    /// The signature does not verify with the platform key (`--platform-key`).
    public static let registryBadSignature: ErrorCode = "REGISTRY_BAD_SIGNATURE"
    /// `issuedAt` is older than the cached document's: a rollback to grants from before a
    /// revocation (TUF's rollback attack).
    public static let registryStale: ErrorCode = "REGISTRY_STALE"
    /// The document is over the size cap; the download was cut off there.
    public static let registryTooLarge: ErrorCode = "REGISTRY_TOO_LARGE"
}
