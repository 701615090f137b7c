internal import CCurl
internal import CCurlShim

/// Bytes received by one transfer; the write/header callbacks append here through an
/// unmanaged pointer (libcurl calls them synchronously on the thread running the transfer).
final class CurlSink {
    var body: [UInt8] = []
    var headerLines: [String] = []
    var headerBytes = 0
    var overLimit = false
    let maxBody: Int
    let maxHeaders: Int

    init(maxBody: Int, maxHeaders: Int) {
        self.maxBody = maxBody
        self.maxHeaders = maxHeaders
    }
}

/// Body callback: refuses (returns 0, which aborts with CURLE_WRITE_ERROR) as soon as the
/// bytes actually received pass the cap; Content-Length is never trusted for this.
private let curlWriteBody: miniapp_curl_write_fn = { data, size, count, user in
    let n = size * count
    guard let user, let data else { return 0 }
    let sink = Unmanaged<CurlSink>.fromOpaque(user).takeUnretainedValue()
    if sink.body.count + n > sink.maxBody {
        sink.overLimit = true
        return 0
    }
    data.withMemoryRebound(to: UInt8.self, capacity: n) { sink.body.append(contentsOf: UnsafeBufferPointer(start: $0, count: n)) }
    return n
}

/// Header callback: one call per header line, including the status line of each response
/// (a `100 Continue` interim response comes first; a new status line restarts the list).
private let curlWriteHeader: miniapp_curl_write_fn = { data, size, count, user in
    let n = size * count
    guard let user, let data else { return 0 }
    let sink = Unmanaged<CurlSink>.fromOpaque(user).takeUnretainedValue()
    sink.headerBytes += n
    if sink.headerBytes > sink.maxHeaders {
        sink.overLimit = true
        return 0
    }
    let line = data.withMemoryRebound(to: UInt8.self, capacity: n) {
        String(decoding: UnsafeBufferPointer(start: $0, count: n), as: UTF8.self)
    }
    if line.hasPrefix("HTTP/") { sink.headerLines = [] }
    sink.headerLines.append(line)
    return n
}

/// One libcurl easy transfer and everything it borrows (header lists, the pin, the sink), all
/// released by `cleanup`.
final class CurlTransfer {
    private let easy: UnsafeMutableRawPointer
    private let request: HTTPClientRequest
    private let sink: CurlSink
    private let pin: UnsafeMutablePointer<miniapp_curl_pin>
    private var lists: [UnsafeMutablePointer<curl_slist>] = []
    private var blob: UnsafeMutablePointer<curl_blob>?

    init(easy: UnsafeMutableRawPointer, request: HTTPClientRequest) {
        self.easy = easy
        self.request = request
        sink = CurlSink(maxBody: request.maxResponseBytes, maxHeaders: request.maxHeaderBytes)
        pin = .allocate(capacity: 1)
        pin.initialize(to: miniapp_curl_pin())
    }

    func cleanup() {
        curl_easy_cleanup(easy)
        for list in lists { curl_slist_free_all(list) }
        pin.deallocate()
        blob?.deallocate()
    }

    private func list(_ items: [String]) -> UnsafeMutablePointer<curl_slist>? {
        var head: UnsafeMutablePointer<curl_slist>?
        for item in items { head = curl_slist_append(head, item) }
        if let head { lists.append(head) }
        return head
    }

