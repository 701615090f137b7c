/// Stable codes of package verification, installation and the version store
/// (spec/package-format.md). The full table with causes is in Sources/MiniAppPackages/README.md.
/// Codes are never renamed once shipped.
extension ErrorCode {
    /// The zip structure is broken or uses a feature we refuse (zip64, encryption, a method other
    /// than store/deflate, overlapping or disagreeing headers, a bad CRC).
    public static let archiveInvalid: ErrorCode = "ARCHIVE_INVALID"
    /// The archive file, or the sum of declared inflated sizes, is above the configured limit.
    public static let archiveTooLarge: ErrorCode = "ARCHIVE_TOO_LARGE"
    /// Compression ratio above the limit, or an entry that inflates beyond its declared size.
    public static let zipBomb: ErrorCode = "ZIP_BOMB"
    /// More entries than the configured limit.
    public static let tooManyEntries: ErrorCode = "TOO_MANY_ENTRIES"
    /// An entry name that could escape or confuse the extraction directory (zip-slip).
    public static let badPath: ErrorCode = "BAD_PATH"
    /// Two entries with the same name, or names differing only in case.
    public static let duplicateEntry: ErrorCode = "DUPLICATE_ENTRY"
    /// A symlink, hard link, device, FIFO or socket entry.
    public static let badEntryType: ErrorCode = "BAD_ENTRY_TYPE"
    /// `manifest.json` missing, not strict JSON, over 64 KiB, or not matching the schema.
    public static let manifestInvalid: ErrorCode = "MANIFEST_INVALID"
    /// No registered partner's id prefix matches the program id.
    public static let unknownPartner: ErrorCode = "UNKNOWN_PARTNER"
    /// More than one registered partner's id prefix matches the program id.
    public static let ambiguousPartner: ErrorCode = "AMBIGUOUS_PARTNER"
    /// The signature does not verify with any of the partner's keys.
    public static let badSignature: ErrorCode = "BAD_SIGNATURE"
    /// A manifest permission that the method catalogue does not know.
    public static let unknownPermission: ErrorCode = "UNKNOWN_PERMISSION"
    /// A manifest permission that the partner is not currently granted.
    public static let permissionNotGranted: ErrorCode = "PERMISSION_NOT_GRANTED"
    /// `entryPoint` is not a regular file of the archive.
    public static let entryPointMissing: ErrorCode = "ENTRY_POINT_MISSING"
    /// The package is older than the active version and no downgrade was asked for.
    public static let downgrade: ErrorCode = "DOWNGRADE"
    /// The same version is installed with different content.
    public static let alreadyInstalled: ErrorCode = "ALREADY_INSTALLED"
    /// A version a simulator daemon installed unsigned: only a simulator daemon runs or
    /// activates it.
    public static let simulatedPackage: ErrorCode = "SIMULATED_PACKAGE"
    /// A partner registration file is malformed.
    public static let partnerInvalid: ErrorCode = "PARTNER_INVALID"
    /// A key file is not a usable RSA key (PEM, at least 2048 bits).
    public static let keyInvalid: ErrorCode = "KEY_INVALID"
    /// The version store has no such program or version (rollback without a previous version).
    public static let packageNotInstalled: ErrorCode = "NOT_INSTALLED"
    /// The version store failed at the file-system level (disk full, permissions).
    public static let storeFailure: ErrorCode = "STORE_FAILURE"
}
