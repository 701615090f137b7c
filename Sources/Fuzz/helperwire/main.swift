// Fuzz target: the daemon↔helper wire (HelperFrame, HelperFrameReader and every typed message).
// Both ends parse what the other sends as hostile: a compromised helper writes whatever it likes
// on its socket, and the daemon must refuse it without trapping.
//
// Properties: decoding never traps; a decoded frame re-encodes to exactly the input bytes (one
// reading per frame: no parser differential between the two ends); feeding the same bytes to
// the incremental reader in two pieces gives the same frame; every typed decoder either refuses
// or yields a message that re-encodes and decodes to the same frame.
import FuzzSupport
import MiniAppModel

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzOne(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let bytes = Array(UnsafeBufferPointer(start: data, count: size))
    guard let frame = try? HelperFrameReader.decode(bytes, maxPayload: 1 << 20, maxFields: 256) else { return 0 }
    precondition(frame.encoded() == bytes, "a decoded frame does not re-encode to its bytes")
    var split = HelperFrameReader(maxPayload: 1 << 20, maxFields: 256)
    split.append(Array(bytes.prefix(bytes.count / 2)))
    precondition((try? split.next()) == .some(nil), "a half frame was taken as complete")
    split.append(Array(bytes.dropFirst(bytes.count / 2)))
    precondition((try? split.next()) == .some(frame), "the split read differs")
    if let m = try? HelperHello(frame) { precondition((try? HelperHello(m.frame())) == m, "hello round trip") }
    if let m = try? HelperReady(frame) { precondition((try? HelperReady(m.frame())) == m, "ready round trip") }
    if let m = try? HelperFailure(frame) { precondition((try? HelperFailure(m.frame(id: frame.id))) == m, "failure round trip") }
    if let m = try? HelperExtractRequest(frame) { precondition((try? HelperExtractRequest(m.frame(id: 1))) == m, "extract round trip") }
    if let m = try? HelperExtractResponse(frame, maxManifest: 65536, maxPath: 1024) {
        precondition((try? HelperExtractResponse(m.frame(id: 1), maxManifest: 65536, maxPath: 1024)) == m, "extract response round trip")
    }
    if let m = try? HelperNetRequest(frame) { precondition((try? HelperNetRequest(m.frame(id: 1))) != nil, "net request round trip") }
    if let m = try? HelperNetResponse(frame, maxBody: 1 << 20) {
        let again = try? HelperNetResponse(m.frame(id: 1), maxBody: 1 << 20)
        precondition(again?.status == m.status && again?.body == m.body && again?.headers.count == m.headers.count, "net response round trip")
    }
    return 0
}

runFuzzer(fuzzOne)
