import Dispatch
import MiniAppBroker
@testable import MiniAppDaemon
import MiniAppJSON
import MiniAppModel
import Synchronization
import Testing

/// Fakes for the package and broker sides; the control API's own job is to decode, validate and
/// route, which is what these tests check through `handle`.
struct FakePackages: PackageControl {
    func install(path: String, allowDowngrade: Bool) throws(MiniAppError) -> InstalledPackage {
        InstalledPackage(id: "com.p.app", version: "1.0.0", active: true)
    }
    func list() throws(MiniAppError) -> [PackageListing] { [] }
    func rollback(id: String) throws(MiniAppError) -> RolledBackPackage { RolledBackPackage(id: id, active: "0.9.0") }
    func remove(id: String) throws(MiniAppError) {}
    func checkUpdates(id: String?) throws(MiniAppError) -> UpdateCheckReport { UpdateCheckReport([]) }
}

final class FakeBroker: BrokerControl, @unchecked Sendable {
    let provided = Mutex<[String]>([])
    func provide(methods: [String], peer: any ControlPeer) throws(MiniAppError) { provided.withLock { $0 += methods } }
    func subscribeInspector(programId: String?, peer: any ControlPeer) {}
    func providerReply(_ message: JSONObject, peer: any ControlPeer) {}
    func peerClosed(_ peer: any ControlPeer) {}
    func refreshPermissions() throws(MiniAppError) -> PermissionsReport { PermissionsReport(merge: .empty, registry: .init(status: .off)) }
    func setSession(userId: String, claims: JSONObject) throws(MiniAppError) {}
    func verificationKeys() -> [PublicJWK] { [] }
    func denials() -> Int64 { 7 }
}

final class FakePeer: ControlPeer, @unchecked Sendable {
    let connectionId: UInt64 = 1
    let uid: UInt32 = 0
    func send(_ message: JSONValue) {}
}

@Suite struct ControlAPITests {
    func api() throws -> (ControlAPI, SupervisorFixture) {
        let f = try SupervisorFixture()
        let api = ControlAPI(
            facts: DaemonFacts(version: "1.0.0", hostVersion: "1.0.0", mode: "privileged", cgroups: "v1"),
            supervisor: f.supervisor, packages: FakePackages(), broker: FakeBroker())
        return (api, f)
    }

    func call(_ api: ControlAPI, _ method: String, _ params: JSONValue?) -> Result<JSONValue, MiniAppError> {
        let out = Mutex<Result<JSONValue, MiniAppError>?>(nil)
        api.handle(method: method, params: params, peer: FakePeer()) { r in out.withLock { $0 = r } }
        return out.withLock { $0! }
    }

