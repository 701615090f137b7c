import Foundation
import MiniAppBridgeSDK
import MiniAppJSON
import Testing

/// The far side of the Bridge for SDK tests: a tiny JSON-RPC server on one end of a
/// socketpair (the real broker is tested by its own suite). Methods:
/// `echo` → params; `fail` → PERMISSION_DENIED; `delayed` → no reply until `flush`, which
/// answers itself first and then the delayed calls in reverse order (out-of-order replies);
/// `emit {name, data}` → an `event` notification, then `{}`.
final class FakeBridgeServer: @unchecked Sendable {
    let serverFD: Int32
    let clientFD: Int32
    private let lock = NSLock()
    private var requests: [JSONValue] = []
    private var thread: Thread?

    init() throws {
        var fds: [Int32] = [0, 0]
        guard socketpair(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0, &fds) == 0 else {
            throw POSIXError(.EIO)
        }
        serverFD = fds[0]
        // Never fd 3 itself: dup2(x, 3) on x == 3 would keep close-on-exec set.
        clientFD = fds[1] == 3 ? fcntl(fds[1], F_DUPFD_CLOEXEC, 10) : fds[1]
        let t = Thread { [self] in serve() }
        thread = t
        t.start()
    }

    var received: [JSONValue] { lock.lock(); defer { lock.unlock() }; return requests }

