import CLinuxShims
import CNetShims
import Glibc

/// Starts a detached OS thread running `body`. The daemon's loops (reactor, reaper, metrics)
/// run on their own threads, never on Swift's cooperative pool, which must not block.
public func startThread(name: String, _ body: @escaping @Sendable () -> Void) {
    final class Box: @unchecked Sendable {
        let body: @Sendable () -> Void
        let name: String
        init(_ b: @escaping @Sendable () -> Void, _ n: String) {
            body = b
            name = n
        }
    }
    let box = Unmanaged.passRetained(Box(body, name)).toOpaque()
    var tid = pthread_t()
    let rc = pthread_create(&tid, nil, { arg in
        let b = Unmanaged<AnyObject>.fromOpaque(arg!).takeRetainedValue() as! Box
        _ = cnet_set_thread_name(String(b.name.prefix(15)))
        // Started from a thread of Swift's cooperative pool, it would inherit a mask blocking
        // nearly every signal, and the privilege drop's broadcast (PrivilegeDrop) would never
        // reach it: the drop would then refuse to go on.
        clinux_thread_accept_broadcast()
        b.body()
        return nil
    }, box)
    precondition(rc == 0, "pthread_create failed: \(rc)")
    pthread_detach(tid)
}
