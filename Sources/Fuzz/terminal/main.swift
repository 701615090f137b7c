// Fuzz target: TerminalText, the escaping of untrusted bytes on their way to a terminal or a log
// (program output, log.write, inspector method names, package entry names).
//
// Properties: nothing `needsEscape` survives either escaping; text that needed no escaping is
// returned unchanged; the JSON form of any string stays valid JSON that reads back to the string.
import FuzzSupport
import MiniAppJSON
import MiniAppModel

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzOne(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let bytes = Array(UnsafeBufferPointer(start: data, count: size))
    let escaped = TerminalText.escape(bytes: bytes)
    precondition(!escaped.unicodeScalars.contains(where: TerminalText.needsEscape), "a dangerous scalar survived escape(bytes:)")
    let text = String(decoding: bytes, as: UTF8.self)
    let again = TerminalText.escape(text)
    precondition(!again.unicodeScalars.contains(where: TerminalText.needsEscape), "a dangerous scalar survived escape(_:)")
    if !text.unicodeScalars.contains(where: TerminalText.needsEscape) { precondition(again == text, "clean text was changed") }
    let json = TerminalText.escapeJSON(JSONValue.string(text).jsonString)
    precondition(!json.unicodeScalars.contains(where: TerminalText.needsEscape), "a dangerous scalar survived escapeJSON")
    precondition((try? JSONValue.parse(Array(json.utf8)))?.stringValue == text, "escapeJSON broke the JSON")
    return 0
}

runFuzzer(fuzzOne)
