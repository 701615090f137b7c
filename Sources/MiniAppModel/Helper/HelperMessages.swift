/// The typed messages carried by `HelperFrame`s, each with its field tags, an encoder and a
/// strict decoder (unknown tag, repeated single field, wrong integer size, invalid UTF-8 or an
/// out-of-range value → `HelperWireError.badField`).

/// The fields of one frame, checked against the tags a message kind knows.
public struct HelperFieldSet: Sendable {
    private var single: [UInt16: [UInt8]] = [:]
    private var lists: [UInt16: [[UInt8]]] = [:]

    /// `known`: the single-valued tags; `repeated`: the list tags. Anything else is refused.
    public init(_ frame: HelperFrame, known: Set<UInt16>, repeated: Set<UInt16> = []) throws(HelperWireError) {
        for f in frame.fields {
            if repeated.contains(f.tag) {
                lists[f.tag, default: []].append(f.value)
            } else if known.contains(f.tag) {
                if single[f.tag] != nil { throw .badField("field \(f.tag) of \(frame.kind) repeated") }
                single[f.tag] = f.value
            } else {
                throw .badField("unknown field \(f.tag) in \(frame.kind)")
            }
        }
    }

    public func bytes(_ tag: UInt16) -> [UInt8]? { single[tag] }
    public func list(_ tag: UInt16) -> [[UInt8]] { lists[tag] ?? [] }

    public func string(_ tag: UInt16) throws(HelperWireError) -> String? {
        guard let b = single[tag] else { return nil }
        guard let s = String(validating: b, as: UTF8.self) else { throw .badField("field \(tag) is not UTF-8") }
        return s
    }

    public func requiredString(_ tag: UInt16) throws(HelperWireError) -> String {
        guard let s = try string(tag) else { throw .badField("field \(tag) is missing") }
        return s
    }

    public func int(_ tag: UInt16) throws(HelperWireError) -> UInt64? {
        guard let b = single[tag] else { return nil }
        return try Self.int(b, tag)
    }

    /// An integer field that must be present and at most `max`.
    public func int(_ tag: UInt16, max: UInt64) throws(HelperWireError) -> UInt64 {
        guard let v = try int(tag) else { throw .badField("field \(tag) is missing") }
        guard v <= max else { throw .badField("field \(tag) is \(v); the most is \(max)") }
        return v
    }

    static func int(_ b: [UInt8], _ tag: UInt16) throws(HelperWireError) -> UInt64 {
        guard b.count == 8 else { throw .badField("field \(tag) is \(b.count) bytes, not an 8-byte integer") }
        var v: UInt64 = 0
        for (i, x) in b.enumerated() { v |= UInt64(x) << (8 * UInt64(i)) }
        return v
    }
}

/// An HTTP header as one field: u32 name length, name, value.
enum HelperHeader {
    static func encode(_ tag: UInt16, _ h: (name: String, value: String)) -> HelperField {
        let name = Array(h.name.utf8)
        var v: [UInt8] = []
        withUnsafeBytes(of: UInt32(name.count).littleEndian) { v.append(contentsOf: $0) }
        return HelperField(tag, v + name + Array(h.value.utf8))
    }

    static func decode(_ b: [UInt8]) throws(HelperWireError) -> (name: String, value: String) {
        guard b.count >= 4 else { throw .badField("header field shorter than its length prefix") }
        let n = Int(b[0]) | Int(b[1]) << 8 | Int(b[2]) << 16 | Int(b[3]) << 24
        guard n <= b.count - 4 else { throw .badField("header name runs past the field") }
        guard let name = String(validating: b[4..<(4 + n)], as: UTF8.self) else { throw .badField("header name is not UTF-8") }
        // Values from a server may carry any bytes (obs-text): decoded leniently, like libcurl's
        // own header callback output is today.
        return (name, String(decoding: b[(4 + n)...], as: UTF8.self))
    }
}

/// daemon → helper, first frame: how the helper confines itself before it reads any
/// untrusted byte.
public struct HelperHello: Sendable, Equatable {
    /// uid/gid to switch to when started as root (ignored otherwise).
    public var uid: UInt32
    public var gid: UInt32
    /// Compiled seccomp programs (`struct sock_filter` arrays), installed in order, last.
    public var seccompFilters: [[UInt8]]
    /// Paths the helper may read (Landlock); nothing else of the host file system.
    public var readPaths: [String]
    /// TCP ports the helper may connect to (Landlock ABI ≥ 4); empty = none.
    public var connectPorts: [UInt16]
    /// A CA bundle (PEM) to trust instead of the system store.
    public var caBundle: [UInt8]?
    /// Unshare the network namespace too (the extraction helper needs no network).
    public var isolateNetwork: Bool

    public init(uid: UInt32, gid: UInt32, seccompFilters: [[UInt8]], readPaths: [String], connectPorts: [UInt16],
                caBundle: [UInt8]?, isolateNetwork: Bool) {
        self.uid = uid
        self.gid = gid
        self.seccompFilters = seccompFilters
        self.readPaths = readPaths
        self.connectPorts = connectPorts
        self.caBundle = caBundle
        self.isolateNetwork = isolateNetwork
    }

