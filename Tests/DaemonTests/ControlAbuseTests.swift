import Foundation
import Glibc
@testable import MiniAppDaemon
import MiniAppJSON
import MiniAppModel
import MiniAppPackages
import MiniAppSystem
import MiniAppTestSupport
import Testing

/// One authorized control client trying to hurt the control plane (not escape): installs that
/// block or never end, packages passed as descriptors, paths it may not read.
@Suite struct ControlAbuseTests {
    /// Sends one raw request on a fresh connection and leaves it open, unread.
    private static func fireAndForget(_ socket: String, _ method: String, _ params: JSONObject, count: Int) throws -> UnixLineClient {
        let c = try UnixLineClient(path: socket)
        for id in 1...count {
            let request: JSONValue = ["jsonrpc": "2.0", "id": .int(Int64(id)), "method": .string(method), "params": .object(params)]
            try c.send(line: request.serialized())
        }
        return c
    }

    /// The first answer on `c` as an object.
    private static func answer(_ c: UnixLineClient, millis: Int32) throws -> JSONObject {
        let line = try #require(try c.readLine(timeoutMillis: millis))
        return try #require(try JSONValue.parse(line).objectValue)
    }

    /// A hundred installs naming a FIFO (no writer: a blocking open waits for ever) and
    /// /dev/zero (never ends), each on its own connection, must not hold up another client:
    /// `daemon.info` and `programs.launch` answer at once, and every hostile install is
    /// answered promptly (not a regular file, or RATE_LIMITED when too many run at once).
    @Test func blockingInstallsDoNotStallOtherControlWork() throws {
        let world = try E2EWorld()
        let id = E2EPartner.programId("calm")
        let zip = try world.package(E2EWorld.manifest(id: id, entry: "main.sh"), files: ["main.sh": "#!/bin/sh\nsleep 30\n"])
        let fifo = world.dir.file("package.fifo")
        #expect(mkfifo(fifo, 0o644) == 0)
        let daemon = try world.daemon()
        defer { daemon.stop() }
        let host = try E2EHost(daemon)
        try host.call("packages.install", ["path": .string(zip)])

        // 28 connections (the daemon caps a uid at 32) with 4 pipelined installs each.
        var hostile: [UnixLineClient] = []
        for i in 0..<28 {
            hostile.append(try Self.fireAndForget(daemon.socket, "packages.install", ["path": .string(i % 4 == 0 ? "/dev/zero" : fifo)], count: 4))
        }
        let other = try daemon.client()
        let started = Date()
        #expect(try other.call("daemon.info", timeoutMillis: 10_000)["version"] != nil)
        let launched = try other.call("programs.launch", ["id": .string(id)], timeoutMillis: 10_000)
        #expect(Date().timeIntervalSince(started) < 10)
        for c in hostile {
            for _ in 1...4 {
                let a = try Self.answer(c, millis: 10_000)
                let code = a["error"]?["data"]?["code"]?.stringValue
                #expect(code == "INVALID_PACKAGE" || code == "RATE_LIMITED", "\(a)")
                if code == "INVALID_PACKAGE" { #expect(a["error"]?["message"]?.stringValue?.contains("not a regular file") == true, "\(a)") }
            }
        }
        _ = try other.call("programs.stop", ["workerId": launched["workerId"] ?? .null], timeoutMillis: 30_000)
    }

    /// The package as a descriptor (`packages.install {fd: true}` with SCM_RIGHTS), as the CLI
    /// sends it: a regular file installs; a FIFO or /dev/zero is refused at once; `fd: true`
    /// without a descriptor, or with a path too, is INVALID_PARAMS.
    @Test func packagePassedAsADescriptor() throws {
        let world = try E2EWorld()
        let id = E2EPartner.programId("byfd")
        let zip = try world.package(E2EWorld.manifest(id: id, entry: "main.sh"), files: ["main.sh": "#!/bin/sh\n"])
        let fifo = world.dir.file("p.fifo")
        #expect(mkfifo(fifo, 0o644) == 0)
        let daemon = try world.daemon()
        defer { daemon.stop() }
        let client = try daemon.client()
        let socket = daemon.socket
        func install(_ params: JSONObject, passing fd: Int32?) throws -> JSONObject {
            let c = try UnixLineClient(path: socket)
            let request: JSONValue = ["jsonrpc": "2.0", "id": 1, "method": "packages.install", "params": .object(params)]
            if let fd { try c.send(line: request.serialized(), passing: fd) } else { try c.send(line: request.serialized()) }
            guard let line = try c.readLine(timeoutMillis: 10_000) else { throw HarnessError("connection closed") }
            guard let obj = try JSONValue.parse(line).objectValue else { throw HarnessError("not an object") }
            return obj
        }

        let good = open(zip, O_RDONLY | O_CLOEXEC)
        defer { close(good) }
        let r = try install(["fd": true], passing: good)
        #expect(r["result"]?["id"]?.stringValue == id && r["result"]?["active"] == true, "\(r)")

        for path in [fifo, "/dev/zero"] {
            let fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC)
            defer { close(fd) }
            #expect(try install(["fd": true], passing: fd)["error"]?["data"]?["code"] == "INVALID_PACKAGE")
        }
        #expect(try install(["fd": true], passing: nil)["error"]?["data"]?["code"] == "INVALID_PARAMS")
        #expect(try install(["fd": true, "path": .string(zip)], passing: good)["error"]?["data"]?["code"] == "INVALID_PARAMS")
        // The connection still serves.
        #expect(try client.call("packages.list")["packages"]?.arrayValue?.count == 1)
    }

