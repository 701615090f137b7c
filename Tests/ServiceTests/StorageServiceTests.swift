import Foundation
import MiniAppBroker
import MiniAppJSON
import MiniAppModel
import Testing
import MiniAppTestSupport

@Suite struct StorageServiceTests {
    func withStore(_ tweak: (inout ServicesConfig) -> Void = { _ in }, _ body: (StorageService, String) async throws -> Void)
        async throws
    {
        let dir = try makeTempDir("storage")
        defer { removeTree(dir) }
        var config = ServicesConfig(hostVersion: "9.9.9")
        tweak(&config)
        let service = try StorageService(stateDirectory: dir, config: config)
        try await body(service, dir)
        service.close()
    }

    @Test func setGetRemoveKeys() async throws {
        try await withStore { s, _ in
            let a = caller("com.a.app")
            #expect(await call(s, "storage.get", ["key": "x"], as: a).value == ["value": nil])
            #expect(await call(s, "storage.set", ["key": "x", "value": ["n": 1, "l": [true, nil]]], as: a).value == [:])
            #expect(await call(s, "storage.get", ["key": "x"], as: a).value == ["value": ["n": 1, "l": [true, nil]]])
            #expect(await call(s, "storage.set", ["key": "x2", "value": "v"], as: a).value == [:])
            #expect(await call(s, "storage.keys", nil, as: a).value == ["keys": ["x", "x2"]])
            #expect(await call(s, "storage.remove", ["key": "x"], as: a).value == [:])
            #expect(await call(s, "storage.remove", ["key": "never"], as: a).value == [:])
            #expect(await call(s, "storage.get", ["key": "x"], as: a).value == ["value": nil])
            #expect(await call(s, "storage.keys", ["prefix": "x"], as: a).value == ["keys": ["x2"]])
        }
    }

    /// A program can neither see nor name another program's keys, whatever the key contains.
    @Test(arguments: ["k", "com.b.app:k", ":k", "com.b.app", "%", "_", "k:", "b:k", "é", "e\u{301}"])
    func namespacing(_ key: String) async throws {
        try await withStore { s, _ in
            let a = caller("com.a.app")
            let b = caller("com.b.app")
            let ab = caller("com.a.app.b")  // a program whose id has a's id as prefix
            #expect(await call(s, "storage.set", ["key": .string(key), "value": "secret-of-b"], as: b).value == [:])
            #expect(await call(s, "storage.get", ["key": .string(key)], as: a).value == ["value": nil])
            #expect(await call(s, "storage.get", ["key": .string("com.b.app:" + key)], as: a).value == ["value": nil])
            #expect(await call(s, "storage.keys", nil, as: a).value == ["keys": []])
            #expect(await call(s, "storage.keys", ["prefix": "com"], as: ab).value == ["keys": []])
            #expect(await call(s, "storage.remove", ["key": .string(key)], as: a).value == [:])
            #expect(await call(s, "storage.get", ["key": .string(key)], as: b).value == ["value": "secret-of-b"])
        }
    }

    /// Canonically equivalent but byte-different keys stay two keys (SQLite compares bytes).
    @Test func keysAreBytes() async throws {
        try await withStore { s, dir in
            let a = caller("com.a.app")
            _ = await call(s, "storage.set", ["key": "é", "value": 1], as: a)
            _ = await call(s, "storage.set", ["key": "e\u{301}", "value": 2], as: a)
            #expect(await call(s, "storage.get", ["key": "é"], as: a).value == ["value": 1])
            #expect(await call(s, "storage.get", ["key": "e\u{301}"], as: a).value == ["value": 2])
            #expect(s.usage(programId: "com.a.app").keys == 2)
        }
    }

    @Test func programIdWithColonIsRefused() async throws {
        try await withStore { s, _ in
            #expect(await call(s, "storage.get", ["key": "x"], as: caller("com.a:b")).code == .internal)
        }
    }

    static let invalidCases: [(String, JSONValue?)] = [
        ("storage.get", nil),
        ("storage.get", .object(["key": ""])),
        ("storage.get", .object(["key": .int(5)])),
        ("storage.get", .object(["key": "a\u{0}b"])),
        ("storage.get", .object(["key": "a\nb"])),
        ("storage.get", .object(["key": "x", "extra": .int(1)])),
        ("storage.get", .array(["x"])),
        ("storage.set", .object(["key": "x"])),
        ("storage.keys", .object(["prefix": .int(1)])),
    ]

