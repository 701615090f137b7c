import Foundation
import MiniAppBroker
import MiniAppJSON
import MiniAppModel
import MiniAppSystem
import MiniAppTestSupport
import Testing

/// `net.request` runs libcurl/OpenSSL in `miniappd-helper net`, one per program: the helper
/// holds nothing, and its death costs only the exchanges it carried.
@Suite(.serialized) struct NetHelperTests {
    static let a = caller("com.partner.alpha", domains: ["api.partner.test"], permissions: ["network"])
    static let b = caller("com.partner.beta", domains: ["api.partner.test"], permissions: ["network"])

    func get(_ net: NetService, _ server: TLSServer, _ path: String, as who: CallerIdentity) async -> Result<JSONValue, MiniAppError> {
        await fetch(net, server.url("api.partner.test", path), as: who)
    }

    func fetch(_ net: NetService, _ url: String, as who: CallerIdentity) async -> Result<JSONValue, MiniAppError> {
        await call(net, "net.request", ["url": .string(url)], as: who)
    }

    @Test func theHelperHoldsNothing() async throws {
        try await withTLSServer { server in
            let net = try NetService(config: server.config())
            #expect(await get(net, server, "/ok", as: Self.a).value?["status"] == 200)
            let pid = try #require(net.helperPID(for: Self.a.programId))
            #expect(pid != getpid())
            let status = try #require(ProcStatus(pid: pid))
            #expect(status.holdsNoCapability, "\(status.fields.filter { $0.key.hasPrefix("Cap") })")
            #expect(status.fields["NoNewPrivs"] == "1")
            #expect(status.fields["Seccomp"] == "2")
            if geteuid() == 0 {
                #expect(status.uids.allSatisfy { $0 == 65534 }, "uids \(status.uids)")
            } else {
                #expect(status.uids.allSatisfy { $0 == geteuid() })
            }
            // Its own IPC and UTS namespaces, the host's network (it must reach the server).
            for (ns, shared) in [("ipc", false), ("uts", false), ("net", true)] {
                let mine = try FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/ns/\(ns)")
                let its = try FileManager.default.destinationOfSymbolicLink(atPath: "/proc/\(pid)/ns/\(ns)")
                #expect((mine == its) == shared, "\(ns): \(mine) vs \(its)")
            }
            // One helper per program.
            #expect(await get(net, server, "/ok", as: Self.b).value?["status"] == 200)
            #expect(net.helperPID(for: Self.b.programId) != pid)
        }
    }

    /// kill -9 of the helper while it waits on a stalled server: that call fails with
    /// HOST_UNAVAILABLE, another program's call in flight at the same time completes, and the
    /// next call of the same program gets a fresh helper and succeeds.
    @Test func killingTheHelperMidRequestFailsOnlyThatCall() async throws {
        try await withTLSServer { server in
            let net = try NetService(config: server.config())
            #expect(await get(net, server, "/ok", as: Self.a).value?["status"] == 200)
            #expect(await get(net, server, "/ok", as: Self.b).value?["status"] == 200)
            let victim = try #require(net.helperPID(for: Self.a.programId))
            let stalledURL = server.url("api.partner.test", "/slow?s=20"), otherURL = server.url("api.partner.test", "/slow?s=2")
            async let stalled = fetch(net, stalledURL, as: Self.a)
            async let other = fetch(net, otherURL, as: Self.b)
            try await Task.sleep(for: .milliseconds(700))  // both exchanges are waiting on the server
            #expect(kill(victim, SIGKILL) == 0)
            let failed = await stalled
            #expect(failed.code == .hostUnavailable, "\(failed)")
            #expect(await other.value?["status"] == 200)
            let again = await get(net, server, "/ok", as: Self.a)
            #expect(again.value?["status"] == 200, "\(again)")
            let fresh = try #require(net.helperPID(for: Self.a.programId))
            #expect(fresh != victim)
        }
    }

    /// A helper that does not answer within the request's limit is ended: the call gets
    /// TIMEOUT, not a hang.
    @Test func aStoppedHelperTimesOut() async throws {
        try await withTLSServer { server in
            let net = try NetService(config: server.config { $0.net.totalTimeoutSeconds = 1 })
            #expect(await get(net, server, "/ok", as: Self.a).value?["status"] == 200)
            let pid = try #require(net.helperPID(for: Self.a.programId))
            kill(pid, SIGSTOP)
            let r = await get(net, server, "/ok", as: Self.a)
            #expect(r.code == .timeout, "\(r)")
            kill(pid, SIGKILL)
            #expect(await get(net, server, "/ok", as: Self.a).value?["status"] == 200)
        }
    }

    @Test(arguments: [(0, 0), (1, 50), (2, 100), (3, 200), (8, 5000), (50, 5000)])
    func restartBackoffGrows(_ deaths: Int, _ millis: UInt64) {
        #expect(HelperSupervisor.backoffNanos(afterDeaths: deaths) == millis * 1_000_000)
    }

    /// The in-process switch (benchmarks' baseline) still works, and runs no helper.
    @Test func inProcessSwitch() async throws {
        try await withTLSServer { server in
            let net = try NetService(config: server.config { $0.net.helpers.enabled = false })
            #expect(await get(net, server, "/ok", as: Self.a).value?["status"] == 200)
            #expect(net.helperPID(for: Self.a.programId) == nil)
        }
    }
}
