import MiniAppModel

/// Per-entry checks of step 1 that need no other entry.
enum EntryRules {
    /// The name as UTF-8 (required whatever the language-encoding flag says: a name that is not
    /// valid UTF-8 cannot be compared, signed or extracted reliably).
    static func name(_ raw: ArraySlice<UInt8>, limits: ZipLimits) throws(MiniAppError) -> String {
        guard raw.count <= limits.maxPathBytes + 1 else {
            throw MiniAppError(.badPath, "entry \"\(printable(raw.prefix(80)))…\" is \(raw.count) bytes long; the limit is \(limits.maxPathBytes)", data: ["entry": printable(raw.prefix(80))])
        }
        guard let s = String(validating: raw, as: UTF8.self) else {
            throw MiniAppError(.badPath, "entry \"\(printable(raw))\" is not valid UTF-8", data: ["entry": printable(raw)])
        }
        if raw.contains(0) { throw MiniAppError(.badPath, "entry \"\(printable(raw))\" contains a NUL byte", data: ["entry": printable(raw)]) }
        return s
    }

    /// A name made safe for messages (`TerminalText`: controls and invalid UTF-8 escaped).
    static func printable(_ raw: some Collection<UInt8>) -> String { TerminalText.escape(bytes: raw) }

    static func checkFeatures(path: String, flags: UInt16, method: UInt16, csize: UInt32, usize: UInt32, disk: UInt16) throws(MiniAppError) {
        func bad(_ why: String) -> MiniAppError {
            MiniAppError(.archiveInvalid, "entry \"\(path)\": \(why)", data: ["entry": path])
        }
        if flags & 0x0001 != 0 || flags & 0x0040 != 0 || flags & 0x2000 != 0 { throw bad("is encrypted; encryption is not supported") }
        guard method == 0 || method == 8 else { throw bad("uses compression method \(method); only store (0) and deflate (8) are supported") }
        if method == 0 && csize != usize { throw bad("is stored but its compressed and inflated sizes differ") }
        if csize == 0xFFFF_FFFF || usize == 0xFFFF_FFFF { throw bad("uses zip64 sizes, which are not supported") }
        guard disk == 0 else { throw bad("lives on another disk (multi-disk archives are not supported)") }
    }

    /// Entry type from the external attributes (spec: no Unix type bits → regular file).
    /// Returns the Unix permission bits. Symlinks are refused outright: a symlink entry followed
    /// by a file written "through" it is the classic extraction escape (ZIPFoundation's
    /// traversal bug, CVE-2018-1002200-class extractors).
    static func kind(path: String, isDir: Bool, madeBy: UInt16, external: UInt32, extra: ArraySlice<UInt8>) throws(MiniAppError) -> UInt32 {
        func bad(_ why: String) -> MiniAppError {
            MiniAppError(.badEntryType, "entry \"\(path)\" is \(why); only regular files and directories are allowed", data: ["entry": path])
        }
        let mode = external >> 16
        let type = mode & 0o170000
        switch type {
        case 0: break
        case 0o100000: if isDir { throw bad("a directory name with a regular-file type") }
        case 0o040000: if !isDir { throw bad("a directory without a trailing '/'") }
        case 0o120000: throw bad("a symbolic link")
        case 0o020000, 0o060000: throw bad("a device node")
        case 0o010000: throw bad("a FIFO")
        case 0o140000: throw bad("a socket")
        default: throw bad("of unknown type \(String(type, radix: 8))")
        }
        // MS-DOS directory attribute on a name without '/': directory/file confusion.
        if external & 0x10 != 0 && !isDir && type == 0 { throw bad("a directory without a trailing '/'") }
        if try hasLinkExtra(extra) { throw bad("a hard or symbolic link (PKWARE Unix extra field with a link target)") }
        return mode & 0o7777
    }

    /// The PKWARE Unix extra field (0x000d) carries a link target after its 12 fixed bytes:
    /// that is how zip tools that support them record hard links.
    static func hasLinkExtra(_ extra: ArraySlice<UInt8>) throws(MiniAppError) -> Bool {
        let r = ByteReader(bytes: Array(extra))
        var off = 0
        while off + 4 <= r.bytes.count {
            guard let id = r.u16(off), let len = r.u16(off + 2) else { break }
            if id == 0x000d && len > 12 { return true }
            off += 4 + Int(len)
        }
        return false
    }

    static func checkRatio(path: String, csize: UInt64, usize: UInt64, limits: ZipLimits) throws(MiniAppError) {
        guard usize > limits.ratioExemptBytes else { return }
        if csize == 0 || usize / csize >= limits.maxRatio {
            throw MiniAppError(.zipBomb, "entry \"\(path)\" declares \(usize) bytes from \(csize) compressed (ratio over \(limits.maxRatio))", data: ["entry": path])
        }
    }
}

extension String {
    func leftPad(_ n: Int) -> String { count >= n ? self : String(repeating: "0", count: n - count) + self }
}
