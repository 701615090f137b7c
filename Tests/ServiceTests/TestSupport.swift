import Foundation
import MiniAppBroker
import MiniAppJSON
import MiniAppModel
import MiniAppTestSupport

/// A caller as the broker would build it from a verified manifest.
func caller(_ programId: String, domains: [String] = [], permissions: Set<String> = []) -> CallerIdentity {
    CallerIdentity(
        workerId: "w-\(programId)", programId: programId, version: "1.2.3", partnerId: "com.partner",
        declaredPermissions: permissions, allowedDomains: domains)
}

/// Calls a service and waits for its single reply.
func call(
    _ service: some BridgeService, _ method: String, _ params: JSONValue?, as who: CallerIdentity
) async -> Result<JSONValue, MiniAppError> {
    await withCheckedContinuation { cont in
        service.handle(method: method, params: params, caller: who) { cont.resume(returning: $0) }
    }
}

extension Result where Success == JSONValue, Failure == MiniAppError {
    /// The error code, or nil on success.
    var code: ErrorCode? { if case .failure(let e) = self { e.code } else { nil } }
    /// The result value, or nil on failure.
    var value: JSONValue? { if case .success(let v) = self { v } else { nil } }
}

/// A fresh private temporary directory, removed by the caller with `removeTree`.
func makeTempDir(_ tag: String = "svc") throws -> String { try TempDir.makeDirectory(tag) }

func removeTree(_ path: String) {
    try? FileManager.default.removeItem(atPath: path)
}

/// Path of the package root (for Sources/SDK).
func packageRoot() -> String { repositoryRoot() }

/// Runs a program to completion and returns its exit status, stdout and stderr.
func runProcess(_ path: String, _ args: [String], environment: [String: String]? = nil, cwd: String? = nil) throws -> (
    status: Int32, out: String, err: String
) {
    let p = Process()
    p.executableURL = URL(fileURLWithPath: path)
    p.arguments = args
    if let environment { p.environment = environment }
    if let cwd { p.currentDirectoryURL = URL(fileURLWithPath: cwd) }
    let out = Pipe()
    let err = Pipe()
    p.standardOutput = out
    p.standardError = err
    try p.run()
    // Read both pipes to EOF before waiting, so a chatty child cannot fill a pipe and stall.
    let errData = LockedData()
    let errReader = Thread { errData.set(err.fileHandleForReading.readDataToEndOfFile()) }
    errReader.start()
    let outData = out.fileHandleForReading.readDataToEndOfFile()
    p.waitUntilExit()
    while !errData.done { usleep(1000) }
    return (p.terminationStatus, String(decoding: outData, as: UTF8.self), String(decoding: errData.get(), as: UTF8.self))
}

final class LockedData: @unchecked Sendable {
    private let lock = NSLock()
    private var data = Data()
    private var finished = false
    func set(_ d: Data) { lock.lock(); data = d; finished = true; lock.unlock() }
    func get() -> Data { lock.lock(); defer { lock.unlock() }; return data }
    var done: Bool { lock.lock(); defer { lock.unlock() }; return finished }
}
