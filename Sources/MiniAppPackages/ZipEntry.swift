/// The kind of an entry, from its name and external attributes.
public enum ZipEntryKind: Sendable, Hashable {
    /// A regular file (no Unix type bits, or S_IFREG).
    case file
    /// A directory (name ends in `/`).
    case directory
}

/// One central-directory entry, validated against its local header.
public struct ZipEntry: Sendable, Hashable {
    /// Name without a trailing `/`.
    public let path: String
    /// File or directory.
    public let kind: ZipEntryKind
    /// 0 = stored, 8 = deflated.
    public let method: UInt16
    /// General-purpose flags.
    public let flags: UInt16
    /// CRC-32 of the inflated bytes.
    public let crc32: UInt32
    /// Declared compressed size.
    public let compressedSize: UInt64
    /// Declared inflated size.
    public let uncompressedSize: UInt64
    /// Offset of the local header.
    public let localHeaderOffset: UInt64
    /// Offset of the first data byte (after the local header, name and extra field).
    public let dataOffset: UInt64
    /// Unix permission bits when the archive carries them (0 otherwise).
    public let unixMode: UInt32

    /// Whether any execute bit is set in the Unix mode.
    public var isExecutable: Bool { unixMode & 0o111 != 0 }
}
