#if canImport(Glibc)
import Glibc
#endif

/// Look-ups in the host's user and group database (NSS: /etc/group, sssd, …).
public enum UserDatabase {
    /// The gid of group `name` (`getgrnam_r(3)`), or nil when there is no such group or the
    /// database cannot be read — callers treat both as "nobody is admitted through it".
    public static func groupID(named name: String) -> UInt32? {
        var group = Glibc.group()
        var result: UnsafeMutablePointer<Glibc.group>?
        let found = lookUp { buffer in getgrnam_r(name, &group, &buffer, buffer.count, &result) }
        return found && result != nil ? group.gr_gid : nil
    }

    /// The uid and primary gid of user `name` (`getpwnam_r(3)`), or nil when there is none.
    public static func user(named name: String) -> (uid: UInt32, gid: UInt32)? {
        var pw = Glibc.passwd()
        var result: UnsafeMutablePointer<Glibc.passwd>?
        let found = lookUp { buffer in getpwnam_r(name, &pw, &buffer, buffer.count, &result) }
        return found && result != nil ? (pw.pw_uid, pw.pw_gid) : nil
    }

    /// Runs a reentrant look-up, growing its string buffer on ERANGE and retrying on EINTR;
    /// whether it succeeded (the caller checks that it found an entry). Only the numbers of the
    /// entry are read afterwards: its strings point into the buffer, gone by then.
    private static func lookUp(_ call: (inout [CChar]) -> Int32) -> Bool {
        var buffer = [CChar](repeating: 0, count: 1024)
        while true {
            let rc = call(&buffer)
            if rc == ERANGE && buffer.count < 1 << 20 {
                buffer = [CChar](repeating: 0, count: buffer.count * 4)
                continue
            }
            if rc == EINTR { continue }
            return rc == 0
        }
    }
}
