import MiniAppModel
internal import MiniAppSystem

/// Where installs extract without holding the store lock: `<root>/.staging/<random>/tree`.
///
/// Each install owns one `<random>` directory and holds an exclusive `flock` on it for as long
/// as it lives; the kernel drops the lock with the process however it ends (kill -9 included).
/// The store's startup recovery removes only entries whose lock it can take — the leftovers of
/// dead installers — never a tree that a live installer in another process sharing the store
/// (a second daemon start, `miniapp store`) is still filling.
enum StagingArea {
    static let directory = ".staging"

    /// Creates a private staging entry under the store root and extracts `package` into it.
    static func extract(_ package: VerifiedPackage, rootFD: Int32) throws(MiniAppError) -> StagedTree {
        let tree = try claimEntry(rootFD: rootFD)
        try PackageExtractor.extract(package, parentFD: tree.entryFD, name: StagedTree.leaf)
        return tree
    }

    /// A fresh, locked, empty staging entry (the extraction helper fills its `tree`).
    static func claimEntry(rootFD: Int32) throws(MiniAppError) -> StagedTree {
        try FileTree.makeDir(rootFD, directory, mode: 0o700, exclusive: false)
        let area = try FileTree.openDir(rootFD, directory)
        return try claim(area.take())
    }

    /// A fresh locked entry. Created, then locked, then checked to still be linked: a recovery
    /// sweep that took the lock in between may have removed it, so a removed entry is retried.
    private static func claim(_ areaFD: Int32) throws(MiniAppError) -> StagedTree {
        for _ in 0..<3 {
            let name = FileTree.randomSuffix()
            try FileTree.makeDir(areaFD, name, mode: 0o700, exclusive: true)
            guard let entry = try? DirectoryTree.openDirectory(at: areaFD, name) else { continue }
            if (try? DirectoryTree.lockExclusive(entry.raw, wait: false)) == true && DirectoryTree.isEntry(entry.raw, named: name, in: areaFD) {
                return StagedTree(areaFD: areaFD, entryFD: entry.take(), name: name)
            }
        }
        OwnedFD(adopting: areaFD).close()
        throw MiniAppError(.storeFailure, "cannot claim a staging directory in the package store; check the state directory")
    }

    /// Recovery: removes the entries no live installer holds.
    static func sweep(_ rootFD: Int32) {
        guard let area = try? FileTree.openDir(rootFD, directory) else { return }
        for name in FileTree.list(area.raw) {
            guard let entry = try? DirectoryTree.openDirectory(at: area.raw, name) else {
                FileTree.remove(area.raw, name)  // not a directory: never ours to keep
                continue
            }
            if (try? DirectoryTree.lockExclusive(entry.raw, wait: false)) == true { FileTree.remove(area.raw, name) }
        }
    }
}

/// An extracted, complete tree in the staging area, owned (and flocked) by this install. Removed
/// with its entry when dropped; after `publish` only the empty entry is left to remove.
final class StagedTree {
    static let leaf = "tree"
    let areaFD: Int32
    let entryFD: Int32
    let name: String

    init(areaFD: Int32, entryFD: Int32, name: String) {
        self.areaFD = areaFD
        self.entryFD = entryFD
        self.name = name
    }

    /// Moves the tree to `name` under `versionsFD` with one `renameat` (same file system: both
    /// are under the store root) and makes the rename durable. Call under the store lock.
    func publish(into versionsFD: Int32, name target: String) throws(MiniAppError) {
        try FileTree.rename(entryFD, Self.leaf, to: versionsFD, target)
        CrashPoint.hit("renamed")
        try FileTree.fsyncFD(versionsFD, target)
    }

    deinit {
        // Still locked while it is removed, so no sweep races us for it.
        FileTree.remove(areaFD, name)
        OwnedFD(adopting: entryFD).close()
        OwnedFD(adopting: areaFD).close()
    }
}
