import MiniAppModel
import Testing

/// The daemon↔helper wire: round trips, and a table of hostile frames — what a compromised
/// helper (or a corrupted stream) might send — each refused with the right reason.
@Suite struct HelperWireTests {
    static func header(payload: UInt32, version: UInt8 = 1, kind: UInt8 = 4, count: UInt16, id: UInt64 = 7) -> [UInt8] {
        var b: [UInt8] = []
        for i in 0..<4 { b.append(UInt8(truncatingIfNeeded: payload >> (8 * UInt32(i)))) }
        b += [version, kind, UInt8(count & 0xff), UInt8(count >> 8)]
        for i in 0..<8 { b.append(UInt8(truncatingIfNeeded: id >> (8 * UInt64(i)))) }
        return b
    }

    static func field(_ tag: UInt16, _ value: [UInt8], lengthOverride: UInt32? = nil) -> [UInt8] {
        let len = lengthOverride ?? UInt32(value.count)
        return [UInt8(tag & 0xff), UInt8(tag >> 8)] + (0..<4).map { UInt8(truncatingIfNeeded: len >> (8 * UInt32($0))) } + value
    }

    static let status200 = field(1, [200, 0, 0, 0, 0, 0, 0, 0])

    static let hostile: [(String, [UInt8], HelperWireError)] = [
        ("version 2", header(payload: 0, version: 2, count: 0), .badVersion(2)),
        ("version 0", header(payload: 0, version: 0, count: 0), .badVersion(0)),
        ("unknown kind", header(payload: 0, kind: 99, count: 0), .unknownKind(99)),
        ("kind 0", header(payload: 0, kind: 0, count: 0), .unknownKind(0)),
        ("payload over the limit (announced, not sent)", header(payload: 0xffff_ffff, count: 1), .payloadTooLarge(0xffff_ffff, limit: 4096)),
        ("too many fields", header(payload: 4000, count: 600), .tooManyFields(600, limit: 512)),
        ("count the payload cannot hold", header(payload: 10, count: 2) + [UInt8](repeating: 0, count: 10), .truncatedField(index: 1)),
        ("field longer than the payload", header(payload: 8, count: 1) + field(1, [1, 2], lengthOverride: 100), .truncatedField(index: 0)),
        ("field length 2^32-1", header(payload: 6, count: 1) + field(1, [], lengthOverride: 0xffff_ffff), .truncatedField(index: 0)),
        ("bytes after the last field", header(payload: 16, count: 1) + status200 + [0, 0], .trailingBytes(2)),
        ("zero fields, nonzero payload", header(payload: 3, count: 0) + [1, 2, 3], .trailingBytes(3)),
    ]

    @Test(arguments: hostile)
    func hostileFramesAreRefused(_ name: String, _ bytes: [UInt8], _ expected: HelperWireError) {
        #expect(throws: expected, "\(name)") { _ = try HelperFrameReader.decode(bytes, maxPayload: 4096, maxFields: 512) }
    }

    @Test func truncatedFramesWaitForMoreBytes() throws {
        let frame = HelperNetResponse(status: 200, headers: [("a", "b")], body: Array("hello".utf8)).frame(id: 3).encoded()
        for cut in [0, 1, 15, 16, frame.count - 1] {
            var r = HelperFrameReader(maxPayload: 4096)
            r.append(Array(frame.prefix(cut)))
            #expect(try r.next() == nil, "a frame cut at \(cut) was taken as complete")
        }
        #expect(throws: HelperWireError.truncatedField(index: -1)) { _ = try HelperFrameReader.decode(Array(frame.prefix(20)), maxPayload: 4096) }
    }

    @Test func framesRoundTripAndStream() throws {
        let a = HelperNetResponse(status: 404, headers: [("content-type", "text/plain"), ("x", "")], body: [0, 255, 10]).frame(id: 9)
        let b = HelperFailure(kind: "tls", message: "bad cert", limit: 5, entry: nil).frame(id: 10)
        var r = HelperFrameReader(maxPayload: 4096)
        r.append(a.encoded() + b.encoded())
        #expect(try r.next() == a)
        #expect(try r.next() == b)
        #expect(try r.next() == nil)
        let resp = try HelperNetResponse(a, maxBody: 3)
        #expect(resp.status == 404 && resp.body == [0, 255, 10] && resp.headers.map(\.name) == ["content-type", "x"])
        #expect(try HelperFailure(b) == HelperFailure(kind: "tls", message: "bad cert", limit: 5))
        let hello = HelperHello(uid: 65534, gid: 65534, seccompFilters: [[UInt8](repeating: 6, count: 16)], readPaths: ["/etc/ssl"],
                                connectPorts: [443], caBundle: [1, 2], isolateNetwork: false)
        #expect(try HelperHello(hello.frame()) == hello)
    }

    static func frame(_ kind: HelperFrame.Kind, _ fields: [HelperField]) -> HelperFrame { HelperFrame(kind: kind, id: 1, fields: fields) }
    static let int200 = HelperField(1, int: 200)

