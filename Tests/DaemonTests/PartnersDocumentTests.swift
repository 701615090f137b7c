import Foundation
import MiniAppDaemon
import MiniAppJSON
import MiniAppModel
import Testing

@Suite struct PartnersDocumentTests {
    @Test func statementIsCanonicalWithoutSignature() throws {
        let doc = try PartnersDocument.parse(Array("""
            {"signature":"rsa-pss-sha256:AA==","partners":[{"permissions":["network"],"id":"com.p"}],"issuedAt":"2026-11-25T10:00:00Z"}
            """.utf8))
        #expect(String(decoding: doc.statement, as: UTF8.self)
            == "miniapp-partners-v1\n{\"issuedAt\":\"2026-11-25T10:00:00Z\",\"partners\":[{\"id\":\"com.p\",\"permissions\":[\"network\"]}]}\n")
        #expect(doc.issuedAt == 1_795_600_800)  // date -u -d 2026-11-25T10:00:00Z +%s
    }

    @Test func olderDocumentsAreRefused() throws {
        let new = try PartnersDocument.parse(Array(#"{"issuedAt":200,"partners":[],"signature":"rsa-pss-sha256:x"}"#.utf8))
        let old = try PartnersDocument.parse(Array(#"{"issuedAt":100,"partners":[],"signature":"rsa-pss-sha256:x"}"#.utf8))
        #expect(!old.isAcceptable(after: new))
        #expect(new.isAcceptable(after: old))
        #expect(new.isAcceptable(after: nil))
    }

    @Test(arguments: [
        #"[]"#, #"{"issuedAt":1,"partners":[]}"#, #"{"issuedAt":1,"partners":{},"signature":"rsa-pss-sha256:x"}"#,
        #"{"issuedAt":"yesterday","partners":[],"signature":"rsa-pss-sha256:x"}"#,
        #"{"issuedAt":-5,"partners":[],"signature":"rsa-pss-sha256:x"}"#,
        #"{"issuedAt":1,"partners":[],"signature":"pkcs1:x"}"#,
        #"{"issuedAt":1,"issuedAt":2,"partners":[],"signature":"rsa-pss-sha256:x"}"#,
        "", "null", #""just a string""#, #"{"issuedAt":1,"partners":[],"signature":"rsa-pss-sha256:x"} trailing"#,
        #"{"issuedAt":1.5,"partners":[],"signature":"rsa-pss-sha256:x"}"#,
        #"{"issuedAt":true,"partners":[],"signature":"rsa-pss-sha256:x"}"#,
        #"{"issuedAt":"2026-11-25T10:00:00.Z","partners":[],"signature":"rsa-pss-sha256:x"}"#,
        #"{"issuedAt":"2026-11-25T10:00:00xxZ","partners":[],"signature":"rsa-pss-sha256:x"}"#,
        #"{"issuedAt":"2026-13-25T10:00:00Z","partners":[],"signature":"rsa-pss-sha256:x"}"#,
        #"{"issuedAt":"2026-11-25 10:00:00Z","partners":[],"signature":"rsa-pss-sha256:x"}"#,
        #"{"issuedAt":"2026-11-25T10:00:00+01:00","partners":[],"signature":"rsa-pss-sha256:x"}"#,
        #"{"issuedAt":1,"partners":null,"signature":"rsa-pss-sha256:x"}"#,
        #"{"issuedAt":1,"partners":[],"signature":42}"#,
        #"{"issuedAt":1,"partners":[],"signature":"rsa-pss-sha256:x",}"#,
        #"{"issuedAt":1,"partners":[],"signature":"rsa-pss-sha256:x","extra":"#
            + String(repeating: "[", count: 40) + String(repeating: "]", count: 40) + "}",
    ])
    func malformedDocumentsAreRefused(_ text: String) {
        #expect {
            try PartnersDocument.parse(Array(text.utf8))
        } throws: { e in
            (e as? MiniAppError)?.code == .registryInvalid
        }
    }

    @Test func bytesThatAreNotUTF8OrTooLargeAreRefused() {
        #expect(throws: (any Error).self) { try PartnersDocument.parse([0x7B, 0xFF, 0xFE, 0x7D]) }
        #expect {
            try PartnersDocument.parse([UInt8](repeating: 0x20, count: PartnersDocument.maxBytes + 1))
        } throws: { e in
            (e as? MiniAppError)?.code == .registryTooLarge
        }
    }

    @Test func fractionalSecondsAreAccepted() throws {
        let doc = try PartnersDocument.parse(Array(#"{"issuedAt":"1970-01-02T00:00:01.250Z","partners":[],"signature":"rsa-pss-sha256:x"}"#.utf8))
        #expect(doc.issuedAt == 86_401)
    }

    /// Registrations of a (verified) document are judged one by one: the bad ones are
    /// attributed to the id they name, if any.
    @Test func entriesAreJudgedOneByOne() throws {
        let good = PartnerRegistration(id: "com.good", idPrefixes: ["com.good."], publicKeys: [E2EPartner.pub], permissions: ["ui"])
        let doc: JSONObject = [
            "issuedAt": 1, "signature": "rsa-pss-sha256:x",
            "partners": [good.json, ["id": "com.bad", "idPrefixes": "com.bad."], "com.str", ["id": 7], ["id": ""]],
        ]
        let entries = try PartnersDocument.parse(JSONValue.object(doc).serialized()).entries
        #expect(entries.map(\.source) == (0..<5).map { "registry partners[\($0)]" })
        #expect(entries[0].registration == good)
        #expect(entries[1].error?.code == .partnerInvalid)
        #expect(entries[1].claimedIds == ["com.bad"])
        #expect(entries[2...].allSatisfy { $0.registration == nil && $0.claimedIds.isEmpty })
    }

    /// Only the platform key verifies; any change to the signed content breaks it.
    @Test func verificationNeedsThePlatformKeyAndTheExactContent() throws {
        let signed = try Platform.signed(Platform.document(issuedAt: 5, []))
        try PartnersDocument.parse(signed).verify(platformKey: Platform.key)
        #expect(throws: (any Error).self) { try PartnersDocument.parse(signed).verify(platformKey: Platform.impostor) }
        var o = try JSONValue.parse(signed).objectValue ?? [:]
        o["issuedAt"] = 6
        #expect {
            try PartnersDocument.parse(JSONValue.object(o).serialized()).verify(platformKey: Platform.key)
        } throws: { e in
            (e as? MiniAppError)?.code == .registryBadSignature
        }
        // Reformatting is fine: the statement is over the canonical form.
        let pretty = Array(String(decoding: signed, as: UTF8.self).replacingOccurrences(of: ",\"", with: ", \n\"").utf8)
        try PartnersDocument.parse(pretty).verify(platformKey: Platform.key)
    }

    @Test func registryVersionDocument() throws {
        let v = try RegistryVersion.parse(
            Array(#"{"id":"com.p.a","version":"1.2.0","minHostVersion":"1.0.0","url":"/pkgs/a.zip","sha256":"\#(String(repeating: "ab", count: 32))","size":10}"#.utf8),
            expectedId: "com.p.a", base: "http://127.0.0.1:8080/reg")
        #expect(v.url == "http://127.0.0.1:8080/pkgs/a.zip")
        let rel = try RegistryVersion.parse(
            Array(#"{"id":"com.p.a","version":"1.2.0","minHostVersion":"1.0.0","url":"a.zip","sha256":"\#(String(repeating: "ab", count: 32))","size":10}"#.utf8),
            expectedId: "com.p.a", base: "http://127.0.0.1:8080/reg/")
        #expect(rel.url == "http://127.0.0.1:8080/reg/a.zip")
        #expect(throws: (any Error).self) {
            try RegistryVersion.parse(
                Array(#"{"id":"com.p.a","version":"1","minHostVersion":"1","url":"file:///etc/passwd","sha256":"\#(String(repeating: "ab", count: 32))","size":1}"#.utf8),
                expectedId: "com.p.a", base: "http://x")
        }
        #expect(throws: (any Error).self) {
            try RegistryVersion.parse(Array(#"{"id":"com.other","version":"1","minHostVersion":"1","url":"a","sha256":"00","size":1}"#.utf8), expectedId: "com.p.a", base: "http://x")
        }
    }

    /// A version or minHostVersion that is not SemVer is refused as REGISTRY_INVALID, not later
    /// taken for "needs a newer host" (HOST_UPDATE_REQUIRED would send the operator the wrong way).
    @Test(arguments: [("banana", "1.0.0"), ("1.0.0", "banana"), ("1.0", "1.0.0"), ("1.0.0", "")])
    func registryVersionsMustBeSemVer(_ version: String, _ minHost: String) {
        let doc = #"{"id":"com.p.a","version":"\#(version)","minHostVersion":"\#(minHost)","url":"a.zip","sha256":"\#(String(repeating: "ab", count: 32))","size":10}"#
        #expect {
            try RegistryVersion.parse(Array(doc.utf8), expectedId: "com.p.a", base: "http://x")
        } throws: { e in
            let m = e as? MiniAppError
            return m?.data["reason"] == "REGISTRY_INVALID" && m?.message.contains("SemVer") == true
        }
    }
}
