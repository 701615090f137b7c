import MiniAppBroker
import MiniAppJSON
import MiniAppModel
import Testing

/// declared × granted × method, through a real socket: allowed iff declared AND granted.
@Suite struct PermissionMatrixTests {
    struct Row: Sendable, CustomStringConvertible {
        var method: String
        var declared: Bool
        var granted: Bool
        /// nil = passes the permission check (result, or HOST_UNAVAILABLE for a host method
        /// without provider, which proves the check passed).
        var expected: String?
        var description: String { "\(method) declared=\(declared) granted=\(granted)" }
    }

    static let permissionOf = ["net.request": "network", "payment.pay": "payment", "geolocation.get": "geolocation", "ui.toast": "ui"]

    static let rows: [Row] = {
        var r: [Row] = []
        for m in ["net.request", "payment.pay", "geolocation.get", "ui.toast"] {
            for d in [false, true] {
                for g in [false, true] {
                    r.append(Row(method: m, declared: d, granted: g, expected: d && g ? nil : "PERMISSION_DENIED"))
                }
            }
        }
        // Methods without a permission pass whatever is declared or granted.
        for d in [false, true] { r.append(Row(method: "storage.get", declared: d, granted: !d, expected: nil)) }
        r.append(Row(method: "system.info", declared: false, granted: false, expected: nil))
        return r
    }()