    private func serve() {
        var buffer: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 65536)
        var delayed: [JSONValue] = []
        while true {
            let n = chunk.withUnsafeMutableBytes { recv(serverFD, $0.baseAddress, $0.count, 0) }
            if n <= 0 { break }
            buffer += chunk[0..<n]
            while let nl = buffer.firstIndex(of: UInt8(ascii: "\n")) {
                let line = Array(buffer[..<nl])
                buffer.removeSubrange(...nl)
                guard let req = try? JSONValue.parse(line) else { continue }
                lock.lock(); requests.append(req); lock.unlock()
                respond(to: req, delayed: &delayed)
            }
        }
        close(serverFD)
    }

    private func respond(to req: JSONValue, delayed: inout [JSONValue]) {
        let id = req["id"] ?? .null
        switch req["method"]?.stringValue {
        case "echo": send(["jsonrpc": "2.0", "id": id, "result": req["params"] ?? .null])
        case "fail":
            send(["jsonrpc": "2.0", "id": id, "error": [
                "code": -32001, "message": "payment.pay needs permission 'payment'", "data": ["code": "PERMISSION_DENIED"],
            ]])
        case "delayed": delayed.append(req)
        case "flush":
            send(["jsonrpc": "2.0", "id": id, "result": ["flushed": .int(Int64(delayed.count))]])
            for d in delayed.reversed() { send(["jsonrpc": "2.0", "id": d["id"] ?? .null, "result": ["n": d["params"]?["n"] ?? .null]]) }
            delayed = []
        case "emit":
            send(["jsonrpc": "2.0", "method": "event", "params": ["name": req["params"]?["name"] ?? .null, "data": req["params"]?["data"] ?? .null]])
            send(["jsonrpc": "2.0", "id": id, "result": [:]])
        default:
            send(["jsonrpc": "2.0", "id": id, "error": ["code": -32601, "message": "no such method", "data": ["code": "METHOD_NOT_FOUND"]]])
        }
    }

    private func send(_ v: JSONValue) {
        let bytes = v.serialized() + [UInt8(ascii: "\n")]
        _ = bytes.withUnsafeBytes { Foundation.send(serverFD, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
    }

    /// Spawns `argv` with the client end as fd 3 and MINIAPP_BRIDGE_FD=3; returns exit status
    /// and stdout. A child still running after 60 s (e.g. the socket kept node alive) is
    /// killed, by its pid, and reported as such.
    func run(_ argv: [String], env extra: [String: String] = [:]) throws -> (status: Int32, out: String) {
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        var outPipe: [Int32] = [0, 0]
        guard pipe(&outPipe) == 0 else { throw POSIXError(.EIO) }
        _ = fcntl(outPipe[0], F_SETFD, FD_CLOEXEC)
        _ = fcntl(outPipe[1], F_SETFD, FD_CLOEXEC)
        posix_spawn_file_actions_adddup2(&actions, clientFD, 3)
        posix_spawn_file_actions_adddup2(&actions, outPipe[1], 1)
        var env = ["MINIAPP_BRIDGE_FD": "3", "PATH": "/usr/local/bin:/usr/bin:/bin", "HOME": "/tmp"]
        for (k, v) in extra { env[k] = v }
        let cArgs = argv.map { strdup($0) } + [nil]
        let cEnv = env.map { strdup("\($0.key)=\($0.value)") } + [nil]
        defer { (cArgs + cEnv).forEach { free($0) } }
        var pid: pid_t = 0
        let rc = posix_spawn(&pid, argv[0], &actions, nil, cArgs, cEnv)
        close(outPipe[1])
        close(clientFD)  // only the child holds the client end now: its exit closes the Bridge
        guard rc == 0 else { close(outPipe[0]); throw POSIXError(POSIXErrorCode(rawValue: rc) ?? .EIO) }
        let reaped = Reaped()
        let child = pid
        let watchdog = Thread {
            for _ in 0..<600 where !reaped.value { usleep(100_000) }
            reaped.killIfRunning(child)
        }
        watchdog.start()
        let out = FileHandle(fileDescriptor: outPipe[0], closeOnDealloc: true).readDataToEndOfFile()
        var status: Int32 = 0
        waitpid(pid, &status, 0)
        reaped.markReaped()
        return (status, String(decoding: out, as: UTF8.self))
    }
}

/// Guards the watchdog's kill against a reaped (and possibly reused) pid.
final class Reaped: @unchecked Sendable {
    private let lock = NSLock()
    private var done = false
    var value: Bool { lock.lock(); defer { lock.unlock() }; return done }
    func markReaped() { lock.lock(); done = true; lock.unlock() }
    func killIfRunning(_ pid: pid_t) { lock.lock(); if !done { kill(pid, SIGKILL) }; lock.unlock() }
}

@Suite struct SDKTests {
    static let sdk = packageRoot() + "/Sources/SDK"

    static let nodeProgram = """
        (async () => {
          const out = { typeofGlobal: typeof MiniAppBridge };
          out.echo = await MiniAppBridge.call('echo', { a: 1, s: 'é\\u2028' });
          try { await MiniAppBridge.call('fail', {}); } catch (e) {
            out.err = { code: e.code, message: e.message, isError: e instanceof Error, rpcCode: e.rpcCode };
          }
          const events = [];
          MiniAppBridge.on('tick', d => events.push(d));
          const p1 = MiniAppBridge.call('delayed', { n: 1 });
          const p2 = MiniAppBridge.call('delayed', { n: 2 });
          out.flush = await MiniAppBridge.call('flush');
          out.delayed = await Promise.all([p1, p2]);
          await MiniAppBridge.call('emit', { name: 'tick', data: { k: 1 } });
          out.events = events;
          console.log(JSON.stringify(out));
        })();
        """

    @Test func nodeGlobalWithoutImport() throws {
        try #require(FileManager.default.isExecutableFile(atPath: "/usr/bin/node"), "node is needed for the JS SDK test")
        let dir = try makeTempDir("sdk")
        defer { removeTree(dir) }
        try Self.nodeProgram.write(toFile: dir + "/main.js", atomically: true, encoding: .utf8)
        let server = try FakeBridgeServer()
        let r = try server.run(["/usr/bin/node", "--require", Self.sdk + "/js/preload.js", dir + "/main.js"])
        #expect(r.status == 0, "node did not exit by itself (status \(r.status)): the idle socket must not keep it alive")
        let out = try JSONValue.parse(r.out.trimmingCharacters(in: .whitespacesAndNewlines))
        #expect(out["typeofGlobal"] == "object")
        #expect(out["echo"] == ["a": 1, "s": "é\u{2028}"])
        #expect(out["err"] == ["code": "PERMISSION_DENIED", "message": "payment.pay needs permission 'payment'", "isError": true, "rpcCode": -32001])
        #expect(out["flush"] == ["flushed": 2])
        #expect(out["delayed"] == [["n": 1], ["n": 2]])
        #expect(out["events"] == [["k": 1]])
        let ids = server.received.compactMap { $0["id"] }
        #expect(Set(ids).count == ids.count)
        #expect(server.received.allSatisfy { $0["jsonrpc"] == "2.0" })
        #expect(server.received.first { $0["method"] == "flush" }?.objectValue?["params"] == nil)
    }

    static let pythonProgram = """
        import asyncio, json, threading
        import miniapp_bridge as bridge
        out = {"echo": bridge.call("echo", {"a": 1})}
        try:
            bridge.call("fail", {})
        except bridge.BridgeError as e:
            out["err"] = {"code": e.code, "message": e.message, "rpc": e.rpc_code}
        events = []
        bridge.on_event("tick", lambda d: events.append([d, bridge.call("echo", {"in": "callback"})]))  # re-entrant
        results = {}
        threads = [threading.Thread(target=lambda n=n: results.__setitem__(n, bridge.call("delayed", {"n": n}))) for n in (1, 2)]
        for t in threads: t.start()
        while any(t.is_alive() for t in threads):  # flush until both delayed calls were sent and answered
            bridge.call("flush")
            for t in threads: t.join(timeout=0.05)
        out["delayed"] = [results.get(1), results.get(2)]
        bridge.call("emit", {"name": "tick", "data": {"k": 1}})
        out["events"] = events
        async def main():
            b = bridge.AsyncBridge(fd=bridge.default_bridge()._sock.fileno())
            got = []
            b.on_event("tock", lambda d: got.append(d))
            d1 = asyncio.ensure_future(b.call("delayed", {"n": 3}))
            d2 = asyncio.ensure_future(b.call("delayed", {"n": 4}))
            await asyncio.sleep(0)
            f = None
            while not (d1.done() and d2.done()):
                f = await b.call("flush")
                await asyncio.sleep(0.05)
            await b.call("emit", {"name": "tock", "data": 2})
            try:
                await b.call("fail")
            except bridge.BridgeError as e:
                got.append(e.code)
            return [await d1, await d2, got]
        out["async"] = asyncio.run(main())
        print(json.dumps(out))
        """

    @Test func pythonModule() throws {
        let dir = try makeTempDir("sdk")
        defer { removeTree(dir) }
        try Self.pythonProgram.write(toFile: dir + "/main.py", atomically: true, encoding: .utf8)
        let server = try FakeBridgeServer()
        let r = try server.run([debianPython, dir + "/main.py"], env: ["PYTHONPATH": Self.sdk + "/python"])
        #expect(r.status == 0)
        let out = try JSONValue.parse(r.out.trimmingCharacters(in: .whitespacesAndNewlines))
        #expect(out["echo"] == ["a": 1])
        #expect(out["err"] == ["code": "PERMISSION_DENIED", "message": "payment.pay needs permission 'payment'", "rpc": -32001])
        #expect(out["delayed"] == [["n": 1], ["n": 2]])
        #expect(out["events"] == [[["k": 1], ["in": "callback"]]])
        #expect(out["async"] == [["n": 3], ["n": 4], [2, "PERMISSION_DENIED"]])
    }

    @Test func swiftLibrary() async throws {
        let server = try FakeBridgeServer()
        let bridge = MiniAppBridge(fd: server.clientFD)
        let events = LockedLines()
        bridge.onEvent { name, data in events.append("\(name)=\(data.jsonString)") }
        #expect(try await bridge.call("echo", ["a": [1, "b"]]) == ["a": [1, "b"]])
        do {
            _ = try await bridge.call("fail")
            Issue.record("fail must throw")
        } catch {
            #expect(error.code == "PERMISSION_DENIED")
            #expect(error.message == "payment.pay needs permission 'payment'")
            #expect(error.rpcCode == -32001)
        }
        async let d1 = bridge.call("delayed", ["n": 1])
        async let d2 = bridge.call("delayed", ["n": 2])
        var flushed = 0
        while flushed < 2 { flushed += Int(try await bridge.call("flush")["flushed"]?.intValue ?? 0) }
        #expect(try await d1 == ["n": 1])
        #expect(try await d2 == ["n": 2])
        _ = try await bridge.call("emit", ["name": "tick", "data": ["k": 1]])
        #expect(events.all == ["tick={\"k\":1}"])
        shutdown(server.clientFD, Int32(SHUT_RDWR))
        await #expect(throws: BridgeError.self) { try await bridge.call("echo") }
    }
}
