import ArgumentParser

/// The partner's inner loop (README "Partner DevTools"): `new`, `mock-bridge`.
enum DevTools {
    static let all: [any ParsableCommand.Type] = [NewCommand.self, MockBridgeCommand.self, DevCommand.self, ReplayCommand.self]
}
