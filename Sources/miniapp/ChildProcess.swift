import ArgumentParser
import Foundation
import MiniAppBridgeMock
import MiniAppDaemon
import MiniAppModel
import MiniAppSystem

/// Runs a program outside the daemon with its Bridge (fd 3) served by a mock, set up as a
/// worker is (spec: `MINIAPP_BRIDGE_FD=3`, the SDK on `NODE_PATH`/`PYTHONPATH`, node's
/// `MiniAppBridge` global through `--require preload.js`): `miniapp mock-bridge` and
/// `miniapp replay`. No daemon, no root, no jail — a partner's own machine.
struct MockRun {
    var bridge: MockBridge
    var log: Bool

    /// The command line a program directory runs with (its manifest's runtime and entry point).
    static func argv(forProgram dir: String, sdk: String) throws -> (argv: [String], manifest: Manifest) {
        let manifest = try readManifest(dir)
        let entry = dir + "/" + manifest.entryPoint
        guard FileManager.default.fileExists(atPath: entry) else {
            throw ValidationError("\(dir)/manifest.json names entryPoint \(manifest.entryPoint), which does not exist")
        }
        switch manifest.runtime {
        case .node: return (["node", "--require", sdk + "/js/preload.js", entry], manifest)
        case .python: return (["python3", "-s", "-B", entry], manifest)
        case .native: return ([entry], manifest)
        }
    }

    /// The manifest of a program directory (unsigned is fine here: nothing is installed).
    static func readManifest(_ dir: String) throws -> Manifest {
        guard let data = FileManager.default.contents(atPath: dir + "/manifest.json") else {
            throw ValidationError("\(dir)/manifest.json is missing: pass a program directory, or -- CMD")
        }
        do { return try Manifest.parse(Array(data), requireSignature: false) } catch {
            throw ValidationError("\(dir)/manifest.json: \(error.code.rawValue) \(error.message)")
        }
    }

    /// What `system.info` answers: the manifest's id and version when there is one.
    static func identity(_ m: Manifest?) -> MockBridge.Identity {
        guard let m else { return MockBridge.Identity() }
        return MockBridge.Identity(programId: m.id, version: m.version.text, hostVersion: DaemonVersion.current)
    }

    /// Runs `argv` (a name is looked up on PATH) in `cwd` with the mock on fd 3; returns its
    /// exit status (128 + the signal when a signal ended it).
    func run(_ argv: [String], cwd: String?, sdk: String, addPreload: Bool) throws -> Int32 {
        let fds: (server: Int32, program: Int32)
        do {
            let pair = try UnixSocket.pair()
            fds = (pair.daemonSide.take(), pair.workerSide.take())
        } catch {
            throw ValidationError("socketpair failed: \(error)")
        }
        let logger: (@Sendable (String) -> Void)? = log ? { @Sendable line in CurrentProcess.writeStandardError(line + "\n") } : nil
        let server = MockBridgeServer(bridge: bridge, fd: fds.server, log: logger)
        server.start()
        let env = Self.environment(sdk: sdk, identity: bridge.identity, addPreload: addPreload)
        if let cwd {
            do { try CurrentProcess.changeDirectory(cwd) } catch { throw ValidationError("cannot enter \(cwd): \(error)") }
        }
        let pid: Int32
        // posix_spawnp with the Bridge as fd 3 (dup2 clears close-on-exec on the copy).
        do { pid = try Processes.spawn(argv, environment: env, files: [.duplicate(fds.program, to: 3)], searchPath: true) } catch {
            throw ValidationError("cannot run \(argv[0]): \(error)")
        }
        OwnedFD(adopting: fds.program).close()
        return Processes.waitForExit(pid)
    }

    static func environment(sdk: String, identity: MockBridge.Identity, addPreload: Bool) -> [String] {
        var env = ProcessInfo.processInfo.environment
        func prepend(_ key: String, _ value: String) { env[key] = env[key].map { value + ":" + $0 } ?? value }
        env["MINIAPP_BRIDGE_FD"] = "3"
        env["MINIAPP_BRIDGE_MAX_BYTES"] = String(1 << 20)
        env["MINIAPP_PROGRAM_ID"] = identity.programId
        env["MINIAPP_PROGRAM_VERSION"] = identity.version
        env["MINIAPP_WORKER_ID"] = "w-mock"
        prepend("NODE_PATH", sdk + "/js")
        prepend("PYTHONPATH", sdk + "/python")
        // A command run under the mock (a test runner, `node main.js`) gets the global too.
        if addPreload {
            let preload: String = "--require " + sdk + "/js/preload.js"
            if let existing = env["NODE_OPTIONS"] { env["NODE_OPTIONS"] = existing + " " + preload } else { env["NODE_OPTIONS"] = preload }
        }
        return env.map { "\($0.key)=\($0.value)" }
    }

    /// A fresh directory holding this binary's SDK (removed by the caller).
    static func temporarySDK() throws -> String {
        let dir: String
        do { dir = try FileSystem.makeTemporaryDirectory(prefix: NSTemporaryDirectory() + "/miniapp-sdk-") } catch {
            throw ValidationError("cannot create a temporary directory: \(error)")
        }
        do { return try SDKInstaller.install(into: dir + "/sdk") } catch {
            throw ValidationError("cannot write the SDK: \(error.message)")
        }
    }
}
