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
        // Installed beside miniappd: the process that clones every jailed worker (CJail only).
        .executable(name: "miniappd-spawner", targets: ["miniappd-spawner"]),
        // Installed beside miniappd: the jailed helpers for untrusted bytes (libcurl, zlib).
        .executable(name: "miniappd-helper", targets: ["miniappd-helper"]),
        .library(name: "MiniAppBridgeSDK", targets: ["MiniAppBridgeSDK"]),
        // The control API as a library for host runtimes (Python and Node twins in Sources/SDK/host).
        .library(name: "MiniAppHost", targets: ["MiniAppHost"]),
        .library(name: "MiniAppBridgeMock", targets: ["MiniAppBridgeMock"]),
        .library(name: "MiniAppTestSupport", targets: ["MiniAppTestSupport"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
        .package(url: "https://github.com/apple/swift-log", from: "1.16.2"),
        .package(url: "https://github.com/apple/swift-metrics", from: "2.13.0"),
        .package(url: "https://github.com/swift-server/swift-prometheus", from: "2.4.1"),
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
        // How a helper for untrusted bytes confines itself (ids, caps, Landlock, seccomp).
        .target(name: "CHelperShims", path: "Sources/CHelperShims"),
        // Typed wrappers for libcurl's variadic curl_easy_setopt/getinfo (Swift cannot call C varargs).
        .target(name: "CCurlShim", dependencies: ["CCurl"], path: "Sources/CCurlShim"),
        // epoll/eventfd/accept4/SO_PEEK_OFF/SCM_RIGHTS wrappers for the reactor and the host client
        .target(name: "CNetShims", path: "Sources/CNetShims"),

        // MARK: pure Swift (no syscalls)
        .target(name: "MiniAppJSON", swiftSettings: strict, linkerSettings: [.linkedLibrary("m")]),
        .target(name: "MiniAppModel", dependencies: ["MiniAppJSON"], swiftSettings: strict),

        // MARK: system layer
        .target(
            name: "MiniAppSystem",
            dependencies: [
                "MiniAppModel", "CJail", "CLinuxShims", "CNetShims", "CSeccomp", "COpenSSL", "CSQLite", "CZlib", "CCurl",
                "CCurlShim", "CHelperShims",
            ],
            swiftSettings: strict),

        // MARK: mechanisms and services
        .target(name: "MiniAppJail", dependencies: ["MiniAppModel", "MiniAppSystem"], swiftSettings: strict),
        .target(name: "MiniAppPackages", dependencies: ["MiniAppModel", "MiniAppSystem"], exclude: ["README.md"], swiftSettings: strict),
        .target(
            name: "MiniAppBroker",
            dependencies: ["MiniAppModel", "MiniAppSystem", .product(name: "Logging", package: "swift-log")],
            swiftSettings: strict),
        .target(
            name: "MiniAppDaemon",
            dependencies: [
                "MiniAppModel", "MiniAppSystem", "MiniAppJail", "MiniAppPackages", "MiniAppBroker",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "Prometheus", package: "swift-prometheus"),
            ],
            swiftSettings: strict),

        // MARK: executables
        .executableTarget(
            name: "miniappd",
            dependencies: [
                "MiniAppDaemon", "MiniAppSystem", .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: strict),
        .executableTarget(name: "miniappd-spawner", dependencies: ["CJail"], path: "Sources/miniappd-spawner"),
        .executableTarget(name: "miniappd-helper", dependencies: ["MiniAppSystem", "MiniAppPackages"], swiftSettings: strict),
        .executableTarget(
            name: "miniapp",
            dependencies: [
                "MiniAppJail", "MiniAppPackages", "MiniAppDaemon", "MiniAppBroker", "MiniAppControl", "MiniAppBridgeMock",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ],
            swiftSettings: strict),

        // MARK: SDK for Swift mini-programs (JS and Python SDKs live in Sources/SDK)
        .target(name: "MiniAppBridgeSDK", dependencies: ["MiniAppJSON"], swiftSettings: strict),
        // MARK: host SDK: the control API for host runtimes; nothing daemon-internal
        .target(name: "MiniAppHost", dependencies: ["MiniAppJSON", "CNetShims"], swiftSettings: strict),
        // The blocking ControlClient of the CLI and tests, a facade over MiniAppHost with MiniAppError.
        .target(name: "MiniAppControl", dependencies: ["MiniAppHost", "MiniAppJSON", "MiniAppModel"], swiftSettings: strict),
        // The mock Bridge (rules file → answers) for unit tests and `miniapp mock-bridge`; the
        // broker's own framing and codec (MiniAppModel), so the wire is the daemon's.
        .target(name: "MiniAppBridgeMock", dependencies: ["MiniAppJSON", "MiniAppModel", "MiniAppSystem", "MiniAppBridgeSDK"], swiftSettings: strict),

        // MARK: fuzz targets (libFuzzer when built with -sanitize=fuzzer; corpus replay otherwise)
        .target(name: "CFuzzSupport", path: "Sources/CFuzzSupport"),
        .target(name: "FuzzSupport", dependencies: ["CFuzzSupport"], path: "Sources/FuzzSupport"),
        .executableTarget(name: "fuzz-json", dependencies: ["FuzzSupport", "MiniAppJSON"], path: "Sources/Fuzz/json"),
        .executableTarget(name: "fuzz-host", dependencies: ["FuzzSupport", "MiniAppHost", "MiniAppJSON"], path: "Sources/Fuzz/host"),
        .executableTarget(
            name: "fuzz-bridge", dependencies: ["FuzzSupport", "MiniAppJSON", "MiniAppModel", "MiniAppBroker"],
            path: "Sources/Fuzz/bridge"),

        // MARK: benchmarks (scripts/bench.d/*)
        .executableTarget(
            name: "bench-bridge", dependencies: ["MiniAppJSON", "MiniAppModel", "MiniAppSystem", "MiniAppBroker"],
            path: "Sources/Bench/bridge"),
        .executableTarget(name: "fuzz-zip", dependencies: ["FuzzSupport", "MiniAppPackages", "MiniAppModel"], path: "Sources/Fuzz/zip"),
        .executableTarget(name: "fuzz-manifest", dependencies: ["FuzzSupport", "MiniAppModel"], path: "Sources/Fuzz/manifest"),
        .executableTarget(
            name: "fuzz-registry", dependencies: ["FuzzSupport", "MiniAppDaemon", "MiniAppModel"], path: "Sources/Fuzz/registry"),
        .executableTarget(name: "fuzz-policy", dependencies: ["FuzzSupport", "MiniAppJSON", "MiniAppModel"], path: "Sources/Fuzz/policy"),
        .executableTarget(name: "fuzz-specblob", dependencies: ["FuzzSupport", "CJail"], path: "Sources/Fuzz/specblob"),
        .executableTarget(name: "fuzz-spawnrequest", dependencies: ["FuzzSupport", "CJail"], path: "Sources/Fuzz/spawnrequest"),
        .executableTarget(
            name: "fuzz-mockrules", dependencies: ["FuzzSupport", "MiniAppBridgeMock", "MiniAppJSON"], path: "Sources/Fuzz/mockrules"),
        .executableTarget(name: "fuzz-helperwire", dependencies: ["FuzzSupport", "MiniAppModel"], path: "Sources/Fuzz/helperwire"),
        .executableTarget(name: "fuzz-terminal", dependencies: ["FuzzSupport", "MiniAppJSON", "MiniAppModel"], path: "Sources/Fuzz/terminal"),

        // MARK: benchmarks
        .executableTarget(
            name: "bench-packages", dependencies: ["MiniAppPackages", "MiniAppModel", "MiniAppSystem"],
            path: "Sources/Bench/packages", swiftSettings: strict),

        // MARK: tests
        .target(
            name: "MiniAppTestSupport",
            dependencies: ["MiniAppModel", "MiniAppSystem", "MiniAppDaemon", "MiniAppControl"],
            swiftSettings: strict),
        .testTarget(name: "ModelTests", dependencies: ["MiniAppJSON", "MiniAppModel", "MiniAppTestSupport"]),
        .testTarget(
            name: "DaemonTests",
            dependencies: [
                "MiniAppDaemon", "MiniAppBroker", "MiniAppJSON", "MiniAppModel", "MiniAppPackages", "MiniAppSystem", "MiniAppTestSupport",
                "MiniAppHost", "MiniAppControl", .product(name: "Logging", package: "swift-log"),
            ],
            exclude: ["Fixtures"]),
        // Opens the storage store, acknowledges storage.set on stdout, and is SIGKILLed by ServiceTests.
        .executableTarget(
            name: "storage-crash-helper", dependencies: ["MiniAppBroker", "MiniAppModel"],
            path: "Tests/Helpers/storage-crash-helper", swiftSettings: strict),
        .testTarget(
            name: "ServiceTests",
            dependencies: [
                "MiniAppBroker", "MiniAppSystem", "MiniAppJSON", "MiniAppModel", "MiniAppBridgeSDK", "MiniAppBridgeMock", "MiniAppTestSupport",
            ],
            exclude: ["Fixtures"]),
        .testTarget(
            name: "BridgeTests",
            dependencies: [
                "MiniAppJSON", "MiniAppModel", "MiniAppSystem", "MiniAppBroker", "MiniAppTestSupport", .product(name: "Logging", package: "swift-log"),
            ]),
        .testTarget(
            name: "PackageTests",
            dependencies: ["MiniAppJSON", "MiniAppModel", "MiniAppSystem", "MiniAppPackages", "MiniAppTestSupport"],
            exclude: ["Fixtures"]),
        .testTarget(
            name: "JailTests", dependencies: ["MiniAppJail", "MiniAppModel", "MiniAppSystem", "CJail"],
            exclude: ["Fixtures"]),

        // MARK: benchmarks
        .executableTarget(name: "bench-jail", dependencies: ["MiniAppJail", "MiniAppModel", "MiniAppSystem"], path: "Sources/Bench/jail", swiftSettings: strict),
        .target(name: "BenchSupport", dependencies: ["MiniAppJSON", "MiniAppSystem"], path: "Sources/Bench/support", swiftSettings: strict),
        .executableTarget(
            name: "bench-daemon", dependencies: ["BenchSupport", "MiniAppHost", "MiniAppJSON", "MiniAppSystem"], path: "Sources/Bench/daemon",
            swiftSettings: strict),
        .executableTarget(
            name: "bench-runtimes", dependencies: ["BenchSupport", "MiniAppJSON", "MiniAppSystem"], path: "Sources/Bench/runtimes",
            swiftSettings: strict),
        // Runs inside jails, which have no Swift runtime: linked fully static.
        .executableTarget(
            name: "bench-daemon-worker", path: "Sources/Bench/daemon-worker", swiftSettings: strict,
            linkerSettings: [.unsafeFlags(["-static-executable"])]),
    ]
)
