/// What the framer found in the bytes received so far.
public enum FramedLine {
    /// A complete message, newline excluded. The buffer is valid only during the callback.
    case line(UnsafeBufferPointer<UInt8>)
    /// A message longer than the limit (at least `size` bytes, newline excluded). The peer is
    /// answered `MESSAGE_TOO_LARGE` and disconnected: we cannot find the next message boundary
    /// without buffering the oversize one, which is what the limit forbids.
    case tooLarge(size: Int)
}

/// NDJSON framing for the Bridge and the control socket (spec/bridge-protocol.md, "Transport
/// and framing"): one message per `\n`-terminated line, at most `maxLineBytes` bytes each.
///
/// The reader writes into the framer's own buffer (`withWritableSpace` + `commit`) and `drain`
/// hands complete lines out in place, so a request is parsed straight from the bytes `read(2)`
/// returned, without copies. Memory is bounded by `maxLineBytes` plus one read chunk whatever
/// the peer sends: a peer that never sends `\n` is cut off at the limit (the slow-loris /
/// unbounded-buffer pattern, cf. CVE-2019-9511-style resource exhaustion).
public struct LineFramer {
    /// The largest message accepted, newline excluded.
    public let maxLineBytes: Int
    private var storage: [UInt8]
    private var start = 0
    private var end = 0
    /// Bytes in `start..<scanned` are known to contain no newline.
    private var scanned = 0
    private var failed = false

    /// A framer with the given limit; `initialCapacity` is the first buffer size (grows on demand
    /// up to `maxLineBytes + readChunk`).
    public init(maxLineBytes: Int = 1 << 20, initialCapacity: Int = 16 << 10) {
        precondition(maxLineBytes > 0)
        self.maxLineBytes = maxLineBytes
        self.storage = [UInt8](repeating: 0, count: max(64, initialCapacity))
    }

    /// Bytes buffered but not yet handed out (a partial line).
    public var bufferedBytes: Int { end - start }

    /// True once a message was too large: the stream has no usable boundary any more.
    public var hasFailed: Bool { failed }

    /// Gives `body` free space of at least `minimum` bytes (growing the buffer if needed) to
    /// read into; `body` returns how many bytes it wrote (or a negative/zero value for none).
    public mutating func withWritableSpace(minimum: Int = 4096, _ body: (UnsafeMutableRawBufferPointer) -> Int) -> Int {
        compact()
        if storage.count - end < minimum {
            storage.append(contentsOf: repeatElement(0, count: max(minimum, storage.count)))
        }
        let e = end
        let n = storage.withUnsafeMutableBytes { raw in
            body(UnsafeMutableRawBufferPointer(rebasing: raw[e...]))
        }
        if n > 0 { end += min(n, storage.count - end) }
        return n
    }

    /// Appends bytes (tests and the fuzz target; the reactor reads in place instead).
    public mutating func append(_ bytes: some Collection<UInt8>) {
        var it = Array(bytes)[...]
        while !it.isEmpty {
            let chunk = it.prefix(max(4096, it.count))
            _ = withWritableSpace(minimum: chunk.count) { raw in
                for (i, b) in chunk.enumerated() { raw[i] = b }
                return chunk.count
            }
            it = it.dropFirst(chunk.count)
        }
    }

    /// Hands out complete lines in order. `body` returns false to stop early (the connection
    /// closed); the remaining bytes stay buffered. After `.tooLarge` nothing more is produced.
    public mutating func drain(_ body: (FramedLine) -> Bool) {
        guard !failed else { return }
        let limit = maxLineBytes
        // Work on locals: the buffer is borrowed for the whole loop, so `self` cannot be mutated
        // inside it (exclusivity); the positions are written back once at the end.
        var s = start, sc = scanned, f = false
        let e = end
        storage.withUnsafeBufferPointer { buf in
            while true {
                guard let nl = Self.findNewline(buf, from: sc, to: e) else {
                    sc = e
                    if e - s > limit {
                        f = true
                        _ = body(.tooLarge(size: e - s))
                    }
                    return
                }
                let len = nl - s
                let lineStart = s
                s = nl + 1
                sc = s
                if len > limit {
                    f = true
                    _ = body(.tooLarge(size: len))
                    return
                }
                if !body(.line(UnsafeBufferPointer(rebasing: buf[lineStart..<(lineStart + len)]))) { return }
            }
        }
        start = s
        scanned = sc
        failed = f
    }

    /// At end of stream: an unterminated last line is handed out as a message (the peer may have
    /// half-closed after writing it and still read the answer; a complete JSON object cannot be
    /// turned into a different valid one by truncation, so this is safe to honour).
    public mutating func finish(_ body: (FramedLine) -> Void) {
        guard !failed, end > start else { return }
        let s = start, e = end
        start = end
        scanned = end
        storage.withUnsafeBufferPointer { buf in
            body(.line(UnsafeBufferPointer(rebasing: buf[s..<e])))
        }
    }

    private mutating func compact() {
        if start == end {
            start = 0
            end = 0
            scanned = 0
        } else if start > 0 && start >= storage.count / 2 {
            let s = start, e = end
            storage.withUnsafeMutableBytes { raw in
                raw.baseAddress!.copyMemory(from: raw.baseAddress! + s, byteCount: e - s)
            }
            end -= start
            scanned -= start
            start = 0
        }
    }

    @inline(__always)
    private static func findNewline(_ buf: UnsafeBufferPointer<UInt8>, from: Int, to: Int) -> Int? {
        var i = from
        while i < to {
            if buf[i] == 0x0A { return i }
            i += 1
        }
        return nil
    }
}
