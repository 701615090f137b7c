internal import CZlib

/// A raw-deflate (RFC 1951, no zlib/gzip header: what zip entries hold) failure.
public struct ZlibError: Error, Sendable, CustomStringConvertible {
    /// zlib's return code.
    public let code: Int32
    /// zlib's message, if any.
    public let message: String
    public var description: String { "zlib error \(code): \(message)" }
}

/// Streaming raw inflate (`inflateInit2(-15)`/`inflate`). Output is handed to a callback chunk by
/// chunk so callers count *real* inflated bytes against their limits as they appear: declared
/// sizes in a zip are attacker-controlled (zip bombs, "declared small, inflates big").
public final class RawInflater {
    private var stream = z_stream()
    private var output = [UInt8](repeating: 0, count: 256 * 1024)

    /// A fresh inflater.
    public init() {
        let r = inflateInit2_(&stream, -15, zlibVersion(), Int32(MemoryLayout<z_stream>.size))
        precondition(r == Z_OK, "inflateInit2 failed: \(r)")
    }

    deinit { inflateEnd(&stream) }

    /// Inflates all of `input`, which must be exactly one complete raw-deflate stream (trailing
    /// bytes or a truncated stream are errors). `sink` receives each chunk; it may throw to stop.
    public func inflateAll(_ input: UnsafeRawBufferPointer, sink: (UnsafeRawBufferPointer) throws -> Void) throws {
        guard inflateReset(&stream) == Z_OK else { throw ZlibError(code: Z_STREAM_ERROR, message: "inflateReset") }
        var consumed = 0
        while true {
            let remaining = input.count - consumed
            // avail_in is 32-bit; feed at most 1 GiB per call.
            let feed = min(remaining, 1 << 30)
            let r: Int32 = output.withUnsafeMutableBytes { out in
                stream.next_in = UnsafeMutablePointer(mutating: input.baseAddress.map { $0.assumingMemoryBound(to: UInt8.self) + consumed })
                stream.avail_in = UInt32(feed)
                stream.next_out = out.baseAddress!.assumingMemoryBound(to: UInt8.self)
                stream.avail_out = UInt32(out.count)
                return inflate(&stream, Z_NO_FLUSH)
            }
            consumed += feed - Int(stream.avail_in)
            let produced = output.count - Int(stream.avail_out)
            if produced > 0 { try output.withUnsafeBytes { try sink(UnsafeRawBufferPointer(rebasing: $0[0..<produced])) } }
            switch r {
            case Z_STREAM_END:
                guard consumed == input.count else {
                    throw ZlibError(code: Z_DATA_ERROR, message: "\(input.count - consumed) bytes after the end of the deflate stream")
                }
                return
            case Z_OK:
                continue
            case Z_BUF_ERROR where produced == 0 && consumed == input.count:
                throw ZlibError(code: Z_BUF_ERROR, message: "truncated deflate stream")
            case Z_BUF_ERROR:
                continue
            default:
                let msg = stream.msg.map { String(cString: $0) } ?? "invalid deflate data"
                throw ZlibError(code: r, message: msg)
            }
        }
    }
}

/// Raw deflate of a whole buffer (`deflateInit2(-15)`), for `miniapp pack`.
public enum RawDeflate {
    /// Compresses `input` at `level` (0–9).
    public static func compress(_ input: [UInt8], level: Int32 = 6) -> [UInt8] {
        var stream = z_stream()
        let r = deflateInit2_(&stream, level, Z_DEFLATED, -15, 8, Z_DEFAULT_STRATEGY, zlibVersion(), Int32(MemoryLayout<z_stream>.size))
        precondition(r == Z_OK, "deflateInit2 failed: \(r)")
        defer { deflateEnd(&stream) }
        let bound = Int(deflateBound(&stream, UInt(input.count)))
        var out = [UInt8](repeating: 0, count: bound + 64)
        let written: Int = input.withUnsafeBytes { inp in
            out.withUnsafeMutableBytes { o in
                stream.next_in = UnsafeMutablePointer(mutating: inp.baseAddress?.assumingMemoryBound(to: UInt8.self))
                stream.avail_in = UInt32(inp.count)
                stream.next_out = o.baseAddress!.assumingMemoryBound(to: UInt8.self)
                stream.avail_out = UInt32(o.count)
                let r = deflate(&stream, Z_FINISH)
                precondition(r == Z_STREAM_END, "deflate with a deflateBound buffer must finish: \(r)")
                return o.count - Int(stream.avail_out)
            }
        }
        return Array(out.prefix(written))
    }
}

/// CRC-32 as zip uses it (zlib `crc32`).
public struct CRC32: Sendable {
    /// The running value.
    public private(set) var value: UInt32 = 0
    /// A fresh CRC.
    public init() {}
    /// Adds bytes.
    public mutating func update(_ buffer: UnsafeRawBufferPointer) {
        guard let base = buffer.baseAddress, buffer.count > 0 else { return }
        var off = 0
        while off < buffer.count {
            let n = min(buffer.count - off, 1 << 30)
            value = UInt32(crc32(UInt(value), base.assumingMemoryBound(to: UInt8.self) + off, UInt32(n)))
            off += n
        }
    }
}
