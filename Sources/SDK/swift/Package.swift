// swift-tools-version:6.0
// The Swift SDK for mini-programs, as miniappd ships it read-only at /sdk/swift in every jail:
// this manifest plus copies of the daemon's own Sources/MiniAppBridgeSDK and Sources/MiniAppJSON
// (scripts/embed-policies keeps them identical). A jail has no Swift toolchain or runtime, so a
// Swift program is built outside, against this package, and shipped as a static executable:
//
//     // the program's Package.swift
//     dependencies: [.package(path: "/path/to/a/copy/of/sdk/swift")],
//     targets: [.executableTarget(name: "main",
//                                 dependencies: [.product(name: "MiniAppBridgeSDK", package: "miniapp-sdk")],
//                                 linkerSettings: [.unsafeFlags(["-static-executable"])])]
//
// No Foundation, no other dependency: MiniAppJSON is the daemon's own strict parser, so both ends
// of the Bridge agree on what a valid message is.
import PackageDescription

let settings: [SwiftSetting] = [
    .enableUpcomingFeature("ExistentialAny"),
    .enableUpcomingFeature("InternalImportsByDefault"),
]

let package = Package(
    name: "miniapp-sdk",
    products: [.library(name: "MiniAppBridgeSDK", targets: ["MiniAppBridgeSDK"])],
    targets: [
        .target(name: "MiniAppJSON", swiftSettings: settings, linkerSettings: [.linkedLibrary("m")]),
        .target(name: "MiniAppBridgeSDK", dependencies: ["MiniAppJSON"], swiftSettings: settings),
    ]
)
