public import Foundation
import MiniAppSystem

/// A fixture server the test starts and stops itself: a program (the Python fixtures under
/// Tests/*/Fixtures) that listens on 127.0.0.1, port 0, and prints the port it got as its first
/// line of stdout. Stopped with SIGKILL of this process's own child, by pid.
public final class FixtureServer: @unchecked Sendable {
    /// The server process.
    public let process = Process()
    /// The port it listens on (127.0.0.1).
    public let port: Int

    /// Starts `argv` (an absolute path first) and waits for its port line.
    public init(_ argv: [String]) throws {
        process.executableURL = URL(fileURLWithPath: argv[0])
        process.arguments = Array(argv.dropFirst())
        let out = Pipe()
        process.standardOutput = out
        try process.run()
        var line = Data()
        while !line.contains(UInt8(ascii: "\n")) {
            let chunk = out.fileHandleForReading.availableData
            if chunk.isEmpty { break }
            line.append(chunk)
        }
        guard let p = Int(String(decoding: line, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)) else {
            Processes.signal(process.processIdentifier, Signal.kill)
            process.waitUntilExit()
            throw HarnessError("the fixture server \(argv.dropFirst().first ?? argv[0]) did not start")
        }
        port = p
    }

    /// SIGKILL and reap (once; later calls do nothing).
    public func stop() {
        guard process.isRunning else { return }
        Processes.signal(process.processIdentifier, Signal.kill)
        process.waitUntilExit()
    }
}
