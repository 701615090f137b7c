internal import MiniAppModel
internal import MiniAppSystem

/// The daemon's check of a tree the extraction helper wrote, before it is published: the
/// helper may have been compromised by the very archive it inflated, so nothing it wrote is
/// believed. The tree must hold exactly the archive's entries — directories as directories,
/// each file a regular file with one link, its declared size and the SHA-256 of the signed
/// statement (the manifest: of the bytes the daemon parsed) — and nothing else (no symlink,
/// FIFO, extra name). Each file is then owned by the daemon, made read-only (0444, 0555 when
/// executable) and fsynced, directories 0555 and fsynced: the helper's uid owns nothing that
/// is published. The helper has exited before this runs, so no descriptor of its can write
/// into a file after it was hashed.
enum StagedTreeCheck {
    struct Expected {
        var files: [String: (sha256Hex: String, size: UInt64, executable: Bool)] = [:]
        var dirs: Set<String> = []
    }

    static func expected(_ package: VerifiedPackage, manifest: [UInt8]) -> Expected {
        var e = Expected()
        let signed = Dictionary(uniqueKeysWithValues: package.files.map { ($0.path, $0.sha256Hex) })
        let m = package.manifest
        for entry in package.archive.entries {
            let comps = entry.path.split(separator: "/").map(String.init)
            let parents = entry.kind == .directory ? comps : Array(comps.dropLast())
            for i in parents.indices { e.dirs.insert(parents[0...i].joined(separator: "/")) }
            guard entry.kind == .file else { continue }
            let digest = entry.path == "manifest.json" ? SHA256Hasher.hex(SHA256Hasher.digest(manifest)) : signed[entry.path] ?? ""
            let exec = entry.isExecutable || (entry.path == m.entryPoint && m.runtime == .native)
            e.files[entry.path] = (digest, entry.uncompressedSize, exec)
        }
        return e
    }

    /// Checks and seals `<entryFD>/tree`. Throws INTERNAL naming the first discrepancy.
    static func checkAndSeal(entryFD: Int32, expected: Expected) throws(MiniAppError) {
        let root = try FileTree.openDir(entryFD, StagedTree.leaf)
        var seen = 0
        try walk(root.raw, prefix: "", expected, seen: &seen)
        guard seen == expected.files.count + expected.dirs.count else {
            throw refused("it holds \(seen) of the \(expected.files.count + expected.dirs.count) entries of the archive")
        }
        try seal(root.raw, mode: 0o555, StagedTree.leaf)
        try FileTree.fsyncFD(entryFD, StagedTree.leaf)
    }

    private static func walk(_ dirFD: Int32, prefix: String, _ expected: Expected, seen: inout Int) throws(MiniAppError) {
        for name in FileTree.list(dirFD) {
            let path = prefix + name
            if let file = expected.files[path] {
                guard let owned = HelperTreeIO.openFile(at: dirFD, name) else { throw refused("\(path) cannot be opened as a file") }
                try checkFile(owned.raw, path, file)
                try seal(owned.raw, mode: file.executable ? 0o555 : 0o444, path)
            } else if expected.dirs.contains(path) {
                guard let owned = HelperTreeIO.openDirectory(at: dirFD, name) else { throw refused("\(path) is not a directory") }
                try walk(owned.raw, prefix: path + "/", expected, seen: &seen)
                try seal(owned.raw, mode: 0o555, path)
            } else {
                throw refused("it holds \(path), which is not in the archive")
            }
            seen += 1
        }
    }

    private static func checkFile(_ fd: Int32, _ path: String, _ want: (sha256Hex: String, size: UInt64, executable: Bool)) throws(MiniAppError) {
        guard HelperTreeIO.singleLinkRegularFileSize(fd) == want.size else {
            throw refused("\(path) is not a regular file of \(want.size) bytes with one link")
        }
        let hasher = SHA256Hasher()
        let buf = UnsafeMutableRawBufferPointer.allocate(byteCount: 256 << 10, alignment: 16)
        defer { buf.deallocate() }
        var total: UInt64 = 0
        while true {
            let n: Int
            do throws(SystemError) { n = try FileSystem.read(descriptor: fd, into: buf) } catch { throw FileTree.fail(error) }
            if n == 0 { break }
            total += UInt64(n)
            hasher.update(UnsafeRawBufferPointer(rebasing: buf[0..<n]))
        }
        guard total == want.size, SHA256Hasher.hex(hasher.finalize()) == want.sha256Hex else {
            throw refused("\(path) does not hold the signed bytes")
        }
    }

    /// Owned by the daemon (when it is root and the helper is not), read-only, durable.
    private static func seal(_ fd: Int32, mode: UInt32, _ what: String) throws(MiniAppError) {
        do throws(SystemError) {
            try HelperTreeIO.takeOwnership(descriptor: fd)
            try FileSystem.setPermissions(descriptor: fd, mode)
        } catch {
            throw FileTree.fail(error)
        }
        try FileTree.fsyncFD(fd, what)
    }

    private static func refused(_ why: String) -> MiniAppError {
        MiniAppError(.internal, "the tree the extraction helper wrote was refused: \(why); nothing was installed. Retry the install")
    }
}