    /// Hostile or mistaken requests: each gets its stable code, nothing reaches a service.
    /// Hostile or mistaken requests (params as JSON text; "" = absent): each gets its stable code.
    @Test(arguments: [
        ("programs.launch", #"{}"#, ErrorCode.invalidParams),
        ("programs.launch", #"{"id":5}"#, ErrorCode.invalidParams),
        ("programs.launch", #"{"id":""}"#, ErrorCode.invalidParams),
        ("programs.launch", #"{"id":"com.p.app","args":"x"}"#, ErrorCode.invalidParams),
        ("programs.launch", #"{"id":"com.p.app","args":[1]}"#, ErrorCode.invalidParams),
        ("programs.launch", #"[1,2]"#, ErrorCode.invalidParams),
        ("programs.launch", #""str""#, ErrorCode.invalidParams),
        ("programs.stop", #"{"workerId":"w-1","graceMillis":-1}"#, ErrorCode.invalidParams),
        ("programs.stop", #"{"workerId":"w-1","graceMillis":"soon"}"#, ErrorCode.invalidParams),
        ("programs.stop", #"{"workerId":"w-999"}"#, ErrorCode.notFound),
        ("programs.suspend", #"{"workerId":"w-999"}"#, ErrorCode.notFound),
        ("programs.send", #"{"workerId":"w-999","name":"x"}"#, ErrorCode.notFound),
        ("programs.send", #"{"workerId":"w-1"}"#, ErrorCode.invalidParams),
        ("packages.install", #"{"path":1}"#, ErrorCode.invalidParams),
        ("packages.install", #"{"path":"/x.zip","allowDowngrade":"yes"}"#, ErrorCode.invalidParams),
        ("packages.remove", #"{}"#, ErrorCode.invalidParams),
        ("bridge.provide", #"{"methods":[]}"#, ErrorCode.invalidParams),
        ("bridge.provide", #"{"methods":"payment.pay"}"#, ErrorCode.invalidParams),
        ("session.set", #"{"userId":"u","claims":[1]}"#, ErrorCode.invalidParams),
        ("session.set", #"{}"#, ErrorCode.invalidParams),
        ("inspector.subscribe", #"{"programId":3}"#, ErrorCode.invalidParams),
        ("no.such.method", #""#, ErrorCode.methodNotFound),
        ("no.such.method", #"[1]"#, ErrorCode.methodNotFound),
        ("daemon.info", #"null"#, ErrorCode.invalidParams),
        ("programs.restart", #"{}"#, ErrorCode.invalidParams),
        ("programs.restart", #"{"id":5}"#, ErrorCode.invalidParams),
        ("updates.status", #"{"id":5}"#, ErrorCode.invalidParams),
        ("updates.status", #"{}"#, ErrorCode.hostUnavailable),
    ])
    func refusesBadRequests(_ method: String, _ paramsText: String, _ code: ErrorCode) throws {
        let (api, _) = try api()
        let params: JSONValue? = paramsText.isEmpty ? .none : try JSONValue.parse(paramsText)
        guard case .failure(let e) = call(api, method, params) else {
            Issue.record("\(method) \(String(describing: params)) was accepted")
            return
        }
        #expect(e.code == code, "\(e)")
    }

    @Test(arguments: ["packages.remove", "packages.rollback"])
    func changingARunningProgramIsRefused(_ method: String) throws {
        let (api, _) = try api()
        #expect(try call(api, "programs.launch", ["id": "com.p.app"]).get()["workerId"] != nil)
        guard case .failure(let e) = call(api, method, ["id": "com.p.app"]) else {
            Issue.record("\(method) of a running program was accepted")
            return
        }
        #expect(e.code == .alreadyRunning)
        #expect(try call(api, method, ["id": "com.p.other"]).get() != nil, "a program that is not running")
    }

    @Test func routesGoodRequests() throws {
        let (api, _) = try api()
        let info = try call(api, "daemon.info", nil).get()
        #expect(info["denials"] == 7)
        #expect(info["mode"] == "privileged")
        let wid = try call(api, "programs.launch", ["id": "com.p.app"]).get()["workerId"]!
        #expect(try call(api, "programs.list", nil).get()["workers"]?.arrayValue?.count == 1)
        #expect(try call(api, "programs.stop", ["workerId": wid, "graceMillis": 5]).get()["status"] == 143)
        #expect(try call(api, "auth.keys", nil).get()["keys"] == [])
    }

    /// `programs.restart`: the running worker is stopped, then the program launched again (the
    /// answer comes once the new worker runs); a program that does not run is just launched.
    @Test func restartStopsAndLaunchesAgain() throws {
        let (api, _) = try api()
        let first = try call(api, "programs.launch", ["id": "com.p.app"]).get()["workerId"]
        for _ in 0..<2 {
            let done = DispatchSemaphore(value: 0)
            let out = Mutex<Result<JSONValue, MiniAppError>?>(nil)
            api.handle(method: "programs.restart", params: ["id": "com.p.app"], peer: FakePeer()) { r in
                out.withLock { $0 = r }
                done.signal()
            }
            #expect(done.wait(timeout: .now() + 10) == .success)
            let r = try #require(out.withLock { $0 }).get()
            #expect(r["id"] == "com.p.app")
            #expect(r["workerId"] != nil && r["workerId"] != first)
            #expect(try call(api, "programs.list", nil).get()["workers"]?.arrayValue?.count == 1)
        }
        let other = try #require(call(api, "programs.restart", ["id": "com.p.other"]).get()["workerId"])
        #expect(other != first)
    }
}
