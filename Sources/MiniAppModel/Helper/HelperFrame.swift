/// The wire between the daemon and its helpers for untrusted bytes (`miniappd-helper`): the
/// daemon sends a request, the helper answers with the same id. Both ends treat what they read
/// as hostile — the helper parses partner-controlled bytes (an HTTP reply, a zip) with C
/// libraries (libcurl/OpenSSL, zlib) and may be compromised, and then everything it writes on
/// this socket is the attacker's. So the format is binary, length-prefixed, versioned and
/// bounded before anything is allocated:
///
///     header (16 bytes, little-endian)
///       0  u32  payload length (bytes after the header; ≤ the reader's `maxPayload`)
///       4  u8   version (1)
///       5  u8   kind (`HelperFrame.Kind`)
///       6  u16  field count (≤ the reader's `maxFields`)
///       8  u64  request id (0 for hello/ready)
///     payload: `field count` fields, each
///       u16 tag, u32 length, `length` bytes
///     and nothing after the last field.
///
/// Meanings of tags belong to each message kind (`HelperMessages`); a reader refuses unknown
/// tags, a repeated tag that is not a list, and wrong sizes, so two parsers cannot read one
/// frame differently.
public struct HelperFrame: Sendable, Equatable {
    /// Message kinds; anything else is refused.
    public enum Kind: UInt8, Sendable {
        /// daemon → helper, once, first: how to confine itself.
        case hello = 1
        /// helper → daemon: confined, ready for requests.
        case ready = 2
        /// daemon → net helper: one HTTP exchange.
        case netRequest = 3
        /// net helper → daemon: the response of one exchange.
        case netResponse = 4
        /// daemon → extraction helper: extract the archive beneath the staging directory.
        case extractRequest = 5
        /// extraction helper → daemon: what was written.
        case extractResponse = 6
        /// helper → daemon: the request failed (typed reason in the fields).
        case failure = 7
    }

    /// The version this build speaks; a frame of another version is refused.
    public static let version: UInt8 = 1
    /// Header size in bytes.
    public static let headerSize = 16
    /// Per-field overhead (tag + length).
    public static let fieldHeaderSize = 6

    public var kind: Kind
    public var id: UInt64
    public var fields: [HelperField]

    public init(kind: Kind, id: UInt64, fields: [HelperField] = []) {
        self.kind = kind
        self.id = id
        self.fields = fields
    }

    /// The frame's bytes. Traps on a field over 4 GiB or more than 65,535 fields (programmer
    /// error: every writer bounds its fields well below).
    public func encoded() -> [UInt8] {
        var payload = 0
        for f in fields { payload += Self.fieldHeaderSize + f.value.count }
        precondition(fields.count <= Int(UInt16.max) && payload <= Int(UInt32.max), "helper frame too large")
        var out: [UInt8] = []
        out.reserveCapacity(Self.headerSize + payload)
        out.appendLE(UInt32(payload))
        out.append(Self.version)
        out.append(kind.rawValue)
        out.appendLE(UInt16(fields.count))
        out.appendLE(id)
        for f in fields {
            out.appendLE(f.tag)
            out.appendLE(UInt32(f.value.count))
            out.append(contentsOf: f.value)
        }
        return out
    }
}

/// One tagged field of a frame.
public struct HelperField: Sendable, Equatable {
    public var tag: UInt16
    public var value: [UInt8]

    public init(_ tag: UInt16, _ value: [UInt8]) {
        self.tag = tag
        self.value = value
    }

    public init(_ tag: UInt16, string: String) { self.init(tag, Array(string.utf8)) }

    public init(_ tag: UInt16, int: UInt64) {
        var v: [UInt8] = []
        v.appendLE(int)
        self.init(tag, v)
    }
}

/// Why a frame was refused. Any of these ends the connection: after a bad frame the byte
/// stream cannot be trusted to be in step.
public enum HelperWireError: Error, Sendable, Equatable, CustomStringConvertible {
    case badVersion(UInt8)
    case unknownKind(UInt8)
    case payloadTooLarge(Int, limit: Int)
    case tooManyFields(Int, limit: Int)
    case truncatedField(index: Int)
    case trailingBytes(Int)
    /// A typed message is wrong: missing, repeated, unknown or mis-sized field, or a value out
    /// of range.
    case badField(String)

    public var description: String {
        switch self {
        case .badVersion(let v): "helper frame version \(v) is not \(HelperFrame.version)"
        case .unknownKind(let k): "helper frame kind \(k) is unknown"
        case .payloadTooLarge(let n, let limit): "helper frame payload of \(n) bytes is over the limit of \(limit)"
        case .tooManyFields(let n, let limit): "helper frame has \(n) fields; the limit is \(limit)"
        case .truncatedField(let i): "helper frame field \(i) runs past the payload"
        case .trailingBytes(let n): "helper frame has \(n) bytes after its last field"
        case .badField(let m): "helper message: \(m)"
        }
    }
}