    /// Typed messages: the frame is well formed, the message is not.
    static let badMessages: [(String, @Sendable () throws -> Void)] = [
        ("unknown tag", { _ = try HelperNetResponse(frame(.netResponse, [int200, HelperField(77, [])]), maxBody: 10) }),
        ("single tag repeated", { _ = try HelperNetResponse(frame(.netResponse, [int200, int200]), maxBody: 10) }),
        ("integer of 4 bytes", { _ = try HelperNetResponse(frame(.netResponse, [HelperField(1, [200, 0, 0, 0])]), maxBody: 10) }),
        ("status 1000", { _ = try HelperNetResponse(frame(.netResponse, [HelperField(1, int: 1000)]), maxBody: 10) }),
        ("body over the asked limit", { _ = try HelperNetResponse(frame(.netResponse, [int200, HelperField(3, [UInt8](repeating: 0, count: 11))]), maxBody: 10) }),
        ("header name length past the field", { _ = try HelperNetResponse(frame(.netResponse, [int200, HelperField(2, [9, 0, 0, 0, 65])]), maxBody: 10) }),
        ("header shorter than its prefix", { _ = try HelperNetResponse(frame(.netResponse, [int200, HelperField(2, [1, 0])]), maxBody: 10) }),
        ("wrong kind", { _ = try HelperNetResponse(frame(.failure, [int200]), maxBody: 10) }),
        ("failure without message", { _ = try HelperFailure(frame(.failure, [HelperField(1, string: "tls")])) }),
        ("failure text not UTF-8", { _ = try HelperFailure(frame(.failure, [HelperField(1, [0xff, 0xfe]), HelperField(2, string: "m")])) }),
        ("failure kind over 64 bytes", { _ = try HelperFailure(frame(.failure, [HelperField(1, string: String(repeating: "k", count: 65)), HelperField(2, string: "m")])) }),
        ("extract record too short", { _ = try HelperExtractResponse(frame(.extractResponse, [HelperField(2, [UInt8](repeating: 0, count: 40))]), maxManifest: 10, maxPath: 10) }),
        ("extract path over maxPath", { _ = try HelperExtractResponse(frame(.extractResponse, [HelperField(2, [UInt8](repeating: 65, count: 51))]), maxManifest: 10, maxPath: 10) }),
        ("extract manifest over its limit", { _ = try HelperExtractResponse(frame(.extractResponse, [HelperField(1, [UInt8](repeating: 0, count: 11))]), maxManifest: 10, maxPath: 10) }),
        ("extract request missing a bound", { _ = try HelperExtractRequest(frame(.extractRequest, [HelperField(1, int: 5)])) }),
        ("extract bound over 2^40", { _ = try HelperExtractRequest(frame(.extractRequest, (1...8).map { HelperField(UInt16($0), int: 1 << 41) })) }),
        ("hello seccomp program not a multiple of 8", { _ = try HelperHello(frame(.hello, helloFields + [HelperField(3, [1, 2, 3])])) }),
        ("hello relative read path", { _ = try HelperHello(frame(.hello, helloFields + [HelperField(4, string: "etc/ssl")])) }),
        ("hello port 0", { _ = try HelperHello(frame(.hello, helloFields + [HelperField(5, int: 0)])) }),
        ("hello uid over 32 bits", { _ = try HelperHello(frame(.hello, [HelperField(1, int: 1 << 32), HelperField(2, int: 0), HelperField(7, int: 0)])) }),
        ("net request header with CR LF", { _ = try HelperNetRequest(netRequest(headers: [("X-A", "1\r\nHost: evil")])) }),
        ("net request header name with a colon", { _ = try HelperNetRequest(netRequest(headers: [("X:A", "1")])) }),
        ("net request empty pinned address", { _ = try HelperNetRequest(netRequest(pinned: "")) }),
        ("net request timeout over a day", { _ = try HelperNetRequest(netRequest(timeout: 86_400_001)) }),
    ]

    static let helloFields = [HelperField(1, int: 1), HelperField(2, int: 1), HelperField(7, int: 0)]

    static func netRequest(headers: [(name: String, value: String)] = [], pinned: String = "127.0.0.1", timeout: Int = 1000) -> HelperFrame {
        HelperNetRequest(url: "https://a.test/", method: "GET", headers: headers, body: nil, pinnedAddress: pinned, allowHTTP: false,
                         connectTimeoutMillis: 10, timeoutMillis: timeout, maxResponseBytes: 10, maxHeaderBytes: 10, userAgent: "t").frame(id: 1)
    }

    @Test(arguments: badMessages.map(\.0))
    func malformedMessagesAreRefused(_ name: String) {
        let body = Self.badMessages.first { $0.0 == name }!.1
        #expect(throws: HelperWireError.self, "\(name)") { try body() }
    }

    @Test func aValidNetRequestDecodes() throws {
        let r = try HelperNetRequest(Self.netRequest(headers: [("Authorization", "Bearer x")]))
        #expect(r.url == "https://a.test/" && r.headers.first?.value == "Bearer x" && r.timeoutMillis == 1000)
    }
}
