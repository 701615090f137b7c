import Foundation
import MiniAppSystem
import MiniAppTestSupport
import Synchronization
import Testing

/// The inotify watch behind "a file change re-reads the partner grants".
@Suite struct DirectoryWatcherTests {
    final class Counter: Sendable {
        let calls = Atomic<Int>(0)
        var value: Int { calls.load(ordering: .acquiring) }
        func bump() { calls.add(1, ordering: .acquiringAndReleasing) }
        /// Waits until the count is above `n`; true if it got there within `seconds`.
        func waitAbove(_ n: Int, seconds: Double = 60) -> Bool { E2EProbe.eventually(seconds: seconds) { value > n } }
    }

    static func watch(_ dir: String, debounce: Int = 50) throws -> (DirectoryWatcher, Counter) {
        let counter = Counter()
        let w = try DirectoryWatcher(directory: dir, debounceMillis: debounce, maxDelayMillis: 500) {
            $0.hasSuffix(".json") && !$0.hasPrefix(".")
        }
        w.start { counter.bump() }
        return (w, counter)
    }

    @Test func writesRenamesAndDeletesAreNoticed() throws {
        let tmp = try TempDir("watch")
        try tmp.write("partners/a.json", "{}")
        let (w, c) = try Self.watch(tmp.file("partners"))
        defer { w.stop() }
        try tmp.write("partners/a.json", "{\"x\":1}")  // written in place (IN_CLOSE_WRITE)
        #expect(c.waitAbove(0))
        try tmp.write("partners/.b.json.tmp", "{}")
        #expect(rename(tmp.file("partners/.b.json.tmp"), tmp.file("partners/b.json")) == 0)  // atomic replace
        #expect(c.waitAbove(1))
        let before = c.value
        #expect(unlink(tmp.file("partners/a.json")) == 0)
        #expect(c.waitAbove(before))
    }

    @Test func otherNamesAreIgnored() throws {
        let tmp = try TempDir("watch")
        try FileManager.default.createDirectory(atPath: tmp.file("partners"), withIntermediateDirectories: true)
        let (w, c) = try Self.watch(tmp.file("partners"))
        defer { w.stop() }
        try tmp.write("partners/.a.json.swp", "x")
        try tmp.write("partners/notes.txt", "x")
        try tmp.write("sibling.json", "x")  // in the parent, not the directory
        usleep(400_000)
        #expect(c.value == 0)
    }

    /// The directory does not exist at first, is then created, and later replaced whole by a
    /// rename (how deploy tools swap configuration): each state is followed.
    @Test func directoryCreatedLaterAndReplacedIsFollowed() throws {
        let tmp = try TempDir("watch")
        let (w, c) = try Self.watch(tmp.file("partners"))
        defer { w.stop() }
        try tmp.write("partners/a.json", "{}")
        #expect(c.waitAbove(0))
        try tmp.write("staged/b.json", "{}")
        #expect(rename(tmp.file("partners"), tmp.file("old")) == 0)
        #expect(rename(tmp.file("staged"), tmp.file("partners")) == 0)
        usleep(300_000)
        let before = c.value
        try tmp.write("partners/c.json", "{}")  // inside the new directory
        #expect(c.waitAbove(before))
    }

    /// A burst of writes is one re-read, not one per write.
    @Test func burstsAreDebounced() throws {
        let tmp = try TempDir("watch")
        try FileManager.default.createDirectory(atPath: tmp.file("partners"), withIntermediateDirectories: true)
        let (w, c) = try Self.watch(tmp.file("partners"), debounce: 150)
        defer { w.stop() }
        for i in 0..<20 { try tmp.write("partners/f\(i % 3).json", "{\"i\":\(i)}") }
        #expect(c.waitAbove(0))
        usleep(400_000)
        #expect(c.value <= 2, "\(c.value) calls for one burst")
    }

    /// Events between `init` and `start` are not lost; after `stop` nothing is delivered.
    @Test func eventsBeforeStartCountAndStopIsFinal() throws {
        let tmp = try TempDir("watch")
        try FileManager.default.createDirectory(atPath: tmp.file("partners"), withIntermediateDirectories: true)
        let w = try DirectoryWatcher(directory: tmp.file("partners"), debounceMillis: 50)
        try tmp.write("partners/early.json", "{}")
        let c = Counter()
        w.start { c.bump() }
        #expect(c.waitAbove(0))
        w.stop()
        let after = c.value
        try tmp.write("partners/late.json", "{}")
        usleep(300_000)
        #expect(c.value == after)
    }

    @Test func missingParentIsAnError() {
        #expect(throws: SystemError.self) { try DirectoryWatcher(directory: "/nonexistent-\(UUID().uuidString)/partners") }
    }
}
