import Foundation
import MiniAppDaemon
import MiniAppJSON
import MiniAppModel
import MiniAppSystem
import MiniAppTestSupport
import Testing

/// Revoking and granting through a real `miniappd` with a running jailed worker: the next
/// Bridge call after the change sees it, and the worker is never restarted.
@Suite struct PartnerGrantsEndToEndTests {
    /// A launched `payOnEvent` program and its host.
    final class Payer {
        let daemon: DaemonHarness
        let host: E2EHost
        let id: String
        let workerId: String
        let pid: Int64
        private var reports = 1

        init(_ daemon: DaemonHarness, id: String, zip: String) throws {
            self.daemon = daemon
            self.id = id
            host = try E2EHost(daemon)
            host.answers["payment.pay"] = { _ in ["transactionId": "tx"] }
            host.answers["ui.toast"] = { _ in [:] }
            try host.call("bridge.provide", ["methods": ["payment.pay", "ui.toast"]])
            try host.call("packages.install", ["path": .string(zip)])
            let launched = try host.call("programs.launch", ["id": .string(id)])
            workerId = launched["workerId"]?.stringValue ?? ""
            pid = launched["pid"]?.intValue ?? 0
            #expect(try host.report(from: id)["kind"] == "ready")
        }

        /// One `payment.pay` from inside the worker: `ok` or the error code.
        func pay() throws -> String {
            reports += 1
            try host.call("programs.send", ["workerId": .string(workerId), "name": .string("pay-\(reports)")])
            return try host.report(from: id, number: reports)["result"]?.stringValue ?? "no result"
        }

        /// Pays until the answer is `expected` (the watch and background fetches are asynchronous).
        func payUntil(_ expected: String, seconds: Double = 15) throws -> Bool {
            let deadline = Date().addingTimeInterval(seconds)
            while Date() < deadline {
                if try pay() == expected { return true }
                usleep(100_000)
            }
            return false
        }

        /// The same worker (id and pid) is still running: nothing was restarted.
        func expectSameWorker() throws {
            let workers = try host.call("programs.list")["workers"]?.arrayValue ?? []
            #expect(workers.count == 1)
            #expect(workers.first?["workerId"]?.stringValue == workerId)
            #expect(workers.first?["pid"]?.intValue == pid)
            #expect(workers.first?["state"] == "running")
        }
    }

    static func payerPackage(_ world: E2EWorld, id: String, key: RSAKey = E2EPartner.key) throws -> String {
        try world.package(
            E2EWorld.manifest(id: id, entry: "main.js", permissions: ["payment", "ui"]), files: ["main.js": E2EPrograms.payOnEvent],
            key: key)
    }

