import Foundation
import MiniAppJSON
import MiniAppModel
import MiniAppSystem
import MiniAppTestSupport
import Testing

/// /data limits for real: each program's /data is its own ext4 volume (limits.dataBytes,
/// limits.dataInodes), a program that fills it gets ENOSPC there and nowhere else, neighbours
/// and installs carry on, the data outlives the daemon, an override lowers the limit, and the
/// daemon's reserve on the state filesystem refuses what would eat into it.
@Suite(.serialized) struct DataVolumeTests {
    /// Node: what the program could write to /data, by mode (its first argument), reported as a
    /// `ui.toast`; then it stays alive until stopped.
    ///  - bytes: 1 MiB writes to /data/big until one fails;
    ///  - inodes: empty files until one cannot be made;
    ///  - small: one 1 MiB file;
    ///  - check: the size of /data/big (-1: absent).
    /// Every report carries the mount root of /data as /proc/self/mountinfo shows it.
    static let dataProbe = """
        const fs = require('fs');
        MiniAppBridge.keepAlive(true);
        const report = (o) => MiniAppBridge.call('ui.toast', { message: JSON.stringify(o) });
        const mode = process.argv[2];
        const line = fs.readFileSync('/proc/self/mountinfo', 'utf8').split('\\n').find((l) => l.split(' ')[4] === '/data');
        const out = { mode, dataRoot: line ? line.split(' ')[3] : null, written: 0, files: 0, code: null };
        try {
          if (mode === 'bytes') {
            const buf = Buffer.alloc(1 << 20, 7);
            const fd = fs.openSync('/data/big', 'w');
            try { for (let i = 0; i < 256; i++) out.written += fs.writeSync(fd, buf); fs.fsyncSync(fd); }
            catch (e) { out.code = e.code; }
            fs.closeSync(fd);
          } else if (mode === 'inodes') {
            try { for (; out.files < 100000; out.files++) fs.writeFileSync('/data/f' + out.files, ''); }
            catch (e) { out.code = e.code; }
          } else if (mode === 'small') {
            fs.writeFileSync('/data/small', Buffer.alloc(1 << 20, 1));
            out.written = fs.statSync('/data/small').size;
          } else {
            out.written = fs.existsSync('/data/big') ? fs.statSync('/data/big').size : -1;
            out.small = fs.existsSync('/data/small') ? fs.statSync('/data/small').size : -1;
          }
        } catch (e) { out.code = e.code; }
        report(out);
        """

    static let limitBytes = 8 << 20
    static let limitInodes = 64

    /// A world whose jail.json gives every program an 8 MiB, 64-file /data.
    static func world() throws -> E2EWorld {
        let world = try E2EWorld()
        let path = world.policyDir + "/jail.json"
        var text = try String(contentsOfFile: path, encoding: .utf8)
        text = text.replacingOccurrences(of: "\"dataBytes\": 67108864", with: "\"dataBytes\": \(limitBytes)")
        text = text.replacingOccurrences(of: "\"dataInodes\": 16384", with: "\"dataInodes\": \(limitInodes)")
        try text.write(toFile: path, atomically: true, encoding: .utf8)
        return world
    }

    /// A host that serves the programs' reports (`ui.toast`).
    static func host(_ daemon: DaemonHarness) throws -> E2EHost {
        let host = try E2EHost(daemon)
        host.answers["ui.toast"] = { _ in [:] }
        try host.call("bridge.provide", ["methods": ["ui.toast"]])
        return host
    }

    static func install(_ world: E2EWorld, _ host: E2EHost, _ id: String) throws {
        let zip = try world.package(E2EWorld.manifest(id: id, entry: "main.js", permissions: ["ui"]), files: ["main.js": dataProbe])
        try host.call("packages.install", ["path": .string(zip)])
    }

    /// Launches `id` in `mode`, returns its worker id and report.
    static func run(_ host: E2EHost, _ id: String, _ mode: String, report: Int = 1) throws -> (String, JSONObject) {
        let wid = try #require(try host.call("programs.launch", ["id": .string(id), "args": [.string(mode)]])["workerId"]?.stringValue)
        return (wid, try host.report(from: id, number: report))
    }

