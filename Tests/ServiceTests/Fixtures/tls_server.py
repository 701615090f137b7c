"""A tiny HTTPS server for NetService tests. Usage: tls_server.py CERT KEY
Binds 127.0.0.1 on a free port, prints the port on stdout, serves until killed."""
import base64, json, ssl, sys, time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlparse, parse_qs


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def send(self, status, body, headers=()):
        self.send_response(status)
        for k, v in headers:
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def handle_any(self):
        u = urlparse(self.path)
        q = parse_qs(u.query)
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        if u.path == "/ok":
            self.send(200, ("hello from " + self.headers.get("Host", "")).encode(), [("X-Test", "1"), ("Set-Cookie", "a=1"), ("Set-Cookie", "b=2")])
        elif u.path == "/echo":
            doc = {"method": self.command, "path": self.path, "headers": {k.lower(): v for k, v in self.headers.items()},
                   "body": base64.b64encode(body).decode()}
            self.send(200, json.dumps(doc).encode(), [("Content-Type", "application/json")])
        elif u.path == "/redirect":
            self.send(int(q.get("code", ["302"])[0]), b"", [("Location", q["to"][0])])
        elif u.path == "/big":
            self.send(200, b"a" * int(q["n"][0]))
        elif u.path == "/binary":
            self.send(200, bytes(range(256)))
        elif u.path == "/slow":
            time.sleep(float(q.get("s", ["3"])[0]))
            self.send(200, b"late")
        else:
            self.send(404, b"not found")

    do_GET = do_POST = do_PUT = do_DELETE = do_HEAD = do_PATCH = do_OPTIONS = handle_any


class Server(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request, client_address):
        pass  # clients that abort (size cap, timeout) are expected


ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
ctx.load_cert_chain(sys.argv[1], sys.argv[2])
server = Server(("127.0.0.1", 0), Handler)
server.socket = ctx.wrap_socket(server.socket, server_side=True)
print(server.server_address[1], flush=True)
server.serve_forever()
