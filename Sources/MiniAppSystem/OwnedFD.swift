#if canImport(Glibc)
public import Glibc
#endif

/// The sole owner of an open file descriptor; closes it when dropped.
///
/// `~Copyable` so ownership is explicit: an fd cannot be closed twice or used after close by a
/// forgotten copy (the classic double-close races fd numbers reused by another thread).
/// Use `raw` to lend it to a C call; `take()` to hand ownership to someone else.
public struct OwnedFD: ~Copyable, Sendable {
    /// The descriptor number, valid while this owner lives.
    public let raw: Int32

    /// Adopts `raw`; it will be closed when this value is dropped.
    public init(adopting raw: Int32) {
        precondition(raw >= 0, "OwnedFD needs a valid descriptor")
        self.raw = raw
    }

    /// Gives up ownership without closing and returns the number.
    public consuming func take() -> Int32 {
        let r = raw
        discard self
        return r
    }

    /// Closes now (errors from close(2) are not actionable and are ignored, as in swift-system).
    public consuming func close() {
        _ = Glibc.close(raw)
        discard self
    }

    deinit { _ = Glibc.close(raw) }
}

extension OwnedFD {
    /// `open(2)` with O_CLOEXEC always added.
    public static func open(_ path: String, _ flags: Int32, mode: mode_t = 0) throws(SystemError) -> OwnedFD {
        let fd = try retryingEINTR("open", detail: path) { Glibc.open(path, flags | O_CLOEXEC, mode) }
        return OwnedFD(adopting: fd)
    }

    /// Writes all of `bytes`, retrying short writes and EINTR.
    public func writeAll(_ bytes: some Collection<UInt8>) throws(SystemError) {
        let arr = Array(bytes)
        var off = 0
        while off < arr.count {
            off += try retryingEINTR("write") { arr.withUnsafeBytes { p in Glibc.write(raw, p.baseAddress! + off, p.count - off) } }
        }
    }

    /// Writes all of `buffer` (no copy), retrying short writes and EINTR.
    public func writeAll(_ buffer: UnsafeRawBufferPointer) throws(SystemError) {
        var off = 0
        while off < buffer.count {
            off += try retryingEINTR("write") { Glibc.write(raw, buffer.baseAddress! + off, buffer.count - off) }
        }
    }

    /// Reads until EOF or `limit` bytes; more than `limit` is an error (EFBIG), so a hostile
    /// file cannot make the daemon allocate without bound.
    public func readAll(limit: Int = 64 << 20) throws(SystemError) -> [UInt8] {
        var out: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 65536)
        while true {
            let n = chunk.withUnsafeMutableBytes { p in Glibc.read(raw, p.baseAddress!, p.count) }
            if n < 0 {
                if Glibc.errno == EINTR { continue }
                throw SystemError.current("read")
            }
            if n == 0 { return out }
            out.append(contentsOf: chunk[0..<n])
            if out.count > limit { throw SystemError("read", errno: EFBIG) }
        }
    }
}
