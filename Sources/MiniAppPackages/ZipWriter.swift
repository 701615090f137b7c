internal import MiniAppSystem

/// A deterministic zip writer for `miniapp pack` and for building test fixtures.
///
/// Entries are written in the order given (callers sort them), with a fixed timestamp
/// (1980-01-01 00:00), Unix "made by" and modes, deflate when it helps and store otherwise, no
/// data descriptors: the same inputs always give the same bytes.
public struct ZipWriter {
    /// One entry to write. The `override…` members exist to build *hostile* archives in tests
    /// (lying sizes, odd attributes); `pack` leaves them nil.
    public struct Entry: Sendable {
        /// Entry name as written (a trailing `/` makes a directory).
        public var name: [UInt8]
        /// Inflated content.
        public var data: [UInt8]
        /// Unix mode including type bits (e.g. 0o100644); 0 writes no Unix attributes.
        public var unixMode: UInt32
        /// Compress with deflate when it is smaller.
        public var compress: Bool = true
        /// Test hooks: values written instead of the true ones.
        public var overrideUncompressedSize: UInt32?
        public var overrideCRC: UInt32?
        public var extra: [UInt8] = []
        public var flags: UInt16 = 0x0800

        /// A regular-file or directory entry.
        public init(name: String, data: [UInt8] = [], unixMode: UInt32 = 0o100644) {
            self.name = Array(name.utf8)
            self.data = data
            self.unixMode = unixMode
        }
    }

    /// Where each entry's local header was written, for tests that patch bytes.
    public private(set) var localOffsets: [Int] = []
    /// Where the central directory starts.
    public private(set) var centralOffset = 0

    public init() {}

    /// The archive bytes for `entries`.
    public mutating func write(_ entries: [Entry]) -> [UInt8] {
        var out: [UInt8] = []
        var central: [UInt8] = []
        localOffsets = []
        for e in entries {
            var crc = CRC32()
            e.data.withUnsafeBytes { crc.update($0) }
            var method: UInt16 = 0
            var payload = e.data
            if e.compress && !e.data.isEmpty {
                let d = RawDeflate.compress(e.data)
                if d.count < e.data.count { (method, payload) = (8, d) }
            }
            let crcValue = e.overrideCRC ?? crc.value
            let usize = e.overrideUncompressedSize ?? UInt32(e.data.count)
            localOffsets.append(out.count)
            var common: [UInt8] = []
            common.le16(20); common.le16(e.flags); common.le16(method); common.le16(0); common.le16(0x21)
            common.le32(crcValue); common.le32(UInt32(payload.count)); common.le32(usize)
            common.le16(UInt16(e.name.count)); common.le16(UInt16(e.extra.count))
            out.le32(0x0403_4b50); out += common; out += e.name; out += e.extra; out += payload
            central.le32(0x0201_4b50); central.le16(e.unixMode == 0 ? 20 : 0x0314); central += common
            central.le16(0); central.le16(0); central.le16(0); central.le32(e.unixMode << 16)
            central.le32(UInt32(localOffsets.last!)); central += e.name; central += e.extra
        }
        centralOffset = out.count
        out += central
        out.le32(0x0605_4b50); out.le16(0); out.le16(0); out.le16(UInt16(entries.count)); out.le16(UInt16(entries.count))
        out.le32(UInt32(central.count)); out.le32(UInt32(centralOffset)); out.le16(0)
        return out
    }
}

extension [UInt8] {
    mutating func le16(_ v: UInt16) { append(UInt8(v & 0xFF)); append(UInt8(v >> 8)) }
    mutating func le32(_ v: UInt32) { for s in [0, 8, 16, 24] { append(UInt8((v >> UInt32(s)) & 0xFF)) } }
}