    /// Sets every option; nil when all were accepted.
    func configure() -> HTTPClientError? {
        let r = request
        let address = r.pinnedAddress
        guard address.utf8.count < 63, !address.isEmpty else { return .connect("invalid pinned address") }
        withUnsafeMutableBytes(of: &pin.pointee.address) { raw in
            for (i, b) in address.utf8.enumerated() { raw[i] = b }
        }
        let protocols = r.allowHTTP ? "https,http" : "https"
        // CURLOPT_RESOLVE wants IPv6 addresses in brackets; the pin callback compares bare form.
        let resolveAddress = address.contains(":") ? "[\(address)]" : address
        let bareHost = r.url.host.hasPrefix("[") ? String(r.url.host.dropFirst().dropLast()) : r.url.host
        var headers = r.headers.map { "\($0.name): \($0.value)" }
        headers.append("Expect:")  // no 100-continue round trip
        if !r.headers.contains(where: { $0.name.lowercased() == "user-agent" }) {
            headers.append("User-Agent: \(r.userAgent)")
        }
        var codes: [CURLcode] = [
            miniapp_curl_setopt_string(easy, CURLOPT_URL, r.url.text),
            miniapp_curl_setopt_string(easy, CURLOPT_PROTOCOLS_STR, protocols),
            miniapp_curl_setopt_string(easy, CURLOPT_REDIR_PROTOCOLS_STR, protocols),
            miniapp_curl_setopt_long(easy, CURLOPT_FOLLOWLOCATION, 0),
            miniapp_curl_setopt_long(easy, CURLOPT_NOSIGNAL, 1),
            miniapp_curl_setopt_long(easy, CURLOPT_SSL_VERIFYPEER, 1),
            miniapp_curl_setopt_long(easy, CURLOPT_SSL_VERIFYHOST, 2),
            miniapp_curl_setopt_long(easy, CURLOPT_SSLVERSION, CURL_SSLVERSION_TLSv1_2),
            miniapp_curl_setopt_string(easy, CURLOPT_PROXY, ""),
            miniapp_curl_setopt_string(easy, CURLOPT_NOPROXY, "*"),
            miniapp_curl_setopt_long(easy, CURLOPT_NETRC, Int(CURL_NETRC_IGNORED.rawValue)),
            miniapp_curl_setopt_long(easy, CURLOPT_FORBID_REUSE, 1),
            miniapp_curl_setopt_long(easy, CURLOPT_FRESH_CONNECT, 1),
            miniapp_curl_setopt_long(easy, CURLOPT_CONNECTTIMEOUT_MS, max(1, r.connectTimeoutMillis)),
            miniapp_curl_setopt_long(easy, CURLOPT_TIMEOUT_MS, max(1, r.timeoutMillis)),
            miniapp_curl_setopt_off(easy, CURLOPT_MAXFILESIZE_LARGE, curl_off_t(r.maxResponseBytes)),
            miniapp_curl_setopt_slist(easy, CURLOPT_RESOLVE, list(["\(bareHost):\(r.url.port):\(resolveAddress)"])),
            miniapp_curl_setopt_slist(easy, CURLOPT_HTTPHEADER, list(headers)),
            miniapp_curl_pin_address(easy, pin),
            miniapp_curl_setopt_write_fn(easy, CURLOPT_WRITEFUNCTION, curlWriteBody),
            miniapp_curl_setopt_write_fn(easy, CURLOPT_HEADERFUNCTION, curlWriteHeader),
            miniapp_curl_setopt_pointer(easy, CURLOPT_WRITEDATA, Unmanaged.passUnretained(sink).toOpaque()),
            miniapp_curl_setopt_pointer(easy, CURLOPT_HEADERDATA, Unmanaged.passUnretained(sink).toOpaque()),
        ]
        if let bundle = r.caBundle {
            // CURL_BLOB_COPY: libcurl keeps its own copy, so the array need not outlive this call.
            let b = UnsafeMutablePointer<curl_blob>.allocate(capacity: 1)
            blob = b
            codes.append(bundle.withUnsafeBytes { p in
                b.initialize(to: curl_blob(data: UnsafeMutableRawPointer(mutating: p.baseAddress), len: p.count, flags: UInt32(CURL_BLOB_COPY)))
                return miniapp_curl_setopt_pointer(easy, CURLOPT_CAINFO_BLOB, UnsafeMutableRawPointer(b))
            })
        } else if let ca = r.caFile {
            codes.append(miniapp_curl_setopt_string(easy, CURLOPT_CAINFO, ca))
        }
        codes += methodOptions()
        if let bad = codes.first(where: { $0 != CURLE_OK }) {
            return .transfer("option refused: \(String(cString: curl_easy_strerror(bad)))")
        }
        return nil
    }

    private func methodOptions() -> [CURLcode] {
        var codes: [CURLcode] = []
        if let body = request.body {
            codes.append(miniapp_curl_setopt_off(easy, CURLOPT_POSTFIELDSIZE_LARGE, curl_off_t(body.count)))
            codes.append(body.withUnsafeBytes { p in
                // COPYPOSTFIELDS copies the bytes, so the array need not outlive this call.
                miniapp_curl_setopt_pointer(easy, CURLOPT_COPYPOSTFIELDS, body.isEmpty ? nil : UnsafeMutableRawPointer(mutating: p.baseAddress))
            })
        }
        switch request.method {
        case "GET" where request.body == nil: codes.append(miniapp_curl_setopt_long(easy, CURLOPT_HTTPGET, 1))
        case "HEAD": codes.append(miniapp_curl_setopt_long(easy, CURLOPT_NOBODY, 1))
        default: codes.append(miniapp_curl_setopt_string(easy, CURLOPT_CUSTOMREQUEST, request.method))
        }
        return codes
    }

    /// Runs the transfer and maps the outcome.
    func run() -> Result<HTTPClientResponse, HTTPClientError> {
        let rc = curl_easy_perform(easy)
        if pin.pointee.refused != 0 {
            return .failure(.connect("libcurl tried an address other than the checked one; refused"))
        }
        if sink.overLimit || rc == CURLE_FILESIZE_EXCEEDED {
            return .failure(.responseTooLarge(limit: request.maxResponseBytes))
        }
        if rc != CURLE_OK { return .failure(Self.map(rc)) }
        var status = 0
        _ = miniapp_curl_getinfo_long(easy, CURLINFO_RESPONSE_CODE, &status)
        return .success(HTTPClientResponse(status: status, headers: parseHeaders(), body: sink.body))
    }

    private func parseHeaders() -> [(name: String, value: String)] {
        sink.headerLines.dropFirst().compactMap { line in
            guard let colon = line.firstIndex(of: ":") else { return nil }
            let name = line[..<colon].trimmingCharacters(in: " \t").lowercased()
            let value = line[line.index(after: colon)...].trimmingCharacters(in: " \t\r\n")
            return name.isEmpty ? nil : (name, value)
        }
    }

    private static func map(_ rc: CURLcode) -> HTTPClientError {
        let message = String(cString: curl_easy_strerror(rc))
        switch rc {
        case CURLE_OPERATION_TIMEDOUT: return .timedOut
        case CURLE_PEER_FAILED_VERIFICATION, CURLE_SSL_CONNECT_ERROR, CURLE_SSL_CACERT_BADFILE, CURLE_SSL_CERTPROBLEM:
            return .tls(message)
        case CURLE_COULDNT_CONNECT, CURLE_COULDNT_RESOLVE_HOST: return .connect(message)
        default: return .transfer(message)
        }
    }
}

extension Substring {
    /// Trims the given characters from both ends.
    fileprivate func trimmingCharacters(in set: String) -> String {
        let chars = Set(set)
        var s = self[...]
        while let f = s.first, chars.contains(f) { s = s.dropFirst() }
        while let l = s.last, chars.contains(l) { s = s.dropLast() }
        return String(s)
    }
}
