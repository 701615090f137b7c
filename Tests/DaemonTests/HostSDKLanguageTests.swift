import Foundation
import MiniAppTestSupport
import Testing

/// The Python (`miniapp_host`) and Node (`miniapp-host`) host libraries: their test scripts
/// (Sources/HostSDK/*/test*) against a real daemon with real jailed programs, which they start,
/// restart and kill themselves, and against a fake daemon that misbehaves.
@Suite struct HostSDKLanguageTests {
    static let root = repositoryRoot() + "/Sources/HostSDK"

    /// Every line a script must print: each is one scenario that passed.
    static let scenarios = [
        "misbehaving-daemon cases give typed errors", "an unknown notification is passed through",
        "requests this host does not serve are refused METHOD_NOT_FOUND", "install, launch, payment.pay served, program.exited",
        "when the daemon times the call out", "provider re-registered after a daemon restart",
        "daemon killed mid-call: HOST_UNAVAILABLE within the timeout", "all passed",
    ]

    @Test(arguments: [
        ["python3", root + "/python/tests/test_miniapp_host.py"],
        ["node", root + "/node/test/test.js"],
    ])
    func scriptPassesAgainstARealDaemon(_ argv: [String]) throws {
        let w = try HostSDKWorld()
        let r = try run(argv, env: w.scriptEnvironment(), timeout: 240)
        let logs = ["py-daemon.log", "js-daemon.log"].compactMap { try? String(contentsOfFile: w.world.dir.file($0), encoding: .utf8) }
        #expect(r.status == 0, "\(argv[0]) failed:\n\(r.stdout)\n\(r.stderr)\n\(logs.joined().suffix(4000))")
        for s in Self.scenarios { #expect(r.stdout.contains(s), "\(argv[0]) did not report '\(s)':\n\(r.stdout)") }
    }
}
