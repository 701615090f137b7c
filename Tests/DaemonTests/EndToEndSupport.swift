import Foundation
import MiniAppDaemon
import MiniAppJSON
import MiniAppModel
import MiniAppPackages
import MiniAppSystem
import MiniAppTestSupport
import Testing

/// The end-to-end tests' partner: `com.e2e`, owner of `com.e2e.*`, granted `payment` and `ui`
/// (never `geolocation`, so a call to `geolocation.get` is always a denial).
enum E2EPartner {
    static let id = "com.e2e"
    /// 2048 bits keeps generation fast; generated once per test process (test setup, not input).
    static let key: RSAKey = try! RSAKey.generate(bits: 2048)
    static let pub: String = try! key.publicPEM()
    static let grants = ["payment", "ui"]

    /// A fresh program id under the partner's prefix: tests run in parallel against their own
    /// daemons, but cgroup names and logs are easier to read when ids never collide.
    static func programId(_ name: String) -> String {
        "com.e2e.\(name)-\(UUID().uuidString.prefix(8).lowercased())"
    }
}

/// One test's world: a copy of the repository's policies with the e2e partner registered, and
/// packages signed for that partner.
final class E2EWorld {
    let dir: TempDir
    let policyDir: String

    init() throws {
        dir = try TempDir("e2e")
        // The daemon under test drops to the harness's user when run as root: it may create
        // files here too (a metrics socket, a NOTIFY_SOCKET's neighbours), as in its own dirs.
        if geteuid() == 0, let ids = DaemonHarness.dropUser?.split(separator: ":").compactMap({ UInt32($0) }), ids.count == 2 {
            chown(dir.path, ids[0], ids[1])
        }
        policyDir = dir.file("policies")
        let cp = try run(["/bin/cp", "-r", repositoryRoot() + "/policies", policyDir])
        guard cp.status == 0 else { throw HarnessError("cp policies: \(cp.stderr)") }
        try register(permissions: E2EPartner.grants)
    }

    /// (Re)writes the e2e partner's registration with `permissions`, atomically (a temp file
    /// renamed over it, as the README asks operators to).
    func register(permissions: [String]) throws {
        let registration: JSONValue = [
            "id": .string(E2EPartner.id), "idPrefixes": ["com.e2e."], "publicKeys": [.string(E2EPartner.pub)],
            "permissions": .array(permissions.map { .string($0) }),
        ]
        try writePartnerFile("com.e2e.json", String(decoding: registration.serialized(), as: UTF8.self))
    }

    /// Writes `policies/partners/<name>` atomically.
    func writePartnerFile(_ name: String, _ text: String) throws {
        let tmp = try dir.write("policies/partners/.\(name).tmp", text)
        guard rename(tmp, dir.file("policies/partners/\(name)")) == 0 else { throw HarnessError("cannot replace \(name)") }
    }

    /// The manifest of a package.
    static func manifest(
        id: String, version: String = "1.0.0", minHostVersion: String = "1.0.0", entry: String, permissions: [String] = []
    ) -> JSONObject {
        [
            "id": .string(id), "version": .string(version), "minHostVersion": .string(minHostVersion),
            "entryPoint": .string(entry), "permissions": .array(permissions.map { .string($0) }),
        ]
    }

    /// Packs and signs `files` (path → text; `.sh` files get mode 0755) under `manifest` with
    /// `key` (default: the e2e partner's) and writes the zip; returns its path.
    func package(_ manifest: JSONObject, files: [String: String], key: RSAKey = E2EPartner.key) throws -> String {
        let entries = files.sorted { $0.key < $1.key }.map { ($0.key, Array($0.value.utf8), UInt32($0.key.hasSuffix(".sh") ? 0o755 : 0o644)) }
        let zip = try PackagePacker.pack(manifest: JSONValue.object(manifest).serialized(), files: entries, key: key)
        let id = manifest["id"]?.stringValue ?? "pkg"
        let version = manifest["version"]?.stringValue ?? "0"
        return try writeZip("\(id)-\(version)-\(UUID().uuidString.prefix(6)).zip", zip)
    }