    /// (a) Edit the partner file, then `permissions.refresh`: the very next call is denied. A
    /// broken file of another partner next to it does not hold the revocation back, and is
    /// reported and logged with its file name.
    @Test func revocationByFileEditAndRefresh() throws {
        let world = try E2EWorld()
        let id = E2EPartner.programId("revoke")
        let zip = try Self.payerPackage(world, id: id)
        let daemon = try world.daemon()
        defer { daemon.stop() }
        let p = try Payer(daemon, id: id, zip: zip)
        #expect(try p.pay() == "ok")

        try world.register(permissions: ["ui"])
        try world.writePartnerFile("com.other.json", #"{"id": "com.other", "idPrefixes": ["com.other."], "#)
        let r = try p.host.call("permissions.refresh")
        let e2e = (r["partners"]?.arrayValue ?? []).first { $0["id"] == .string(E2EPartner.id) }
        #expect(e2e?["permissions"] == ["ui"])
        #expect(e2e?["origin"] == "local")
        #expect(r["blocked"]?.arrayValue?.first?["id"] == "com.other")
        #expect(try p.pay() == "PERMISSION_DENIED")
        try p.expectSameWorker()

        try world.register(permissions: ["payment", "ui"])
        try p.host.call("permissions.refresh")
        #expect(try p.pay() == "ok")
        try p.expectSameWorker()
        #expect(daemon.logText().contains(world.policyDir + "/partners/com.other.json: PARTNER_INVALID"))
    }

    /// (b) Edit the partner file and call nothing: the directory watch applies the revocation,
    /// and the grant given back, to the running worker.
    @Test func revocationByFileEditAlone() throws {
        let world = try E2EWorld()
        let id = E2EPartner.programId("watch")
        let zip = try Self.payerPackage(world, id: id)
        let daemon = try world.daemon()
        defer { daemon.stop() }
        let p = try Payer(daemon, id: id, zip: zip)
        #expect(try p.pay() == "ok")

        try world.register(permissions: ["ui"])
        #expect(try p.payUntil("PERMISSION_DENIED"), "\(daemon.logText())")
        try p.expectSameWorker()
        try world.register(permissions: ["payment", "ui"])
        #expect(try p.payUntil("ok"))
        try p.expectSameWorker()
        #expect(daemon.logText().contains("partners changed: re-reading the partner grants"))
    }

    /// The registry's grants end to end: a package signed with a key only the registry knows
    /// installs; a revocation and a new grant apply on `permissions.refresh`; a forged document
    /// changes nothing; after a restart with the registry down the cache is used (offline).
    @Test func registryGrantsThroughTheDaemon() throws {
        let world = try E2EWorld()
        let server = try RegistryServer()
        defer { server.stop() }
        let regKey = try RSAKey.generate(bits: 2048)
        let reg = { (perms: [String]) in
            PartnerRegistration(id: "com.reg", idPrefixes: ["com.reg."], publicKeys: [try! regKey.publicPEM()], permissions: Set(perms))
        }
        try server.publish("partners", try Platform.signed(Platform.document(issuedAt: 100, [reg(["payment", "ui"])])))
        let keyFile = try Platform.writePublicKey(world.dir)
        let state = world.dir.file("state")
        let args = ["--registry", server.url, "--platform-key", keyFile]
        let id = "com.reg.payer"
        let zip = try Self.payerPackage(world, id: id, key: regKey)

        do {
            let daemon = try world.daemon(args, stateDir: state)
            defer { daemon.stop() }
            let p = try Payer(daemon, id: id, zip: zip)
            #expect(try p.pay() == "ok")

            try server.publish("partners", try Platform.signed(Platform.document(issuedAt: 200, [reg(["ui"])])))
            let revoked = try p.host.call("permissions.refresh")
            #expect(revoked["registry"]?["status"] == "applied")
            #expect(try p.pay() == "PERMISSION_DENIED")

            try server.publish("partners", try Platform.signed(Platform.document(issuedAt: 300, [reg(["payment", "ui"])]), with: Platform.impostor))
            let forged = try p.host.call("permissions.refresh")
            #expect(forged["registry"]?["code"] == "REGISTRY_BAD_SIGNATURE")
            #expect(try p.pay() == "PERMISSION_DENIED")

            try server.publish("partners", try Platform.signed(Platform.document(issuedAt: 300, [reg(["payment", "ui"])])))
            #expect(try p.host.call("permissions.refresh")["registry"]?["status"] == "applied")
            #expect(try p.pay() == "ok")
            try p.expectSameWorker()
        }

        server.stop()
        let t0 = Date()
        let offline = try world.daemon(args, stateDir: state)
        defer { offline.stop() }
        #expect(Date().timeIntervalSince(t0) < 15, "a down registry does not hold the start")
        let host = try E2EHost(offline)
        host.answers["payment.pay"] = { _ in ["transactionId": "tx"] }
        host.answers["ui.toast"] = { _ in [:] }
        try host.call("bridge.provide", ["methods": ["payment.pay", "ui.toast"]])
        let launched = try host.call("programs.launch", ["id": .string(id)])
        let wid = try #require(launched["workerId"]?.stringValue)
        #expect(try host.report(from: id)["kind"] == "ready")
        try host.call("programs.send", ["workerId": .string(wid), "name": "offline"])
        #expect(try host.report(from: id, number: 2)["result"] == "ok", "granted by the cached document")
        let r = try host.call("permissions.refresh")
        #expect(r["registry"]?["status"] == "unavailable")
        #expect(r["registry"]?["issuedAt"] == 300)
    }

    /// With the embedded policies (no --policy-dir), SIGHUP still re-reads the grants: here the
    /// registry's revocation, fetched in the background after the signal.
    @Test func sighupRefreshesGrantsWithEmbeddedPolicies() throws {
        let world = try E2EWorld()
        let server = try RegistryServer()
        defer { server.stop() }
        let regKey = try RSAKey.generate(bits: 2048)
        let reg = { (perms: [String]) in
            PartnerRegistration(id: "com.reg", idPrefixes: ["com.reg."], publicKeys: [try! regKey.publicPEM()], permissions: Set(perms))
        }
        try server.publish("partners", try Platform.signed(Platform.document(issuedAt: 100, [reg(["payment", "ui"])])))
        let daemon = try DaemonHarness(
            policyDir: nil, extraArgs: ["--registry", server.url, "--platform-key", try Platform.writePublicKey(world.dir)])
        defer { daemon.stop() }
        let p = try Payer(daemon, id: "com.reg.hup", zip: try Self.payerPackage(world, id: "com.reg.hup", key: regKey))
        #expect(try p.pay() == "ok")
        try server.publish("partners", try Platform.signed(Platform.document(issuedAt: 200, [reg(["ui"])])))
        kill(daemon.process.processIdentifier, SIGHUP)
        #expect(try p.payUntil("PERMISSION_DENIED"), "\(daemon.logText())")
        try p.expectSameWorker()
    }
}
