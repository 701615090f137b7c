/// The deadlines of one event loop, earliest first: the one timer facility of the daemon. The
/// reactor keeps one on its thread (`Reactor.schedule`), the jail's event loop one under its lock
/// (`JailEventLoop.after`, which `WorkQueue.after`/`every` use); a loop sleeps until its
/// `nextDeadline` and runs what `popDue` gives it. Not thread-safe: the loop owns it.
///
/// A binary min-heap of (deadline, id); a cancelled timer loses its body at once and its heap
/// entry when it reaches the top, so cancelling is O(1) and never scans.
struct TimerHeap<Body> {
    private var heap: [(deadline: UInt64, id: UInt64)] = []
    private var bodies: [UInt64: Body] = [:]
    private var nextID: UInt64 = 1

    /// No timer is pending (cancelled ones may still hold a heap slot).
    var isEmpty: Bool { heap.isEmpty }

    /// Adds a timer due at `deadline` (monotonic ns); returns its id for `cancel`.
    mutating func add(deadline: UInt64, _ body: Body) -> UInt64 {
        let id = nextID
        nextID += 1
        bodies[id] = body
        push((deadline, id))
        return id
    }

    /// Forgets timer `id`; no effect if it already fired.
    mutating func cancel(_ id: UInt64) { bodies[id] = nil }

    /// The earliest deadline of a timer still pending; nil when none is.
    mutating func nextDeadline() -> UInt64? {
        while let top = heap.first, bodies[top.id] == nil { _ = pop() }
        return heap.first?.deadline
    }

    /// Removes and returns the body of one timer due at `now`, earliest first; nil when none is
    /// due. The caller runs it before asking again (a body may add timers).
    mutating func popDue(now: UInt64) -> Body? {
        while let top = heap.first, top.deadline <= now {
            _ = pop()
            if let body = bodies.removeValue(forKey: top.id) { return body }
        }
        return nil
    }

    /// Forgets every timer.
    mutating func removeAll() {
        heap.removeAll()
        bodies.removeAll()
    }

    private mutating func push(_ e: (deadline: UInt64, id: UInt64)) {
        heap.append(e)
        var i = heap.count - 1
        while i > 0 {
            let parent = (i - 1) / 2
            if heap[parent].deadline <= heap[i].deadline { break }
            heap.swapAt(parent, i)
            i = parent
        }
    }

    private mutating func pop() -> (deadline: UInt64, id: UInt64)? {
        guard !heap.isEmpty else { return nil }
        let top = heap[0]
        let last = heap.removeLast()
        if heap.isEmpty { return top }
        heap[0] = last
        var i = 0
        while true {
            let l = 2 * i + 1, r = l + 1
            var m = i
            if l < heap.count && heap[l].deadline < heap[m].deadline { m = l }
            if r < heap.count && heap[r].deadline < heap[m].deadline { m = r }
            if m == i { break }
            heap.swapAt(i, m)
            i = m
        }
        return top
    }
}