    /// A package whose manifest was signed over `signed` but which ships `shipped`: what a
    /// man-in-the-middle who edited a file after signing produces.
    func tamperedPackage(_ manifest: JSONObject, signed: [String: String], shipped: [String: String]) throws -> String {
        let statementEntries = signed.sorted { $0.key < $1.key }.map { f in
            let bytes = Array(f.value.utf8)
            return StatementEntry(path: f.key, sha256Hex: SHA256Hasher.hex(SHA256Hasher.digest(bytes)), size: UInt64(bytes.count))
        }
        let statement = SignatureStatement.build(
            canonicalManifest: try JSONValue.object(manifest).canonicalized(), entries: statementEntries)
        var signedManifest = manifest
        signedManifest["signature"] = .string(SignatureField.encode(try RSAPSS.sign(statement, key: E2EPartner.key)))
        var entries = [ZipWriter.Entry(name: "manifest.json", data: JSONValue.object(signedManifest).serialized())]
        for f in shipped.sorted(by: { $0.key < $1.key }) { entries.append(ZipWriter.Entry(name: f.key, data: Array(f.value.utf8))) }
        var writer = ZipWriter()
        return try writeZip("tampered-\(UUID().uuidString.prefix(6)).zip", writer.write(entries))
    }

    private func writeZip(_ name: String, _ bytes: [UInt8]) throws -> String {
        let path = dir.file(name)
        try Data(bytes).write(to: URL(fileURLWithPath: path))
        return path
    }

    /// Starts a daemon on this world's policies.
    func daemon(
        _ extraArgs: [String] = [], stateDir: String? = nil, socketActivated: Bool = false, environment: [String: String] = [:],
        socketPath: String? = nil
    ) throws -> DaemonHarness {
        try DaemonHarness(
            policyDir: policyDir, extraArgs: extraArgs, stateDir: stateDir, socketActivated: socketActivated, environment: environment,
            socketPath: socketPath)
    }
}

/// A host runtime on one control connection: makes calls, answers the `bridge.call`s of the
/// methods it provides, and keeps every notification it sees, in order.
final class E2EHost {
    let client: ControlClient
    /// Every notification (and served `bridge.call` request) seen so far.
    private(set) var seen: [JSONObject] = []
    /// How to answer a `bridge.call`, by method; methods not listed get an error reply.
    var answers: [String: (JSONObject) -> JSONValue] = [:]
    /// The `bridge.call` requests served, in order.
    private(set) var served: [JSONObject] = []
    private var rawId: Int64 = 1_000_000

    init(_ daemon: DaemonHarness) throws { client = try daemon.client() }

    /// A control call; throws the daemon's error.
    @discardableResult
    func call(_ method: String, _ params: JSONObject = [:]) throws -> JSONValue { try client.call(method, params) }

    /// A control call that answers with the raw response object (`result` or `error` with its
    /// numeric `code` and `data`), for the error-table tests.
    func rawCall(_ method: String, _ params: JSONObject = [:], seconds: Double = 60) throws -> JSONObject {
        rawId += 1
        let id = rawId
        try client.send(["jsonrpc": "2.0", "id": .int(id), "method": .string(method), "params": .object(params)])
        let deadline = Date().addingTimeInterval(seconds)
        while true {
            guard let msg = try next(until: deadline) else { throw HarnessError("connection closed waiting for \(method)") }
            if msg["method"] == nil, msg["id"]?.intValue == id { return msg }
            handle(msg)
        }
    }

    /// Pumps messages until a notification satisfies `match` (returning it), answering
    /// `bridge.call`s meanwhile; fails after `seconds`.
    @discardableResult
    func waitFor(_ what: String, seconds: Double = 30, _ match: (JSONObject) -> Bool) throws -> JSONObject {
        if let hit = seen.first(where: match) { return hit }
        let deadline = Date().addingTimeInterval(seconds)
        while true {
            guard let msg = try next(until: deadline) else { throw HarnessError("connection closed waiting for \(what)") }
            handle(msg)
            if msg["method"] != nil, match(msg) { return msg }
        }
    }

