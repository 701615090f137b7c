public import MiniAppModel
internal import MiniAppSystem

/// Step 9: extraction into a new private directory, published by the store with one rename.
///
/// The directory is created exclusively (`mkdirat` fails if the name exists), mode 0700 while
/// it is filled; every file is created relative to its parent's fd with
/// `O_CREAT|O_EXCL|O_NOFOLLOW` (nothing pre-existing, no link, can be written through), hashed
/// again while written (the bytes must be those that were verified), made read-only (0444, or
/// 0555 when executable) and fsynced; directories become 0555 and are fsynced. The store
/// extracts into its staging area (`StagingArea`, no lock held) and then, under its lock,
/// `renameat`s the whole tree into `versions/` at once; a crash leaves only a staging entry,
/// which the store garbage-collects.
public enum PackageExtractor {
    /// Extracts `package` into a new directory `name` under `parentFD` (`name` must not exist),
    /// sealed read-only and fsynced, with the entry in `parentFD` fsynced too. On failure the
    /// partial directory is removed.
    public static func extract(_ package: VerifiedPackage, parentFD: Int32, name: String) throws(MiniAppError) {
        try FileTree.makeDir(parentFD, name, exclusive: true)
        CrashPoint.hit("tmpdir-created")
        do throws(MiniAppError) {
            let root = try FileTree.openDir(parentFD, name)
            let expected = Dictionary(uniqueKeysWithValues: package.files.map { ($0.path, $0.sha256Hex) })
            let manifest = package.manifest
            _ = try write(package.archive, into: root.raw, seal: true, expected: expected) {
                $0.isExecutable || ($0.path == manifest.entryPoint && manifest.runtime == .native)
            }
            try? FileSystem.setPermissions(descriptor: root.raw, 0o555)
            try FileTree.fsyncFD(root.raw, name)
            try FileTree.fsyncFD(parentFD, name)
            CrashPoint.hit("extracted")
        } catch {
            FileTree.remove(parentFD, name)
            throw error
        }
    }

    /// One written file: its path, SHA-256 and size, as hashed while it was written.
    struct Written {
        let path: String
        let sha256: [UInt8]
        let size: UInt64
    }

    /// Writes every entry of `archive` beneath `rootFD`, hashing each file as it is written.
    /// `seal`: files become 0444/0555 (`executable`) and are fsynced, directories 0555 and
    /// fsynced; otherwise everything stays owner-writable (the extraction helper leaves sealing
    /// to the daemon, which re-hashes and re-owns the tree first). `expected`: hex SHA-256 by
    /// path that each file must match (BAD_SIGNATURE otherwise).
    static func write(
        _ archive: ZipArchive, into rootFD: Int32, seal: Bool, expected: [String: String]?, executable: (ZipEntry) -> Bool
    ) throws(MiniAppError) -> [Written] {
        var dirs = Set<String>()
        var written: [Written] = []
        var budget = archive.limits.maxInflatedBytes
        for e in archive.entries {
            let comps = e.path.split(separator: "/").map(String.init)
            let parentComps = e.kind == .directory ? comps : Array(comps.dropLast())
            for i in parentComps.indices { dirs.insert(parentComps[0...i].joined(separator: "/")) }
            let parent = try openParent(rootFD, parentComps)
            if e.kind == .directory { continue }
            let mode: UInt32? = seal ? (executable(e) ? 0o555 : 0o444) : nil
            let digest = try writeFile(parent.raw, leaf: comps.last!, entry: e, archive: archive, budget: &budget, expected: expected?[e.path], seal: mode)
            written.append(Written(path: e.path, sha256: digest, size: e.uncompressedSize))
            CrashPoint.hit("file-written")
        }
        guard seal else { return written }
        // Deepest first, so a parent is sealed after its children.
        for d in dirs.sorted(by: { $0.count > $1.count }) {
            let fd = try openParent(rootFD, d.split(separator: "/").map(String.init))
            try? FileSystem.setPermissions(descriptor: fd.raw, 0o555)
            try FileTree.fsyncFD(fd.raw, d)
        }
        return written
    }

    /// Walks (creating) `comps` from `rootFD`, one `openat(O_NOFOLLOW)` per component.
    private static func openParent(_ rootFD: Int32, _ comps: [String]) throws(MiniAppError) -> OwnedFD {
        var current = try FileTree.openDir(rootFD, ".")
        for c in comps {
            try FileTree.makeDir(current.raw, c, exclusive: false)
            current = try FileTree.openDir(current.raw, c)
        }
        return current
    }

    /// Writes one file; checks its digest against `expected` (hex) if given; with `seal`, sets
    /// that mode and fsyncs it.
    private static func writeFile(
        _ dirFD: Int32, leaf: String, entry: ZipEntry, archive: ZipArchive, budget: inout UInt64, expected: String?, seal: UInt32?
    ) throws(MiniAppError) -> [UInt8] {
        let file = try FileTree.createFile(dirFD, leaf)
        let hasher = SHA256Hasher()
        do {
            try archive.stream(entry, budget: &budget) { chunk in
                hasher.update(chunk)
                do throws(SystemError) { try file.writeAll(UnsafeRawBufferPointer(chunk)) } catch { throw FileTree.fail(error) }
            }
        } catch {
            throw PackageVerifier.wrap(error)
        }
        let digest = hasher.finalize()
        if let expected, SHA256Hasher.hex(digest) != expected {
            throw MiniAppError(.badSignature, "entry \"\(entry.path)\" changed between verification and extraction", data: ["entry": entry.path])
        }
        if let seal {
            try? FileSystem.setPermissions(descriptor: file.raw, seal)
            try FileTree.fsyncFD(file.raw, entry.path)
        }
        return digest
    }
}
