import Foundation
import MiniAppBridgeSDK
import MiniAppJSON
import Testing

/// The far side of the Bridge for SDK tests: a tiny JSON-RPC server on one end of a
/// socketpair (the real broker is tested by its own suite). Methods:
/// `echo` → params; `fail` → PERMISSION_DENIED; `delayed` → no reply until `flush`, which
/// answers itself first and then the delayed calls in reverse order (out-of-order replies);
/// `emit {name, data}` → an `event` notification, then `{}`; `raw-error {error}` → that error
/// object as sent; `delayed {ack: true}` also sends
/// an event `held` once the call is held. With `maxLineBytes`, a longer line is answered as the
/// daemon answers it (tested against the real broker in MalformedInputTests): one
/// MESSAGE_TOO_LARGE error with id null, then the connection is closed.
final class FakeBridgeServer: @unchecked Sendable {
    let serverFD: Int32
    let clientFD: Int32
    let maxLineBytes: Int?
    private let lock = NSLock()
    private var requests: [JSONValue] = []
    private var bytes: [UInt8] = []
    private var thread: Thread?

    init(maxLineBytes: Int? = nil) throws {
        self.maxLineBytes = maxLineBytes
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
    /// Every byte read from the client, as it came.
    var receivedBytes: [UInt8] { lock.lock(); defer { lock.unlock() }; return bytes }

    private func serve() {
        var buffer: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 65536)
        var delayed: [JSONValue] = []
        while true {
            let n = chunk.withUnsafeMutableBytes { recv(serverFD, $0.baseAddress, $0.count, 0) }
            if n <= 0 { break }
            buffer += chunk[0..<n]
            lock.lock(); bytes += chunk[0..<n]; lock.unlock()
            var oversize = false
            while true {
                let nl = buffer.firstIndex(of: UInt8(ascii: "\n"))
                if let max = maxLineBytes, (nl ?? buffer.count) > max {
                    oversize = true
                    break
                }
                guard let nl else { break }
                let line = Array(buffer[..<nl])
                buffer.removeSubrange(...nl)
                guard let req = try? JSONValue.parse(line) else { continue }
                lock.lock(); requests.append(req); lock.unlock()
                respond(to: req, delayed: &delayed)
            }
            if oversize, let max = maxLineBytes {
                send(["jsonrpc": "2.0", "id": .null, "error": [
                    "code": -32007, "message": .string("message exceeds \(max) bytes; the connection is closed"),
                    "data": ["code": "MESSAGE_TOO_LARGE"],
                ]])
                shutdown(serverFD, Int32(SHUT_RDWR))
                break
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
        case "raw-error": send(["jsonrpc": "2.0", "id": id, "error": req["params"]?["error"] ?? .null])
        case "delayed":
            delayed.append(req)
            if req["params"]?["ack"] == true { send(["jsonrpc": "2.0", "method": "event", "params": ["name": "held", "data": req["params"]?["n"] ?? .null]]) }
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

    /// Sends the event `name` with `data` unasked (as the daemon sends `lifecycle.launch`).
    func sendEvent(_ name: String, _ data: JSONValue) {
        send(["jsonrpc": "2.0", "method": "event", "params": ["name": .string(name), "data": data]])
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

    /// `on` and `keepAlive` open the socket ahead of any call and prime node's write path with an
    /// empty write: the Bridge must receive nothing from it, only the program's requests, byte
    /// for byte (a stray newline or an empty JSON text would reach the daemon's parser). The read
    /// path is primed with a message pushed into the socket's readable side: no listener (not
    /// even '*', registered first) and no call may see it.
    @Test func nodePrimingSendsNothing() throws {
        try #require(FileManager.default.isExecutableFile(atPath: "/usr/bin/node"), "node is needed for the JS SDK test")
        let dir = try makeTempDir("sdk")
        defer { removeTree(dir) }
        let program = """
            MiniAppBridge.on('*', (name, data) => console.log('event', name, JSON.stringify(data)));
            MiniAppBridge.keepAlive(true);
            setTimeout(() => MiniAppBridge.call('echo', { n: 1 }).then((r) => { console.log(JSON.stringify(r)); MiniAppBridge.keepAlive(false); }), 50);
            """
        try program.write(toFile: dir + "/main.js", atomically: true, encoding: .utf8)
        let server = try FakeBridgeServer()
        let r = try server.run(["/usr/bin/node", "--require", Self.sdk + "/js/preload.js", dir + "/main.js"])
        #expect(r.status == 0)
        #expect(r.out == #"{"n":1}"# + "\n")
        #expect(String(decoding: server.receivedBytes, as: UTF8.self) == #"{"jsonrpc":"2.0","id":1,"method":"echo","params":{"n":1}}"# + "\n")
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
            b = bridge.AsyncBridge(fd=bridge.default_bridge().fileno())
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

    static let pythonAwaitable = """
        import asyncio, json
        import miniapp_bridge as bridge
        async def main():
            out = {"echo": await bridge.aio.call("echo", {"a": 1})}
            try:
                await bridge.aio.call("fail", {})
            except bridge.BridgeError as e:
                out["err"] = [e.code, e.message, e.rpc_code]
            held, got = [], []
            bridge.aio.on_event("held", held.append)
            bridge.aio.on_event("tick", got.append)
            d1 = asyncio.ensure_future(bridge.aio.call("delayed", {"n": 1, "ack": True}))
            d2 = asyncio.ensure_future(bridge.aio.call("delayed", {"n": 2, "ack": True}))
            while len(held) < 2:  # both calls are in flight at once, held by the server
                await asyncio.sleep(0.005)
            out["flush"] = await bridge.aio.call("flush")
            out["delayed"] = await asyncio.gather(d1, d2)  # answered in reverse order
            await bridge.aio.call("emit", {"name": "tick", "data": {"k": 1}})
            out["events"] = got
            try:
                bridge.call("echo", {})
                out["mixed"] = "allowed"
            except RuntimeError:
                out["mixed"] = "refused"
            return out
        print(json.dumps(asyncio.run(main())))
        """

    /// The spec's awaitable shape in Python: `await bridge.aio.call(…)` on the process-wide
    /// connection, pipelined, with events; mixing it with the blocking `call` is refused.
    @Test func pythonAwaitableModuleCall() throws {
        let dir = try makeTempDir("sdk")
        defer { removeTree(dir) }
        try Self.pythonAwaitable.write(toFile: dir + "/main.py", atomically: true, encoding: .utf8)
        let server = try FakeBridgeServer()
        let r = try server.run([debianPython, dir + "/main.py"], env: ["PYTHONPATH": Self.sdk + "/python"])
        #expect(r.status == 0)
        let out = try JSONValue.parse(r.out.trimmingCharacters(in: .whitespacesAndNewlines))
        #expect(out["echo"] == ["a": 1])
        #expect(out["err"] == ["PERMISSION_DENIED", "payment.pay needs permission 'payment'", -32001])
        #expect(out["flush"] == ["flushed": 2])
        #expect(out["delayed"] == [["n": 1], ["n": 2]])
        #expect(out["events"] == [["k": 1]])
        #expect(out["mixed"] == "refused")
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

    // MARK: odd error objects

    /// Error objects a broken or hostile far side could send, and the code each SDK must give:
    /// a `data.code` that is missing, empty or not a string counts as absent (the number's code,
    /// else `INTERNAL`), so a program branching on `code` never sees `""` or a number.
    static let oddErrors: [(error: JSONValue, code: String)] = [
        (["code": -32001, "message": "m", "data": ["code": ""]], "PERMISSION_DENIED"),
        (["code": -32003, "message": "m", "data": ["code": 5]], "QUOTA_EXCEEDED"),
        (["code": -32002, "message": "m", "data": "RATE_LIMITED"], "RATE_LIMITED"),
        (["code": -32099, "message": "m", "data": ["code": ""]], "INTERNAL"),
        (["code": "x", "message": "m"], "INTERNAL"),
        (["code": -32001, "message": "m", "data": ["code": "RATE_LIMITED"]], "RATE_LIMITED"),
    ]

    static let oddErrorsNode = """
        (async () => {
          const errors = JSON.parse(process.argv[2]);
          const out = [];
          for (const error of errors) out.push(await MiniAppBridge.call('raw-error', { error }).then(() => 'resolved', (e) => e.code));
          console.log(JSON.stringify(out));
        })();
        """

    static let oddErrorsPython = """
        import json, sys
        import miniapp_bridge as bridge
        out = []
        for error in json.loads(sys.argv[1]):
            try:
                bridge.call("raw-error", {"error": error})
                out.append("resolved")
            except bridge.BridgeError as e:
                out.append(e.code)
        print(json.dumps(out))
        """

    @Test func oddErrorObjectsGetACodeInEverySDK() async throws {
        let errors = JSONValue.array(Self.oddErrors.map(\.error)).jsonString
        let want = JSONValue.array(Self.oddErrors.map { .string($0.code) })
        let swiftServer = try FakeBridgeServer()
        let bridge = MiniAppBridge(fd: swiftServer.clientFD)
        var swiftCodes: [JSONValue] = []
        for odd in Self.oddErrors {
            do {
                _ = try await bridge.call("raw-error", ["error": odd.error])
                swiftCodes.append("resolved")
            } catch {
                swiftCodes.append(.string(error.code))
            }
        }
        #expect(JSONValue.array(swiftCodes) == want)
        let dir = try makeTempDir("sdk")
        defer { removeTree(dir) }
        try Self.oddErrorsPython.write(toFile: dir + "/main.py", atomically: true, encoding: .utf8)
        let py = try FakeBridgeServer().run([debianPython, dir + "/main.py", errors], env: ["PYTHONPATH": Self.sdk + "/python"])
        #expect(py.status == 0)
        #expect(try JSONValue.parse(py.out.trimmingCharacters(in: .whitespacesAndNewlines)) == want)
        try #require(FileManager.default.isExecutableFile(atPath: "/usr/bin/node"), "node is needed for the JS SDK test")
        try Self.oddErrorsNode.write(toFile: dir + "/main.js", atomically: true, encoding: .utf8)
        let js = try FakeBridgeServer().run(["/usr/bin/node", "--require", Self.sdk + "/js/preload.js", dir + "/main.js", errors])
        #expect(js.status == 0)
        #expect(try JSONValue.parse(js.out.trimmingCharacters(in: .whitespacesAndNewlines)) == want)
    }

    // MARK: message limit and errors with id null

    static let nodeTooLarge = """
        (async () => {
          const out = { maxBytes: MiniAppBridge.maxBytes };
          const attempt = (p) => p.then(() => 'resolved', (e) => ({ code: e.code, rpcCode: e.rpcCode, limit: e.data && e.data.limit }));
          out.ascii = await attempt(MiniAppBridge.call('echo', { s: 'a'.repeat(2000) }));
          out.multibyte = await attempt(MiniAppBridge.call('echo', { s: '\\u20ac'.repeat(600) }));  // 600 units, 1800 bytes
          out.fits = (await MiniAppBridge.call('echo', { s: 'a'.repeat(900) })).s.length;
          console.log(JSON.stringify(out));
        })();
        """

    static let nodeUnmatchedError = """
        (async () => {
          const code = (p) => p.then(() => 'resolved', (e) => e.code);
          const d1 = code(MiniAppBridge.call('delayed', { n: 1 }));
          const d2 = code(MiniAppBridge.call('delayed', { n: 2 }));
          const big = code(MiniAppBridge.call('echo', { s: 'x'.repeat(8000) }));
          const out = { inFlight: await Promise.all([d1, d2, big]) };
          out.after = await code(MiniAppBridge.call('echo', {}));
          console.log(JSON.stringify(out));
        })();
        """

    /// The SDK refuses what the daemon would refuse, before sending it, with the limit the
    /// daemon announced in MINIAPP_BRIDGE_MAX_BYTES; counted in UTF-8 bytes.
    @Test func nodeRefusesOversizedRequestsLocally() throws {
        try #require(FileManager.default.isExecutableFile(atPath: "/usr/bin/node"), "node is needed for the JS SDK test")
        let dir = try makeTempDir("sdk")
        defer { removeTree(dir) }
        try Self.nodeTooLarge.write(toFile: dir + "/main.js", atomically: true, encoding: .utf8)
        let server = try FakeBridgeServer(maxLineBytes: 1024)
        let r = try server.run(
            ["/usr/bin/node", "--require", Self.sdk + "/js/preload.js", dir + "/main.js"], env: ["MINIAPP_BRIDGE_MAX_BYTES": "1024"])
        #expect(r.status == 0)
        let out = try JSONValue.parse(r.out.trimmingCharacters(in: .whitespacesAndNewlines))
        let refused: JSONValue = ["code": "MESSAGE_TOO_LARGE", "rpcCode": -32007, "limit": 1024]
        #expect(out["maxBytes"] == 1024)
        #expect(out["ascii"] == refused)
        #expect(out["multibyte"] == refused)
        #expect(out["fits"] == 900, "the connection is intact: \(r.out)")
        #expect(server.received.count == 1, "nothing oversized was sent")
    }

    /// An error with id null (here the daemon's MESSAGE_TOO_LARGE for a line the SDK let
    /// through) fails every call in flight with its code, not BRIDGE_CLOSED, and not never.
    @Test func nodeFailsCallsInFlightOnAnUnmatchedError() throws {
        try #require(FileManager.default.isExecutableFile(atPath: "/usr/bin/node"), "node is needed for the JS SDK test")
        let dir = try makeTempDir("sdk")
        defer { removeTree(dir) }
        try Self.nodeUnmatchedError.write(toFile: dir + "/main.js", atomically: true, encoding: .utf8)
        let server = try FakeBridgeServer(maxLineBytes: 4096)
        let r = try server.run(
            ["/usr/bin/node", "--require", Self.sdk + "/js/preload.js", dir + "/main.js"], env: ["MINIAPP_BRIDGE_MAX_BYTES": "100000"])
        #expect(r.status == 0)
        let out = try JSONValue.parse(r.out.trimmingCharacters(in: .whitespacesAndNewlines))
        #expect(out["inFlight"] == ["MESSAGE_TOO_LARGE", "MESSAGE_TOO_LARGE", "MESSAGE_TOO_LARGE"], "\(r.out)")
        #expect(out["after"] == "BRIDGE_CLOSED")
    }

    static let pythonTooLarge = """
        import asyncio, json, threading
        import miniapp_bridge as bridge
        def code(fn):
            try:
                fn()
                return "returned"
            except bridge.BridgeError as e:
                return [e.code, e.rpc_code, (e.data or {}).get("limit")]
        out = {"max_bytes": bridge.default_bridge().max_bytes}
        out["ascii"] = code(lambda: bridge.call("echo", {"s": "a" * 2000}))
        out["multibyte"] = code(lambda: bridge.call("echo", {"s": "\\u20ac" * 200}))  # escaped: 1200 bytes
        out["fits"] = len(bridge.call("echo", {"s": "a" * 900})["s"])
        async def refused():
            try:
                await bridge.AsyncBridge(fd=bridge.default_bridge().fileno()).call("echo", {"s": "a" * 2000})
            except bridge.BridgeError as e:
                return [e.code, e.rpc_code]
        out["async"] = asyncio.run(refused())
        held = threading.Semaphore(0)
        bridge.on_event("held", lambda n: held.release())
        results = {}
        def wait_delayed(n):
            try:
                bridge.call("delayed", {"n": n, "ack": True})
                results[n] = "returned"
            except bridge.BridgeError as e:
                results[n] = e.code
        threads = [threading.Thread(target=wait_delayed, args=(n,)) for n in (1, 2)]
        for t in threads: t.start()
        assert held.acquire(timeout=10) and held.acquire(timeout=10), "the delayed calls were not held"
        # Past the SDK's limit (raised for this call), not past the server's 4096 bytes.
        bridge.default_bridge().max_bytes = 100000
        big = code(lambda: bridge.call("echo", {"s": "x" * 8000}))
        for t in threads: t.join(timeout=10)
        out["in_flight"] = [results.get(1), results.get(2), big[0]]
        out["after"] = code(lambda: bridge.call("echo", {}))[0]
        print(json.dumps(out))
        """

    static let pythonAsyncUnmatchedError = """
        import asyncio, json
        import miniapp_bridge as bridge
        async def main():
            b = bridge.AsyncBridge()
            async def code(coro):
                try:
                    await coro
                    return "returned"
                except bridge.BridgeError as e:
                    return e.code
            d1 = asyncio.ensure_future(code(b.call("delayed", {"n": 1})))
            d2 = asyncio.ensure_future(code(b.call("delayed", {"n": 2})))
            await asyncio.sleep(0)
            big = await code(b.call("echo", {"s": "x" * 8000}))
            return {"in_flight": [await d1, await d2, big], "after": await code(b.call("echo", {}))}
        print(json.dumps(asyncio.run(main())))
        """

    @Test func pythonRefusesOversizedRequestsAndFailsCallsInFlight() throws {
        let dir = try makeTempDir("sdk")
        defer { removeTree(dir) }
        try Self.pythonTooLarge.write(toFile: dir + "/main.py", atomically: true, encoding: .utf8)
        let server = try FakeBridgeServer(maxLineBytes: 4096)
        let r = try server.run(
            [debianPython, dir + "/main.py"], env: ["PYTHONPATH": Self.sdk + "/python", "MINIAPP_BRIDGE_MAX_BYTES": "1024"])
        #expect(r.status == 0)
        let out = try JSONValue.parse(r.out.trimmingCharacters(in: .whitespacesAndNewlines))
        #expect(out["max_bytes"] == 1024)
        #expect(out["ascii"] == ["MESSAGE_TOO_LARGE", -32007, 1024])
        #expect(out["multibyte"] == ["MESSAGE_TOO_LARGE", -32007, 1024])
        #expect(out["fits"] == 900)
        #expect(out["async"] == ["MESSAGE_TOO_LARGE", -32007])
        #expect(out["in_flight"] == ["MESSAGE_TOO_LARGE", "MESSAGE_TOO_LARGE", "MESSAGE_TOO_LARGE"], "\(r.out)")
        #expect(out["after"] == "BRIDGE_CLOSED")
        #expect(!server.received.contains { ($0["params"]?["s"]?.stringValue?.count ?? 0) == 2000 }, "nothing oversized was sent")
    }

    @Test func pythonAsyncFailsCallsInFlightOnAnUnmatchedError() throws {
        let dir = try makeTempDir("sdk")
        defer { removeTree(dir) }
        try Self.pythonAsyncUnmatchedError.write(toFile: dir + "/main.py", atomically: true, encoding: .utf8)
        let server = try FakeBridgeServer(maxLineBytes: 4096)
        let r = try server.run([debianPython, dir + "/main.py"], env: ["PYTHONPATH": Self.sdk + "/python"])
        #expect(r.status == 0)
        let out = try JSONValue.parse(r.out.trimmingCharacters(in: .whitespacesAndNewlines))
        #expect(out["in_flight"] == ["MESSAGE_TOO_LARGE", "MESSAGE_TOO_LARGE", "MESSAGE_TOO_LARGE"], "\(r.out)")
        #expect(out["after"] == "BRIDGE_CLOSED")
    }

    @Test func swiftRefusesOversizedRequestsAndFailsCallsInFlight() async throws {
        let server = try FakeBridgeServer(maxLineBytes: 4096)
        let strict = MiniAppBridge(fd: server.clientFD, maxBytes: 1024)
        do {
            _ = try await strict.call("echo", ["s": .string(String(repeating: "€", count: 600))])
            Issue.record("an oversized call must throw")
        } catch {
            #expect(error.code == "MESSAGE_TOO_LARGE" && error.rpcCode == -32007 && error.data?["limit"] == 1024)
        }
        #expect(try await strict.call("echo", ["s": "small"]) == ["s": "small"])
        #expect(server.received.count == 1, "nothing oversized was sent")

        // One bridge per socket: two readers on one fd would split its messages between them.
        let server2 = try FakeBridgeServer(maxLineBytes: 4096)
        let loose = MiniAppBridge(fd: server2.clientFD, maxBytes: 100_000)
        let held = LockedLines()
        loose.onEvent { name, data in if name == "held" { held.append(data.jsonString) } }
        async let d1 = Self.code { try await loose.call("delayed", ["n": 1, "ack": true]) }
        async let d2 = Self.code { try await loose.call("delayed", ["n": 2, "ack": true]) }
        for _ in 0..<10_000 where held.all.count < 2 { try await Task.sleep(nanoseconds: 1_000_000) }
        #expect(held.all.count == 2, "both delayed calls are held by the server")
        let big = await Self.code { try await loose.call("echo", ["s": .string(String(repeating: "x", count: 8000))]) }
        #expect([await d1, await d2, big] == ["MESSAGE_TOO_LARGE", "MESSAGE_TOO_LARGE", "MESSAGE_TOO_LARGE"])
        #expect(await Self.code { try await loose.call("echo") } == "BRIDGE_CLOSED")
    }

    /// "returned", or the code the call failed with.
    static func code(_ body: () async throws -> JSONValue) async -> String {
        do {
            _ = try await body()
            return "returned"
        } catch {
            return (error as? BridgeError)?.code ?? "\(error)"
        }
    }
}
