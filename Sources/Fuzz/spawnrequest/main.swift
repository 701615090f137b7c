// Fuzz target: the spawner's check of a launch against its template (Sources/CJail/
// spawner_check.c, with spec_blob.c unpacking both blobs) and the name rule of its control
// requests. The sender is the daemon, which this check exists to distrust: a slip here is a
// jail escape granted by the privileged process. Input: [u32 template length][template blob]
// [cjail_template_request][cjail_spawn_request][u8 netns][launch blob][name bytes to the end].
// Properties: an accepted launch has the template's policy part (clone flags, root, static ops,
// filters byte for byte), ids in the range, every launch op's target among the template's, and
// every source to resolve under a root a plain relative path (no "..", ".", "" component) of
// a bind at <root>/app or <root>/data; a valid name has only [A-Za-z0-9._-] and no leading '.'.
import CJail
import FuzzSupport

func aligned(_ bytes: UnsafeRawBufferPointer) -> UnsafeMutableRawPointer {
    let p = UnsafeMutableRawPointer.allocate(byteCount: max(bytes.count, 8), alignment: 8)
    if let b = bytes.baseAddress { p.copyMemory(from: b, byteCount: bytes.count) }
    return p
}

func cString(_ p: UnsafePointer<CChar>?) -> String? { p.map { String(cString: $0) } }

func checkAccepted(_ t: cjail_spec, _ tr: cjail_template_request, _ s: cjail_spec, _ ck: cjail_check) {
    precondition(s.root_path != nil && cString(s.root_path) == cString(t.root_path))
    precondition(s.static_mount_count == t.static_mount_count && s.filter_count == t.filter_count)
    precondition(UInt64(s.uid) >= UInt64(tr.uid_min) && UInt64(s.uid) < UInt64(tr.uid_min) + UInt64(tr.uid_count))
    let targets = Set((Int(t.static_mount_count)..<Int(t.mount_count)).compactMap { cString(t.mounts[$0].target) })
    for i in Int(s.static_mount_count)..<Int(s.mount_count) { precondition(targets.contains(cString(s.mounts[i].target) ?? "")) }
    let root = cString(s.root_path) ?? ""
    withUnsafeBytes(of: ck.tree_op) { ops in
        withUnsafeBytes(of: ck.tree_rel) { rels in
            for k in 0..<Int(CJAIL_MAX_TREES) {
                let op = ops.load(fromByteOffset: k * 4, as: Int32.self)
                guard op >= 0 else { continue }
                let m = s.mounts[Int(op)]
                precondition(m.kind == Int32(CJAIL_MNT_BIND.rawValue))
                precondition([root + "/app", root + "/data"].contains(cString(m.target) ?? ""))
                let rel = cString(rels.load(fromByteOffset: k * 8, as: UnsafePointer<CChar>?.self)) ?? ""
                precondition(!rel.isEmpty && !rel.hasPrefix("/") && !rel.hasSuffix("/"))
                for c in rel.split(separator: "/", omittingEmptySubsequences: false) { precondition(!["", ".", ".."].contains(c)) }
            }
        }
    }
}

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzOne(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let all = UnsafeRawBufferPointer(start: data, count: size)
    let trSize = MemoryLayout<cjail_template_request>.size, rqSize = MemoryLayout<cjail_spawn_request>.size
    guard size >= 4 else { return 0 }
    let tlen = Int(all.loadUnaligned(as: UInt32.self) % 65536)
    guard size >= 4 + tlen + trSize + rqSize + 1 else { return 0 }
    var at = 4
    let tblob = aligned(UnsafeRawBufferPointer(rebasing: all[at..<at + tlen])); at += tlen
    defer { tblob.deallocate() }
    var tr = cjail_template_request(), rq = cjail_spawn_request()
    withUnsafeMutableBytes(of: &tr) { $0.copyMemory(from: UnsafeRawBufferPointer(rebasing: all[at..<at + trSize])) }; at += trSize
    withUnsafeMutableBytes(of: &rq) { $0.copyMemory(from: UnsafeRawBufferPointer(rebasing: all[at..<at + rqSize])) }; at += rqSize
    let netns = Int32(all[at] & 1); at += 1
    let rest = UnsafeRawBufferPointer(rebasing: all[at...])
    let lblob = aligned(rest)
    defer { lblob.deallocate() }
    // The name rule, on the tail (NUL-padded to the field).
    var name = [CChar](repeating: 0, count: Int(CJAIL_NAME_MAX))
    for (i, b) in rest.suffix(Int(CJAIL_NAME_MAX)).enumerated() { name[i] = CChar(bitPattern: b) }
    if cjail_name_valid(name) != 0 {
        let s = String(decoding: name.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
        precondition(!s.hasPrefix(".") && s.utf8.allSatisfy { $0 == 46 || $0 == 45 || $0 == 95 || ($0 >= 48 && $0 <= 57) || ($0 | 32 >= 97 && $0 | 32 <= 122) })
    }
    var t = cjail_spec(), s = cjail_spec()
    guard cjail_spec_unpack(tblob, tlen, &t) == 0 else { return 0 }
    defer { cjail_spec_release(&t) }
    guard cjail_spec_unpack(lblob, rest.count, &s) == 0 else { return 0 }
    defer { cjail_spec_release(&s) }
    var ck = cjail_check()
    if cjail_template_check(&t, &tr, &rq, &s, netns, &ck) == 0 { checkAccepted(t, tr, s, ck) }
    // A launch identical to its template passes whenever its ids are in range (the rules are
    // reflexive): the check must never refuse the template itself for a policy difference.
    var self_ck = cjail_check()
    if cjail_template_check(&t, &tr, &rq, &t, 0, &self_ck) != 0 {
        precondition(self_ck.refused != Int32(CJAIL_REFUSE_STATIC.rawValue) && self_ck.refused != Int32(CJAIL_REFUSE_SECCOMP.rawValue) && self_ck.refused != Int32(CJAIL_REFUSE_LANDLOCK.rawValue))
    }
    return 0
}

runFuzzer(fuzzOne)
