public import MiniAppModel

/// The SDKs compiled into this binary (`EmbeddedSDK`), for the tools that run a program
/// outside a jail (`miniapp mock-bridge`, `miniapp replay`): the same files a worker finds at
/// /sdk, so a program sees the same `MiniAppBridge` global, `miniapp_bridge` module and mocks.
public enum SDKInstaller {
    /// Writes the SDK tree into `dir` (replacing what is there); returns `dir`.
    public static func install(into dir: String) throws(MiniAppError) -> String {
        try StateLayout(root: dir).materialize(EmbeddedSDK.files, into: dir)
    }
}