    /// The CLI passes the file it opened; a file the CLI user cannot open never reaches the daemon.
    @Test func cliInstallPassesADescriptor() throws {
        let world = try E2EWorld()
        let id = E2EPartner.programId("cli")
        let zip = try world.package(E2EWorld.manifest(id: id, entry: "main.sh"), files: ["main.sh": "#!/bin/sh\n"])
        let daemon = try world.daemon()
        defer { daemon.stop() }
        let out = try run([productsDirectory() + "/miniapp", "--socket", daemon.socket, "install", zip])
        #expect(out.status == 0, "\(out.stderr)")
        #expect(out.stdout.contains("installed \(id) 1.0.0"))
    }
}

/// Opening a path for a peer as that peer: the kernel's checks decide, and every failure reads
/// the same (no oracle on files the peer could not see).
@Suite struct PeerPathTests {
    static let nobody = PeerCredentials(pid: 0, uid: 65534, gid: 65534, groups: [65534])

    @Test func openedWithThePeersPermissions() throws {
        guard geteuid() == 0 else { return }  // acting as another uid needs root
        let dir = try TempDir("peer-open")
        let open = try dir.write("open/pkg.zip", "x")
        chmod(dir.file("open"), 0o755)
        chmod(open, 0o644)
        let secret = try dir.write("secret.zip", "x")
        chmod(secret, 0o600)
        let hidden = try dir.write("closed/pkg.zip", "x")
        chmod(hidden, 0o644)
        chmod(dir.file("closed"), 0o700)
        chmod(dir.path, 0o755)
        #expect((try? PeerFileOpener.open(open, as: Self.nobody)) != nil)
        for path in [secret, hidden, dir.file("missing.zip")] {
            #expect(throws: SystemError.self) { _ = try PeerFileOpener.open(path, as: Self.nobody) }
        }
        // Root still opens all of them (the thread's identity was restored).
        #expect((try? PeerFileOpener.open(secret, as: PeerCredentials(pid: 0, uid: 0, gid: 0))) != nil)
        #expect(Glibc.access(secret, R_OK) == 0)
    }

    /// The daemon's answer for a root-only file is the answer for a missing one.
    @Test func unreadableAnswersLikeMissing() throws {
        guard geteuid() == 0 else { return }
        let dir = try TempDir("peer-oracle")
        chmod(dir.path, 0o755)
        let secret = try dir.write("a.zip", "PK not really")
        chmod(secret, 0o600)
        let store = try PackageStore(root: dir.file("store"), options: VerifierOptions(hostVersion: SemVer("1.0.0")!)) { try! PartnerSet([]) }
        let binding = StoreBinding(store: store)
        func answer(_ path: String) -> MiniAppError? {
            do {
                _ = try binding.install(from: .path(path, Self.nobody), allowDowngrade: false, deadline: .max)
                return nil
            } catch { return error }
        }
        let unreadable = try #require(answer(secret))
        let missing = try #require(answer(dir.file("b.zip")))
        #expect(unreadable.code == missing.code)
        #expect(unreadable.data["reason"] == missing.data["reason"])
        #expect(unreadable.message.replacingOccurrences(of: "a.zip", with: "X") == missing.message.replacingOccurrences(of: "b.zip", with: "X"))
        // Root, who may read it, learns it is no zip.
        let root = PeerCredentials(pid: 0, uid: 0, gid: 0)
        #expect(throws: MiniAppError.self) { try binding.install(from: .path(secret, root), allowDowngrade: false, deadline: .max) }
        #expect((try? binding.install(from: .path(secret, root), allowDowngrade: false, deadline: .max)) == nil)
    }
}
