import Glibc
import MiniAppDaemon
import MiniAppJSON
import MiniAppModel
import MiniAppSystem
import MiniAppTestSupport
import Testing

@Suite struct RolloutTests {
    /// 200 fixed device ids: the counts below are exact for them (nothing random, nothing flaky).
    static let devices = (0..<200).map { "device-" + String("00\($0)".suffix(3)) }

    static func taking(_ fraction: Double, version: String = "2.0.0") -> Set<String> {
        Set(devices.filter { Rollout.takes(deviceId: $0, programId: "com.partner.app", version: version, fraction: fraction) })
    }

    /// The documented rule, checked against an independent computation
    /// (Python: int.from_bytes(sha256(b"d\nid\nv").digest()[:8], "big")).
    @Test func bucketIsTheFirst8BytesOfSHA256BigEndian() {
        #expect(Rollout.bucket(deviceId: "0123456789abcdef0123456789abcdef", programId: "com.e2e.app", version: "2.0.0") == 6_330_457_462_193_785_339)
    }

    @Test func aboutHalfTakeAHalfRollout() {
        let n = Self.taking(0.5).count
        #expect(n == 102, "exact for these ids (Python gives 102)")
        #expect((80...120).contains(n))
    }

    @Test func raisingTheFractionOnlyAddsDevices() {
        let fractions = [0, 0.01, 0.1, 0.25, 0.5, 0.75, 0.9, 0.999, 1]
        let sets = fractions.map { Self.taking($0) }
        #expect(sets.first?.isEmpty == true)
        #expect(sets.last?.count == 200)
        for (smaller, larger) in zip(sets, sets.dropFirst()) { #expect(smaller.isSubset(of: larger)) }
        #expect(sets.map(\.count) == [0, 2, 22, 54, 102, 152, 184, 200, 200], "exact for these ids (Python gives the same)")
    }

    /// Each version samples its own devices (the same ones are not always first).
    @Test func eachVersionSamplesOtherDevices() {
        #expect(Self.taking(0.5, version: "2.0.0") != Self.taking(0.5, version: "2.0.1"))
    }

    @Test func deviceIdIsCreatedOncePrivateAndKept() throws {
        let dir = try TempDir("dev")
        let path = dir.file("device-id")
        let first = try DeviceIdentity.load(path: path)
        #expect(first.count == 32 && first.allSatisfy(\.isHexDigit))
        #expect(try DeviceIdentity.load(path: path) == first)
        var st = stat()
        #expect(stat(path, &st) == 0 && st.st_mode & 0o777 == 0o600)
        // A damaged file is replaced by a new id rather than pinning the device anywhere.
        try dir.write("device-id", "not an id\n")
        let replaced = try DeviceIdentity.load(path: path)
        #expect(replaced != first && replaced.count == 32)
    }

    /// Hostile `rollout` members are refused as REGISTRY_INVALID (never read as "everyone").
    @Test(arguments: [
        ("-0.1", false), ("1.5", false), ("\"0.5\"", false), ("null", false), ("true", false), ("1e400", false),
        ("[0.5]", false), ("0", true), ("1", true), ("0.25", true),
    ])
    func rolloutMember(_ text: String, _ valid: Bool) {
        let sha = String(repeating: "a", count: 64)
        let doc = #"{"id":"com.p.app","version":"1.1.0","minHostVersion":"1.0.0","url":"a.zip","sha256":"\#(sha)","size":10,"rollout":\#(text)}"#
        let parsed = try? RegistryVersion.parse(Array(doc.utf8), expectedId: "com.p.app", base: "https://r.test")
        #expect((parsed != nil) == valid, "rollout \(text)")
        if valid { #expect(parsed?.rollout == Double(text)) }
    }
}
