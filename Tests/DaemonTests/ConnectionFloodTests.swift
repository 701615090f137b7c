import Foundation
import Glibc
import MiniAppDaemon
import MiniAppJSON
import MiniAppModel
import MiniAppSystem
import MiniAppTestSupport
import Testing

/// Connection floods against the control socket: refused peers, allowed peers over their cap.
@Suite struct ConnectionFloodTests {
    /// Descriptors the daemon has open now.
    static func openDescriptors(_ pid: Int32) -> Int {
        (try? FileManager.default.contentsOfDirectory(atPath: "/proc/\(pid)/fd").count) ?? -1
    }

    /// A uid that may not use the socket opens 300 connections and keeps them all open: each is
    /// answered UNAUTHORIZED and closed at once by the daemon (its descriptors do not pile up),
    /// the refusals are logged a few lines at most, and root is served meanwhile.
    @Test func refusedPeersAreClosedAtOnceAndLoggedSparingly() throws {
        guard geteuid() == 0 else { return }  // acting as another uid needs root
        let world = try E2EWorld()
        let daemon = try world.daemon()
        defer { daemon.stop() }
        let root = try daemon.client()
        _ = try root.call("daemon.info")
        let before = Self.openDescriptors(daemon.process.processIdentifier)
        // The file mode is the first fence; the uid check must hold alone.
        chmod(daemon.dir.path, 0o755)
        chmod(daemon.socket, 0o666)
        let script = """
            import socket, sys, time
            conns = []
            for i in range(300):
                s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                s.connect(sys.argv[1])
                try:
                    s.sendall(b'{"jsonrpc":"2.0","id":1,"method":"daemon.info"}\\n')
                except (BrokenPipeError, ConnectionResetError):
                    pass  # refused and closed before the request went out: the answer is still there
                conns.append(s)
            print("connected", flush=True)
            answered = 0
            for s in conns:
                s.settimeout(30)
                data = b''
                while True:
                    try:
                        chunk = s.recv(4096)
                    except (ConnectionResetError, socket.timeout):
                        break
                    if not chunk:
                        break
                    data += chunk
                if b'UNAUTHORIZED' in data:
                    answered += 1
            print("answered", answered, flush=True)
            time.sleep(3)
            """
        let dir = try TempDir("flood")
        chmod(dir.path, 0o755)
        let py = try dir.write("flood.py", script)
        let flood = Process()
        flood.executableURL = URL(fileURLWithPath: "/usr/bin/setpriv")
        flood.arguments = ["--reuid=65534", "--regid=65534", "--clear-groups", "/usr/bin/python3", py, daemon.socket]
        let out = Pipe()
        flood.standardOutput = out
        flood.standardError = Pipe()
        try flood.run()
        defer { if flood.isRunning { kill(flood.processIdentifier, SIGKILL) } }
        let reader = out.fileHandleForReading
        var text = ""
        while !(text.contains("answered") && text.hasSuffix("\n")) {  // the whole line: it may come in two reads
            let d = reader.availableData
            if d.isEmpty { break }
            text += String(decoding: d, as: UTF8.self)
        }
        #expect(text.contains("answered 300"), "\(text) \(String(decoding: (flood.standardError as? Pipe)?.fileHandleForReading.availableData ?? Data(), as: UTF8.self))")
        // The flooder still holds all 300 of its ends open: the daemon's are closed already.
        let during = Self.openDescriptors(daemon.process.processIdentifier)
        #expect(during - before < 20, "daemon descriptors: \(before) before, \(during) while the refused peers stay connected")
        #expect(try root.call("daemon.info", timeoutMillis: 10_000)["version"] != nil)
        let refusedLines = daemon.logText().split(separator: "\n").filter { $0.contains("control: refused") }
        #expect(refusedLines.count <= 10, "\(refusedLines.count) refusal lines for 300 refusals")
        #expect(refusedLines.count >= 1, "refusals are still logged")
    }

    /// An allowed uid over its connection cap is answered RATE_LIMITED and closed; its open
    /// connections keep working, and closing one lets a new one in.
    @Test func connectionsPerUIDAreCapped() throws {
        let world = try E2EWorld()
        let daemon = try world.daemon()
        defer { daemon.stop() }
        var open: [ControlClient] = []
        for _ in 0..<32 { open.append(try daemon.client()) }
        for c in open.prefix(4) { _ = try c.call("daemon.info") }
        let over = try daemon.client()
        #expect { try over.call("daemon.info", timeoutMillis: 10_000) } throws: { ($0 as? MiniAppError)?.code == .rateLimited }
        #expect(try open[0].call("daemon.info")["version"] != nil)
        open.removeLast()
        #expect(E2EProbe.eventually { (try? daemon.client().call("daemon.info", timeoutMillis: 5000)) != nil })
    }
}