    static func stop(_ host: E2EHost, _ wid: String) throws {
        try host.call("programs.stop", ["workerId": .string(wid)])
        _ = try host.exited(wid)
    }

    static func isFull(_ code: JSONValue?) -> Bool { code == "ENOSPC" || code == "EDQUOT" }

    @Test func aProgramThatFillsItsDataGetsENOSPCAndNoNeighbourNoticesAndTheDataOutlivesTheDaemon() throws {
        let world = try Self.world()
        let filler = E2EPartner.programId("filler"), neighbour = E2EPartner.programId("neighbour")
        let metricsSocket = world.dir.file("metrics.sock")
        let daemon = try world.daemon(["--metrics-listen", "unix:\(metricsSocket)"])
        defer { daemon.stop() }
        let host = try Self.host(daemon)
        try Self.install(world, host, filler)
        try Self.install(world, host, neighbour)

        let (wf, full) = try Self.run(host, filler, "bytes")
        let written = full["written"]?.intValue ?? 0
        #expect(Self.isFull(full["code"]), "\(full)")
        #expect(written > Self.limitBytes / 2 && written <= Self.limitBytes, "\(full)")
        // mountinfo names no host path for /data: the volume's own root, not STATE/data/<id>.
        #expect(full["dataRoot"] == "/", "\(full)")

        // Visible to the operator while it runs: programs.list, miniapp top, metrics.
        let entry = try host.call("programs.list")["workers"]?.arrayValue?.first { $0["workerId"]?.stringValue == wf }
        #expect((entry?["dataBytes"]?.intValue ?? 0) >= Int64(written), "\(String(describing: entry))")
        #expect((entry?["dataCapacityBytes"]?.intValue ?? .max) <= Int64(Self.limitBytes), "\(String(describing: entry))")
        #expect((entry?["dataCapacityInodes"]?.intValue ?? 0) >= Int64(Self.limitInodes), "\(String(describing: entry))")
        let top = try MiniAppTestSupport.run([DaemonCLITests.cli, "--socket", daemon.socket, "top", "--iterations", "1"])
        #expect(top.status == 0 && top.stdout.contains("DATA") && top.stdout.contains("M/"), "\(top.stdout)\(top.stderr)")
        let scrape = try MiniAppTestSupport.run(["/usr/bin/curl", "-s", "--max-time", "10", "--unix-socket", metricsSocket, "http://localhost/metrics"])
        #expect(scrape.stdout.contains("miniappd_data_bytes{program=\"\(filler)\"}"), "\(scrape.stdout)")

        // The neighbour launches and writes; the daemon still installs.
        let (wn, small) = try Self.run(host, neighbour, "small")
        #expect(small["written"] == .int(1 << 20) && small["code"] == .null, "\(small)")
        try Self.install(world, host, E2EPartner.programId("after-fill"))
        try Self.stop(host, wf)
        try Self.stop(host, wn)
        #expect(daemon.stop() == 0)

        // The volume was unmounted at shutdown; the next daemon mounts it with the data kept.
        let mounts = try String(contentsOfFile: "/proc/self/mountinfo", encoding: .utf8)
        #expect(!mounts.contains(daemon.dir.file("state")), "\(mounts)")
        let again = try world.daemon(stateDir: daemon.dir.file("state"))
        defer { again.stop() }
        let host2 = try Self.host(again)
        let (w2, kept) = try Self.run(host2, filler, "check")
        #expect(kept["written"]?.intValue == Int64(written), "\(kept)")
        try Self.stop(host2, w2)
    }

    @Test func theInodeLimitHoldsToo() throws {
        let world = try Self.world()
        let id = E2EPartner.programId("inodes")
        let daemon = try world.daemon()
        defer { daemon.stop() }
        let host = try Self.host(daemon)
        try Self.install(world, host, id)
        let (w, r) = try Self.run(host, id, "inodes")
        let files = r["files"]?.intValue ?? 0
        #expect(Self.isFull(r["code"]), "\(r)")
        // ext4 rounds the inode table up to whole blocks: at least the limit, never far past it.
        #expect(files >= Int64(Self.limitInodes) && files <= Int64(Self.limitInodes) * 2, "\(r)")
        try Self.stop(host, w)
    }