    enum Tag { static let uid: UInt16 = 1, gid: UInt16 = 2, filter: UInt16 = 3, read: UInt16 = 4, port: UInt16 = 5, ca: UInt16 = 6, isolate: UInt16 = 7 }

    public func frame() -> HelperFrame {
        var f = [HelperField(Tag.uid, int: UInt64(uid)), HelperField(Tag.gid, int: UInt64(gid)),
                 HelperField(Tag.isolate, int: isolateNetwork ? 1 : 0)]
        f += seccompFilters.map { HelperField(Tag.filter, $0) }
        f += readPaths.map { HelperField(Tag.read, string: $0) }
        f += connectPorts.map { HelperField(Tag.port, int: UInt64($0)) }
        if let caBundle { f.append(HelperField(Tag.ca, caBundle)) }
        return HelperFrame(kind: .hello, id: 0, fields: f)
    }

    public init(_ frame: HelperFrame) throws(HelperWireError) {
        guard frame.kind == .hello else { throw .badField("expected hello, got \(frame.kind)") }
        let s = try HelperFieldSet(frame, known: [Tag.uid, Tag.gid, Tag.ca, Tag.isolate], repeated: [Tag.filter, Tag.read, Tag.port])
        uid = UInt32(try s.int(Tag.uid, max: UInt64(UInt32.max)))
        gid = UInt32(try s.int(Tag.gid, max: UInt64(UInt32.max)))
        isolateNetwork = try s.int(Tag.isolate, max: 1) == 1
        seccompFilters = s.list(Tag.filter)
        for f in seccompFilters where f.isEmpty || f.count % 8 != 0 || f.count > 8 * 4096 {
            throw .badField("a seccomp program must be 1 to 4096 instructions of 8 bytes")
        }
        var paths: [String] = []
        for p in s.list(Tag.read) {
            guard let text = String(validating: p, as: UTF8.self), text.hasPrefix("/"), !text.utf8.contains(0) else {
                throw .badField("a read path must be absolute UTF-8 without NUL")
            }
            paths.append(text)
        }
        readPaths = paths
        var ports: [UInt16] = []
        for p in s.list(Tag.port) {
            let v = try HelperFieldSet.int(p, Tag.port)
            guard v >= 1 && v <= 65535 else { throw .badField("port \(v) is out of range") }
            ports.append(UInt16(v))
        }
        connectPorts = ports
        caBundle = s.bytes(Tag.ca)
    }
}

/// helper → daemon: confined and ready; says what it achieved.
public struct HelperReady: Sendable, Equatable {
    /// Landlock ABI in force (0: the kernel has none).
    public var landlockABI: Int
    /// The helper's pid as it sees itself (for the daemon's log).
    public var pid: Int32

    public init(landlockABI: Int, pid: Int32) {
        self.landlockABI = landlockABI
        self.pid = pid
    }

    public func frame() -> HelperFrame {
        HelperFrame(kind: .ready, id: 0, fields: [HelperField(1, int: UInt64(landlockABI)), HelperField(2, int: UInt64(UInt32(bitPattern: pid)))])
    }

    public init(_ frame: HelperFrame) throws(HelperWireError) {
        guard frame.kind == .ready else { throw .badField("expected ready, got \(frame.kind)") }
        let s = try HelperFieldSet(frame, known: [1, 2])
        landlockABI = Int(try s.int(1, max: 255))
        pid = Int32(bitPattern: UInt32(try s.int(2, max: UInt64(UInt32.max))))
    }
}

/// Why a helper request failed: a `kind` the receiver maps to its own error (a net failure
/// class, or an archive error code), a message for the log, and optional details.
public struct HelperFailure: Sendable, Equatable {
    public var kind: String
    public var message: String
    public var limit: UInt64?
    public var entry: String?

    public init(kind: String, message: String, limit: UInt64? = nil, entry: String? = nil) {
        self.kind = kind
        self.message = message
        self.limit = limit
        self.entry = entry
    }

    public func frame(id: UInt64) -> HelperFrame {
        var f = [HelperField(1, string: kind), HelperField(2, string: String(message.prefix(4096)))]
        if let limit { f.append(HelperField(3, int: limit)) }
        if let entry { f.append(HelperField(4, string: entry)) }
        return HelperFrame(kind: .failure, id: id, fields: f)
    }

    public init(_ frame: HelperFrame) throws(HelperWireError) {
        guard frame.kind == .failure else { throw .badField("expected failure, got \(frame.kind)") }
        let s = try HelperFieldSet(frame, known: [1, 2, 3, 4])
        kind = try s.requiredString(1)
        message = try s.requiredString(2)
        limit = try s.int(3)
        entry = try s.string(4)
        guard kind.utf8.count <= 64, message.utf8.count <= 4096, (entry?.utf8.count ?? 0) <= 4096 else {
            throw .badField("failure text over its bound")
        }
    }
}
