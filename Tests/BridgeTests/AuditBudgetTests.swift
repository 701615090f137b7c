import Glibc
import MiniAppBroker
import MiniAppJSON
import MiniAppModel
import MiniAppSystem
import Testing
import MiniAppTestSupport

/// One program cannot push the others' records out of the audit log: per-program budget with
/// "n similar events suppressed" summaries, denials counted (never dropped silently), and each
/// program's latest records carried into every fresh file.
@Suite struct AuditBudgetTests {
    private func tempDir() throws -> String {
        try TempDir.makeDirectory("audit-budget")
    }

    private func records(_ path: String, keep: Int) throws -> [JSONValue] {
        var all: [JSONValue] = []
        for p in [path] + (1...max(1, keep)).map({ "\(path).\($0)" }) where access(p, F_OK) == 0 {
            let bytes = try OwnedFD.open(p, O_RDONLY).readAll()
            all += try bytes.split(separator: 0x0A).map { try JSONValue.parse($0) }
        }
        return all
    }

    /// A quiet program's records survive a neighbour's flood of allowed and denied calls; the
    /// flood is summarised, and every denial is either written or counted in a summary.
    @Test func aFloodingProgramDoesNotWipeItsNeighbours() throws {
        let dir = try tempDir()
        let path = dir + "/audit.jsonl"
        let config = AuditConfiguration(path: path, maxBytes: 20_000, keep: 2, perProgramRecordsPerSecond: 20, perProgramBurst: 50)
        let h = try Harness(configuration: BrokerConfiguration(audit: config))
        let quiet = try h.worker("w-quiet", program: "com.partner.quiet")
        let loud = try h.worker("w-loud", program: "com.partner.loud")
        for i in 0..<3 { _ = try quiet.call(i, "auth.getToken") }
        h.settle()
        var denials = 0
        for i in 0..<2000 {
            let deny = i % 2 == 0
            if deny { denials += 1 }
            _ = try loud.call(i, deny ? "payment.pay" : "auth.getToken")
        }
        h.settle()
        let all = try records(path, keep: 2)
        #expect(all.filter { $0["programId"] == "com.partner.quiet" }.count >= 3, "the quiet program's records are still there")
        let loudRecords = all.filter { $0["programId"] == "com.partner.loud" && $0["suppressed"] == nil && $0["carried"] == nil }
        #expect(loudRecords.count < 300, "the flood is bounded: \(loudRecords.count) records written")
        // A summary carried into a fresh file at rotation is a copy: counted once, where it was
        // first written. (A slow flood rotates more often, so copies appear under load.)
        let summaries = all.filter { $0["programId"] == "com.partner.loud" && $0["suppressed"] != nil && $0["carried"] == nil }
        #expect(!summaries.isEmpty)
        #expect(summaries.allSatisfy { $0["message"]?.stringValue?.contains("similar events suppressed") == true })
        let writtenDenials = loudRecords.filter { $0["decision"] == "deny" }.count
        let countedDenials = summaries.filter { $0["decision"] == "deny" }.compactMap { $0["suppressed"]?.intValue }.reduce(0, +)
        #expect(writtenDenials + Int(countedDenials) == denials, "every denial is written or counted")
        for p in [path, path + ".1", path + ".2"] { unlink(p) }
        rmdir(dir)
    }

    /// Rotation carries each program's latest records into the fresh file, marked.
    @Test func rotationKeepsEachProgramsLatestRecords() throws {
        let dir = try tempDir()
        let path = dir + "/audit.jsonl"
        let config = AuditConfiguration(path: path, maxBytes: 4000, keep: 1, perProgramRecordsPerSecond: 100_000, perProgramBurst: 100_000)
        let h = try Harness(configuration: BrokerConfiguration(audit: config))
        let quiet = try h.worker("w-quiet", program: "com.partner.quiet")
        let busy = try h.worker("w-busy", program: "com.partner.busy")
        _ = try quiet.call(1, "system.info")
        h.settle()
        for i in 0..<200 {
            _ = try busy.call(i, "auth.getToken")
            if i % 10 == 0 { h.settle() }
        }
        h.settle()
        let live = try records(path, keep: 0).filter { _ in true }
        let liveOnly = try OwnedFD.open(path, O_RDONLY).readAll().split(separator: 0x0A).map { try JSONValue.parse($0) }
        #expect(live.count >= liveOnly.count)
        let carried = liveOnly.filter { $0["programId"] == "com.partner.quiet" && $0["carried"] == true }
        #expect(carried.count == 1 && carried.first?["method"] == "system.info", "\(liveOnly.map(\.jsonString))")
        for p in [path, path + ".1"] { unlink(p) }
        rmdir(dir)
    }

    /// A live file older than `maxAgeSeconds` is rotated at the next append.
    @Test func rotationByAge() throws {
        let dir = try tempDir()
        let path = dir + "/a.log"
        let f = try RotatingFile(path: path, maxBytes: 1 << 20, keep: 2, maxAgeSeconds: 1)
        try f.append(Array("one\n".utf8))
        usleep(1_100_000)
        try f.append(Array("two\n".utf8))
        #expect(try OwnedFD.open(path + ".1", O_RDONLY).readAll() == Array("one\n".utf8))
        #expect(try OwnedFD.open(path, O_RDONLY).readAll() == Array("two\n".utf8))
        for p in [path, path + ".1"] { unlink(p) }
        rmdir(dir)
    }
}