    /// Reads until the daemon closes the connection, answering meanwhile; fails after `seconds`.
    func drainUntilClosed(seconds: Double = 30) throws {
        let deadline = Date().addingTimeInterval(seconds)
        while let msg = try next(until: deadline) { handle(msg) }
    }

    /// Notifications named `method`, in arrival order.
    func notifications(_ method: String) -> [JSONObject] { seen.filter { $0["method"]?.stringValue == method } }

    /// `program.exited` for `workerId`.
    func exited(_ workerId: String, seconds: Double = 30) throws -> JSONObject {
        try waitFor("program.exited of \(workerId)", seconds: seconds) {
            $0["method"] == "program.exited" && $0["params"]?["workerId"]?.stringValue == workerId
        }["params"]?.objectValue ?? [:]
    }

    /// Report number `number` (1-based) of `programId`: the e2e programs report what they saw
    /// as a JSON text in a `ui.toast` message, which this host serves.
    func report(from programId: String, number: Int = 1, seconds: Double = 30) throws -> JSONObject {
        let matches = { (m: JSONObject) -> Bool in
            m["method"] == "bridge.call" && m["params"]?["method"] == "ui.toast" && m["params"]?["program"]?["id"]?.stringValue == programId
        }
        let deadline = Date().addingTimeInterval(seconds)
        while seen.filter(matches).count < number {
            guard let msg = try next(until: deadline) else { throw HarnessError("connection closed waiting for a report of \(programId)") }
            handle(msg)
        }
        let toast = seen.filter(matches)[number - 1]
        let text = toast["params"]?["params"]?["message"]?.stringValue ?? ""
        return try JSONValue.parse(Array(text.utf8)).objectValue ?? [:]
    }

    private func next(until deadline: Date) throws -> JSONObject? {
        let left = deadline.timeIntervalSinceNow
        guard left > 0 else { throw HarnessError("timed out; seen so far: \(seen.map { JSONValue.object($0) })") }
        return try client.nextNotification(timeoutMillis: Int32(max(1, left * 1000)))
    }

    private func handle(_ msg: JSONObject) {
        seen.append(msg)
        guard msg["method"] == "bridge.call", let id = msg["id"] else { return }
        served.append(msg)
        let method = msg["params"]?["method"]?.stringValue ?? ""
        let reply: JSONValue
        if let answer = answers[method] {
            reply = ["jsonrpc": "2.0", "id": id, "result": answer(msg["params"]?["params"]?.objectValue ?? [:])]
        } else {
            reply = ["jsonrpc": "2.0", "id": id, "error": ["code": -32603, "message": .string("the e2e host does not serve \(method)")]]
        }
        try? client.send(reply)
    }
}