    @Test(arguments: invalidCases)
    func invalidParams(_ method: String, _ params: JSONValue?) async throws {
        try await withStore { s, _ in
            #expect(await call(s, method, params, as: caller("com.a.app")).code == .invalidParams)
        }
    }

    @Test func sizeLimits() async throws {
        try await withStore { s, _ in
            let a = caller("com.a.app")
            let longKey = JSONValue.string(String(repeating: "k", count: 257))
            #expect(await call(s, "storage.get", ["key": longKey], as: a).code == .invalidParams)
            #expect(await call(s, "storage.get", ["key": .string(String(repeating: "k", count: 256))], as: a).code == nil)
            let big = JSONValue.string(String(repeating: "v", count: 64 << 10))
            #expect(await call(s, "storage.set", ["key": "x", "value": big], as: a).code == .invalidParams)
        }
    }

    @Test func keyCountQuota() async throws {
        try await withStore({ $0.storage.quotaKeysPerProgram = 3 }) { s, _ in
            let a = caller("com.a.app")
            for k in ["1", "2", "3"] {
                #expect(await call(s, "storage.set", ["key": .string(k), "value": 0], as: a).value == [:])
            }
            #expect(await call(s, "storage.set", ["key": "4", "value": 0], as: a).code == .quotaExceeded)
            #expect(await call(s, "storage.set", ["key": "3", "value": 1], as: a).value == [:])  // overwrite is fine
            #expect(await call(s, "storage.set", ["key": "1", "value": 0], as: caller("com.b.app")).value == [:])
            _ = await call(s, "storage.remove", ["key": "1"], as: a)
            #expect(await call(s, "storage.set", ["key": "4", "value": 0], as: a).value == [:])
        }
    }

    @Test func byteQuotaCountsKeysAndValues() async throws {
        try await withStore({ $0.storage.quotaBytesPerProgram = 100 }) { s, _ in
            let a = caller("com.a.app")
            let big = JSONValue.string(String(repeating: "x", count: 80))  // 82 bytes serialized
            #expect(await call(s, "storage.set", ["key": "k", "value": big], as: a).value == [:])  // 83
            #expect(await call(s, "storage.set", ["key": "k", "value": big], as: a).value == [:])  // still 83
            #expect(await call(s, "storage.set", ["key": "j", "value": .string(String(repeating: "y", count: 20))], as: a).code == .quotaExceeded)
            #expect(s.usage(programId: "com.a.app").bytes == 83)
        }
    }

    /// Concurrent writes past the quota: the quota counts queued writes, so they cannot
    /// overshoot it together.
    @Test func quotaHoldsUnderConcurrency() async throws {
        try await withStore({ $0.storage.quotaKeysPerProgram = 10 }) { s, _ in
            let a = caller("com.a.app")
            let codes = await withTaskGroup(of: ErrorCode?.self) { group in
                for i in 0..<50 {
                    group.addTask { await call(s, "storage.set", ["key": .string("k\(i)"), "value": .int(Int64(i))], as: a).code }
                }
                var out: [ErrorCode?] = []
                for await c in group { out.append(c) }
                return out
            }
            #expect(codes.filter { $0 == nil }.count == 10)
            #expect(codes.filter { $0 == .quotaExceeded }.count == 40)
        }
    }

    @Test func persistsAcrossReopen() async throws {
        let dir = try makeTempDir("storage")
        defer { removeTree(dir) }
        let config = ServicesConfig(hostVersion: "1")
        let a = caller("com.a.app")
        do {
            let s = try StorageService(stateDirectory: dir, config: config)
            _ = await call(s, "storage.set", ["key": "a:b", "value": ["deep": [1, 2.5, "three"]]], as: a)
            _ = await call(s, "storage.set", ["key": "gone", "value": 1], as: a)
            _ = await call(s, "storage.remove", ["key": "gone"], as: a)
            s.close()
            #expect(await call(s, "storage.set", ["key": "late", "value": 1], as: a).code == .internal)
        }
        let s2 = try StorageService(stateDirectory: dir, config: config)
        defer { s2.close() }
        #expect(await call(s2, "storage.get", ["key": "a:b"], as: a).value == ["value": ["deep": [1, 2.5, "three"]]])
        #expect(await call(s2, "storage.keys", nil, as: a).value == ["keys": ["a:b"]])
        let mode = try FileManager.default.attributesOfItem(atPath: dir + "/storage.sqlite")[.posixPermissions] as? Int
        #expect(mode == 0o600)
    }

