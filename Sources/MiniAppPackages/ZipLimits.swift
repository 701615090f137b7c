/// Limits applied to an archive (spec defaults; all configurable).
///
/// ZIP bombs (e.g. David Fifield's overlapping-entry "42.zip"-class bombs, and the classic
/// nested ones) are stopped twice: by declared sizes before anything is inflated, and by
/// counting the *real* inflated bytes while streaming, because declared sizes are the
/// attacker's to choose.
public struct ZipLimits: Sendable, Hashable {
    /// Largest archive file, in bytes (50 MiB).
    public var maxArchiveBytes: Int = 50 << 20
    /// Largest sum of inflated entry sizes, in bytes (200 MiB).
    public var maxInflatedBytes: UInt64 = 200 << 20
    /// Most entries, directories included (10,000).
    public var maxEntries: Int = 10_000
    /// Highest inflated/compressed ratio of one entry (100).
    public var maxRatio: UInt64 = 100
    /// Entries whose inflated size is at most this are exempt from the ratio check: a small
    /// file of zeros compresses 1000:1 and is no bomb (1 MiB).
    public var ratioExemptBytes: UInt64 = 1 << 20
    /// Longest entry name, in bytes (1,024).
    public var maxPathBytes: Int = 1024
    /// Deepest entry, in path components (32). Extraction opens every directory on an entry's
    /// path: 10,000 entries each 500 levels deep (a legal 1,024-byte name) made one signed
    /// package take tens of seconds of the installer's time.
    public var maxDepth: Int = 32
    /// Most entries directly in one directory (2,000): a flat directory of thousands of files
    /// is slow to create and to list, and no mini-program needs one.
    public var maxEntriesPerDirectory: Int = 2000

    /// The spec's defaults.
    public init() {}
}
