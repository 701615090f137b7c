import ArgumentParser

/// `miniapp`: the partner and operator CLI (spec/cli-and-config.md). One file per command group:
/// JailCommand.swift (`jail`), PackageCommands.swift (`keygen`, `pack`, `verify`),
/// ControlCommands.swift (the control-API verbs).
@main
struct MiniApp: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "miniapp",
        abstract: "Pack, sign, verify, jail and control mini-programs.",
        subcommands: [JailCommand.self] + PackageCommands.all + ControlCommands.all
    )
}
