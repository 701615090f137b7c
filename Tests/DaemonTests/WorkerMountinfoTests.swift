import Foundation
import MiniAppJSON
import MiniAppModel
import MiniAppTestSupport
import Testing

/// What a worker learns about the host from its mount table: a real program in a real jail
/// reads its /proc/self/mountinfo and /proc/self/mounts (and tries /sys, which would name a
/// loop device's backing file, the volume image's host path). No host path of the daemon's
/// appears there except where the kernel fixes it: the root field of the `/app` and `/sdk`
/// binds is their directory's path from the root of the state filesystem (README, "The host's
/// identity in /proc"). Everything else is checked: mount points, sources and options, the
/// /data volume (its own root `/`, a loop device, never its image's path).
@Suite(.serialized) struct WorkerMountinfoTests {
    static let probe = """
        const fs = require('fs');
        MiniAppBridge.keepAlive(true);
        let sys = 'absent';
        try { fs.readdirSync('/sys/block'); sys = 'readable'; } catch (e) { sys = e.code; }
        const mountinfo = fs.readFileSync('/proc/self/mountinfo', 'utf8');
        let mounts = '';
        try { mounts = fs.readFileSync('/proc/self/mounts', 'utf8'); } catch (e) { mounts = e.code; }
        MiniAppBridge.call('ui.toast', { message: JSON.stringify({ mountinfo, mounts, sys }) });
        """

    @Test func aWorkersMountTableNamesNoHostPath() throws {
        let world = try E2EWorld()
        let id = E2EPartner.programId("mountinfo")
        let daemon = try world.daemon()
        defer { daemon.stop() }
        let host = try E2EHost(daemon)
        host.answers["ui.toast"] = { _ in [:] }
        try host.call("bridge.provide", ["methods": ["ui.toast"]])
        let zip = try world.package(E2EWorld.manifest(id: id, entry: "main.js", permissions: ["ui"]), files: ["main.js": Self.probe])
        try host.call("packages.install", ["path": .string(zip)])
        let wid = try #require(try host.call("programs.launch", ["id": .string(id)])["workerId"]?.stringValue)
        let report = try host.report(from: id)
        try host.call("programs.stop", ["workerId": .string(wid)])
        let mountinfo = report["mountinfo"]?.stringValue ?? "", mounts = report["mounts"]?.stringValue ?? ""
        let lines = mountinfo.split(separator: "\n").map { $0.split(separator: " ", omittingEmptySubsequences: false).map(String.init) }
        #expect(lines.count > 5 && lines.allSatisfy { $0.count > 8 }, "\(mountinfo)")
        // The root field of /app and /sdk is the one place left; every other field of every line is checked.
        let fixedByKernel: Set<String> = ["/app", "/sdk"]
        let checked = lines.map { f in f.enumerated().filter { !($0.offset == 3 && fixedByKernel.contains(f[4])) }.map(\.element).joined(separator: " ") }
        let hostPaths = [daemon.dir.path, world.dir.path, daemon.dir.file("state"), "/volumes/", ".ext4", "/tmp/ma-"]
        for text in checked + [mounts] {
            for hostPath in hostPaths { #expect(!text.contains(hostPath), "the worker's mount table names \(hostPath): \(text)") }
        }
        let data = lines.first { $0[4] == "/data" }
        #expect(data?[3] == "/" && data?.last(where: { $0.hasPrefix("/dev/loop") }) != nil, "\(String(describing: data))")
        #expect(report["sys"] == "ENOENT", "\(String(describing: report["sys"]))")
    }
}
