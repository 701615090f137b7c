import ArgumentParser

/// `keygen`, `pack`, `verify` (issue 3 fills this in).
enum PackageCommands {
    static let all: [any ParsableCommand.Type] = []
}
