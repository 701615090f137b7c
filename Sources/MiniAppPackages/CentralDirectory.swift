import MiniAppModel

/// Parses and validates the end record, the central directory and each local header.
struct CentralDirectoryParser {
    let bytes: [UInt8]
    let limits: ZipLimits
    private var r: ByteReader { ByteReader(bytes: bytes) }

    init(bytes: [UInt8], limits: ZipLimits) {
        self.bytes = bytes
        self.limits = limits
    }

    static func invalid(_ what: String, entry: String? = nil) -> MiniAppError {
        MiniAppError(.archiveInvalid, entry.map { "entry \"\($0)\": \(what)" } ?? "archive: \(what)", data: entry.map { ["entry": $0] } ?? [:])
    }

    func parse() throws(MiniAppError) -> [ZipEntry] {
        let (cdOffset, cdSize, count, eocd) = try findEndRecord()
        guard count <= limits.maxEntries else {
            throw MiniAppError(.tooManyEntries, "archive has \(count) entries; the limit is \(limits.maxEntries)")
        }
        // The central directory must end exactly where the end record starts: no hidden bytes.
        guard cdOffset + cdSize == eocd else { throw Self.invalid("central directory does not end at the end record") }
        var entries: [ZipEntry] = []
        var seen = Set<String>(), folded = [String: String]()
        var off = cdOffset
        var declaredTotal: UInt64 = 0
        var perDirectory: [Substring: Int] = [:]
        for _ in 0..<count {
            let (entry, next) = try parseCentral(at: off, end: eocd)
            off = next
            try checkUnique(entry, seen: &seen, folded: &folded)
            try checkShape(entry.path, perDirectory: &perDirectory)
            declaredTotal += entry.uncompressedSize
            guard declaredTotal <= limits.maxInflatedBytes else {
                throw MiniAppError(.archiveTooLarge, "declared inflated size passes \(limits.maxInflatedBytes) bytes at entry \"\(entry.path)\"", data: ["entry": entry.path])
            }
            entries.append(entry)
        }
        guard off == eocd else { throw Self.invalid("central directory size does not match its entries") }
        try checkFileDirConflicts(entries)
        try checkLayout(entries, cdOffset: cdOffset)
        return entries
    }

    /// Depth and directory size (`maxDepth`, `maxEntriesPerDirectory`): what bounds the time an
    /// extraction takes, beyond the byte limits.
    private func checkShape(_ path: String, perDirectory: inout [Substring: Int]) throws(MiniAppError) {
        let components = path.split(separator: "/")
        guard components.count <= limits.maxDepth else {
            throw MiniAppError(
                .badPath, "entry \"\(EntryRules.printable(Array(path.utf8).prefix(80)))\" is \(components.count) directories deep; the limit is \(limits.maxDepth)",
                data: ["entry": EntryRules.printable(Array(path.utf8).prefix(80))])
        }
        let parent = path.lastIndex(of: "/").map { path[..<$0] } ?? ""
        perDirectory[parent, default: 0] += 1
        guard perDirectory[parent]! <= limits.maxEntriesPerDirectory else {
            throw MiniAppError(
                .tooManyEntries, "directory \"\(parent.isEmpty ? "/" : EntryRules.printable(Array(parent.utf8)))\" has more than \(limits.maxEntriesPerDirectory) entries",
                data: ["entry": String(parent)])
        }
    }

