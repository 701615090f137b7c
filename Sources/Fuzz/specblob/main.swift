// Fuzz target: `cjail_spec_unpack` (Sources/CJail/spec_blob.c), the check that turns the
// position-independent spec blob the spawner process receives into pointers. The daemon is the
// only sender, but a bounds slip here would be memory corruption in the process that creates
// every jail, so it gets the same treatment as untrusted input. Property: either -EINVAL, or
// every string and data pointer it produced lies inside the blob and every string ends inside
// it (the arrays are private copies, of exactly the counts given).
import CJail
import FuzzSupport

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzOne(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let p = UnsafeMutableRawPointer.allocate(byteCount: max(size, 8), alignment: 8)
    defer { p.deallocate() }
    p.copyMemory(from: data, byteCount: size)
    var s = cjail_spec()
    guard cjail_spec_unpack(p, size, &s) == 0 else { return 0 }
    defer { cjail_spec_release(&s) }
    let lo = UInt(bitPattern: p), hi = lo + UInt(size)
    func inside(_ q: UnsafeRawPointer?) -> Bool {
        guard let q else { return true }
        let a = UInt(bitPattern: q)
        return a >= lo && a < hi
    }
    func terminated(_ q: UnsafePointer<CChar>?) {
        guard let q else { return }
        precondition(inside(q))
        var i = 0
        while q[i] != 0 { i += 1; precondition(inside(q + i)) }
    }
    for str in [s.root_path, s.root_options, s.hostname, s.workdir] { terminated(str) }
    for i in 0..<Int(s.mount_count) {
        let m = s.mounts[i]
        terminated(m.source); terminated(m.target)
        if m.kind != Int32(CJAIL_MNT_FILE.rawValue) { terminated(m.data) } else { precondition(inside(m.data)) }
    }
    for i in 0..<Int(s.landlock_rule_count) { terminated(s.landlock_rules[i].path) }
    for i in 0..<Int(s.filter_count) {
        let f = s.filters[i]
        precondition(f.count > 0 && inside(f.insns) && inside(f.insns + Int(f.count) * 8 - 1))
    }
    for i in 0..<Int(s.exec_path_count) { terminated(s.exec_paths[i]) }
    for vec in [s.argv, s.envp] {
        precondition(vec != nil)
        var i = 0
        while let a = vec?[i] { terminated(a); i += 1 }
    }
    return 0
}

runFuzzer(fuzzOne)
