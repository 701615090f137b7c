import Foundation
import MiniAppDaemon
import MiniAppJSON
import MiniAppModel
import MiniAppTestSupport
import Testing

/// A program's bytes on their way to a terminal or a log are escaped, on every path: its unknown
/// method names in `miniapp inspect`, its stdout/stderr and `log.write` lines in the daemon log.
@Suite struct TerminalEscapeTests {
    /// What a hostile program sends: an OSC that retitles the terminal, a CR/LF that forges a
    /// whole inspector line, an 8-bit CSI, a bidi override.
    static let hostile = "x\\u001b]0;pwned\\u0007\\r\\n00:00 w-x com.e2e.x payment.pay allow\\u009b2J\\u202e"

    static let program = """
        MiniAppBridge.keepAlive(true);
        const report = (o) => MiniAppBridge.call('ui.toast', { message: JSON.stringify(o) });
        MiniAppBridge.on('*', async () => {
          try { await MiniAppBridge.call('\(hostile)', {}); } catch (e) {}
          await MiniAppBridge.call('log.write', { level: 'info', message: 'log \(hostile)' });
          process.stdout.write('out \(hostile)\\n');
          process.stderr.write('err \(hostile)\\n');
          await report({ kind: 'done' });
        });
        report({ kind: 'ready' });
        """

    @Test func programBytesAreEscapedOnEveryPath() throws {
        let world = try E2EWorld()
        let id = E2EPartner.programId("esc")
        let zip = try world.package(E2EWorld.manifest(id: id, entry: "main.js", permissions: ["ui"]), files: ["main.js": Self.program])
        let daemon = try world.daemon()
        defer { daemon.stop() }
        let host = try E2EHost(daemon)
        host.answers["ui.toast"] = { _ in [:] }
        try host.call("bridge.provide", ["methods": ["ui.toast"]])
        try host.call("packages.install", ["path": .string(zip)])
        let wid = try #require(try host.call("programs.launch", ["id": .string(id)])["workerId"]?.stringValue)
        _ = try host.report(from: id)  // ready

        let outPath = world.dir.file("inspect.out")
        _ = FileManager.default.createFile(atPath: outPath, contents: nil)
        let out = try FileHandle(forWritingTo: URL(fileURLWithPath: outPath))
        let inspect = Process()
        inspect.executableURL = URL(fileURLWithPath: productsDirectory() + "/miniapp")
        // Each event makes three calls (the hostile one, log.write, ui.toast): any three in a
        // row hold one hostile call, wherever the (asynchronous) subscription starts.
        inspect.arguments = ["--socket", daemon.socket, "inspect", id, "--count", "3"]
        inspect.standardOutput = out
        try inspect.run()
        defer { if inspect.isRunning { kill(inspect.processIdentifier, SIGKILL) } }
        // The subscription is asynchronous and a loaded machine may start `miniapp inspect` late:
        // poke the program until inspect has seen its calls and exited, however long it takes to
        // subscribe (a fixed number of pokes left it waiting forever). The bound only turns a
        // broken inspect into a failure instead of a hang.
        var n = 1
        let giveUp = Date().addingTimeInterval(120)
        while inspect.isRunning && Date() < giveUp {
            do {
                try host.call("programs.send", ["workerId": .string(wid), "name": "go", "data": [:]])
            } catch {
                Issue.record("poke \(n): \(error); daemon log: \(daemon.logText())")
                throw error
            }
            n += 1
            _ = try host.report(from: id, number: n)
        }
        try #require(!inspect.isRunning, "miniapp inspect saw no three calls in 120 s of pokes")
        inspect.waitUntilExit()
        try out.close()
        let shown = try String(contentsOfFile: outPath, encoding: .utf8)
        #expect(shown.split(separator: "\n").count == 3, "one event is one line: \(shown.debugDescription)")
        Self.expectEscaped(shown, "inspect")

        #expect(E2EProbe.eventually {
            let text = daemon.logText()
            return text.contains("err x") && text.contains("log x") && text.contains("out x")
        }, "the program's lines reach the log: \(daemon.logText())")
        let log = daemon.logText()
        let programLines = log.split(separator: "\n").filter { $0.contains("pwned") }
        #expect(programLines.count >= 3)
        for line in programLines { Self.expectEscaped(String(line), "log") }
    }

    static func expectEscaped(_ text: String, _ place: String) {
        #expect(!text.unicodeScalars.contains { $0 == "\u{1b}" || $0 == "\u{7}" || $0 == "\r" || $0 == "\u{9b}" || $0 == "\u{202e}" },
                "raw control in \(place): \(text.debugDescription)")
        #expect(text.contains("\\u{1b}]0;pwned\\u{7}"), "escaped form in \(place): \(text.debugDescription)")
    }
}

/// The escaping itself, as a table of hostile inputs.
@Suite struct TerminalTextTests {
    @Test(arguments: [
        ("plain text, é and 日本", "plain text, é and 日本"),
        ("tab\tstays", "tab\tstays"),
        ("\u{1b}]0;title\u{7}", "\\u{1b}]0;title\\u{7}"),
        ("line\r\nforged allow", "line\\u{d}\\u{a}forged allow"),
        ("8-bit \u{9b}2J csi", "8-bit \\u{9b}2J csi"),
        ("del \u{7f}", "del \\u{7f}"),
        ("nul \u{0}", "nul \\u{0}"),
        ("bidi \u{202e}wolla\u{202c}", "bidi \\u{202e}wolla\\u{202c}"),
        ("isolate \u{2066}x\u{2069}", "isolate \\u{2066}x\\u{2069}"),
        ("separator \u{2028}", "separator \\u{2028}"),
    ])
    func escapes(_ input: String, _ expected: String) {
        #expect(TerminalText.escape(input) == expected)
    }

    @Test(arguments: [
        ([0x61, 0xff, 0x62] as [UInt8], "a\\xffb"),
        ([0x61, 0x00, 0x62], "a\\u{0}b"),
        ([0xc3, 0xa9], "é"),
        ([0xc3], "\\xc3"),
        ([0xe2, 0x80], "\\xe2\\x80"),
        ([0xed, 0xa0, 0x80], "\\xed\\xa0\\x80"),  // a UTF-16 surrogate encoded in UTF-8
        ([0x1b, 0x5b, 0x32, 0x4a], "\\u{1b}[2J"),
        ([0xc2, 0x9b], "\\u{9b}"),
    ])
    func escapesBytes(_ input: [UInt8], _ expected: String) {
        #expect(TerminalText.escape(bytes: input) == expected)
    }

    @Test func jsonStaysValid() throws {
        let text = JSONValue.object(["m": .string("a\u{9b}b\u{202e}")]).jsonString
        let safe = TerminalText.escapeJSON(text)
        #expect(!safe.unicodeScalars.contains { TerminalText.needsEscape($0) })
        #expect(try JSONValue.parse(Array(safe.utf8))["m"]?.stringValue == "a\u{9b}b\u{202e}")
    }
}
