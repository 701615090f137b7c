/// daemon → extraction helper: extract the archive (a sealed memfd the helper inherited)
/// beneath the staging directory (a directory fd it inherited), within these bounds — the same
/// `ZipLimits` the daemon's own parse of the central directory used.
public struct HelperExtractRequest: Sendable, Equatable {
    /// Every bound, in `ZipLimits` member order (archive bytes, inflated bytes, entries, ratio,
    /// ratio-exempt bytes, path bytes, depth, entries per directory).
    public var limits: [UInt64]

    public static let limitCount = 8

    public init(limits: [UInt64]) {
        precondition(limits.count == Self.limitCount)
        self.limits = limits
    }

    public func frame(id: UInt64) -> HelperFrame {
        HelperFrame(kind: .extractRequest, id: id, fields: limits.enumerated().map { HelperField(UInt16($0.offset + 1), int: $0.element) })
    }

    public init(_ frame: HelperFrame) throws(HelperWireError) {
        guard frame.kind == .extractRequest else { throw .badField("expected extractRequest, got \(frame.kind)") }
        let tags = (1...UInt16(Self.limitCount))
        let s = try HelperFieldSet(frame, known: Set(tags))
        var out: [UInt64] = []
        for t in tags { out.append(try s.int(t, max: 1 << 40)) }
        limits = out
    }
}

/// One extracted regular file as the helper reports it: the daemon re-hashes the file before it
/// believes this.
public struct HelperExtractedFile: Sendable, Equatable {
    public var path: String
    public var sha256: [UInt8]
    public var size: UInt64

    public init(path: String, sha256: [UInt8], size: UInt64) {
        self.path = path
        self.sha256 = sha256
        self.size = size
    }
}

/// extraction helper → daemon: the inflated manifest (for the daemon's own manifest parser) and
/// every regular file written, with its SHA-256.
public struct HelperExtractResponse: Sendable, Equatable {
    public var manifest: [UInt8]?
    public var files: [HelperExtractedFile]

    public init(manifest: [UInt8]?, files: [HelperExtractedFile]) {
        self.manifest = manifest
        self.files = files
    }

    public func frame(id: UInt64) -> HelperFrame {
        var f: [HelperField] = []
        if let manifest { f.append(HelperField(1, manifest)) }
        for file in files {
            var v: [UInt8] = []
            withUnsafeBytes(of: file.size.littleEndian) { v.append(contentsOf: $0) }
            f.append(HelperField(2, v + file.sha256 + Array(file.path.utf8)))
        }
        return HelperFrame(kind: .extractResponse, id: id, fields: f)
    }

    /// `maxManifest`: the manifest size limit; paths must be 1…`maxPath` bytes of UTF-8.
    public init(_ frame: HelperFrame, maxManifest: Int, maxPath: Int) throws(HelperWireError) {
        guard frame.kind == .extractResponse else { throw .badField("expected extractResponse, got \(frame.kind)") }
        let s = try HelperFieldSet(frame, known: [1], repeated: [2])
        manifest = s.bytes(1)
        guard (manifest?.count ?? 0) <= maxManifest else { throw .badField("manifest over \(maxManifest) bytes") }
        var out: [HelperExtractedFile] = []
        for v in s.list(2) {
            guard v.count > 40, v.count - 40 <= maxPath else { throw .badField("file record of \(v.count) bytes") }
            let size = try HelperFieldSet.int(Array(v[0..<8]), 2)
            guard let path = String(validating: v[40...], as: UTF8.self) else { throw .badField("file path is not UTF-8") }
            out.append(HelperExtractedFile(path: path, sha256: Array(v[8..<40]), size: size))
        }
        files = out
    }
}
