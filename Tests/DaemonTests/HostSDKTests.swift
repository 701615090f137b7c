import Foundation
import MiniAppHost
import MiniAppJSON
import MiniAppTestSupport
import Synchronization
import Testing

/// The Swift host library (MiniAppHost) against a real daemon with real jailed programs.
@Suite struct HostSDKTests {
    /// What the payment handler saw.
    final class Served: Sendable {
        let calls = Mutex<[HostCall]>([])
        let cancelled = Mutex(0)
    }

    /// Serves `payment.pay` with `tx-<orderId>`, recording the calls.
    static func payHandler(_ served: Served) -> HostHandler {
        { call in
            served.calls.withLock { $0.append(call) }
            return ["transactionId": .string("tx-" + (call.params["orderId"]?.stringValue ?? ""))]
        }
    }

    /// The next `program.exited` of `workerId` on `notes` (fails after `seconds`).
    static func exit(of workerId: String, in notes: AsyncStream<HostNotification>, seconds: Double = 120) async throws -> ProgramExited {
        try await withThrowingTaskGroup(of: ProgramExited?.self) { group in
            group.addTask {
                for await n in notes {
                    if case .programExited(let e) = HostEvent(n), e.workerId == workerId { return e }
                }
                return nil
            }
            group.addTask {
                try await Task.sleep(for: .seconds(seconds))
                return nil
            }
            defer { group.cancelAll() }
            guard let first = try await group.next(), let e = first else { throw HarnessError("no program.exited of \(workerId)") }
            return e
        }
    }

    /// Runs `body` on a new thread while `meanwhile` runs on another; returns `body`'s value.
    static func offPool<T: Sendable>(_ body: @escaping @Sendable () -> T, whileRunning meanwhile: @escaping @Sendable () -> Void) async -> T {
        await withCheckedContinuation { c in
            Thread.detachNewThread { c.resume(returning: body()) }
            Thread.detachNewThread { meanwhile() }
        }
    }

    @Test func installLaunchServeAndExit() async throws {
        let w = try HostSDKWorld()
        let daemon = try w.world.daemon()
        defer { daemon.stop() }
        let host = try await HostClient.connect(daemon.socket)
        defer { host.close() }
        let served = Served()
        try await host.provide(["payment.pay"], Self.payHandler(served))
        let exits = host.notifications()
        let installed = try await host.install(path: w.payZip)
        #expect(installed.id == w.payId && installed.active)
        // Pipelined: several calls in flight on the one connection, answers matched by id.
        async let info = host.daemonInfo()
        async let list = host.packages()
        let launched = try await host.launch(id: w.payId, args: ["o-7"])
        #expect(try await info.workers >= 0)
        #expect(try await list.map(\.id).contains(w.payId))
        let exited = try await Self.exit(of: launched.workerId, in: exits)
        #expect(exited.status == 0, "the program's payment.pay was not answered tx-o-7: \(exited)")
        let call = try #require(served.calls.withLock { $0.first })
        #expect(call.program.id == w.payId && call.program.version == "1.0.0")
        #expect(call.workerId == launched.workerId && call.method == "payment.pay")
        #expect(call.params["orderId"] == "o-7")
        // A typed error with the spec's code.
        await #expect(throws: HostError.self) { _ = try await host.launch(id: "com.e2e.absent") }
        do {
            _ = try await host.launch(id: "com.e2e.absent")
        } catch {
            #expect(error.code == "NOT_FOUND" && error.rpcCode == -32010)
        }
    }

