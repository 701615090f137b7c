import ArgumentParser
import Foundation
import MiniAppBridgeMock
import MiniAppDaemon
import MiniAppJSON
import MiniAppModel
import MiniAppSystem
import Synchronization

/// One `miniapp dev` run: the simulator daemon (started or connected), the program's reloads,
/// and the one view of its output and Bridge calls. Threads: the daemon's log reader, the
/// control events reader (inspector events, exits, host calls), the file watchers, and one
/// serial queue that does every reload in order.
final class DevSession: @unchecked Sendable {
    let app: String
    let json: Bool
    private var programId: String
    private let printLock = NSLock()
    private let sendLock = NSLock()
    private var daemon: Process?
    private var host: Process?
    private var tempDir: String?
    private var socketPath = ""
    private var control: ControlClient?
    private var events: ControlClient?
    private var mock: MockBridge?
    private var watchers: [DirectoryWatcher] = []
    private let reloads = DispatchQueue(label: "miniapp.dev.reload")
    private let reloadQueued = Atomic<Bool>(false)
    private let stopping = Atomic<Bool>(false)

    init(app: String, programId: String, json: Bool) throws {
        self.app = app
        self.programId = programId
        self.json = json
    }

    // MARK: the daemon

    func startDaemon(socket: String?, workdir: String?) throws {
        if let socket {
            socketPath = socket
        } else {
            let dir: String
            if let workdir {
                try FileManager.default.createDirectory(atPath: workdir, withIntermediateDirectories: true)
                dir = workdir
            } else {
                dir = try Self.makeTempDir()
                tempDir = dir
            }
            socketPath = dir + "/control.sock"
            try spawnDaemon(dir)
        }
        let client = try waitForDaemon()
        let info: JSONValue? = try? client.call("daemon.info")
        let simulator: Bool = info?["simulator"]?.boolValue ?? false
        guard simulator else {
            throw ValidationError("the daemon at \(socketPath) is not in simulator mode: start it with miniappd --simulator (a debug build)")
        }
        control = client
        let ev = try ControlClient(socketPath: socketPath)
        _ = try ev.call("inspector.subscribe", [:])
        events = ev
    }

    private func spawnDaemon(_ dir: String) throws {
        let binary = ProcessInfo.processInfo.environment["MINIAPPD_BIN"] ?? Self.siblingDaemon()
        let configText: String = #"{"maxRestarts": 0, "stopGraceMillis": 500}"#
        try configText.write(toFile: dir + "/dev-config.json", atomically: true, encoding: .utf8)
        let state: String = dir + "/state"
        let config: String = dir + "/dev-config.json"
        let args: [String] = ["--simulator", "--state-dir", state, "--control-socket", socketPath, "--config", config]
        let p = Process()
        // The daemon must not outlive this command, however it ends (setpriv --pdeathsig).
        if FileManager.default.isExecutableFile(atPath: "/usr/bin/setpriv") {
            p.executableURL = URL(fileURLWithPath: "/usr/bin/setpriv")
            let wrapper: [String] = ["--pdeathsig", "TERM", "--", binary]
            p.arguments = wrapper + args
        } else {
            p.executableURL = URL(fileURLWithPath: binary)
            p.arguments = args
        }
        let pipe = Pipe()
        p.standardOutput = pipe
        p.standardError = pipe
        try p.run()
        daemon = p
        Thread.detachNewThread { [self] in readDaemonLog(pipe.fileHandleForReading) }
    }

    private func waitForDaemon() throws -> ControlClient {
        let deadline = Date().addingTimeInterval(30)
        while Date() < deadline {
            if let d = daemon, !d.isRunning {
                throw ValidationError("miniappd --simulator exited (status \(d.terminationStatus)); see its output above")
            }
            if let c = try? ControlClient(socketPath: socketPath) {
                let info: JSONValue? = try? c.call("daemon.info")
                if info != nil { return c }
            }
            CurrentProcess.sleep(micros: 50_000)
        }
        throw ValidationError("no simulator daemon answered on \(socketPath) within 30 s")
    }

