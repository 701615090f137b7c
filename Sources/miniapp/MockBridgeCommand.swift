import ArgumentParser
import Foundation
import MiniAppBridgeMock
import MiniAppModel

/// `miniapp mock-bridge --rules FILE (DIR | -- CMD [ARG…])`: a program run outside the daemon,
/// its Bridge answered by a rules file (README "Mock bridge").
struct MockBridgeCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "mock-bridge",
        abstract: "Run a program outside the daemon, its Bridge (fd 3) answered by a rules file.",
        discussion: """
            Rules: {"rules": [{"method", "params"?, "result" | "error": {code, message}, "delayMs"?, "times"?}]} —
            method exact or a glob, params a subset to match, first match wins; storage.* and system.info are
            built in unless a rule overrides them; anything else is METHOD_NOT_FOUND naming the method.
            DIR runs as its manifest says (runtime, entryPoint, the SDK as in a worker). After --, CMD runs
            with the same environment (node gets the MiniAppBridge global through NODE_OPTIONS); system.info
            then answers with ./manifest.json's id and version when there is one.
            """)

    @Option(help: "The rules file (JSON).") var rules: String
    @Flag(help: "Print every call and its answer on stderr.") var log = false
    @Argument(help: "A program directory (with manifest.json).") var dir: String?
    @Argument(parsing: .postTerminator, help: "A command to run instead of DIR.") var command: [String] = []

    func validate() throws {
        guard (dir == nil) != command.isEmpty else { throw ValidationError("give a program DIR or -- CMD [ARG…], not both") }
    }

    func run() throws {
        let engine = try Self.loadRules(rules, identity: MockRun.identity(try? MockRun.readManifest(dir ?? ".")))
        let sdk = try MockRun.temporarySDK()
        defer { try? FileManager.default.removeItem(atPath: (sdk as NSString).deletingLastPathComponent) }
        let status: Int32
        if let dir {
            let abs = URL(fileURLWithPath: dir).standardizedFileURL.path
            let (argv, _) = try MockRun.argv(forProgram: abs, sdk: sdk)
            status = try MockRun(bridge: engine, log: log).run(argv, cwd: abs, sdk: sdk, addPreload: false)
        } else {
            status = try MockRun(bridge: engine, log: log).run(command, cwd: nil, sdk: sdk, addPreload: true)
        }
        throw ExitCode(status)
    }

    static func loadRules(_ path: String, identity: MockBridge.Identity) throws -> MockBridge {
        guard let data = FileManager.default.contents(atPath: path) else { throw ValidationError("cannot read the rules file \(path)") }
        do { return MockBridge(rules: try MockRules.parse(Array(data)), identity: identity) } catch {
            throw ValidationError("\(path): \(error.message)")
        }
    }
}

/// `miniapp replay FILE -- CMD [ARG…]`: runs a program against a recording's replies (a mock
/// bridge built from `miniapp inspect --record FILE`), for bug reports.
struct ReplayCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "replay", abstract: "Run a program against the replies of a recording (miniapp inspect --record).")

    @Argument(help: "The recording (JSON lines of inspector events).") var file: String
    @Flag(help: "Print every call and its answer on stderr.") var log = false
    @Argument(parsing: .postTerminator, help: "The command to run (e.g. node main.js).") var command: [String] = []

    func validate() throws {
        guard !command.isEmpty else { throw ValidationError("give the command after --, e.g. miniapp replay rec.jsonl -- node main.js") }
    }

    func run() throws {
        guard let data = FileManager.default.contents(atPath: file) else { throw ValidationError("cannot read the recording \(file)") }
        let (rules, programId): (MockRules, String?)
        do { (rules, programId) = try Recording.rules(from: Array(data)) } catch { throw ValidationError("\(file): \(error.message)") }
        var identity = MockRun.identity(try? MockRun.readManifest("."))
        if let programId { identity.programId = programId }
        let sdk = try MockRun.temporarySDK()
        defer { try? FileManager.default.removeItem(atPath: (sdk as NSString).deletingLastPathComponent) }
        let status = try MockRun(bridge: MockBridge(rules: rules, identity: identity), log: log).run(command, cwd: nil, sdk: sdk, addPreload: true)
        throw ExitCode(status)
    }
}