    @Test func handlerIsCancelledWhenTheDaemonTimesTheCallOut() async throws {
        let w = try HostSDKWorld()
        let daemon = try w.world.daemon()
        defer { daemon.stop() }
        let host = try await HostClient.connect(daemon.socket)
        defer { host.close() }
        let served = Served()
        try await host.provide(["payment.pay"]) { call in
            served.calls.withLock { $0.append(call) }
            do {
                try await Task.sleep(for: .seconds(30))
            } catch {
                served.cancelled.withLock { $0 += 1 }
                throw error
            }
            return ["transactionId": "late"]
        }
        let exits = host.notifications()
        _ = try await host.install(path: w.payZip)
        let launched = try await host.launch(id: w.payId)
        let exited = try await Self.exit(of: launched.workerId, in: exits)
        #expect(exited.status == 4, "the program should see TIMEOUT (payment.pay times out after 1.5 s)")
        // Polled with Task.sleep: a blocking wait here would hold a cooperative thread the
        // cancelled handler needs to finish.
        var cancelled = 0
        for _ in 0..<600 where cancelled == 0 {
            try await Task.sleep(for: .milliseconds(50))
            cancelled = served.cancelled.withLock { $0 }
        }
        // (At least once: the program exits 4, which the supervisor may restart as a crash.)
        #expect(cancelled >= 1, "the handler was not cancelled")
        // The connection is fine after the dropped answer.
        #expect(try await host.daemonInfo().version.isEmpty == false)
    }

    @Test func providerIsRegisteredAgainAfterADaemonRestart() async throws {
        let w = try HostSDKWorld()
        let state = w.world.dir.file("state")
        let first = try w.world.daemon(stateDir: state)
        var options = HostOptions()
        options.reconnectInitialMillis = 20
        options.reconnectMaxMillis = 200
        options.maxReconnectAttempts = 600  // the new daemon may take a while to start on a loaded machine
        let host = try await HostClient.connect(first.socket, options: options)
        defer { host.close() }
        let served = Served()
        try await host.provide(["payment.pay"], Self.payHandler(served))
        _ = try await host.install(path: w.payZip)
        let events = host.events()
        #expect(first.stop() == 0)
        // Same socket and state dir. `first` stays alive: its temp dir holds the socket.
        let second = try w.world.daemon(stateDir: state, socketPath: first.socket)
        defer { second.stop() }
        var lost = false
        for await e in events {
            if case .connectionLost(let error) = e {
                #expect(error.code == "HOST_UNAVAILABLE")
                lost = true
            }
            if case .connectionRestored(let error) = e {
                #expect(error == nil)
                break
            }
        }
        #expect(lost)
        let exits = host.notifications()
        let launched = try await host.launch(id: w.payId, args: ["o-9"])
        let exited = try await Self.exit(of: launched.workerId, in: exits)
        #expect(exited.status == 0, "the re-registered provider did not serve payment.pay: \(exited)")
        #expect(served.calls.withLock { $0.last?.params["orderId"] } == "o-9")
    }

    @Test func daemonKilledMidCallFailsTheCallWithinItsTimeout() async throws {
        let w = try HostSDKWorld()
        let daemon = try w.world.daemon()
        var options = HostOptions()
        options.reconnect = false
        let host = try await HostClient.connect(daemon.socket, options: options)
        defer { host.close() }
        let (ready, readyContinuation) = AsyncStream.makeStream(of: String.self)
        try await host.provide(["ui.toast"]) { call in
            readyContinuation.yield(call.workerId)
            return [:]
        }
        _ = try await host.install(path: w.stubbornZip)
        let launched = try await host.launch(id: w.stubbornId)
        for await workerId in ready where workerId == launched.workerId { break }
        // The call runs blocking on a thread of its own, which also takes the time: what is
        // measured is the library, not how long this async test waited for a cooperative thread.
        let (error, elapsed) = await Self.offPool { () -> (HostError?, Duration) in
            let start = ContinuousClock.now
            do {
                _ = try host.callBlocking("programs.stop", ["workerId": .string(launched.workerId), "graceMillis": 60_000], timeoutMillis: 20_000)
                return (nil, ContinuousClock.now - start)
            } catch {
                return (error as? HostError, ContinuousClock.now - start)
            }
        } whileRunning: {
            usleep(500_000)
            daemon.crash()
        }
        // HOST_UNAVAILABLE, not TIMEOUT: the loss itself ended the call, before its 20 s timeout.
        #expect(error?.code == "HOST_UNAVAILABLE", "\(String(describing: error))")
        #expect(elapsed < .seconds(20))
        // The client is done: later calls fail at once, never hang.
        await #expect(throws: HostError.self) { _ = try await host.daemonInfo() }
    }
}

