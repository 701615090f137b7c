@testable import MiniAppSystem
import Synchronization
import Testing

/// The daemon's one hand-off of blocking work (`WorkQueue`) and its one timer facility
/// (`TimerHeap`, and `WorkQueue.after`/`every` on top of the jail loop's).
@Suite struct WorkQueueTests {
    /// A serial queue runs its jobs one at a time, in submission order: the audit and storage
    /// writers' ordering (an acknowledged write is committed before the next one starts).
    @Test func aSerialQueueRunsJobsOneAtATimeInOrder() {
        let q = WorkQueue(name: "t-serial")
        let seen = Mutex<(order: [Int], running: Int, most: Int)>(([], 0, 0))
        for i in 0..<200 {
            q.submit {
                seen.withLock { $0.running += 1; $0.most = max($0.most, $0.running) }
                seen.withLock { $0.order.append(i); $0.running -= 1 }
            }
        }
        q.runBlocking {}  // after everything submitted before
        let s = seen.withLock { $0 }
        #expect(s.order == Array(0..<200))
        #expect(s.most == 1)
    }

    /// A wide queue runs up to `width` jobs at once and never more (the install bound).
    @Test(arguments: [1, 3]) func aWideQueueRunsAtMostWidthJobsAtOnce(width: Int) {
        let q = WorkQueue(name: "t-wide", width: width)
        let seen = Mutex<(running: Int, most: Int, done: Int)>((0, 0, 0))
        let allDone = CountingSemaphore()
        let jobs = 12
        for _ in 0..<jobs {
            q.submit {
                seen.withLock { $0.running += 1; $0.most = max($0.most, $0.running) }
                // Held until `width` jobs ran at once (or 5 s): a slow thread start cannot hide
                // the bound, and a queue that ran more at once would be seen.
                let until = monotonicNanos() + 5_000_000_000
                while seen.withLock({ $0.most }) < width && monotonicNanos() < until { _ = CountingSemaphore().wait(seconds: 0.001) }
                let finished = seen.withLock { s -> Bool in
                    s.running -= 1
                    s.done += 1
                    return s.done == jobs
                }
                if finished { allDone.signal() }
            }
        }
        #expect(allDone.wait(seconds: 30))
        let s = seen.withLock { $0 }
        #expect(s.most == width, "\(width) jobs at once, never more")
        #expect(s.done == jobs)
    }

    /// `runBlocking` hands the value (or the typed error) back to the waiting thread.
    @Test func runBlockingReturnsTheResultOrTheError() throws {
        struct Refused: Error, Equatable {}
        let q = WorkQueue(name: "t-blocking")
        #expect(q.runBlocking { () -> Int in 42 } == 42)
        #expect(throws: Refused.self) { try q.runBlocking { () throws(Refused) -> Int in throw Refused() } }
    }

    /// `finish` lets the jobs already submitted run, then drops later ones; `runBlocking` on a
    /// finished queue runs on the caller rather than waiting forever.
    @Test func finishRunsWhatWasQueuedAndDropsTheRest() {
        let q = WorkQueue(name: "t-finish")
        let ran = Mutex<[String]>([])
        let release = CountingSemaphore()
        q.submit { _ = release.wait(seconds: 5); ran.withLock { $0.append("first") } }
        q.submit { ran.withLock { $0.append("second") } }
        q.finish()
        q.submit { ran.withLock { $0.append("after finish") } }
        release.signal()
        #expect(q.runBlocking { 7 } == 7)
        let until = monotonicNanos() + 5_000_000_000
        while ran.withLock({ $0.count }) < 2 && monotonicNanos() < until { _ = CountingSemaphore().wait(seconds: 0.01) }
        _ = CountingSemaphore().wait(seconds: 0.1)  // time for a dropped job to show, were it run
        #expect(ran.withLock { $0 } == ["first", "second"])
    }

    /// `after` submits the job once its delay is up, not before; a cancelled one never runs.
    @Test func afterRunsOnceTheDelayIsUpAndCancelStopsIt() {
        let q = WorkQueue(name: "t-after")
        let fired = CountingSemaphore()
        let start = monotonicNanos()
        let at = Mutex<UInt64>(0)
        q.after(seconds: 0.05) {
            at.withLock { $0 = monotonicNanos() }
            fired.signal()
        }
        let cancelledRan = Mutex(false)
        q.after(seconds: 0.02) { cancelledRan.withLock { $0 = true } }.cancel()
        #expect(fired.wait(seconds: 10))
        #expect(at.withLock { $0 } - start >= 50_000_000)
        _ = CountingSemaphore().wait(seconds: 0.05)
        #expect(!cancelledRan.withLock { $0 })
    }

    /// `every` repeats until cancelled.
    @Test func everyRepeatsUntilCancelled() {
        let q = WorkQueue(name: "t-every")
        let count = Mutex(0)
        let third = CountingSemaphore()
        let job = q.every(seconds: 0.01) {
            if count.withLock({ $0 += 1; return $0 }) == 3 { third.signal() }
        }
        #expect(third.wait(seconds: 10))
        job.cancel()
        let atCancel = count.withLock { $0 }
        _ = CountingSemaphore().wait(seconds: 0.1)
        #expect(count.withLock { $0 } <= atCancel + 1, "at most the run already under way when cancelled")
    }

    /// The heap gives due timers earliest first, skips cancelled ones, and reports the next
    /// pending deadline.
    @Test func theTimerHeapFiresDueTimersInDeadlineOrder() {
        var heap = TimerHeap<String>()
        #expect(heap.nextDeadline() == nil)
        let deadlines: [(UInt64, String)] = [(50, "e"), (10, "a"), (40, "d"), (20, "b"), (30, "c"), (60, "f")]
        var ids: [String: UInt64] = [:]
        for (d, name) in deadlines { ids[name] = heap.add(deadline: d, name) }
        heap.cancel(ids["a"]!)
        heap.cancel(ids["d"]!)
        #expect(heap.nextDeadline() == 20)
        var fired: [String] = []
        while let body = heap.popDue(now: 45) { fired.append(body) }
        #expect(fired == ["b", "c"])
        #expect(heap.nextDeadline() == 50)
        while let body = heap.popDue(now: 100) { fired.append(body) }
        #expect(fired == ["b", "c", "e", "f"])
        #expect(heap.nextDeadline() == nil)
        #expect(heap.isEmpty)
    }
}
