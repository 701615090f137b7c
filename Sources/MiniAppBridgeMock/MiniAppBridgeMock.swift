public import MiniAppBridgeSDK
import MiniAppJSON
public import MiniAppModel
internal import MiniAppSystem

/// An in-process mock Bridge for a Swift program's unit tests, from the same rules file as
/// `miniapp mock-bridge`:
///
/// ```swift
/// let mock = try MiniAppBridgeMock(rules: #"{"rules":[{"method":"payment.pay","result":{"transactionId":"tx-1"}}]}"#)
/// let r = try await mock.bridge.call("payment.pay", ["orderId": "o-1"])   // ["transactionId": "tx-1"]
/// ```
///
/// `bridge` is a real `MiniAppBridge` on one end of a socket pair and a `MockBridgeServer` on
/// the other: the code under test runs the SDK's real wire path, not a stand-in.
public final class MiniAppBridgeMock: Sendable {
    /// The SDK's bridge, connected to the mock: pass it to the code under test.
    public let bridge: MiniAppBridge
    /// The answers (and every call made so far: `engine.calls`).
    public let engine: MockBridge
    private let clientFD: Int32
    private let server: MockBridgeServer

    /// A mock answering by `rules` (the rules file's JSON text).
    public convenience init(rules: String, identity: MockBridge.Identity = MockBridge.Identity()) throws(MiniAppError) {
        try self.init(rules: MockRules.parse(Array(rules.utf8)), identity: identity)
    }

    /// A mock answering by `rules`.
    public init(rules: MockRules, identity: MockBridge.Identity = MockBridge.Identity()) throws(MiniAppError) {
        let fds: (server: Int32, client: Int32)
        do {
            let pair = try UnixSocket.pair()
            fds = (pair.daemonSide.take(), pair.workerSide.take())
        } catch {
            throw MiniAppError(.internal, "socketpair failed (\(error)); the process may be out of file descriptors")
        }
        engine = MockBridge(rules: rules, identity: identity)
        server = MockBridgeServer(bridge: engine, fd: fds.server)
        server.start()
        clientFD = fds.client
        bridge = MiniAppBridge(fd: fds.client)
    }

    /// Every call answered so far.
    public var calls: [MockBridge.Call] { engine.calls }

    deinit {
        // The server closes its end when it sees ours close.
        UnixSocket.shutdown(clientFD)
    }
}
