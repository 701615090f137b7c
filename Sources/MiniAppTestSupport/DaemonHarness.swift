public import Foundation
import MiniAppDaemon
import MiniAppSystem

/// A real `miniappd` process on a private state dir and control socket, for end-to-end tests.
/// Started by the test, stopped by the test (SIGTERM, then SIGKILL if it hangs).
public final class DaemonHarness: @unchecked Sendable {
    /// Scratch space: `state/`, `control.sock`, `daemon.log`.
    public let dir: TempDir
    /// The control socket path.
    public let socket: String
    /// The daemon's process.
    public let process: Process
    private let log: FileHandle

    /// Starts `miniappd` with `--state-dir`, `--control-socket`, `--policy-dir` (none: the
    /// embedded policies) and any `extraArgs`, and waits until it answers `daemon.info`.
    ///
    /// `socketActivated`: runs it under `systemd-socket-activate`, which binds `socket`, waits
    /// for the first connection (the readiness probe) and execs `miniappd` in place with the
    /// listening socket at fd 3 and `LISTEN_FDS=1`, `LISTEN_PID=<its pid>`; `--control-socket`
    /// then names `unused.sock`, which the daemon must not create.
    ///
    /// `environment`: added to the test's own environment (e.g. `NOTIFY_SOCKET`, `WATCHDOG_USEC`).
    ///
    /// `socketPath`: the control socket (default `control.sock` in the harness's own dir); a
    /// restart test gives the path of the daemon it replaces.
    /// `binary`: another `miniappd` (the release build, for the simulator refusal tests).
    public init(
        policyDir: String?, extraArgs: [String] = [], stateDir: String? = nil, timeout: Double = 30, socketActivated: Bool = false,
        environment: [String: String] = [:], socketPath: String? = nil, binary: String? = nil
    ) throws {
        dir = try TempDir("d")
        socket = socketPath ?? dir.file("control.sock")
        _ = FileManager.default.createFile(atPath: dir.file("daemon.log"), contents: nil)
        log = try FileHandle(forWritingTo: URL(fileURLWithPath: dir.file("daemon.log")))
        process = Process()
        let daemon = binary ?? productsDirectory() + "/miniappd"
        let args = [
            "--state-dir", stateDir ?? dir.file("state"), "--control-socket", socketActivated ? dir.file("unused.sock") : socket,
        ] + (policyDir.map { ["--policy-dir", $0] } ?? []) + extraArgs
        if socketActivated {
            process.executableURL = URL(fileURLWithPath: "/usr/bin/systemd-socket-activate")
            process.arguments = ["--listen=\(socket)", daemon] + args
        } else {
            process.executableURL = URL(fileURLWithPath: daemon)
            process.arguments = args
        }
        process.standardOutput = log
        process.standardError = log
        if !environment.isEmpty { process.environment = ProcessInfo.processInfo.environment.merging(environment) { $1 } }
        try process.run()
        let deadline = Date().addingTimeInterval(timeout)
        while Date() < deadline {
            if !process.isRunning { throw HarnessError("miniappd exited early:\n\(logText())") }
            if let c = try? ControlClient(socketPath: socket), (try? c.call("daemon.info", timeoutMillis: 2000)) != nil { return }
            CurrentProcess.sleep(micros: 20_000)
        }
        stop()
        throw HarnessError("miniappd did not become ready in \(timeout)s:\n\(logText())")
    }

    /// A new control connection.
    public func client() throws -> ControlClient { try ControlClient(socketPath: socket) }

    /// The daemon's stdout/stderr so far.
    public func logText() -> String { (try? String(contentsOfFile: dir.file("daemon.log"), encoding: .utf8)) ?? "" }

    /// SIGTERM and wait; returns the exit status (SIGKILL after `timeout`).
    @discardableResult
    public func stop(timeout: Double = 20) -> Int32 {
        guard process.processIdentifier != 0 else { return -1 }  // never started (run() threw)
        guard process.isRunning else { return process.terminationStatus }
        Processes.signal(process.processIdentifier, Signal.term)
        let deadline = Date().addingTimeInterval(timeout)
        while process.isRunning && Date() < deadline { CurrentProcess.sleep(micros: 10_000) }
        if process.isRunning { Processes.signal(process.processIdentifier, Signal.kill) }
        process.waitUntilExit()
        return process.terminationStatus
    }

    /// SIGKILL now (crash tests).
    public func crash() {
        guard process.processIdentifier != 0 else { return }
        Processes.signal(process.processIdentifier, Signal.kill)
        process.waitUntilExit()
    }

    deinit { stop(timeout: 5) }
}

/// A harness failure with the daemon's log attached.
public struct HarnessError: Error, CustomStringConvertible {
    public let description: String
    public init(_ d: String) { description = d }
}
