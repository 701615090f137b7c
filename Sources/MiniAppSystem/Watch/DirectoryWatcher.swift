import CNetShims
import Glibc
import Synchronization

/// Calls a handler after the entries of one directory changed, on a small thread of its own
/// (inotify(7); never the reactor's loop thread: the handler reads files).
///
/// The watch exists from `init` on and events queue in the kernel until `start`: read the
/// directory between the two and no change can slip through unnoticed.
///
/// Watched: the directory (files created, written and closed, renamed in or out, deleted,
/// attributes changed) and its parent, for the directory itself being created, removed or
/// replaced by a rename — so a directory that does not exist yet, or is swapped whole by a
/// deploy tool, is still followed. Events are debounced: the handler runs once `debounceMillis`
/// passed without a further event, and at the latest `maxDelayMillis` after the first one (a
/// directory that never stops changing is still re-read). An inotify queue overflow counts as
/// a change (events were lost, so re-read).
public final class DirectoryWatcher: Sendable {
    private let directory: String
    private let parent: String
    private let name: String
    private let debounceMillis: Int
    private let maxDelayMillis: Int
    private let accepts: @Sendable (String) -> Bool
    private let inotifyFD: Int32
    /// The directory's watch descriptor at `init` (-1 while it does not exist).
    private let initialDirWatch: Int32
    private let stopFD: Int32
    private let stopped = Atomic<Bool>(false)
    private let exited = CountingSemaphore()
    private let running = Atomic<Bool>(false)

    /// Sets up the watch (`inotify_init1`, `inotify_add_watch`); `start` begins delivering.
    /// `accepts` filters events by entry name (e.g. only `*.json`); events without a name always
    /// count. Throws when inotify is unavailable or over its limits
    /// (`fs.inotify.max_user_instances`, `max_user_watches`) or the parent directory is missing.
    public init(
        directory: String, debounceMillis: Int = 200, maxDelayMillis: Int = 1000,
        accepts: @escaping @Sendable (String) -> Bool = { _ in true }
    ) throws(SystemError) {
        let trimmed = directory.count > 1 && directory.hasSuffix("/") ? String(directory.dropLast()) : directory
        self.directory = trimmed
        let slash = trimmed.lastIndex(of: "/")
        parent = slash.map { $0 == trimmed.startIndex ? "/" : String(trimmed[..<$0]) } ?? "."
        name = slash.map { String(trimmed[trimmed.index(after: $0)...]) } ?? trimmed
        self.debounceMillis = debounceMillis
        self.maxDelayMillis = maxDelayMillis
        self.accepts = accepts
        let ifd = inotify_init1(Int32(IN_CLOEXEC | IN_NONBLOCK))
        guard ifd >= 0 else { throw .current("inotify_init1") }
        let efd = cnet_eventfd()
        guard efd >= 0 else {
            let e = SystemError.current("eventfd")
            close(ifd)
            throw e
        }
        inotifyFD = ifd
        stopFD = efd
        // The parent must be watchable; the directory itself may appear later.
        guard inotify_add_watch(ifd, parent, Self.parentMask) >= 0 else {
            let e = SystemError.current("inotify_add_watch", detail: parent)
            close(ifd)
            close(efd)
            throw e
        }
        initialDirWatch = inotify_add_watch(ifd, trimmed, Self.directoryMask)
    }

    deinit {
        close(inotifyFD)
        close(stopFD)
    }

    /// Starts the watch thread, which calls `onChange` after each (debounced) change, including
    /// those since `init`. Once only.
    public func start(_ onChange: @escaping @Sendable () -> Void) {
        guard !running.exchange(true, ordering: .acquiringAndReleasing) else { return }
        startThread(name: "miniappd-watch") { [self] in
            loop(onChange)
            exited.signal()
        }
    }

