// swift-tools-version:6.0
// miniappd — a sandbox daemon for signed mini-programs.
//
// Layers (see README "Source layout"):
//   C jail steps (CJail)         — async-signal-safe code between clone and execve, nothing else
//   system libraries (C*)        — thin module maps for libseccomp, libcrypto, sqlite3, zlib, libcurl
//   pure model (MiniAppJSON, MiniAppModel) — no syscalls; the unit-test and fuzz surface
//   system layer (MiniAppSystem) — the only Swift code that calls libc and the C libraries
//   mechanisms (MiniAppJail, MiniAppPackages, MiniAppBroker) and the daemon (MiniAppDaemon)
//   executables (miniappd, miniapp), fuzz targets, test support
import PackageDescription

let strict: [SwiftSetting] = [
    .enableUpcomingFeature("ExistentialAny"),
    .enableUpcomingFeature("InternalImportsByDefault"),
]

let package = Package(
    name: "miniappd",
    platforms: [.macOS(.v14)],
    products: [
        .executable(name: "miniappd", targets: ["miniappd"]),
        .executable(name: "miniapp", targets: ["miniapp"]),
        .library(name: "MiniAppBridgeSDK", targets: ["MiniAppBridgeSDK"]),
        .library(name: "MiniAppTestSupport", targets: ["MiniAppTestSupport"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
        .package(url: "https://github.com/apple/swift-log", from: "1.16.2"),
    ],
    targets: [
        // MARK: C libraries of the system (module maps only)
        .systemLibrary(name: "CSeccomp", pkgConfig: "libseccomp", providers: [.apt(["libseccomp-dev"])]),
        .systemLibrary(name: "COpenSSL", pkgConfig: "libcrypto", providers: [.apt(["libssl-dev"])]),
        .systemLibrary(name: "CSQLite", pkgConfig: "sqlite3", providers: [.apt(["libsqlite3-dev"])]),
        .systemLibrary(name: "CZlib", pkgConfig: "zlib", providers: [.apt(["zlib1g-dev"])]),
        .systemLibrary(name: "CCurl", pkgConfig: "libcurl", providers: [.apt(["libcurl4-openssl-dev"])]),

        // MARK: C: the jail steps between clone and execve, and thin libc shims
        .target(name: "CJail", path: "Sources/CJail"),
        .target(name: "CLinuxShims", path: "Sources/CLinuxShims"),

        // MARK: pure Swift (no syscalls)
        .target(name: "MiniAppJSON", swiftSettings: strict, linkerSettings: [.linkedLibrary("m")]),
        .target(name: "MiniAppModel", dependencies: ["MiniAppJSON"], swiftSettings: strict),

        // MARK: system layer
        .target(
            name: "MiniAppSystem",
            dependencies: ["MiniAppModel", "CJail", "CLinuxShims", "CSeccomp", "COpenSSL", "CSQLite", "CZlib", "CCurl"],
            swiftSettings: strict),

        // MARK: mechanisms and services
        .target(name: "MiniAppJail", dependencies: ["MiniAppModel", "MiniAppSystem"], swiftSettings: strict),
        .target(name: "MiniAppPackages", dependencies: ["MiniAppModel", "MiniAppSystem"], swiftSettings: strict),
        .target(
            name: "MiniAppBroker",
            dependencies: ["MiniAppModel", "MiniAppSystem", .product(name: "Logging", package: "swift-log")],
            swiftSettings: strict),
        .target(
            name: "MiniAppDaemon",
            dependencies: [
                "MiniAppModel", "MiniAppSystem", "MiniAppJail", "MiniAppPackages", "MiniAppBroker",
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: strict),

        // MARK: executables
        .executableTarget(
            name: "miniappd",
            dependencies: ["MiniAppDaemon", .product(name: "ArgumentParser", package: "swift-argument-parser")],
            swiftSettings: strict),
        .executableTarget(
            name: "miniapp",
            dependencies: [
                "MiniAppJail", "MiniAppPackages", "MiniAppDaemon",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ],
            swiftSettings: strict),

        // MARK: SDK for Swift mini-programs (JS and Python SDKs live in Sources/SDK)
        .target(name: "MiniAppBridgeSDK", swiftSettings: strict),

        // MARK: fuzz targets (libFuzzer when built with -sanitize=fuzzer; corpus replay otherwise)
        .target(name: "FuzzSupport", path: "Sources/FuzzSupport"),
        .executableTarget(name: "fuzz-json", dependencies: ["FuzzSupport", "MiniAppJSON"], path: "Sources/Fuzz/json"),

        // MARK: tests
        .target(
            name: "MiniAppTestSupport",
            dependencies: ["MiniAppModel", "MiniAppSystem"],
            swiftSettings: strict),
        .testTarget(name: "ModelTests", dependencies: ["MiniAppJSON", "MiniAppModel", "MiniAppTestSupport"]),
        .testTarget(
            name: "JailTests", dependencies: ["MiniAppJail", "MiniAppModel", "MiniAppSystem"],
            exclude: ["Fixtures"]),

        // MARK: benchmarks
        .executableTarget(name: "bench-jail", dependencies: ["MiniAppJail", "MiniAppModel", "MiniAppSystem"], path: "Sources/Bench/jail", swiftSettings: strict),
    ]
)
