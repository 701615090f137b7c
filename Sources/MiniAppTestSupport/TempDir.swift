import Foundation
import MiniAppSystem

/// A private temporary directory (0700; 0711 as root), removed when dropped unless
/// `MINIAPP_KEEP_TMP` is set.
public final class TempDir: @unchecked Sendable {
    /// Its absolute path.
    public let path: String

    /// Creates `/tmp/miniapp-<label>-XXXXXX` (short: Unix socket paths must fit in 108 bytes).
    public init(_ label: String = "t") throws {
        path = try Self.makeDirectory(label)
        // As root, searchable (not listable) by other users: a daemon under test drops to its
        // own user (DaemonHarness.dropUser) and must reach the policies and packages a test
        // writes here, as it would reach an operator's files.
        if CurrentProcess.isRoot { try? FileSystem.setPermissions(path, 0o711) }
    }

    /// A fresh private directory `/tmp/ma-<label>-XXXXXX` that the caller owns (removes, or
    /// leaves behind for a post-mortem): for tests that hold a path, not a `TempDir`.
    public static func makeDirectory(_ label: String = "t") throws -> String {
        try FileSystem.makeTemporaryDirectory(prefix: "/tmp/ma-\(label.prefix(12))-")
    }

    /// `path/name`.
    public func file(_ name: String) -> String { path + "/" + name }

    /// Writes `text` to `path/name` (creating parent directories) and returns the full path.
    @discardableResult
    public func write(_ name: String, _ text: String, mode: Int = 0o644) throws -> String {
        let full = file(name)
        try FileManager.default.createDirectory(
            atPath: (full as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
        try Data(text.utf8).write(to: URL(fileURLWithPath: full))
        try FileSystem.setPermissions(full, UInt32(mode))
        return full
    }

    deinit {
        if ProcessInfo.processInfo.environment["MINIAPP_KEEP_TMP"] == nil {
            Self.detachMounts(under: path)
            try? FileManager.default.removeItem(atPath: path)
        }
    }

    /// Detaches whatever is still mounted below `path` (a daemon killed with -9 leaves its
    /// programs' /data volumes mounted), deepest first, so removing the tree removes it all.
    public static func detachMounts(under path: String) {
        guard let text = try? String(contentsOfFile: "/proc/self/mountinfo", encoding: .utf8) else { return }
        let points = text.split(separator: "\n").compactMap { line -> String? in
            let f = line.split(separator: " ")
            return f.count > 4 && f[4].hasPrefix(path + "/") ? String(f[4]) : nil
        }
        for p in points.sorted(by: { $0.count > $1.count }) { DataVolume.unmount(p) }
    }
}
