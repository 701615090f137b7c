import ArgumentParser
import Foundation
import MiniAppSystem
import MiniAppModel

/// `miniapp new ID [--runtime node|python|native] [DIR]`: a working program skeleton — an
/// unsigned manifest, an entry point that calls `system.info`, `storage.*` and the host method
/// `payment.pay`, a unit test that runs against the mock bridge, the mock rules and a README.
struct NewCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "new", abstract: "Create a program skeleton with a unit test against the mock bridge.",
        discussion: "Then: cd DIR && miniapp mock-bridge --rules mock-rules.json -- <the test command in DIR/README.md>")

    @Argument(help: "Program id (reverse-DNS, lowercase, e.g. com.example.hello).") var id: String
    @Option(help: "node, python or native (a POSIX shell script).") var runtime: String = "node"
    @Argument(help: "Directory to create (default: the last component of the id).") var dir: String?

    func validate() throws {
        guard Manifest.isValidId(id) else {
            throw ValidationError("'\(id)' is not a program id: reverse-DNS, lowercase, e.g. com.example.hello")
        }
        guard Skeleton.runtimes.contains(runtime) else { throw ValidationError("--runtime must be node, python or native") }
    }

    func run() throws {
        let target = dir ?? String(id.split(separator: ".").last ?? "app")
        if FileManager.default.fileExists(atPath: target),
            !((try? FileManager.default.contentsOfDirectory(atPath: target))?.isEmpty ?? false) {
            throw ValidationError("\(target) exists and is not empty: choose another DIR")
        }
        try FileManager.default.createDirectory(atPath: target, withIntermediateDirectories: true)
        let files = Skeleton.files(id: id, runtime: runtime)
        for (name, text, executable) in files {
            let path = target + "/" + name
            try text.write(toFile: path, atomically: true, encoding: .utf8)
            if executable { try FileSystem.setPermissions(path, 0o755) }
        }
        print("created \(target)/: \(files.map(\.0).joined(separator: ", "))")
        print("next: cd \(target) && miniapp mock-bridge --rules mock-rules.json -- \(Skeleton.testCommand(runtime))")
    }
}