    /// Finds the end-of-central-directory record: searched backwards over at most 22 + 65,535
    /// bytes (the longest comment), and its comment must reach exactly the end of the file.
    private func findEndRecord() throws(MiniAppError) -> (Int, Int, Int, Int) {
        guard bytes.count >= 22 else { throw Self.invalid("too short to be a zip file") }
        let lowest = max(0, bytes.count - 22 - 65_535)
        var pos = bytes.count - 22
        while pos >= lowest {
            if r.u32(pos) == 0x0605_4b50, let clen = r.u16(pos + 20), pos + 22 + Int(clen) == bytes.count {
                break
            }
            pos -= 1
        }
        guard pos >= lowest else { throw Self.invalid("no end-of-central-directory record (not a zip file?)") }
        // A zip64 locator right before the end record means zip64, which we do not support.
        if pos >= 20, r.u32(pos - 20) == 0x0706_4b50 { throw Self.invalid("zip64 archives are not supported") }
        guard let disk = r.u16(pos + 4), let cdDisk = r.u16(pos + 6), let nDisk = r.u16(pos + 8),
            let n = r.u16(pos + 10), let size = r.u32(pos + 12), let offset = r.u32(pos + 16)
        else { throw Self.invalid("truncated end record") }
        if n == 0xFFFF || size == 0xFFFF_FFFF || offset == 0xFFFF_FFFF { throw Self.invalid("zip64 archives are not supported") }
        guard disk == 0, cdDisk == 0, nDisk == n else { throw Self.invalid("multi-disk archives are not supported") }
        return (Int(offset), Int(size), Int(n), pos)
    }

    private func parseCentral(at off: Int, end: Int) throws(MiniAppError) -> (ZipEntry, Int) {
        guard off + 46 <= end, r.u32(off) == 0x0201_4b50, let madeBy = r.u16(off + 4), let flags = r.u16(off + 8),
            let method = r.u16(off + 10), let crc = r.u32(off + 16), let csize = r.u32(off + 20),
            let usize = r.u32(off + 24), let nlen = r.u16(off + 28), let xlen = r.u16(off + 30),
            let clen = r.u16(off + 32), let disk = r.u16(off + 34), let ext = r.u32(off + 38), let lho = r.u32(off + 42)
        else { throw Self.invalid("central directory entry at offset \(off) is truncated or corrupt") }
        let next = off + 46 + Int(nlen) + Int(xlen) + Int(clen)
        guard next <= end, let rawName = r.slice(off + 46, Int(nlen)), let extra = r.slice(off + 46 + Int(nlen), Int(xlen)) else {
            throw Self.invalid("central directory entry at offset \(off) runs past the directory")
        }
        let name = try EntryRules.name(rawName, limits: limits)
        let isDir = name.hasSuffix("/")
        let path = isDir ? String(name.dropLast()) : name
        if let problem = PackagePath.problem(path, maxBytes: limits.maxPathBytes) {
            throw MiniAppError(.badPath, "entry \"\(EntryRules.printable(rawName))\" \(problem)", data: ["entry": name])
        }
        try EntryRules.checkFeatures(path: path, flags: flags, method: method, csize: csize, usize: usize, disk: disk)
        let mode = try EntryRules.kind(path: path, isDir: isDir, madeBy: madeBy, external: ext, extra: extra)
        try EntryRules.checkRatio(path: path, csize: UInt64(csize), usize: UInt64(usize), limits: limits)
        let dataOffset = try checkLocal(at: Int(lho), rawName: rawName, path: path, flags: flags, method: method, crc: crc, csize: csize, usize: usize)
        let entry = ZipEntry(
            path: path, kind: isDir ? .directory : .file, method: method, flags: flags, crc32: crc,
            compressedSize: UInt64(csize), uncompressedSize: UInt64(usize), localHeaderOffset: UInt64(lho),
            dataOffset: UInt64(dataOffset), unixMode: mode)
        return (entry, next)
    }

