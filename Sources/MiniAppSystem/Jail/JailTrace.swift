import CJail
import Glibc
import Synchronization

/// Profile of one worker's life, on only when `MINIAPP_JAIL_TRACE` is set: named timestamps from
/// the supervisor side plus the end time of each step of the child (written by CJail into
/// shared memory), printed as one line on stderr when the worker has been finalized:
///
///     jail-trace w-bench.true-1-7 validate=+3 cgroup_create=+410 … (µs since spawn began)
///
/// Off, it costs one branch per mark: nothing is allocated and the child writes nothing.
public final class JailTrace: Sendable {
    /// Whether tracing is on for this process (read once).
    public static let enabled = getenv("MINIAPP_JAIL_TRACE") != nil

    private let name: String
    private let marks = Mutex<[(String, UInt64)]>([])

    /// A trace named `name`, or nil when tracing is off.
    public static func start(_ name: String) -> JailTrace? { enabled ? JailTrace(name) : nil }

    private init(_ name: String) {
        self.name = name
        mark("start")
    }

    /// Records that `label` happened now.
    public func mark(_ label: String) { mark(label, at: JailEventLoop.now()) }

    func mark(_ label: String, at ns: UInt64) { marks.withLock { $0.append((label, ns)) } }

    /// Adds the child's step times (0 = step not run) from the shared slots.
    func childSteps(_ slots: UnsafePointer<UInt64>) {
        for i in 0..<Int(CJAIL_STEP_COUNT.rawValue) where slots[i] != 0 {
            mark("child." + (i == 0 ? "running" : JailStep.name(Int32(i))), at: slots[i])
        }
        let spawner = [(CJAIL_TRACE_SPAWNER_RECEIVED, "received"), (CJAIL_TRACE_SPAWNER_CLONED, "cloned"),
                       (CJAIL_TRACE_SPAWNER_ATTACHED, "attached"), (CJAIL_TRACE_SPAWNER_GO, "go")]
        for (slot, name) in spawner where slots[Int(slot.rawValue)] != 0 { mark("spawner." + name, at: slots[Int(slot.rawValue)]) }
    }

    /// Prints the line (marks in time order, µs since start, each with the gap to the previous).
    public func emit() {
        let m = marks.withLock { $0 }.sorted { $0.1 < $1.1 }
        guard let t0 = m.first?.1 else { return }
        var prev = t0
        var line = "jail-trace \(name)"
        for (label, t) in m.dropFirst() {
            line += " \(label)=+\((t - t0) / 1000)(\((t - prev) / 1000))"
            prev = t
        }
        let bytes = Array((line + "\n").utf8)
        _ = bytes.withUnsafeBytes { write(2, $0.baseAddress, $0.count) }
    }

    /// Shared memory the child writes its step times into (`cjail_spec.trace`).
    final class ChildSlots {
        let base: UnsafeMutablePointer<UInt64>
        /// memfd of the slots: the spawner maps it too, so the child's writes reach us.
        let fd: Int32
        private let size = Int(CJAIL_TRACE_SLOTS.rawValue) * 8

        init?() {
            fd = cjail_trace_memfd("miniapp-trace")
            guard fd >= 0 else { return nil }
            let p = mmap(nil, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0)
            guard let p, p != MAP_FAILED else { close(fd); return nil }
            base = p.bindMemory(to: UInt64.self, capacity: Int(CJAIL_TRACE_SLOTS.rawValue))
        }

        deinit {
            munmap(base, size)
            close(fd)
        }
    }
}