    static func siblingDaemon() -> String {
        let exe = (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")) ?? CommandLine.arguments[0]
        return (exe as NSString).deletingLastPathComponent + "/miniappd"
    }

    static func makeTempDir() throws -> String {
        do { return try FileSystem.makeTemporaryDirectory(prefix: NSTemporaryDirectory() + "/miniapp-dev-") } catch {
            throw ValidationError("cannot create a temporary directory: \(error)")
        }
    }

    /// The daemon's log: the program's output lines (`miniappd.worker`) become `[w-1] …`;
    /// warnings, errors and anything that is not a log line (a refused flag) are shown as is.
    private func readDaemonLog(_ handle: FileHandle) {
        var buffer = Data()
        while true {
            let chunk = handle.availableData
            if chunk.isEmpty { break }
            buffer.append(chunk)
            while let nl = buffer.firstIndex(of: 0x0A) {
                let line = String(decoding: buffer[buffer.startIndex..<nl], as: UTF8.self)
                buffer.removeSubrange(buffer.startIndex...nl)
                if let shown = DevView.daemonLine(line) { say(shown) }
            }
        }
        if !stopping.load(ordering: .acquiring) {
            say("[dev] miniappd exited")
            cleanUp()
            CurrentProcess.exit(1)
        }
    }

    // MARK: host methods

    /// Serves the host-provided methods the rules name (globs expanded against the catalogue).
    func provide(_ bridge: MockBridge) throws {
        mock = bridge
        let methods = DevView.hostMethods(bridge: bridge, catalogue: tempDir.map { $0 + "/state/policies-embedded/methods.json" })
        guard !methods.isEmpty, let events else { return }
        let names: [JSONValue] = methods.map { JSONValue.string($0) }
        var params = JSONObject()
        params["methods"] = .array(names)
        do { _ = try events.call("bridge.provide", params) } catch {
            throw ValidationError("bridge.provide \(methods): \(error.message)")
        }
        say("[dev] answering \(methods.joined(separator: ", ")) from the mock rules")
    }

    func startHost(script: String) throws {
        let p = Process()
        var runner: String?
        if script.hasSuffix(".py") { runner = "/usr/bin/python3" }
        if script.hasSuffix(".js") { runner = "/usr/bin/node" }
        p.executableURL = URL(fileURLWithPath: runner ?? script)
        p.arguments = runner == nil ? [] : [script]
        p.environment = ProcessInfo.processInfo.environment.merging(["MINIAPPD_SOCKET": socketPath]) { $1 }
        try p.run()
        host = p
        say("[dev] host runtime \(script) started (MINIAPPD_SOCKET=\(socketPath))")
        CurrentProcess.sleep(micros: 300_000)  // let it register its methods before the first launch
    }

    private func answer(_ msg: JSONObject) {
        guard let id = msg["id"], let mock, let method = msg["params"]?["method"]?.stringValue else { return }
        let (answer, delay) = mock.answer(method: method, params: msg["params"]?["params"])
        var reply = JSONObject()
        reply["jsonrpc"] = .string("2.0")
        reply["id"] = id
        switch answer {
        case .result(let r): reply["result"] = r
        case .error(let e):
            var err = JSONObject()
            err["code"] = .int(e.code)
            err["message"] = .string(e.message)
            err["data"] = e.data ?? .null
            reply["error"] = .object(err)
        }
        let message = JSONValue.object(reply)
        let send: @Sendable () -> Void = { [self] in
            sendLock.lock()
            defer { sendLock.unlock() }
            try? events?.send(message)
        }
        if delay == 0 { send() } else { DispatchQueue.global().asyncAfter(deadline: .now() + .milliseconds(delay), execute: send) }
    }

    // MARK: the loop

    func watchAndServe() -> Never {
        Signal.ignore(Signal.interrupt)
        Signal.ignore(Signal.term)
        var sources: [any DispatchSourceSignal] = []
        for sig in [Signal.interrupt, Signal.term] {
            let s = DispatchSource.makeSignalSource(signal: sig, queue: .main)
            s.setEventHandler { [self] in shutdown() }
            s.resume()
            sources.append(s)
        }
        Thread.detachNewThread { [self] in readEvents() }
        watchers = DevView.directories(under: app).compactMap { dir in
            try? DirectoryWatcher(directory: dir, debounceMillis: 100, maxDelayMillis: 500) { !$0.hasPrefix(".") }
        }
        for w in watchers { w.start { [self] in scheduleReload("change") } }
        let count: Int = watchers.count
        let noun: String = count == 1 ? "directory" : "directories"
        say("[dev] watching " + app + " (\(count) " + noun + "); Ctrl-C stops")
        scheduleReload("start")
        withExtendedLifetime(sources) { dispatchMain() }
    }

    private func scheduleReload(_ reason: String) {
        guard !reloadQueued.exchange(true, ordering: .acquiringAndReleasing) else { return }
        reloads.async { [self] in
            reloadQueued.store(false, ordering: .releasing)
            reload(reason)
        }
    }

    private func readEvents() {
        while let events, let msg = try? events.nextNotification() {
            switch msg["method"]?.stringValue {
            case "bridge.call": answer(msg)
            case let m?: if let line = DevView.event(m, msg["params"], json: json) { say(line) }
            default: continue
            }
        }
    }

    private func reload(_ reason: String) {
        guard !stopping.load(ordering: .acquiring), let control else { return }
        let started = Date()
        do {
            let manifest = try MockRun.readManifest(app)
            try stopWorkers(control, of: programId)
            try remove(control, programId)
            programId = manifest.id
            let r = try control.call("packages.install", ["dir": .string(app)])
            let l = try control.call("programs.launch", ["id": .string(programId)])
            let ms: Int = Int(Date().timeIntervalSince(started) * 1000)
            let version: String = r["version"]?.stringValue ?? "?"
            let worker: String = l["workerId"]?.stringValue ?? "?"
            say("[dev] " + reason + ": " + programId + " " + version + " installed and launched as " + worker + " (\(ms) ms)")
        } catch {
            say("[dev] " + reason + ": " + Self.describe(error) + "; fix it and save again")
        }
    }

    static func describe(_ error: any Error) -> String {
        guard let e = error as? MiniAppError else { return "\(error)" }
        var line: String = e.code.rawValue + " " + e.message
        if let reason = e.data["reason"] { line += " (reason: " + reason + ")" }
        return line
    }

    private func stopWorkers(_ control: ControlClient, of id: String) throws {
        let list: JSONValue = try control.call("programs.list")
        let workers: [JSONValue] = list["workers"]?.arrayValue ?? []
        for w in workers {
            guard w["id"]?.stringValue == id, let wid = w["workerId"] else { continue }
            var params = JSONObject()
            params["workerId"] = wid
            params["graceMillis"] = .int(300)
            _ = try? control.call("programs.stop", params)
        }
    }

    /// The previous version goes first: a reinstall of the same version with new content is
    /// otherwise `ALREADY_INSTALLED`. A stop's exit may still be settling: retry briefly.
    private func remove(_ control: ControlClient, _ id: String) throws {
        var params = JSONObject()
        params["id"] = .string(id)
        for _ in 0..<100 {
            do throws(MiniAppError) {
                _ = try control.call("packages.remove", params)
                return
            } catch {
                if error.code == .notFound { return }
                guard error.code == .alreadyRunning else { throw error }
            }
            CurrentProcess.sleep(micros: 20_000)
        }
        throw MiniAppError(.alreadyRunning, "\(id) did not stop; stop it (miniapp ps, miniapp stop) and save again")
    }

    private func shutdown() {
        guard !stopping.exchange(true, ordering: .acquiringAndReleasing) else { return }
        say("[dev] stopping")
        for w in watchers { w.stop() }
        if let control, daemon == nil { try? stopWorkers(control, of: programId) }
        cleanUp()
        say("[dev] stopped")
        CurrentProcess.exit(0)
    }

    private func cleanUp() {
        stopping.store(true, ordering: .releasing)
        if let host, host.isRunning { host.terminate(); host.waitUntilExit() }
        if let d = daemon, d.isRunning {
            Processes.signal(d.processIdentifier, Signal.term)
            for _ in 0..<200 where d.isRunning { CurrentProcess.sleep(micros: 50_000) }
            if d.isRunning { Processes.signal(d.processIdentifier, Signal.kill) }
            d.waitUntilExit()
        }
        if let tempDir { try? FileManager.default.removeItem(atPath: tempDir) }
    }

    func say(_ line: String) {
        printLock.lock()
        defer { printLock.unlock() }
        FileHandle.standardOutput.write(Data((line + "\n").utf8))
    }
}
