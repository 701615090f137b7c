public import MiniAppModel
internal import MiniAppSystem

/// A zip archive held in memory and validated from its central directory (spec step 1) before
/// anything is inflated. Our own reader rather than a library: what is extracted, and how, must
/// follow our rules only (ZIPFoundation, for one, had a symlink path-traversal bug).
///
/// Refused (fail closed): zip64, encryption (traditional and strong), methods other than store
/// and deflate, multi-disk archives, bytes before the first entry or between the central
/// directory and its end record, local/central header disagreement, data descriptors that
/// disagree with the central directory, overlapping entries (the overlapping-file bomb), bad
/// names (see `PackagePath`), duplicates and case-only duplicates, and entry types other than
/// regular files and directories (symlinks, hard links, devices, FIFOs, sockets).
public struct ZipArchive: Sendable {
    /// The archive bytes.
    public let bytes: [UInt8]
    /// Entries in central-directory order.
    public let entries: [ZipEntry]
    /// The limits it was opened with.
    public let limits: ZipLimits

    /// Validates `bytes` (spec step 1). Throws a `MiniAppError` with a stable code naming the entry.
    public init(bytes: [UInt8], limits: ZipLimits = ZipLimits()) throws(MiniAppError) {
        guard bytes.count <= limits.maxArchiveBytes else {
            throw MiniAppError(.archiveTooLarge, "archive is \(bytes.count) bytes; the limit is \(limits.maxArchiveBytes)")
        }
        let parser = CentralDirectoryParser(bytes: bytes, limits: limits)
        entries = try parser.parse()
        self.bytes = bytes
        self.limits = limits
    }

    /// Reads an archive file (size checked with fstat before reading). The path is opened
    /// without blocking and without following a final symlink, and must be a regular file: a
    /// FIFO would block the opening thread until a writer comes (for ever), a device such as
    /// /dev/zero never ends.
    public static func open(path: String, limits: ZipLimits = ZipLimits()) throws(MiniAppError) -> ZipArchive {
        let fd: OwnedFD
        do {
            fd = try OwnedFD.open(path, options: [.nonBlocking, .noFollow, .noControllingTerminal])
        } catch {
            throw MiniAppError(.archiveInvalid, "cannot read \(path): \(error)", cause: error)
        }
        return try read(descriptor: fd.raw, name: path, limits: limits)
    }

    /// Reads the archive behind an open descriptor (one a control client passed, or one the
    /// daemon opened): it must be a regular file no larger than `limits.maxArchiveBytes`, and
    /// is read with `pread` from offset 0, whatever the descriptor's position. `name` is for
    /// messages.
    public static func read(descriptor fd: Int32, name: String, limits: ZipLimits = ZipLimits()) throws(MiniAppError) -> ZipArchive {
        let st: FileStatus
        do { st = try FileSystem.status(descriptor: fd) } catch {
            throw MiniAppError(.archiveInvalid, "cannot read \(name): \(error)")
        }
        guard st.kind == .regular else {
            throw MiniAppError(.archiveInvalid, "\(name) is not a regular file (a FIFO, device, socket or directory); pass the package file itself")
        }
        guard st.size <= limits.maxArchiveBytes else {
            throw MiniAppError(.archiveTooLarge, "\(name) is larger than \(limits.maxArchiveBytes) bytes")
        }
        var data = [UInt8](repeating: 0, count: st.size)
        let got: Int
        do { got = try data.withUnsafeMutableBytes { p throws(SystemError) in try FileSystem.read(descriptor: fd, into: p, at: 0) } } catch {
            throw MiniAppError(.archiveInvalid, "cannot read \(name): \(error)")
        }
        // Shrunk while we read: what we have is not the file.
        guard got == data.count else { throw MiniAppError(.archiveInvalid, "cannot read \(name): it shrank while being read") }
        return try ZipArchive(bytes: data, limits: limits)
    }

    /// The entry named `path` (exact match), if any.
    public func entry(_ path: String) -> ZipEntry? { entries.first { $0.path == path } }

    /// Streams the inflated bytes of `entry` to `sink`, checking the real size against the
    /// declared one and `budget` (remaining inflated bytes for the whole archive), and the CRC.
    public func stream(
        _ entry: ZipEntry, budget: inout UInt64, sink: (UnsafeRawBufferPointer) throws -> Void
    ) throws {
        let start = Int(entry.dataOffset)
        let count = Int(entry.compressedSize)
        var crc = CRC32()
        var produced: UInt64 = 0
        let limit = min(entry.uncompressedSize, budget)
        func check(_ chunk: UnsafeRawBufferPointer) throws {
                produced += UInt64(chunk.count)
                if produced > limit {
                    throw produced > entry.uncompressedSize
                        ? MiniAppError(.zipBomb, "entry \"\(entry.path)\" inflates beyond its declared size of \(entry.uncompressedSize) bytes", data: ["entry": entry.path])
                        : MiniAppError(.archiveTooLarge, "entry \"\(entry.path)\" takes the archive over \(self.limits.maxInflatedBytes) inflated bytes", data: ["entry": entry.path])
                }
                crc.update(chunk)
                try sink(chunk)
        }
        try bytes.withUnsafeBytes { all in
            let input = UnsafeRawBufferPointer(rebasing: all[start..<(start + count)])
            if entry.method == 0 {
                try check(input)
            } else {
                do {
                    try RawInflater().inflateAll(input, sink: check)
                } catch let e as ZlibError {
                    throw MiniAppError(.archiveInvalid, "entry \"\(entry.path)\" has corrupt deflate data: \(e.message)", data: ["entry": entry.path])
                }
            }
        }
        guard produced == entry.uncompressedSize else {
            throw MiniAppError(.archiveInvalid, "entry \"\(entry.path)\" inflates to \(produced) bytes, not the declared \(entry.uncompressedSize)", data: ["entry": entry.path])
        }
        guard crc.value == entry.crc32 else {
            throw MiniAppError(.archiveInvalid, "entry \"\(entry.path)\" fails its CRC-32 check (corrupt or tampered)", data: ["entry": entry.path])
        }
        budget -= produced
    }
}

/// Little-endian field access with bounds checks (a malformed archive must never trap).
struct ByteReader {
    let bytes: [UInt8]

    func u16(_ off: Int) -> UInt16? {
        guard off >= 0, off + 2 <= bytes.count else { return nil }
        return UInt16(bytes[off]) | UInt16(bytes[off + 1]) << 8
    }

    func u32(_ off: Int) -> UInt32? {
        guard off >= 0, off + 4 <= bytes.count else { return nil }
        return UInt32(bytes[off]) | UInt32(bytes[off + 1]) << 8 | UInt32(bytes[off + 2]) << 16 | UInt32(bytes[off + 3]) << 24
    }

    func slice(_ off: Int, _ len: Int) -> ArraySlice<UInt8>? {
        guard off >= 0, len >= 0, off + len <= bytes.count else { return nil }
        return bytes[off..<(off + len)]
    }
}
