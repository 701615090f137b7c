#if canImport(Glibc)
import Glibc
#endif

/// An append-only file rotated by size: `path` → `path.1` → … → `path.<keep>` (the oldest is
/// dropped). Opened `O_APPEND | O_CLOEXEC`, mode 0600: the audit log names programs and
/// methods, it is for the operator only. Not thread-safe: one owner (the broker's loop thread).
public final class RotatingFile {
    /// The live file's path.
    public let path: String
    /// Rotate when the live file would grow beyond this.
    public let maxBytes: Int
    /// Rotated files kept.
    public let keep: Int
    /// Rotate a live file older than this many seconds (0: by size only). The age counts from
    /// the file's creation, or from opening when it already had records.
    public let maxAgeSeconds: Int
    /// Written at the head of each fresh file after a rotation (e.g. the latest records of each
    /// writer, so rotation never leaves one without its latest records).
    public var prologue: (() -> [UInt8])?
    private var fd: Int32
    private var size: Int
    private var openedAt: UInt64

    /// Opens (creating if needed) `path` for appending.
    public init(path: String, maxBytes: Int, keep: Int, maxAgeSeconds: Int = 0) throws(SystemError) {
        precondition(maxBytes > 0 && keep >= 0)
        self.path = path
        self.maxBytes = maxBytes
        self.keep = keep
        self.maxAgeSeconds = maxAgeSeconds
        (fd, size) = try Self.openLive(path)
        openedAt = monotonicNanos()
    }

    deinit { _ = Glibc.close(fd) }

    private static func openLive(_ path: String) throws(SystemError) -> (Int32, Int) {
        let fd = try retryingEINTR("open", detail: path) {
            Glibc.open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC | O_NOFOLLOW, 0o600)
        }
        var st = stat()
        let size = fstat(fd, &st) == 0 ? Int(st.st_size) : 0
        return (fd, size)
    }

    /// Appends `bytes` with one `write(2)` (whole records only, so a rotation never splits a
    /// line), rotating first if they would push the file over `maxBytes`.
    public func append(_ bytes: [UInt8]) throws(SystemError) {
        guard !bytes.isEmpty else { return }
        if size > 0 && (size + bytes.count > maxBytes || tooOld) { try rotate() }
        try writeAll(bytes)
    }

    private var tooOld: Bool {
        maxAgeSeconds > 0 && monotonicNanos() &- openedAt > UInt64(maxAgeSeconds) * 1_000_000_000
    }

    /// Shifts `path.i` → `path.i+1`, drops the oldest, moves the live file to `path.1` and
    /// opens a fresh one.
    public func rotate() throws(SystemError) {
        if keep == 0 {
            unlink(path)
        } else {
            unlink("\(path).\(keep)")
            if keep > 1 {
                for i in stride(from: keep - 1, through: 1, by: -1) { rename("\(path).\(i)", "\(path).\(i + 1)") }
            }
            rename(path, "\(path).1")
        }
        _ = Glibc.close(fd)
        (fd, size) = try Self.openLive(path)
        openedAt = monotonicNanos()
        if let head = prologue?(), !head.isEmpty, head.count < maxBytes / 2 { try writeAll(head) }
    }

    private func writeAll(_ bytes: [UInt8]) throws(SystemError) {
        var off = 0
        while off < bytes.count {
            let n = bytes.withUnsafeBytes { p in Glibc.write(fd, p.baseAddress! + off, p.count - off) }
            if n < 0 {
                if errno == EINTR { continue }
                throw SystemError.current("write", detail: path)
            }
            off += n
        }
        size += bytes.count
    }
}