    /// Stops the thread and waits until it exited (a handler that is running finishes first).
    public func stop() {
        guard !stopped.exchange(true, ordering: .acquiringAndReleasing) else { return }
        var one: UInt64 = 1
        _ = write(stopFD, &one, 8)
        if running.load(ordering: .acquiring) { exited.wait() }
    }

    // MARK: the thread

    static let parentMask = UInt32(IN_CREATE | IN_DELETE | IN_MOVED_TO | IN_MOVED_FROM | IN_ONLYDIR)
    static let directoryMask = UInt32(
        IN_CLOSE_WRITE | IN_CREATE | IN_DELETE | IN_MOVED_TO | IN_MOVED_FROM | IN_ATTRIB | IN_DELETE_SELF | IN_MOVE_SELF
            | IN_ONLYDIR)

    private func loop(_ onChange: @Sendable () -> Void) {
        var dirWatch = initialDirWatch
        var first: UInt64?
        var last: UInt64 = 0
        while !stopped.load(ordering: .acquiring) {
            var fds = [pollfd(fd: inotifyFD, events: Int16(POLLIN), revents: 0), pollfd(fd: stopFD, events: Int16(POLLIN), revents: 0)]
            let timeout = first.map { Self.millisUntil(min(last + ms(debounceMillis), $0 + ms(maxDelayMillis))) } ?? -1
            let n = poll(&fds, 2, timeout)
            if n < 0 && errno != EINTR { return }
            if fds[1].revents != 0 { return }
            if fds[0].revents != 0, drain(&dirWatch) {
                last = Self.now()
                if first == nil { first = last }
            }
            if let f = first, Self.now() >= min(last + ms(debounceMillis), f + ms(maxDelayMillis)) {
                first = nil
                onChange()
            }
        }
    }

    /// Reads every queued event; true if one of them counts as a change. Re-adds the directory
    /// watch when the directory (re)appears.
    private func drain(_ dirWatch: inout Int32) -> Bool {
        var changed = false
        var buffer = [UInt8](repeating: 0, count: 16 << 10)
        while true {
            let n = buffer.withUnsafeMutableBytes { read(inotifyFD, $0.baseAddress, $0.count) }
            if n <= 0 { return changed }  // EAGAIN: drained
            var offset = 0
            let header = MemoryLayout<inotify_event>.size
            while offset + header <= n {
                let (wd, mask, len) = buffer.withUnsafeBytes { raw in
                    (
                        raw.loadUnaligned(fromByteOffset: offset, as: Int32.self),
                        raw.loadUnaligned(fromByteOffset: offset + 4, as: UInt32.self),
                        Int(raw.loadUnaligned(fromByteOffset: offset + 12, as: UInt32.self))
                    )
                }
                let nameBytes = buffer[(offset + header)..<min(n, offset + header + len)].prefix { $0 != 0 }
                let entry = String(decoding: nameBytes, as: UTF8.self)
                offset += header + len
                if mask & UInt32(IN_Q_OVERFLOW) != 0 {
                    changed = true
                } else if wd == dirWatch {
                    if mask & UInt32(IN_IGNORED) != 0 { dirWatch = -1 }  // the directory went away
                    if entry.isEmpty || accepts(entry) { changed = true }
                } else if entry == name {
                    // The directory itself was created, removed or renamed in/out of the parent.
                    dirWatch = inotify_add_watch(inotifyFD, directory, Self.directoryMask)
                    changed = true
                }
            }
        }
    }

    private func ms(_ m: Int) -> UInt64 { UInt64(m) * 1_000_000 }

    private static func now() -> UInt64 {
        var ts = timespec()
        clock_gettime(CLOCK_MONOTONIC, &ts)
        return UInt64(ts.tv_sec) * 1_000_000_000 + UInt64(ts.tv_nsec)
    }

    private static func millisUntil(_ deadline: UInt64) -> Int32 {
        let t = now()
        return deadline <= t ? 0 : Int32(clamping: (deadline - t + 999_999) / 1_000_000)
    }
}
