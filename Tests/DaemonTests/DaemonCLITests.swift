import Foundation
import MiniAppDaemon
import MiniAppJSON
import MiniAppModel
import MiniAppTestSupport
import Testing

/// The operator CLI (`miniapp ps`, `top`, `inspect`) against a real daemon with a real worker.
@Suite struct DaemonCLITests {
    static let cli = productsDirectory() + "/miniapp"

    /// One long-running program that makes three Bridge calls per host event.
    func running() throws -> (E2EWorld, DaemonHarness, E2EHost, id: String, wid: String) {
        let world = try E2EWorld()
        let id = E2EPartner.programId("cli")
        let zip = try world.package(
            E2EWorld.manifest(id: id, entry: "main.js", permissions: ["ui"]), files: ["main.js": E2EPrograms.eventLoop])
        let daemon = try world.daemon()
        let host = try E2EHost(daemon)
        host.answers["ui.toast"] = { _ in [:] }
        try host.call("bridge.provide", ["methods": ["ui.toast"]])
        try host.call("packages.install", ["path": .string(zip)])
        let wid = try #require(try host.call("programs.launch", ["id": .string(id)])["workerId"]?.stringValue)
        _ = try host.report(from: id)  // ready
        return (world, daemon, host, id, wid)
    }

    @Test func psListsTheWorker() throws {
        let (_, daemon, _, id, wid) = try running()
        defer { daemon.stop() }
        let ps = try run([Self.cli, "--socket", daemon.socket, "ps"], timeout: 30)
        #expect(ps.status == 0, "\(ps.stderr)")
        let rows = ps.stdout.split(separator: "\n").map { $0.split(separator: " ", omittingEmptySubsequences: true).map(String.init) }
        #expect(rows.first?.prefix(5) == ["WORKER", "PROGRAM", "VERSION", "STATE", "PID"])
        #expect(rows.count == 2)
        #expect(rows.last?.prefix(4) == [wid, id, "1.0.0", "running"])

        let json = try run([Self.cli, "--socket", daemon.socket, "ps", "--json"], timeout: 30)
        let workers = try JSONValue.parse(Array(json.stdout.utf8))["workers"]?.arrayValue ?? []
        #expect(workers.map { $0["workerId"]?.stringValue } == [wid])
        #expect((workers.first?["pid"]?.intValue ?? 0) > 1)
    }

    /// `top --iterations N` ends by itself; piped, it prints plain tables (no screen clearing).
    @Test func topRunsForAFixedNumberOfRefreshes() throws {
        let (_, daemon, _, id, wid) = try running()
        defer { daemon.stop() }
        let top = try run([Self.cli, "--socket", daemon.socket, "top", "--iterations", "2", "--interval", "0.2"], timeout: 30)
        #expect(top.status == 0, "\(top.stderr)")
        #expect(!top.stdout.contains("\u{1B}["), "no terminal escapes when stdout is a pipe")
        let lines = top.stdout.split(separator: "\n")
        #expect(lines.filter { $0.hasPrefix("miniappd \(DaemonVersion.current) ") && $0.contains("workers 1") }.count == 2)
        #expect(lines.filter { $0.hasPrefix("WORKER") }.count == 2)
        #expect(lines.filter { $0.hasPrefix(wid) && $0.contains(id) && $0.contains("running") }.count == 2)
        let bad = try run([Self.cli, "--socket", daemon.socket, "top", "--interval", "0"], timeout: 30)
        #expect(bad.status != 0)
    }

    /// `inspect ID --count N`: one line per Bridge call of that program, then exit 0.
    @Test func inspectStreamsBridgeCalls() throws {
        let (world, daemon, host, id, wid) = try running()
        defer { daemon.stop() }
        let outPath = world.dir.file("inspect.out")
        _ = FileManager.default.createFile(atPath: outPath, contents: nil)
        let out = try FileHandle(forWritingTo: URL(fileURLWithPath: outPath))
        let inspect = Process()
        inspect.executableURL = URL(fileURLWithPath: Self.cli)
        inspect.arguments = ["--socket", daemon.socket, "inspect", id, "--count", "3"]
        inspect.standardOutput = out
        try inspect.run()
        defer { if inspect.isRunning { kill(inspect.processIdentifier, SIGKILL) } }
        // The subscription is asynchronous and a loaded machine may start `miniapp inspect` late:
        // keep the program busy (3 calls per event) until inspect has seen its three and exited,
        // however long it takes to subscribe (a fixed number of events could all go by before
        // it did, leaving it waiting forever). The bound only turns a broken inspect into a
        // failure instead of a hang.
        var n = 0
        let giveUp = Date().addingTimeInterval(120)
        while inspect.isRunning && Date() < giveUp {
            n += 1
            try host.call("programs.send", ["workerId": .string(wid), "name": "cli.tick", "data": ["n": .int(Int64(n))]])
            _ = try host.report(from: id, number: n + 1)
        }
        try #require(!inspect.isRunning, "inspect did not stop after --count 3")
        inspect.waitUntilExit()
        try out.close()
        #expect(inspect.terminationStatus == 0)
        let lines = try String(contentsOfFile: outPath, encoding: .utf8).split(separator: "\n").map { $0.split(separator: " ").map(String.init) }
        #expect(lines.count == 3)
        for fields in lines {
            #expect(fields.count >= 6, "\(fields)")
            #expect(fields.dropFirst().prefix(2) == [wid, id])
            #expect(["storage.set", "storage.get", "ui.toast"].contains(fields.count > 3 ? fields[3] : ""))
            #expect(fields.count > 4 && fields[4] == "allow")
        }
    }
}
