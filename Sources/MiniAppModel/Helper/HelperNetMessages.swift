/// daemon → net helper: one HTTP exchange, every decision already taken by the daemon (the
/// URL passed its allow-list, `pinnedAddress` its private-range check; the limits are the
/// daemon's). The helper only carries it out with libcurl.
public struct HelperNetRequest: Sendable {
    public var url: String
    public var method: String
    public var headers: [(name: String, value: String)]
    public var body: [UInt8]?
    public var pinnedAddress: String
    public var allowHTTP: Bool
    public var connectTimeoutMillis: Int
    public var timeoutMillis: Int
    public var maxResponseBytes: Int
    public var maxHeaderBytes: Int
    public var userAgent: String

    public init(url: String, method: String, headers: [(name: String, value: String)], body: [UInt8]?, pinnedAddress: String,
                allowHTTP: Bool, connectTimeoutMillis: Int, timeoutMillis: Int, maxResponseBytes: Int, maxHeaderBytes: Int,
                userAgent: String) {
        self.url = url
        self.method = method
        self.headers = headers
        self.body = body
        self.pinnedAddress = pinnedAddress
        self.allowHTTP = allowHTTP
        self.connectTimeoutMillis = connectTimeoutMillis
        self.timeoutMillis = timeoutMillis
        self.maxResponseBytes = maxResponseBytes
        self.maxHeaderBytes = maxHeaderBytes
        self.userAgent = userAgent
    }

    enum Tag {
        static let url: UInt16 = 1, method: UInt16 = 2, header: UInt16 = 3, body: UInt16 = 4, pinned: UInt16 = 5
        static let http: UInt16 = 6, connect: UInt16 = 7, timeout: UInt16 = 8, maxBody: UInt16 = 9, maxHeaders: UInt16 = 10
        static let agent: UInt16 = 11
    }

    /// Largest time limit accepted (one day): anything above is a corrupt frame.
    static let maxMillis: UInt64 = 86_400_000
    /// Largest size limit accepted (1 GiB).
    static let maxBytes: UInt64 = 1 << 30

    public func frame(id: UInt64) -> HelperFrame {
        var f = [
            HelperField(Tag.url, string: url), HelperField(Tag.method, string: method), HelperField(Tag.pinned, string: pinnedAddress),
            HelperField(Tag.http, int: allowHTTP ? 1 : 0), HelperField(Tag.connect, int: UInt64(max(0, connectTimeoutMillis))),
            HelperField(Tag.timeout, int: UInt64(max(0, timeoutMillis))), HelperField(Tag.maxBody, int: UInt64(max(0, maxResponseBytes))),
            HelperField(Tag.maxHeaders, int: UInt64(max(0, maxHeaderBytes))), HelperField(Tag.agent, string: userAgent),
        ]
        f += headers.map { HelperHeader.encode(Tag.header, $0) }
        if let body { f.append(HelperField(Tag.body, body)) }
        return HelperFrame(kind: .netRequest, id: id, fields: f)
    }

    public init(_ frame: HelperFrame) throws(HelperWireError) {
        guard frame.kind == .netRequest else { throw .badField("expected netRequest, got \(frame.kind)") }
        let s = try HelperFieldSet(
            frame, known: [Tag.url, Tag.method, Tag.body, Tag.pinned, Tag.http, Tag.connect, Tag.timeout, Tag.maxBody, Tag.maxHeaders, Tag.agent],
            repeated: [Tag.header])
        url = try s.requiredString(Tag.url)
        method = try s.requiredString(Tag.method)
        pinnedAddress = try s.requiredString(Tag.pinned)
        userAgent = try s.requiredString(Tag.agent)
        allowHTTP = try s.int(Tag.http, max: 1) == 1
        connectTimeoutMillis = Int(try s.int(Tag.connect, max: Self.maxMillis))
        timeoutMillis = Int(try s.int(Tag.timeout, max: Self.maxMillis))
        maxResponseBytes = Int(try s.int(Tag.maxBody, max: Self.maxBytes))
        maxHeaderBytes = Int(try s.int(Tag.maxHeaders, max: Self.maxBytes))
        var hs: [(name: String, value: String)] = []
        for h in s.list(Tag.header) { hs.append(try HelperHeader.decode(h)) }
        headers = hs
        body = s.bytes(Tag.body)
        // The daemon validated these; a helper re-checks the ones libcurl would otherwise act on
        // in surprising ways (header injection through a CR/LF, an empty or oversized address).
        for (n, v) in headers where (n + v).utf8.contains(where: { $0 == 0x0d || $0 == 0x0a || $0 == 0 }) || n.contains(":") {
            throw .badField("header \(n) contains CR, LF, NUL or a colon in its name")
        }
        guard !pinnedAddress.isEmpty, pinnedAddress.utf8.count < 63 else { throw .badField("pinned address is empty or too long") }
    }
}

/// net helper → daemon: the response of one exchange (status of the final non-1xx response,
/// header fields with lowercased names, body bytes as received).
public struct HelperNetResponse: Sendable {
    public var status: Int
    public var headers: [(name: String, value: String)]
    public var body: [UInt8]

    public init(status: Int, headers: [(name: String, value: String)], body: [UInt8]) {
        self.status = status
        self.headers = headers
        self.body = body
    }

    public func frame(id: UInt64) -> HelperFrame {
        HelperFrame(kind: .netResponse, id: id,
                    fields: [HelperField(1, int: UInt64(max(0, status))), HelperField(3, body)] + headers.map { HelperHeader.encode(2, $0) })
    }

    /// Decodes a response; `maxBody` is the limit the daemon asked for (a helper that sends
    /// more is refused, not believed).
    public init(_ frame: HelperFrame, maxBody: Int) throws(HelperWireError) {
        guard frame.kind == .netResponse else { throw .badField("expected netResponse, got \(frame.kind)") }
        let s = try HelperFieldSet(frame, known: [1, 3], repeated: [2])
        status = Int(try s.int(1, max: 999))
        body = s.bytes(3) ?? []
        guard body.count <= maxBody else { throw .badField("response body of \(body.count) bytes is over the limit of \(maxBody)") }
        var hs: [(name: String, value: String)] = []
        for h in s.list(2) { hs.append(try HelperHeader.decode(h)) }
        headers = hs
    }
}