    @Test(arguments: rows)
    func matrix(_ row: Row) throws {
        let perm = Self.permissionOf[row.method] ?? "network"
        let h = try Harness(grants: row.granted ? ["com.partner": [perm]] : ["com.partner": []])
        let w = try h.worker("w-1", declared: row.declared ? [perm] : [])
        let before = h.misc.calls.load(ordering: .relaxed)
        let answer = try w.call(1, row.method, #"{"key":"theme","url":"https://example.com/"}"#)
        #expect(answer["id"] == 1)
        if let expected = row.expected {
            #expect(answer.errorCode == expected)
            #expect(answer["error"]?["data"]?["permission"] == .string(perm))
            // Denied calls never reach the service.
            #expect(h.misc.calls.load(ordering: .relaxed) == before)
        } else if row.method.hasPrefix("payment") || row.method.hasPrefix("geo") || row.method.hasPrefix("ui") {
            #expect(answer.errorCode == "HOST_UNAVAILABLE")
        } else {
            #expect(answer.isResult, "\(answer.jsonString)")
        }
    }

    @Test func grantOfAnotherPartnerDoesNotCount() throws {
        let h = try Harness(grants: ["com.other": ["network"]])
        let w = try h.worker("w-1", partner: "com.partner", declared: ["network"])
        #expect(try w.call(1, "net.request", #"{"url":"https://a.example/"}"#).errorCode == "PERMISSION_DENIED")
    }

    @Test func revocationTakesEffectOnTheNextCallWithoutRestart() throws {
        let h = try Harness(grants: ["com.partner": ["network"]])
        let w = try h.worker("w-1", declared: ["network"])
        #expect(try w.call(1, "net.request").isResult)
        h.broker.updateGrants(["com.partner": []])
        #expect(try w.call(2, "net.request").errorCode == "PERMISSION_DENIED")
        h.broker.updateGrants(["com.partner": ["network"]])
        #expect(try w.call(3, "net.request").isResult)
        #expect(h.misc.calls.load(ordering: .relaxed) == 2)
    }

    @Test func identityIsTheConnectionNotAField() throws {
        let h = try Harness(grants: ["com.partner": ["network"]])
        let w = try h.worker("w-1", program: "com.partner.a", declared: [])
        // Claiming another identity in the message is refused outright.
        try w.sendLine(#"{"jsonrpc":"2.0","id":1,"method":"net.request","params":{},"program":{"id":"com.partner.b"}}"#)
        #expect(try w.readJSON().errorCode == "INVALID_REQUEST")
        let info = try w.call(2, "system.info")
        #expect(info["result"]?["programId"] == "com.partner.a")
    }
}

/// A method listing several permissions needs every one of them, declared and granted; the
/// denial names the one that is missing.
@Suite struct MultiPermissionTests {
    /// `payment.nearby` needs both `payment` and `geolocation` (a host method: passing the
    /// check shows as HOST_UNAVAILABLE, since no host provider is registered).
    static func catalogue() throws -> MethodCatalogue {
        try MethodCatalogue.parse(Array("""
            {"version": 1, "permissions": {"payment": "pay", "geolocation": "where"},
             "programBudget": {"perSecond": 1000, "burst": 1000},
             "classes": {"c": {"perSecond": 1000, "burst": 1000}},
             "methods": {"payment.nearby": {"provider": "host", "permissions": ["payment", "geolocation"], "class": "c", "timeoutMillis": 1000}}}
            """.utf8))
    }

    struct Row: Sendable, CustomStringConvertible {
        var declared: Set<String>
        var granted: Set<String>
        /// nil: the check passes; else the permission the denial names.
        var missing: String?
        var description: String { "declared=\(declared.sorted()) granted=\(granted.sorted())" }
    }

    static let rows: [Row] = [
        Row(declared: ["payment", "geolocation"], granted: ["payment", "geolocation"], missing: nil),
        Row(declared: ["payment"], granted: ["payment", "geolocation"], missing: "geolocation"),
        Row(declared: ["geolocation"], granted: ["payment", "geolocation"], missing: "payment"),
        Row(declared: ["payment", "geolocation"], granted: ["payment"], missing: "geolocation"),
        Row(declared: ["payment", "geolocation"], granted: ["geolocation"], missing: "payment"),
        Row(declared: [], granted: [], missing: "payment"),
    ]

    @Test(arguments: rows)
    func everyPermissionIsNeeded(_ row: Row) throws {
        let h = try Harness(catalogue: try Self.catalogue(), grants: ["com.partner": row.granted])
        let w = try h.worker("w-1", declared: row.declared)
        let answer = try w.call(1, "payment.nearby", "{}")
        if let missing = row.missing {
            #expect(answer.errorCode == "PERMISSION_DENIED", "\(answer.jsonString)")
            #expect(answer["error"]?["data"]?["permission"] == .string(missing), "\(answer.jsonString)")
        } else {
            #expect(answer.errorCode == "HOST_UNAVAILABLE", "\(answer.jsonString)")
        }
    }

    @Test func revokingOneOfTheGrantsDeniesTheNextCall() throws {
        let h = try Harness(catalogue: try Self.catalogue(), grants: ["com.partner": ["payment", "geolocation"]])
        let w = try h.worker("w-1", declared: ["payment", "geolocation"])
        #expect(try w.call(1, "payment.nearby", "{}").errorCode == "HOST_UNAVAILABLE")
        h.broker.updateGrants(["com.partner": ["payment"]])
        let denied = try w.call(2, "payment.nearby", "{}")
        #expect(denied.errorCode == "PERMISSION_DENIED")
        #expect(denied["error"]?["data"]?["permission"] == "geolocation")
    }
}

/// An operator's lowered rate class (partner or program override, carried by the worker's
/// identity) is applied by the broker; it can only lower methods.json's budget.
@Suite struct LoweredRateClassTests {
    @Test func aLoweredClassLimitsOnlyThatProgram() throws {
        let h = try Harness(catalogue: try tightCatalogue(storageBurst: 3))
        let lowered = try h.worker("w-a", program: "com.partner.a", rateClasses: ["storage": RateLimit(perSecond: 0.001, burst: 1)])
        let other = try h.worker("w-b", program: "com.partner.b")
        #expect(try lowered.call(1, "storage.get", #"{"key":"theme"}"#).isResult)
        let limited = try lowered.call(2, "storage.get", #"{"key":"theme"}"#)
        #expect(limited.errorCode == "RATE_LIMITED" && limited["error"]?["data"]?["class"] == "storage", "\(limited.jsonString)")
        for i in 0..<3 { #expect(try other.call(i, "storage.get", #"{"key":"theme"}"#).isResult) }
    }

    @Test func anOverrideAboveTheCatalogueDoesNotRaiseIt() throws {
        let h = try Harness(catalogue: try tightCatalogue(storageBurst: 2))
        let w = try h.worker("w-a", program: "com.partner.a", rateClasses: ["storage": RateLimit(perSecond: 1000, burst: 1000)])
        for i in 0..<2 { #expect(try w.call(i, "storage.get", #"{"key":"theme"}"#).isResult) }
        #expect(try w.call(9, "storage.get", #"{"key":"theme"}"#).errorCode == "RATE_LIMITED")
    }
}
