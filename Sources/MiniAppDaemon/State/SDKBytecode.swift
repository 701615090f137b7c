import Foundation
import Logging
import MiniAppSystem

/// Compiles the Python SDK's bytecode where the SDK is materialized (`<state-dir>/sdk/python/
/// __pycache__`), so that a Python worker loads `miniapp_bridge` (and the prewarm loader) from
/// bytecode instead of compiling the source at every start: /sdk is read-only in the jail and
/// workers run with -B, so they could never cache it themselves (~4 ms of CPU per start).
///
/// Compiled by the same interpreter the workers run (/usr/bin/python3: same cache tag) in
/// isolated mode, in the background (the daemon is ready without waiting; a worker started
/// before it is done compiles in memory as before). CHECKED_HASH bytecode: the interpreter
/// checks it against the source's hash at import, so a stale or foreign .pyc is never used
/// in place of the SDK that is actually mounted.
enum SDKBytecode {
    static let python = "/usr/bin/python3"

    /// Starts the compilation unless the host has no /usr/bin/python3.
    static func compileInBackground(sdkDir: String, logger: Logger) {
        guard FileSystem.isExecutable(python) else { return }
        let queue = WorkQueue(name: "sdk-bytecode", background: true)
        queue.submit {
            if let problem = compile(pythonDir: sdkDir + "/python") {
                logger.info("sdk: Python bytecode not precompiled (\(problem)); Python workers compile the SDK at each start")
            }
        }
        queue.finish()  // its thread ends after this one job
    }

    /// Compiles every .py of `pythonDir`; nil on success, else what went wrong.
    static func compile(pythonDir: String) -> String? {
        let script = """
            import compileall, py_compile, sys
            ok = compileall.compile_dir(sys.argv[1], maxlevels=0, quiet=1, \
            invalidation_mode=py_compile.PycInvalidationMode.CHECKED_HASH)
            sys.exit(0 if ok else 1)
            """
        let p = Process()
        p.executableURL = URL(fileURLWithPath: python)
        p.arguments = ["-I", "-c", script, pythonDir]
        p.standardOutput = FileHandle.nullDevice
        p.standardError = FileHandle.nullDevice
        do { try p.run() } catch { return "cannot run \(python): \(error)" }
        p.waitUntilExit()
        guard p.terminationStatus == 0 else { return "\(python) compileall exited with status \(p.terminationStatus)" }
        // Readable by every worker uid, whatever the daemon's umask.
        do { try FileSystem.setPermissions(pythonDir + "/__pycache__", 0o755) } catch { return "chmod __pycache__: \(error)" }
        return nil
    }
}
