import Foundation
import Glibc
import MiniAppBroker
import MiniAppJSON
import MiniAppModel
import MiniAppSystem
import Synchronization
import Testing
import MiniAppTestSupport

@Suite struct RealServiceRedactionTests {
    /// A token the daemon issued, carried under any name, in a value, a body, a header, a log
    /// message, a member name or a method name, never reaches the inspector or the audit log.
    @Test func issuedTokensAreRedactedWhereverTheyTravel() throws {
        let auditDir = try TempDir.makeDirectory("broker-redact")
        defer { try? FileManager.default.removeItem(atPath: auditDir) }
        let audit = AuditConfiguration(path: auditDir + "/audit.jsonl", includePayloads: true)
        let h = try ServiceHarness(configuration: BrokerConfiguration(audit: audit, inspectorPayloads: true)) { c in
            c.net.resolverOverride = ["api.partner.test": ["127.0.0.1"]]  // refused as loopback: no traffic
        }
        let events = Mutex<[JSONValue]>([])
        h.broker.inspector.subscribe(programId: nil) { e in events.withLock { $0.append(e) } }
        try h.services.auth.setSession(userId: "user-1")
        let w = try h.worker("w-1")
        h.settle()
        let token = try #require(try w.call(1, "auth.getToken")["result"]?["token"]?.stringValue)
        #expect(token.hasPrefix(AuthService.issuedTokenPrefix))
        let signature = String(token.split(separator: ".").last ?? "")
        let carriers: [(String, JSONValue)] = [
            ("storage.set", ["key": "t", "value": ["blob": .string(token), "ok": 1]]),
            ("storage.set", ["key": "nested", "value": [[.string("Bearer " + token)]]]),
            ("storage.set", ["key": "named", "value": .object([token: 1, "kept": "yes"])]),
            ("log.write", ["level": "info", "message": .string("t=" + token)]),
            ("net.request", ["url": "https://api.partner.test/x", "method": "POST", "body": .string(token), "headers": ["X-Carry": .string(token)]]),
            ("storage.set", ["key": "joined", "value": .string("\u{0600}" + token)]), // one grapheme with the token's first byte
        ]
        for (i, (method, params)) in carriers.enumerated() { _ = try w.call(10 + i, method, json: params) }
        _ = try w.call(20, String(token.prefix(200)))  // METHOD_NOT_FOUND, recorded with its method name
        h.settle()
        let seen = events.withLock { $0 }
        let auditLines = try String(contentsOfFile: auditDir + "/audit.jsonl", encoding: .utf8).split(separator: "\n")
        #expect(seen.count == carriers.count + 2)
        #expect(auditLines.count == carriers.count + 2)
        // Byte searches: String.contains compares graphemes and would miss the joined carrier.
        let text = Array((seen.map(\.jsonString).joined() + auditLines.joined()).utf8)
        func leaked(_ s: some StringProtocol) -> Bool { text.firstRange(of: Array(s.utf8)) != nil }
        #expect(!leaked(token.prefix(200)), "an issued token leaked")
        #expect(!leaked(signature), "a token signature leaked")
        #expect(!leaked(AuthService.issuedTokenPrefix))
        // Only the tokens are gone: the rest of the payloads is still there to inspect.
        #expect(seen[1]["params"]?["value"] == ["blob": "[REDACTED]", "ok": 1])
        #expect(seen[2]["params"]?["value"] == [["[REDACTED]"]])
        #expect(seen[3]["params"]?["value"] == ["[REDACTED]": 1, "kept": "yes"])
        #expect(seen[5]["params"]?["url"] == "https://api.partner.test/x")
        #expect(seen[6]["params"]?["value"] == "[REDACTED]")
        #expect(seen[7]["method"] == "[REDACTED]" && seen[7]["code"] == "METHOD_NOT_FOUND")
    }
}