    /// 1,000+ acknowledged writes, then `kill -9` of the process holding the store: none lost.
    /// The service-level variant (a helper calling `StorageService.handle`); the spec's
    /// daemon-level check, through a jailed program and a real miniappd, is
    /// `BridgeEndToEndTests.acknowledgedWritesSurviveKill9OfTheDaemon`.
    @Test func acknowledgedWritesSurviveSIGKILL() async throws {
        let dir = try makeTempDir("crash")
        defer { removeTree(dir) }
        let helper = productsDirectory() + "/storage-crash-helper"
        try #require(FileManager.default.isExecutableFile(atPath: helper), "build the storage-crash-helper target first")
        let process = Process()
        process.executableURL = URL(fileURLWithPath: helper)
        process.arguments = [dir]
        let out = Pipe()
        process.standardOutput = out
        try process.run()
        var data = Data()
        while data.filter({ $0 == UInt8(ascii: "\n") }).count < 1000 {
            let chunk = out.fileHandleForReading.availableData
            if chunk.isEmpty { break }  // EOF: the helper died early; the check below reports it
            data.append(chunk)
        }
        kill(process.processIdentifier, SIGKILL)
        process.waitUntilExit()
        data.append(out.fileHandleForReading.readDataToEndOfFile())  // acks still in the pipe count too
        #expect(process.terminationReason == .uncaughtSignal)
        let text = String(decoding: data, as: UTF8.self)
        let acked = text.split(separator: "\n", omittingEmptySubsequences: true).compactMap { line -> Int? in
            line.hasPrefix("ack ") ? Int(line.dropFirst(4)) : nil
        }
        #expect(acked.count >= 1000)
        let s = try StorageService(stateDirectory: dir, config: ServicesConfig(hostVersion: "1"))
        defer { s.close() }
        let who = caller("com.test.crash")
        var lost: [Int] = []
        for i in acked {
            let v = await call(s, "storage.get", ["key": .string("k\(i)")], as: who).value
            if v?["value"]?["n"] != .int(Int64(i)) { lost.append(i) }
        }
        #expect(lost.isEmpty, "acknowledged but lost after SIGKILL: \(lost.prefix(20))")
    }
}

extension StorageServiceTests {
    /// A program cannot queue unbounded writes while the disk is busy.
    @Test func pendingWritesAreBounded() async throws {
        try await withStore({ $0.storage.maxPendingWritesPerProgram = 4 }) { s, _ in
            let a = caller("com.a.app")
            let results = LockedLines()
            for i in 0..<200 {
                s.handle(method: "storage.set", params: ["key": .string("k\(i)"), "value": .int(Int64(i))], caller: a) { r in
                    if case .failure(let e) = r { results.append(e.code.rawValue) } else { results.append("ok") }
                }
            }
            s.flush()
            #expect(results.all.count == 200)
            #expect(results.all.contains("RATE_LIMITED"))
            #expect(results.all.filter { $0 == "ok" }.count >= 4)
            #expect(s.usage(programId: "com.a.app").keys == results.all.filter { $0 == "ok" }.count)
            // Another program is not affected.
            #expect(await call(s, "storage.set", ["key": "x", "value": 1], as: caller("com.b.app")).value == [:])
        }
    }
}

/// An operator's lower storage quota (partner or program override, carried by the caller's
/// identity) applies to that program only, and can only lower the daemon's quota.
@Suite struct StorageQuotaOverrideTests {
    @Test func aLowerQuotaAppliesToThatProgramOnly() async throws {
        let dir = try makeTempDir("quota")
        defer { removeTree(dir) }
        var config = ServicesConfig(hostVersion: "1.0.0")
        config.storage.quotaBytesPerProgram = 1000
        let storage = try StorageService(stateDirectory: dir, config: config)
        defer { storage.close() }
        var small = caller("com.partner.small")
        small.storageQuotaBytes = 100
        var large = caller("com.partner.large")
        large.storageQuotaBytes = 1 << 30  // above the daemon's: the daemon's 1000 still applies
        let value = JSONValue.string(String(repeating: "x", count: 200))
        let refused = await call(storage, "storage.set", ["key": "k", "value": value], as: small)
        #expect(refused.code == .quotaExceeded, "\(refused)")
        #expect(await call(storage, "storage.set", ["key": "k", "value": value], as: large).value != nil)
        let big = JSONValue.string(String(repeating: "x", count: 900))
        #expect(await call(storage, "storage.set", ["key": "k2", "value": big], as: large).code == .quotaExceeded)
    }
}
