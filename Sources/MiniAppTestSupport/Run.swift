import Foundation
import MiniAppSystem

/// The result of running a command.
public struct RunResult: Sendable {
    /// Exit status (128 + signal when killed by one).
    public var status: Int32
    /// Captured stdout.
    public var stdout: String
    /// Captured stderr.
    public var stderr: String
}

/// Runs `argv` (absolute path or a name on PATH) to completion, capturing output; kills it
/// after `timeout` seconds (a hung test must fail, not hang CI).
@discardableResult
public func run(
    _ argv: [String], cwd: String? = nil, env: [String: String]? = nil, stdin: String? = nil, timeout: Double = 120
) throws -> RunResult {
    let p = Process()
    p.executableURL = URL(fileURLWithPath: argv[0].hasPrefix("/") ? argv[0] : "/usr/bin/env")
    p.arguments = argv[0].hasPrefix("/") ? Array(argv.dropFirst()) : argv
    if let cwd { p.currentDirectoryURL = URL(fileURLWithPath: cwd) }
    if let env { p.environment = ProcessInfo.processInfo.environment.merging(env) { $1 } }
    let out = Pipe(), err = Pipe(), input = Pipe()
    p.standardOutput = out
    p.standardError = err
    p.standardInput = input
    try p.run()
    if let stdin { input.fileHandleForWriting.write(Data(stdin.utf8)) }
    try? input.fileHandleForWriting.close()
    let outData = OutputCollector(out.fileHandleForReading)
    let errData = OutputCollector(err.fileHandleForReading)
    let deadline = Date().addingTimeInterval(timeout)
    while p.isRunning && Date() < deadline { CurrentProcess.sleep(micros: 2000) }
    if p.isRunning {
        Processes.signal(p.processIdentifier, Signal.kill)
    }
    p.waitUntilExit()
    let status = p.terminationReason == .uncaughtSignal ? 128 + p.terminationStatus : p.terminationStatus
    return RunResult(status: status, stdout: outData.finish(), stderr: errData.finish())
}

/// Drains a pipe on a background thread so a chatty child never blocks on a full pipe.
final class OutputCollector: @unchecked Sendable {
    private var data = Data()
    private let done = DispatchSemaphore(value: 0)

    init(_ handle: FileHandle) {
        Thread.detachNewThread { [self] in
            data = handle.readDataToEndOfFile()
            done.signal()
        }
    }

    func finish() -> String {
        done.wait()
        return String(decoding: data, as: UTF8.self)
    }
}

/// The directory holding the built products (`.build/debug`): `MINIAPP_BIN` when set, else
/// found from the test bundle. On Linux `Bundle.main` is the directory of the test executable
/// (the products directory itself); on macOS it is the `.xctest` bundle inside it.
public func productsDirectory() -> String {
    let bundle = Bundle.main.bundleURL
    let candidates = [ProcessInfo.processInfo.environment["MINIAPP_BIN"] ?? "", bundle.path, bundle.deletingLastPathComponent().path]
    for candidate in candidates where !candidate.isEmpty {
        if FileManager.default.isExecutableFile(atPath: candidate + "/miniapp") { return candidate }
    }
    return bundle.path
}

/// The repository root (where Package.swift is), found from this source file.
public func repositoryRoot() -> String {
    var url = URL(fileURLWithPath: #filePath)
    while url.path != "/" {
        url.deleteLastPathComponent()
        if FileManager.default.fileExists(atPath: url.path + "/Package.swift") { return url.path }
    }
    return FileManager.default.currentDirectoryPath
}
