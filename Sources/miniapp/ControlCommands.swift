import ArgumentParser

/// The control-API verbs (`install`, `launch`, `ps`, …) (issue 5 fills this in).
enum ControlCommands {
    static let all: [any ParsableCommand.Type] = []
}
