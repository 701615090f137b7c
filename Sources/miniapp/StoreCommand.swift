import ArgumentParser
import MiniAppModel
import MiniAppPackages

/// `miniapp store …`: the version store without a daemon (operators, and the crash-safety tests,
/// which SIGKILL `store install` at chosen points via `MINIAPP_CRASH_AT`).
struct StoreCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "store", abstract: "Operate a package store directly (no daemon).",
        shouldDisplay: false)

    @Option(help: "Store directory.") var root: String
    @Option(help: "Policy directory.") var policyDir: String
    @Option(help: "Host version.") var hostVersion: String = PackageCommands.defaultHostVersion
    @Flag(help: "Allow a downgrade.") var allowDowngrade = false
    @Argument(help: "install FILE | stage FILE | activate ID | rollback ID | remove ID | list | active ID") var words: [String]

    func run() throws {
        do {
            let options = try PackageCommands.options(policyDir: policyDir, hostVersion: hostVersion)
            let partners = try PartnerDirectory.load(policyDir: policyDir)
            let store = try PackageStore(root: root, options: options) { partners }
            let arg = words.count > 1 ? words[1] : ""
            switch words.first ?? "" {
            case "install": print(try store.install(path: arg, allowDowngrade: allowDowngrade))
            case "stage": print(try store.stage(path: arg, allowDowngrade: allowDowngrade))
            case "activate": print(try store.activatePending(arg).map { "activated \($0)" } ?? "nothing pending")
            case "rollback": print("active \(try store.rollback(arg))")
            case "remove": try store.remove(arg); print("removed \(arg)")
            case "active": let a = try store.active(arg); print("\(a.manifest.id) \(a.manifest.version) \(a.directory)")
            case "list":
                for p in try store.list() {
                    print(p.id, p.state.active?.version.text ?? "-", p.state.previous?.version.text ?? "-", p.state.pending?.version.text ?? "-")
                }
            default: throw ValidationError("unknown store verb")
            }
        } catch let e as MiniAppError {
            throw PackageCommands.fail(e)
        }
    }
}
