import ArgumentParser

/// `miniapp`: the partner and operator CLI (spec/cli-and-config.md). One file per command group:
/// JailCommand.swift (`jail`), PolicyCommands.swift (`policy lint|explain|diff`), PackageCommands.swift (`keygen`, `pack`, `verify`),
/// ControlCommands.swift and LiveCommands.swift (the control-API verbs), DevTools.swift (`new`,
/// `mock-bridge`, `dev`, `replay`: the partner's inner loop).
struct MiniApp: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "miniapp",
        abstract: "Pack, sign, verify, jail and control mini-programs.",
        subcommands: [JailCommand.self, PolicyCommand.self] + PackageCommands.all + ControlCommands.all + DevTools.all
    )

    /// The spec writes `miniapp --socket PATH install FILE`: a parent option before the verb,
    /// which ArgumentParser only accepts after it. Move it behind the verb.
    static func hoistSocketOption(_ args: [String]) -> [String] {
        var rest = args
        var moved: [String] = []
        while let first = rest.first, first.hasPrefix("--socket") {
            if first == "--socket", rest.count >= 2 {
                moved += rest.prefix(2)
                rest.removeFirst(2)
            } else if first.hasPrefix("--socket=") {
                moved.append(first)
                rest.removeFirst()
            } else {
                break
            }
        }
        guard !moved.isEmpty, !rest.isEmpty else { return args }
        var verbEnd = 1
        if rest[0] == "packages", rest.count > 1, !rest[1].hasPrefix("-") { verbEnd = 2 }
        return Array(rest.prefix(verbEnd)) + moved + Array(rest.dropFirst(verbEnd))
    }
}

@main
enum Entry {
    static func main() {
        MiniApp.main(MiniApp.hoistSocketOption(Array(CommandLine.arguments.dropFirst())))
    }
}
