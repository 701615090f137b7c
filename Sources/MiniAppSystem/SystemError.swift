#if canImport(Glibc)
public import Glibc
#endif

/// A failed system call: which call, and the errno it left. The one error type of the system
/// layer; higher layers wrap it in a `MiniAppError` with a code and a message for the user.
public struct SystemError: Error, Sendable, Equatable, CustomStringConvertible {
    /// The C function or syscall that failed (e.g. "openat", "clone3").
    public let call: String
    /// The errno value.
    public let errno: Int32
    /// Optional context: the path or object involved.
    public let detail: String?

    public init(_ call: String, errno: Int32, detail: String? = nil) {
        self.call = call
        self.errno = errno
        self.detail = detail
    }

    /// Captures the current `errno`.
    public static func current(_ call: String, detail: String? = nil) -> SystemError {
        SystemError(call, errno: Glibc.errno, detail: detail)
    }

    public var description: String {
        let msg = String(cString: strerror(errno))
        if let detail { return "\(call)(\(detail)): \(msg) (errno \(errno))" }
        return "\(call): \(msg) (errno \(errno))"
    }
}

/// The one EINTR policy of the project: retry the call while it fails with EINTR; throw on any
/// other failure. `body` returns the C result (-1 on failure).
@inlinable
public func retryingEINTR<T: FixedWidthInteger>(_ call: String, detail: String? = nil, _ body: () -> T)
    throws(SystemError) -> T
{
    while true {
        let r = body()
        if r != -1 { return r }
        if Glibc.errno != EINTR { throw SystemError.current(call, detail: detail) }
    }
}

extension SystemError {
    /// ENOENT: the name does not exist.
    public var isNoSuchEntry: Bool { errno == ENOENT }
    /// ENOENT or ENOTDIR: the name, or a directory on its path, does not exist.
    public var isNotFound: Bool { errno == ENOENT || errno == ENOTDIR }
    /// ELOOP: a final symlink met an `O_NOFOLLOW` open.
    public var isSymlink: Bool { errno == ELOOP }
}