    /// The local header must agree with the central directory: two parsers reading different
    /// headers is how "the verifier saw A, the extractor wrote B" attacks work.
    private func checkLocal(
        at off: Int, rawName: ArraySlice<UInt8>, path: String, flags: UInt16, method: UInt16, crc: UInt32, csize: UInt32, usize: UInt32
    ) throws(MiniAppError) -> Int {
        guard r.u32(off) == 0x0403_4b50, let lflags = r.u16(off + 6), let lmethod = r.u16(off + 8),
            let lcrc = r.u32(off + 14), let lcsize = r.u32(off + 18), let lusize = r.u32(off + 22),
            let nlen = r.u16(off + 26), let xlen = r.u16(off + 28)
        else { throw Self.invalid("local header missing or corrupt", entry: path) }
        guard r.slice(off + 30, Int(nlen)) == rawName else { throw Self.invalid("local header name differs from the central directory", entry: path) }
        guard lflags == flags, lmethod == method else { throw Self.invalid("local header flags or method differ from the central directory", entry: path) }
        let dataOffset = off + 30 + Int(nlen) + Int(xlen)
        let dataEnd = dataOffset + Int(csize)
        guard dataEnd <= bytes.count else { throw Self.invalid("data runs past the end of the archive", entry: path) }
        if flags & 0x0008 != 0 {
            // Data descriptor: local fields may be zero; the descriptor must match the central values.
            guard (lcrc == 0 || lcrc == crc), (lcsize == 0 || lcsize == csize), (lusize == 0 || lusize == usize) else {
                throw Self.invalid("local header sizes or CRC differ from the central directory", entry: path)
            }
            var d = dataEnd
            if r.u32(d) == 0x0807_4b50 { d += 4 }
            guard r.u32(d) == crc, r.u32(d + 4) == csize, r.u32(d + 8) == usize else {
                throw Self.invalid("data descriptor disagrees with the central directory", entry: path)
            }
        } else {
            guard lcrc == crc, lcsize == csize, lusize == usize else {
                throw Self.invalid("local header sizes or CRC differ from the central directory", entry: path)
            }
        }
        return dataOffset
    }

    private func checkUnique(_ e: ZipEntry, seen: inout Set<String>, folded: inout [String: String]) throws(MiniAppError) {
        guard seen.insert(e.path).inserted else {
            throw MiniAppError(.duplicateEntry, "entry \"\(e.path)\" appears twice", data: ["entry": e.path])
        }
        let key = PackagePath.foldKey(e.path)
        if let other = folded.updateValue(e.path, forKey: key) {
            throw MiniAppError(.duplicateEntry, "entries \"\(other)\" and \"\(e.path)\" differ only in case (they collide on case-insensitive file systems)", data: ["entry": e.path])
        }
    }

    /// A file may not also be used as a directory ("a" and "a/b").
    private func checkFileDirConflicts(_ entries: [ZipEntry]) throws(MiniAppError) {
        let files = Set(entries.filter { $0.kind == .file }.map { PackagePath.foldKey($0.path) })
        for e in entries {
            var comps = e.path.split(separator: "/").map(String.init)
            comps.removeLast()
            var prefix = ""
            for c in comps {
                prefix += prefix.isEmpty ? c : "/" + c
                if files.contains(PackagePath.foldKey(prefix)) {
                    throw MiniAppError(.duplicateEntry, "entry \"\(e.path)\" lies under \"\(prefix)\", which is a file", data: ["entry": e.path])
                }
            }
        }
    }

    /// Entries must not overlap each other or the central directory (overlapping-entry bombs
    /// reuse one compressed stream many times).
    private func checkLayout(_ entries: [ZipEntry], cdOffset: Int) throws(MiniAppError) {
        let sorted = entries.sorted { $0.localHeaderOffset < $1.localHeaderOffset }
        var end: UInt64 = 0
        for e in sorted {
            guard e.localHeaderOffset >= end else { throw Self.invalid("overlaps the previous entry", entry: e.path) }
            end = e.dataOffset + e.compressedSize
            if e.flags & 0x0008 != 0 {
                end += ByteReader(bytes: bytes).u32(Int(end)) == 0x0807_4b50 ? 16 : 12
            }
        }
        guard end <= UInt64(cdOffset) else { throw Self.invalid("entry data overlaps the central directory") }
    }
}