/// Incremental reader of frames from a byte stream: feed it what `read` returned, take the
/// complete frames out. The header is checked as soon as its 16 bytes are in, so an announced
/// oversize payload is refused before it is buffered.
public struct HelperFrameReader: Sendable {
    /// Largest payload accepted.
    public let maxPayload: Int
    /// Most fields accepted.
    public let maxFields: Int
    private var buffer: [UInt8] = []
    private var start = 0

    public init(maxPayload: Int, maxFields: Int = 4096) {
        self.maxPayload = maxPayload
        self.maxFields = maxFields
    }

    /// Bytes received and not yet consumed as frames.
    public var pendingBytes: Int { buffer.count - start }

    /// Appends received bytes.
    public mutating func append(_ bytes: UnsafeRawBufferPointer) {
        if start > 0 && start == buffer.count {
            buffer.removeAll(keepingCapacity: true)
            start = 0
        } else if start > 1 << 20 {
            buffer.removeFirst(start)
            start = 0
        }
        buffer.append(contentsOf: bytes)
    }

    /// Appends received bytes.
    public mutating func append(_ bytes: [UInt8]) { bytes.withUnsafeBytes { append($0) } }

    /// The next complete frame, nil when more bytes are needed.
    public mutating func next() throws(HelperWireError) -> HelperFrame? {
        let available = buffer.count - start
        guard available >= HelperFrame.headerSize else { return nil }
        let header = try Self.header(buffer[start..<(start + HelperFrame.headerSize)], maxPayload, maxFields)
        guard available >= HelperFrame.headerSize + header.payload else { return nil }
        let body = start + HelperFrame.headerSize
        let fields = try Self.fields(buffer[body..<(body + header.payload)], count: header.count)
        start = body + header.payload
        return HelperFrame(kind: header.kind, id: header.id, fields: fields)
    }

    /// Decodes exactly one frame from `bytes` (no bytes before or after): the fuzz and
    /// negative-test entry point.
    public static func decode(_ bytes: [UInt8], maxPayload: Int, maxFields: Int = 4096) throws(HelperWireError) -> HelperFrame {
        var reader = HelperFrameReader(maxPayload: maxPayload, maxFields: maxFields)
        reader.append(bytes)
        guard let frame = try reader.next() else { throw .truncatedField(index: -1) }
        if reader.pendingBytes != 0 { throw .trailingBytes(reader.pendingBytes) }
        return frame
    }

    private static func header(_ h: ArraySlice<UInt8>, _ maxPayload: Int, _ maxFields: Int) throws(HelperWireError)
        -> (payload: Int, kind: HelperFrame.Kind, count: Int, id: UInt64)
    {
        let b = h.startIndex
        let payload = Int(h.loadLE(UInt32.self, at: b))
        guard h[b + 4] == HelperFrame.version else { throw .badVersion(h[b + 4]) }
        guard let kind = HelperFrame.Kind(rawValue: h[b + 5]) else { throw .unknownKind(h[b + 5]) }
        let count = Int(h.loadLE(UInt16.self, at: b + 6))
        guard payload <= maxPayload else { throw .payloadTooLarge(payload, limit: maxPayload) }
        guard count <= maxFields else { throw .tooManyFields(count, limit: maxFields) }
        // Every field costs at least its 6-byte header: a count the payload cannot hold is a lie.
        guard count * HelperFrame.fieldHeaderSize <= payload else { throw .truncatedField(index: payload / HelperFrame.fieldHeaderSize) }
        return (payload, kind, count, h.loadLE(UInt64.self, at: b + 8))
    }

    private static func fields(_ p: ArraySlice<UInt8>, count: Int) throws(HelperWireError) -> [HelperField] {
        var fields: [HelperField] = []
        fields.reserveCapacity(count)
        var off = p.startIndex
        for i in 0..<count {
            guard p.endIndex - off >= HelperFrame.fieldHeaderSize else { throw .truncatedField(index: i) }
            let tag = p.loadLE(UInt16.self, at: off)
            let len = Int(p.loadLE(UInt32.self, at: off + 2))
            off += HelperFrame.fieldHeaderSize
            guard len <= p.endIndex - off else { throw .truncatedField(index: i) }
            fields.append(HelperField(tag, Array(p[off..<(off + len)])))
            off += len
        }
        if off != p.endIndex { throw .trailingBytes(p.endIndex - off) }
        return fields
    }
}

extension Array where Element == UInt8 {
    fileprivate mutating func appendLE<T: FixedWidthInteger>(_ v: T) {
        for i in 0..<(T.bitWidth / 8) { append(UInt8(truncatingIfNeeded: v >> (8 * i))) }
    }
}

extension ArraySlice where Element == UInt8 {
    /// The little-endian integer at absolute index `at` (the caller checked the bounds).
    fileprivate func loadLE<T: FixedWidthInteger>(_: T.Type, at: Int) -> T {
        var v: T = 0
        for i in 0..<(T.bitWidth / 8) { v |= T(self[at + i]) << (8 * i) }
        return v
    }
}
