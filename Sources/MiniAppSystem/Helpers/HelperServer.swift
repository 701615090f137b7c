public import MiniAppModel
internal import CHelperShims
internal import Synchronization
import Glibc

/// The helper's end (runs in `miniappd-helper`): reads the hello from fd 3, confines itself
/// (`confine`), reports ready, then serves requests until the daemon closes the socket.
public enum HelperServer {
    /// Prints `text` on stderr and exits 64 (a helper started by hand).
    public static func usage(_ text: String) -> Never {
        _ = write(2, text, text.utf8.count)
        exit(64)
    }

    /// The socket the daemon passes.
    public static let socketFD: Int32 = 3
    /// Largest request payload the helper accepts (a net request body is at most a few MiB).
    public static let maxRequestPayload = 64 << 20

    /// Extra Landlock trees of a role: (descriptor, may write beneath it).
    public typealias Trees = [(fd: Int32, fill: Bool)]

    /// Confines the process as `hello` says (plus `trees`), or exits with status 70 after
    /// telling the daemon why.
    public static func helloAndConfine(trees: Trees) -> HelperHello {
        var reader = HelperFrameReader(maxPayload: 1 << 20, maxFields: 1024)
        var buf = [UInt8](repeating: 0, count: 64 << 10)
        while true {
            if let f = try? reader.next() {
                guard let hello = try? HelperHello(f) else { fail("the first frame was not a valid hello") }
                do { try confine(hello, trees: trees) } catch { fail(error.message) }
                return hello
            }
            let n = buf.withUnsafeMutableBytes { read(socketFD, $0.baseAddress, $0.count) }
            if n < 0 && errno == EINTR { continue }
            if n <= 0 { exit(0) }
            buf.withUnsafeBytes { reader.append(UnsafeRawBufferPointer(rebasing: $0[0..<n])) }
        }
    }

    private static func fail(_ message: String) -> Never {
        try? HelperConnection.writeFrame(socketFD, HelperFailure(kind: "confine", message: message).frame(id: 0))
        exit(70)
    }

    /// The whole jail, in order (see chelper.h): namespaces, bounding set, ids, caps,
    /// no_new_privs, Landlock (read-only `readPaths`, `trees`, TCP connect to `connectPorts`
    /// only), seccomp. Then reports ready.
    static func confine(_ hello: HelperHello, trees: Trees) throws(MiniAppError) {
        let abi = Int(chelper_landlock_abi())
        var rules: [chelper_rule] = []
        var opened: [Int32] = []
        defer { opened.forEach { close($0) } }
        for p in hello.readPaths {
            let fd = open(p, 0o10000000 | O_CLOEXEC)  // O_PATH (not exported to Swift by Glibc)
            if fd < 0 { continue }  // absent on this system (e.g. /etc/pki on Debian)
            opened.append(fd)
            rules.append(chelper_rule(fd: fd, access: chelper_landlock_fs_read(p.hasPrefix("/usr/lib") || p.hasPrefix("/lib") ? 1 : 0)))
        }
        for t in trees { rules.append(chelper_rule(fd: t.fd, access: t.fill ? chelper_landlock_fs_fill(Int32(abi)) : chelper_landlock_fs_read(0))) }
        var err: Int32 = 0
        let filters = hello.seccompFilters.map { f -> UnsafeMutablePointer<UInt8> in
            let p = UnsafeMutablePointer<UInt8>.allocate(capacity: f.count)
            p.initialize(from: f, count: f.count)
            return p
        }
        defer { filters.forEach { $0.deallocate() } }
        let lengths = hello.seccompFilters.map { UInt32($0.count) }
        let step: Int32 = rules.withUnsafeBufferPointer { r in
            hello.connectPorts.withUnsafeBufferPointer { ports in
                filters.map { UnsafePointer<UInt8>?($0) }.withUnsafeBufferPointer { fp in
                    lengths.withUnsafeBufferPointer { lp in
                        var c = chelper_confinement(
                            uid: hello.uid, gid: hello.gid, isolate_network: hello.isolateNetwork ? 1 : 0, landlock_abi: Int32(abi),
                            rules: r.baseAddress, rule_count: UInt32(r.count), ports: ports.baseAddress, port_count: UInt32(ports.count),
                            filters: fp.baseAddress, filter_lengths: lp.baseAddress, filter_count: UInt32(fp.count))
                        return chelper_confine(&c, &err)
                    }
                }
            }
        }
        guard step == 0 else {
            let names = ["none", "userns", "unshare", "bounding set", "ids", "caps", "no_new_privs", "Landlock", "seccomp"]
            let name = Int(step) < names.count ? names[Int(step)] : "step \(step)"
            throw MiniAppError(.hostUnavailable, "confining the helper failed at \(name): \(SystemError("confine", errno: err))")
        }
        try HelperConnection.writeFrame(socketFD, HelperReady(landlockABI: abi, pid: getpid()).frame())
    }

    /// Serves requests: `handle` is called for each frame (on a new thread when `concurrent`)
    /// and its reply written back. Returns when the daemon closes the socket.
    public static func serve(concurrent: Bool, _ handle: @escaping @Sendable (HelperFrame) -> HelperFrame) {
        let writer = Mutex(())
        // The daemon is trusted: a malformed frame is a bug, and ends the service like end of file.
        _ = HelperConnection.readFrames(socketFD, maxPayload: maxRequestPayload) { frame in
            let job: @Sendable () -> Void = {
                let reply = handle(frame)
                writer.withLock { _ in _ = try? HelperConnection.writeFrame(socketFD, reply) }
            }
            if concurrent { startThread(name: "helper-req", job) } else { job() }
        }
    }
}
