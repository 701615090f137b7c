import ArgumentParser
import Foundation
import MiniAppBridgeMock
import MiniAppModel

/// `miniapp dev [DIR] [--host-script FILE]`: the partner's inner loop on a simulator daemon
/// (README "Partner DevTools"). Starts `miniappd --simulator` (the debug build beside this
/// binary) on a temporary state directory — or uses the one at `--socket` — installs DIR
/// unsigned, launches it, prints its output and its Bridge calls in one view, answers the
/// host-provided methods from the mock rules (unless `--host-script` runs a host), and on any
/// saved change under DIR reinstalls and relaunches it. Ctrl-C stops everything.
struct DevCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "dev", abstract: "Run DIR in a simulator daemon (debug builds): jailed, inspected, reloaded on save.")

    @Argument(help: "The program directory (with manifest.json).") var dir: String = "."
    @Option(help: "Mock rules for host-provided methods (default: DIR/mock-rules.json when present).") var rules: String?
    @Option(help: "A host runtime to run instead of the mock rules (gets MINIAPPD_SOCKET).") var hostScript: String?
    @Option(help: "Use this running simulator daemon instead of starting one.") var socket: String?
    @Option(help: "Where the started daemon keeps its state and socket (default: a temporary directory, removed at exit).")
    var workdir: String?
    @Flag(help: "Print the Inspector events as JSON lines.") var json = false

    func run() throws {
        let app = URL(fileURLWithPath: dir).standardizedFileURL.path
        let manifest = try MockRun.readManifest(app)
        let session = try DevSession(app: app, programId: manifest.id, json: json)
        try session.startDaemon(socket: socket, workdir: workdir)
        var rulesPath: String? = rules
        let defaultRules: String = app + "/mock-rules.json"
        if rulesPath == nil && FileManager.default.fileExists(atPath: defaultRules) { rulesPath = defaultRules }
        if let hostScript {
            try session.startHost(script: URL(fileURLWithPath: hostScript).standardizedFileURL.path)
        } else if let rulesPath {
            try session.provide(try MockBridgeCommand.loadRules(rulesPath, identity: MockRun.identity(manifest)))
        }
        session.watchAndServe()
    }
}
