import Foundation
import Glibc
import MiniAppBroker
import MiniAppJSON
import MiniAppModel
import MiniAppSystem
import Synchronization
import Testing

/// INTERNAL and HOST_UNAVAILABLE: the program gets the generic message, the daemon's log gets
/// the cause and where it was raised (spec: "details only in the daemon's log").
@Suite struct FailureLoggingTests {
    /// An SQLite failure is INTERNAL with a generic message for the program; the cause (the
    /// SQLite error text) and where it was raised go to the daemon's log only.
    @Test func internalCauseIsLoggedNotSent() throws {
        let h = try ServiceHarness()
        let w = try h.worker("w-1")
        #expect(try w.call(1, "storage.set", #"{"key":"before","value":1}"#).isResult)
        // A second connection to the real database makes every insert fail from now on.
        let db = try SQLiteDatabase(path: h.dir + "/services/storage.sqlite")
        try db.execute("CREATE TRIGGER injected BEFORE INSERT ON kv BEGIN SELECT RAISE(ABORT, 'injected disk trouble'); END;")
        db.close()
        let a = try w.call(2, "storage.set", #"{"key":"after","value":2}"#)
        #expect(a.errorCode == "INTERNAL" && a["error"]?["code"] == -32603, "\(a.jsonString)")
        #expect(a["error"]?["message"] == "the write could not be stored; retry later")
        #expect(!a.jsonString.contains("injected") && !a.jsonString.contains("SQL"), "no cause on the wire: \(a.jsonString)")
        #expect(try w.call(3, "storage.get", #"{"key":"after"}"#)["result"]?["value"] == .null)
        let logged = h.log.all.filter { $0.contains("code=INTERNAL") }
        #expect(logged.count == 1, "\(h.log.all)")
        let line = logged.first ?? ""
        #expect(line.hasPrefix("error bridge: storage.set failed"))
        #expect(line.contains("injected disk trouble"), "the SQLite error is the logged cause: \(line)")
        #expect(line.contains("at=MiniAppBroker/StorageStore.swift"))
        #expect(line.contains("program=com.partner.app") && line.contains("worker=w-1"))
    }

    /// The same for HOST_UNAVAILABLE with a cause: libcurl's text stays in the log.
    @Test func hostUnavailableCauseIsLoggedNotSent() throws {
        let port = try closedLoopbackPort()
        let h = try ServiceHarness(grants: ["com.partner": ["network", "payment"]]) { c in
            c.net.allowHTTP = true
            c.net.allowedPorts = [port]
            c.net.allowedPrivateCIDRs = ["127.0.0.0/8"]
            c.net.resolverOverride = ["api.partner.test": ["127.0.0.1"]]
        }
        let w = try h.worker("w-1", declared: ["network", "payment"])
        let a = try w.call(1, "net.request", #"{"url":"http://api.partner.test:\#(port)/x"}"#)
        #expect(a.errorCode == "HOST_UNAVAILABLE" && a["error"]?["code"] == -32005, "\(a.jsonString)")
        #expect(a["error"]?["message"] == "net.request: cannot connect to api.partner.test")
        let line = try #require(h.log.all.first { $0.contains("code=HOST_UNAVAILABLE") }, "\(h.log.all)")
        #expect(line.hasPrefix("warning bridge: net.request failed"))
        let causeAt = try #require(line.range(of: "cause="))
        let cause = String(line[causeAt.upperBound...])
        #expect(!cause.hasPrefix("none"), "\(line)")
        #expect(!a.jsonString.contains(cause.prefix(20)), "the libcurl text stays in the log")
        // A host method with no provider carries no cause: nothing to log, and nothing a
        // program could use to flood the log.
        #expect(try w.call(2, "payment.pay").errorCode == "HOST_UNAVAILABLE")
        #expect(h.log.all.filter { $0.contains("code=HOST_UNAVAILABLE") }.count == 1)
    }
}