/// Host-side facts about workers and cgroups.
enum E2EProbe {
    /// Whether `pid` is a live (not zombie) process.
    static func isAlive(_ pid: Int32) -> Bool {
        guard let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8) else { return false }
        // "pid (comm) S …": the state follows the last ')'.
        guard let close = stat.lastIndex(of: ")") else { return false }
        let state = stat[stat.index(after: close)...].trimmingCharacters(in: .whitespaces).first
        return state != "Z" && state != "X"
    }

    /// Polls `condition` every 20 ms until it holds or `seconds` pass; returns its last value.
    /// Every caller waits for something that must happen, so the bound is only a hang guard,
    /// never a statement of how fast it happens (a loaded host can take many seconds).
    static func eventually(seconds: Double = 60, _ condition: () -> Bool) -> Bool {
        let deadline = Date().addingTimeInterval(seconds)
        while Date() < deadline {
            if condition() { return true }
            usleep(20_000)
        }
        return condition()
    }

    /// Pids of the live children of `parent` whose command name is `comm`.
    static func children(of parent: Int32, named comm: String) -> [Int32] {
        let entries = (try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? []
        return entries.compactMap(Int32.init).filter { pid in
            guard let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
                  let open = stat.firstIndex(of: "("), let close = stat.lastIndex(of: ")") else { return false }
            let name = stat[stat.index(after: open)..<close]
            let rest = stat[stat.index(after: close)...].split(separator: " ")
            return name == comm && rest.count > 1 && rest[1] == "\(parent)"
        }
    }

    /// Worker cgroup directories (`w-<program>-<daemonPid>-<n>`) of daemon `daemonPid` in any
    /// hierarchy, anywhere under /sys/fs/cgroup (the daemon nests them under its own cgroup).
    static func workerCgroups(daemonPid: Int32) -> [String] {
        let r = try? run(["/usr/bin/find", "/sys/fs/cgroup", "-mindepth", "2", "-type", "d", "-name", "w-*-\(daemonPid)-*"], timeout: 30)
        return (r?.stdout ?? "").split(separator: "\n").map(String.init).filter { path in
            // `-name` also matches program ids containing "-<pid>-"; check the owner field exactly.
            let parts = (path as NSString).lastPathComponent.split(separator: "-")
            return parts.count >= 4 && parts[parts.count - 2] == "\(daemonPid)"
        }
    }

    /// The v1 freezer state of a worker cgroup of `daemonPid` for `programId`, if there is one.
    static func freezerState(daemonPid: Int32, programId: String) -> String? {
        let dirs = workerCgroups(daemonPid: daemonPid).filter { $0.hasPrefix("/sys/fs/cgroup/freezer/") && $0.contains("/w-\(programId)-") }
        guard let dir = dirs.first else { return nil }
        return (try? String(contentsOfFile: dir + "/freezer.state", encoding: .utf8))?.trimmingCharacters(in: .whitespacesAndNewlines)
    }
}

/// Program sources the tests install.
enum E2EPrograms {
    /// Node: every built-in the tests cover, a host-provided payment, a denied geolocation, one
    /// report as a `ui.toast`, then exit 7.
    static let bridgeTour = """
        async function main() {
          const info = await MiniAppBridge.call('system.info', {});
          await MiniAppBridge.call('storage.set', { key: 'greeting', value: { text: 'h\\u00e9llo', n: 42 } });
          const got = await MiniAppBridge.call('storage.get', { key: 'greeting' });
          const missing = await MiniAppBridge.call('storage.get', { key: 'absent' });
          const tok = await MiniAppBridge.call('auth.getToken', { scope: 'basic' });
          const parts = tok.token.split('.');
          const claims = JSON.parse(Buffer.from(parts[1], 'base64url').toString());
          const pay = await MiniAppBridge.call('payment.pay', { orderId: 'order-7', amount: 12.5, currency: 'EUR' });
          let denied = null;
          try { await MiniAppBridge.call('geolocation.get', {}); } catch (e) { denied = e.code; }
          const report = { info, got: got.value, missing: missing.value, parts: parts.length, claims, expiresAt: tok.expiresAt, pay, denied };
          await MiniAppBridge.call('ui.toast', { message: JSON.stringify(report) });
          process.exit(7);
        }
        main().catch((e) => { console.error('tour failed', e.code, e.message); process.exit(1); });
        """

    /// Node, long-running: on each host event, tries `payment.pay` and reports `ok` or the
    /// error code (`{kind: 'pay', name, result}`); reports `ready` first.
    static let payOnEvent = """
        MiniAppBridge.keepAlive(true);
        const report = (o) => MiniAppBridge.call('ui.toast', { message: JSON.stringify(o) });
        MiniAppBridge.on('*', async (name) => {
          let result = 'ok';
          try { await MiniAppBridge.call('payment.pay', { orderId: name, amount: 1, currency: 'EUR' }); }
          catch (e) { result = e.code; }
          await report({ kind: 'pay', name, result });
        });
        report({ kind: 'ready' });
        """

