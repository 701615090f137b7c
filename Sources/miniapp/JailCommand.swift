import ArgumentParser

/// `miniapp jail` (issue 2 replaces this placeholder).
struct JailCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "jail", abstract: "Run one command in a worker jail.")
    func run() throws { throw ValidationError("miniapp jail is not implemented yet") }
}