    @Test func anOverrideLowersTheLimitAndAWideningOneIsRefused() throws {
        let world = try Self.world()
        let lowered = E2EPartner.programId("lowered"), widened = E2EPartner.programId("widened")
        _ = try world.dir.write("policies/programs/\(lowered).json", #"{"limits": {"dataBytes": 5242880}}"#)
        _ = try world.dir.write("policies/programs/\(widened).json", #"{"limits": {"dataBytes": 1073741824}}"#)
        let daemon = try world.daemon()
        defer { daemon.stop() }
        let host = try Self.host(daemon)
        try Self.install(world, host, lowered)
        try Self.install(world, host, widened)
        let (w, r) = try Self.run(host, lowered, "bytes")
        #expect(Self.isFull(r["code"]) && (r["written"]?.intValue ?? .max) <= 5_242_880, "\(r)")
        try Self.stop(host, w)
        let refused = try host.rawCall("programs.launch", ["id": .string(widened), "args": ["bytes"]])
        #expect(refused["error"]?["message"]?.stringValue?.contains("limits.dataBytes") == true, "\(refused)")
        // `policy explain` shows the effective value and whose it is.
        let explained = try MiniAppTestSupport.run([
            DaemonCLITests.cli, "policy", "explain", lowered, "--policy-dir", world.policyDir, "--state-dir", daemon.dir.file("state"), "--json",
        ])
        let limits = (try? JSONValue.parse(explained.stdout))?["jail"]?["limits"]?.arrayValue ?? []
        let data = limits.first { $0["name"] == "dataBytes" }
        #expect(data?["value"] == "5242880" && data?["from"]?.stringValue?.hasPrefix("program") == true, "\(explained.stdout)\(explained.stderr)")
    }

    @Test func theReserveRefusesNewVolumesAndInstallsButNotExistingVolumes() throws {
        let world = try Self.world()
        let old = E2EPartner.programId("old"), new = E2EPartner.programId("new")
        let first = try world.daemon()
        let host = try Self.host(first)
        try Self.install(world, host, old)
        try Self.install(world, host, new)
        let (w, _) = try Self.run(host, old, "small")
        try Self.stop(host, w)
        #expect(first.stop() == 0)

        // A reserve larger than any disk: nothing new may be taken from the state filesystem.
        let config = try world.dir.write("reserve.json", #"{"dataReserveBytes": 17592186044416}"#)
        let daemon = try world.daemon(["--config", config], stateDir: first.dir.file("state"))
        defer { daemon.stop() }
        let host2 = try Self.host(daemon)
        let launch = try host2.rawCall("programs.launch", ["id": .string(new), "args": ["small"]])
        #expect(launch["error"]?["data"]?["code"] == "QUOTA_EXCEEDED" && launch["error"]?["data"]?["reason"] == "STATE_RESERVE", "\(launch)")
        #expect(launch["error"]?["message"]?.stringValue?.contains("dataReserveBytes") == true, "\(launch)")
        let zip = try world.package(E2EWorld.manifest(id: E2EPartner.programId("late"), entry: "main.js", permissions: ["ui"]), files: ["main.js": Self.dataProbe])
        let install = try host2.rawCall("packages.install", ["path": .string(zip)])
        #expect(install["error"]?["data"]?["code"] == "QUOTA_EXCEEDED", "\(install)")
        // A program whose volume exists takes nothing new: it still launches.
        let (w2, r) = try Self.run(host2, old, "check")
        #expect(r["code"] == .null, "\(r)")
        try Self.stop(host2, w2)
    }

    /// Rootless mode cannot mount a volume: it says so (daemon.info, the start's log, top)
    /// instead of pretending, and /data stays a plain directory.
    @Test func rootlessModeSaysTheLimitsAreOff() throws {
        let world = try Self.world()
        let daemon = try world.daemon(["--worker-mode", "rootless"])
        defer { daemon.stop() }
        let info = try daemon.client().call("daemon.info")
        #expect(info["mode"] == "rootless")
        #expect(info["dataLimits"]?.stringValue?.hasPrefix("off") == true, "\(info)")
        #expect(daemon.logText().contains("NOT enforced"), "\(daemon.logText())")
        let top = try MiniAppTestSupport.run([DaemonCLITests.cli, "--socket", daemon.socket, "top", "--iterations", "1"])
        #expect(top.stdout.contains("/data limits off"), "\(top.stdout)")
        let privileged = try world.daemon()
        defer { privileged.stop() }
        #expect(try privileged.client().call("daemon.info")["dataLimits"] == "enforced")
    }

    // MARK: - A changed limit applies to an existing volume; a damaged image is checked first

    /// The program's volume image in `stateDir`.
    static func image(_ stateDir: String, _ id: String) -> String { "\(stateDir)/volumes/\(id).ext4" }

    static func imageSize(_ stateDir: String, _ id: String) throws -> Int64 {
        Int64(try #require(try FileManager.default.attributesOfItem(atPath: image(stateDir, id))[.size] as? Int))
    }

    /// Sets (nil: removes) the program's `limits` override.
    static func override(_ world: E2EWorld, _ id: String, _ limits: String?) throws {
        let path = world.dir.file("policies/programs/\(id).json")
        if let limits { _ = try world.dir.write("policies/programs/\(id).json", #"{"limits": "# + limits + "}") } else { unlink(path) }
    }

    /// A world and a program `name` whose volume a first daemon made (see `firstSession`); the
    /// state directory lives as long as the returned harness.
    static func volumeMade(_ name: String, override limits: String? = nil) throws -> (E2EWorld, String, DaemonHarness, String) {
        let world = try Self.world()
        let id = E2EPartner.programId(name)
        try Self.override(world, id, limits)
        let first = try Self.firstSession(world, id)
        return (world, id, first, first.dir.file("state"))
    }

    /// A first daemon that installs `id` and runs it once in `small` mode, then stops: it owns
    /// the state directory the next sessions use (kept while the returned harness lives).
    static func firstSession(_ world: E2EWorld, _ id: String) throws -> DaemonHarness {
        let daemon = try world.daemon()
        let host = try Self.host(daemon)
        try Self.install(world, host, id)
        let (w, r) = try Self.run(host, id, "small")
        #expect(r["written"] == .int(1 << 20), "\(r)")
        try Self.stop(host, w)
        #expect(daemon.stop() == 0)
        try Self.released(daemon.dir.file("state"), id)
        return daemon
    }

    /// Waits until the stopped workers' mounts of the volume and its loop device are gone, so
    /// the next daemon finds the image unmounted however loaded the machine is (it would
    /// otherwise refuse a changed limit as VOLUME_BUSY, rightly, and the test would measure
    /// the machine's load).
    static func released(_ stateDir: String, _ id: String) throws {
        let a = VolumeImage.settledAttachment(image(stateDir, id), millis: 60_000)
        try #require(a == .none, "the volume of \(id) is still held: \(a)")
    }

    /// One daemon on `stateDir`: launches `id` in `mode` and stops it again; the launch's
    /// answer (`result` or `error`) and the report when it ran.
    static func session(_ world: E2EWorld, stateDir: String, _ id: String, _ mode: String, args: [String] = [],
                        releasedAfter: Bool = true) throws -> (JSONObject, JSONObject?) {
        let daemon = try world.daemon(args, stateDir: stateDir)
        defer { daemon.stop() }
        let host = try Self.host(daemon)
        let answer = try host.rawCall("programs.launch", ["id": .string(id), "args": [.string(mode)]])
        guard let wid = answer["result"]?["workerId"]?.stringValue else { return (answer, nil) }
        let report = try host.report(from: id)
        try Self.stop(host, wid)
        #expect(daemon.stop() == 0)
        if releasedAfter { try Self.released(stateDir, id) }
        return (answer, report)
    }

    @Test func aLoweredOrRaisedLimitResizesTheVolumeAtTheNextStartAndDataThatNoLongerFitsIsRefused() throws {
        let (world, id, first, state) = try Self.volumeMade("resized")
        #expect(try Self.imageSize(state, id) == Int64(Self.limitBytes))

        // Lowered to 5 MiB: shrunk with the data kept; a fill stops at the new size.
        try Self.override(world, id, #"{"dataBytes": 5242880}"#)
        let (_, lowered) = try Self.session(world, stateDir: state, id, "bytes")
        #expect(try Self.imageSize(state, id) == 5 << 20)
        #expect(Self.isFull(lowered?["code"]) && (lowered?["written"]?.intValue ?? .max) <= (5 << 20) - (1 << 20), "\(String(describing: lowered))")
        let filled = lowered?["written"]?.intValue ?? 0

        // Raised back to 8 MiB: grown, preallocated, the data kept.
        try Self.override(world, id, nil)
        let (_, raised) = try Self.session(world, stateDir: state, id, "check")
        #expect(try Self.imageSize(state, id) == Int64(Self.limitBytes))
        #expect(raised?["written"]?.intValue == filled && raised?["small"] == .int(1 << 20), "\(String(describing: raised))")
        let blocks = try MiniAppTestSupport.run(["/usr/bin/stat", "-c", "%b %B", Self.image(state, id)]).stdout.split(separator: " ").compactMap { Int64($0.trimmingCharacters(in: .whitespacesAndNewlines)) }
        #expect(blocks.count == 2 && blocks[0] * blocks[1] >= Int64(Self.limitBytes), "preallocated: \(blocks)")

        // Lowered below what the data needs: refused, the volume and its data untouched.
        try Self.override(world, id, #"{"dataBytes": 4194304}"#)
        let (refused, none) = try Self.session(world, stateDir: state, id, "check")
        #expect(none == nil && refused["error"]?["data"]?["code"] == "QUOTA_EXCEEDED" && refused["error"]?["data"]?["reason"] == "DATA_LIMIT", "\(refused)")
        #expect(refused["error"]?["message"]?.stringValue?.contains("Raise limits.dataBytes to at least") == true, "\(refused)")
        #expect(try Self.imageSize(state, id) == Int64(Self.limitBytes))
        try Self.override(world, id, nil)
        let (_, kept) = try Self.session(world, stateDir: state, id, "check")
        #expect(kept?["written"]?.intValue == filled && kept?["small"] == .int(1 << 20), "\(String(describing: kept))")
        withExtendedLifetime(first) {}
    }

    @Test func aLoweredInodeLimitIsRefusedNotIgnored() throws {
        let (world, id, first, state) = try Self.volumeMade("fewer-files")
        try Self.override(world, id, #"{"dataInodes": 16}"#)
        let (refused, none) = try Self.session(world, stateDir: state, id, "check")
        #expect(none == nil && refused["error"]?["data"]?["code"] == "QUOTA_EXCEEDED" && refused["error"]?["data"]?["reason"] == "DATA_INODES", "\(refused)")
        #expect(refused["error"]?["message"]?.stringValue?.contains("Raise limits.dataInodes to at least") == true, "\(refused)")
        withExtendedLifetime(first) {}
    }

    @Test func aDamagedImageIsRepairedOrRefusedBeforeMountingAndNeighboursCarryOn() throws {
        let world = try Self.world()
        let repaired = E2EPartner.programId("repaired"), refused = E2EPartner.programId("refused"), neighbour = E2EPartner.programId("untouched")
        let daemon = try world.daemon()
        let host = try Self.host(daemon)
        for id in [repaired, refused, neighbour] {
            try Self.install(world, host, id)
            let (w, r) = try Self.run(host, id, "small")
            #expect(r["written"] == .int(1 << 20), "\(r)")
            try Self.stop(host, w)
        }
        #expect(daemon.stop() == 0)
        let state = daemon.dir.file("state")
        // debugfs on an image the kernel still holds would write under a live filesystem:
        // wait until the stopped workers' mounts and loop devices are gone.
        for id in [repaired, refused] { try Self.released(state, id) }
        // What a crash or a crafted image leaves: a wrong link count (preen mode repairs it),
        // no root directory (it does not).
        for (id, request) in [(repaired, "sif /small links_count 7"), (refused, "clri <2>")] {
            let r = try MiniAppTestSupport.run(["/usr/sbin/debugfs", "-w", "-R", request, Self.image(state, id)])
            #expect(r.status == 0, "\(r.stderr)")
        }

        let again = try world.daemon(stateDir: state)
        defer { again.stop() }
        let host2 = try Self.host(again)
        let (wr, fixed) = try Self.run(host2, repaired, "check")
        #expect(fixed["small"] == .int(1 << 20), "\(fixed)")
        let answer = try host2.rawCall("programs.launch", ["id": .string(refused), "args": ["check"]])
        #expect(answer["error"]?["data"]?["code"] == "JAIL_SETUP_FAILED" && answer["error"]?["data"]?["check"] == "failed", "\(answer)")
        #expect(answer["error"]?["message"]?.stringValue?.contains("e2fsck") == true, "\(answer)")
        let mounts = try String(contentsOfFile: "/proc/self/mountinfo", encoding: .utf8)
        #expect(!mounts.contains("/data/\(refused) "), "\(mounts)")
        let (wn, fine) = try Self.run(host2, neighbour, "check", report: 1)
        #expect(fine["small"] == .int(1 << 20), "\(fine)")
        try Self.stop(host2, wr)
        try Self.stop(host2, wn)
    }

    @Test func aGrowthThatWouldEatTheReserveIsRefusedAndTheVolumeKeepsItsSize() throws {
        let (world, id, first, state) = try Self.volumeMade("no-room", override: #"{"dataBytes": 5242880}"#)
        #expect(try Self.imageSize(state, id) == 5 << 20)
        try Self.override(world, id, nil)
        let config = try world.dir.write("reserve.json", #"{"dataReserveBytes": 17592186044416}"#)
        let (refused, none) = try Self.session(world, stateDir: state, id, "check", args: ["--config", config])
        #expect(none == nil && refused["error"]?["data"]?["reason"] == "STATE_RESERVE", "\(refused)")
        #expect(refused["error"]?["message"]?.stringValue?.contains("growing the /data volume") == true, "\(refused)")
        #expect(try Self.imageSize(state, id) == 5 << 20)
        withExtendedLifetime(first) {}
    }

    /// An image the kernel still has mounted (here: by a process of the test's in a private
    /// mount namespace, as a worker's namespace that has not gone yet would hold it; private so
    /// that no daemon started meanwhile copies the mount into its own namespaces) is never
    /// checked or resized; a changed limit then refuses the launch (VOLUME_BUSY) instead of
    /// running at the old size, and applies once it is let go.
    @Test func aChangedLimitOnAVolumeStillMountedElsewhereIsRefusedUntilItIsLetGo() throws {
        let (world, id, first, state) = try Self.volumeMade("held")
        let elsewhere = first.dir.file("held-mount")
        try FileSystem.makeDirectory(elsewhere, mode: 0o700)
        let holder = try Processes.spawn([
            "/usr/bin/unshare", "-m", "--propagation", "private", "/bin/sh", "-c",
            "mount -o loop,nosuid,nodev \"$0\" \"$1\" && exec sleep 600", Self.image(state, id), elsewhere,
        ], files: [.devNull(0), .devNull(1), .devNull(2)])
        var held = true
        defer { if held { _ = Processes.signal(holder, Signal.kill); _ = Processes.waitForExit(holder) } }
        let deadline = Date().addingTimeInterval(30)
        while VolumeImage.attachment(Self.image(state, id)) != .mounted && Date() < deadline { usleep(20_000) }
        try #require(VolumeImage.attachment(Self.image(state, id)) == .mounted)
        try Self.override(world, id, #"{"dataBytes": 5242880}"#)
        let (busy, none) = try Self.session(world, stateDir: state, id, "check", releasedAfter: false)
        #expect(none == nil && busy["error"]?["data"]?["reason"] == "VOLUME_BUSY", "\(busy)")
        #expect(try Self.imageSize(state, id) == Int64(Self.limitBytes))
        _ = Processes.signal(holder, Signal.kill)
        _ = Processes.waitForExit(holder)
        held = false
        try Self.released(state, id)
        let (_, ran) = try Self.session(world, stateDir: state, id, "check")
        #expect(ran?["small"] == .int(1 << 20), "\(String(describing: ran))")
        #expect(try Self.imageSize(state, id) == 5 << 20)
        withExtendedLifetime(first) {}
    }
}