    /// Node, long-running: reports `ready` with its argv, answers each host event by storing it
    /// and reporting what storage gave back; exits 0 on SIGTERM unless started with
    /// `ignore-term` (then only SIGKILL ends it).
    static let eventLoop = """
        MiniAppBridge.keepAlive(true);
        const report = (o) => MiniAppBridge.call('ui.toast', { message: JSON.stringify(o) });
        MiniAppBridge.on('*', async (name, data) => {
          await MiniAppBridge.call('storage.set', { key: 'last-event', value: { name, data } });
          const back = await MiniAppBridge.call('storage.get', { key: 'last-event' });
          await report({ kind: 'event', stored: back.value });
        });
        const args = process.argv.slice(2);
        process.on('SIGTERM', () => { if (!args.includes('ignore-term')) process.exit(0); });
        report({ kind: 'ready', args });
        """

    /// Node: counts its launches in storage (acknowledged `storage.set`), reports, stays alive.
    static let visitCounter = """
        MiniAppBridge.keepAlive(true);
        (async () => {
          const before = (await MiniAppBridge.call('storage.get', { key: 'visits' })).value;
          const n = (before || 0) + 1;
          await MiniAppBridge.call('storage.set', { key: 'visits', value: n });
          await MiniAppBridge.call('ui.toast', { message: JSON.stringify({ kind: 'stored', before, n }) });
        })().catch((e) => { console.error(e.code, e.message); process.exit(1); });
        """

    /// Python: stores a value, reports, then sleeps (a worker that does nothing for a while).
    static let pythonSleeper = """
        import json, time
        import miniapp_bridge as bridge
        bridge.call("storage.set", {"key": "py", "value": [1, 2, 3]})
        got = bridge.call("storage.get", {"key": "py"})["value"]
        bridge.call("ui.toast", {"message": json.dumps({"kind": "python", "got": got})})
        time.sleep(3600)
        """

    /// Native shell: blocks reading the Bridge socket (fd 3) until it closes.
    static let blockOnBridge = """
        #!/bin/sh
        while read -r line <&3; do :; done
        """
}

/// The systemd side of sd_notify(3): a datagram socket in a temp dir, given to the daemon as
/// `NOTIFY_SOCKET`; every datagram it receives is one notification ("READY=1\nSTATUS=…").
final class NotifySocket {
    let path: String
    private let fd: Int32
    /// Every datagram received so far, in order.
    private(set) var received: [String] = []

    init(in dir: TempDir) throws {
        path = dir.file("notify.sock")
        fd = socket(AF_UNIX, Int32(SOCK_DGRAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { throw HarnessError("socket: \(errno)") }
        var addr = sockaddr_un()
        addr.sun_family = sa_family_t(AF_UNIX)
        withUnsafeMutableBytes(of: &addr.sun_path) { p in for (i, b) in path.utf8.enumerated() { p[i] = b } }
        let rc = withUnsafePointer(to: &addr) { p in
            p.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
        }
        guard rc == 0 else { throw HarnessError("bind \(path): \(errno)") }
        chmod(path, 0o666) // like systemd's own: a daemon that dropped from root still reaches it
    }

    deinit { close(fd) }

    /// Receives until a datagram satisfies `match` (returning it); fails after `seconds`.
    @discardableResult
    func waitFor(_ what: String, seconds: Double = 30, _ match: (String) -> Bool) throws -> String {
        let deadline = Date().addingTimeInterval(seconds)
        while true {
            let left = deadline.timeIntervalSinceNow
            guard left > 0 else { throw HarnessError("no \(what) on NOTIFY_SOCKET; received: \(received)") }
            var pfd = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
            guard poll(&pfd, 1, Int32(max(1, left * 1000))) > 0 else { continue }
            var buf = [UInt8](repeating: 0, count: 4096)
            let n = recv(fd, &buf, buf.count, 0)
            guard n > 0 else { continue }
            let text = String(decoding: buf[0..<n], as: UTF8.self)
            received.append(text)
            if match(text) { return text }
        }
    }

    /// Waits for a datagram with the line `assignment` (e.g. "READY=1").
    @discardableResult
    func waitFor(_ assignment: String, seconds: Double = 30) throws -> String {
        try waitFor(assignment, seconds: seconds) { $0.split(separator: "\n").contains(Substring(assignment)) }
    }
}