/// The Swift host library against a fake daemon that misbehaves: every case ends in a typed
/// error (or a delivered notification), never a hang.
@Suite struct HostSDKProtocolTests {
    /// (case, what the fake answers to the first request, expected code of that call)
    static let cases: [(String, @Sendable (String) -> [String?], String)] = [
        ("malformed line", { _ in ["this is not json"] }, "PARSE_ERROR"),
        ("array line", { _ in ["[1,2,3]"] }, "PARSE_ERROR"),
        ("a raw control character", { _ in ["{\"jsonrpc\":\"2.0\",\"id\":1,\"result\":\"\u{FFFD}\u{1}\"}"] }, "PARSE_ERROR"),
        ("reply to no request", { _ in [#"{"jsonrpc":"2.0","id":777,"result":{}}"#] }, "INVALID_REQUEST"),
        ("reply with a string id", { _ in [#"{"jsonrpc":"2.0","id":"x","result":{}}"#] }, "INVALID_REQUEST"),
        ("neither request nor response", { _ in [#"{"jsonrpc":"2.0","id":1}"#] }, "INVALID_REQUEST"),
        ("method not a string", { _ in [#"{"jsonrpc":"2.0","method":5}"#] }, "INVALID_REQUEST"),
        ("params not an object", { _ in [#"{"jsonrpc":"2.0","method":"program.exited","params":[1]}"#] }, "INVALID_REQUEST"),
        ("connection drop mid-call", { _ in [nil] }, "HOST_UNAVAILABLE"),
        ("null-id refusal", { _ in [#"{"jsonrpc":"2.0","id":null,"error":{"code":-32014,"message":"no","data":{"code":"UNAUTHORIZED"}}}"#, nil] }, "UNAUTHORIZED"),
        ("no answer", { _ in [] }, "TIMEOUT"),
        ("an answer with the daemon's error", { l in [#"{"jsonrpc":"2.0","id":\#(FakeDaemon.id(l)),"error":{"code":-32010,"message":"gone","data":{"code":"NOT_FOUND"}}}"#] }, "NOT_FOUND"),
        // Found by fuzz-host (Tests/Fixtures/fuzz/host/error-empty-code): an empty data.code.
        ("an empty data.code: the number's code", { l in [#"{"jsonrpc":"2.0","id":\#(FakeDaemon.id(l)),"error":{"code":-32010,"message":"gone","data":{"code":""}}}"#] }, "NOT_FOUND"),
        ("an empty data.code and no number", { l in [#"{"jsonrpc":"2.0","id":\#(FakeDaemon.id(l)),"error":{"message":"no","data":{"code":""}}}"#] }, "INTERNAL"),
    ]

    // Synchronous, with `callBlocking`: the elapsed time is the library's, not how long the
    // test process's cooperative threads (held by other tests) took to resume an async test.
    @Test(arguments: 0..<cases.count)
    func misbehavingDaemonGivesATypedError(_ index: Int) throws {
        let (name, reply, code) = Self.cases[index]
        let fake = try FakeDaemon(script: { line, send in for r in reply(line) { send(r) } })
        var options = HostOptions()
        options.reconnect = false
        options.callTimeoutMillis = 1_000
        let host = try HostClient(path: fake.path, options: options)
        defer { host.close() }
        let start = ContinuousClock.now
        do {
            let r = try host.callBlocking("daemon.info")
            Issue.record("\(name): expected \(code), got \(r)")
        } catch {
            #expect(error.code == code, "\(name): \(error)")
        }
        #expect(ContinuousClock.now - start < .seconds(10), "\(name)")
    }

    @Test func lineOverTheLimitIsMessageTooLarge() throws {
        let fake = try FakeDaemon(script: { _, send in send(#"{"jsonrpc":"2.0","method":"x","params":{"p":""# + String(repeating: "a", count: 200_000) + "\"}}") })
        var options = HostOptions()
        options.reconnect = false
        options.maxLineBytes = 100_000
        let host = try HostClient(path: fake.path, options: options)
        defer { host.close() }
        #expect { _ = try host.callBlocking("daemon.info") } throws: { ($0 as? HostError)?.code == "MESSAGE_TOO_LARGE" }
    }

    @Test func unknownAndMalformedNotificationsAreDeliveredNotFatal() async throws {
        let fake = try FakeDaemon(script: { line, send in
            send(#"{"jsonrpc":"2.0","method":"something.new","params":{"x":1}}"#)
            send(#"{"jsonrpc":"2.0","method":"program.exited","params":{"workerId":"w-1","status":"zero"}}"#)
            send(#"{"jsonrpc":"2.0","method":"package.staged","params":{"id":"com.a","version":"2.0.0"}}"#)
            send(#"{"jsonrpc":"2.0","id":\#(FakeDaemon.id(line)),"result":{}}"#)
        })
        var options = HostOptions()
        options.reconnect = false
        let host = try HostClient(path: fake.path, options: options)
        defer { host.close() }
        var events = host.events().makeAsyncIterator()
        _ = try await host.call("daemon.info")
        guard case .other(let n) = try await events.next() else { Issue.record("unknown notification not passed through"); return }
        #expect(n.method == "something.new" && n.params["x"] == 1)
        guard case .malformed(let m, let e) = try await events.next() else { Issue.record("malformed program.exited not reported"); return }
        #expect(m.method == "program.exited" && e.code == "INVALID_REQUEST")
        guard case .update(.staged(let id, let version)) = try await events.next() else { Issue.record("package.staged not typed"); return }
        #expect(id == "com.a" && version == "2.0.0")
    }

    @Test func unknownRequestFromTheDaemonIsRefused() async throws {
        let fake = try FakeDaemon(
            script: { _, _ in },
            greeting: [
                #"{"jsonrpc":"2.0","id":"q-1","method":"host.reboot","params":{}}"#,
                #"{"jsonrpc":"2.0","id":"p-1","method":"bridge.call","params":{"method":"payment.pay","params":{},"program":{"id":"a","version":"1"},"workerId":"w-1"}}"#,
            ])
        let host = try HostClient(path: fake.path)
        defer { host.close() }
        #expect(E2EProbe.eventually(seconds: 30) { fake.lines.count == 2 })
        let answers = fake.lines.compactMap { try? JSONValue.parse($0) }
        #expect(answers.map { $0["id"] } == ["q-1", "p-1"])
        #expect(answers.allSatisfy { $0["error"]?["data"]?["code"] == "METHOD_NOT_FOUND" })
    }

    @Test func lateAnswerAfterATimeoutIsDroppedHarmlessly() throws {
        let fake = try FakeDaemon(script: { line, send in
            let id = FakeDaemon.id(line)
            if id == "1" { return }  // the first call gets its answer only after the second one
            send(#"{"jsonrpc":"2.0","id":1,"result":{"late":true}}"#)
            send(#"{"jsonrpc":"2.0","id":\#(id),"result":{"ok":true}}"#)
        })
        var options = HostOptions()
        options.reconnect = false
        let host = try HostClient(path: fake.path, options: options)
        defer { host.close() }
        let start = ContinuousClock.now
        #expect { _ = try host.callBlocking("a", timeoutMillis: 200) } throws: { ($0 as? HostError)?.code == "TIMEOUT" }
        #expect(ContinuousClock.now - start < .seconds(10))
        #expect(try host.callBlocking("b")["ok"] == true)
    }
}
