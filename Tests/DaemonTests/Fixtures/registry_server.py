"""A static registry for tests (spec/registry.md: any HTTP server can be one).
Usage: registry_server.py ROOT
Binds 127.0.0.1 on a free port, prints the port on stdout, serves until killed.
GET /P answers with the bytes of ROOT/P (404 when absent). Test knobs, read at each request:
ROOT/P.delay holds seconds to wait before answering (a slow registry), ROOT/P.status an HTTP
status to answer with instead (a broken one). Every request path is appended to ROOT/.requests
before it is answered."""
import os, sys, time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

ROOT = os.path.realpath(sys.argv[1])


def knob(path, suffix):
    try:
        with open(path + suffix, encoding="utf-8") as f:
            return f.read().strip()
    except OSError:
        return None


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def do_GET(self):
        with open(os.path.join(ROOT, ".requests"), "a", encoding="utf-8") as log:
            log.write(self.path + "\n")
        path = os.path.realpath(os.path.join(ROOT, self.path.split("?")[0].lstrip("/")))
        if not path.startswith(ROOT + os.sep):
            return self.answer(404, b"outside the root\n")
        delay = knob(path, ".delay")
        if delay:
            time.sleep(float(delay))
        status = knob(path, ".status")
        if status:
            return self.answer(int(status), b"knob\n")
        try:
            with open(path, "rb") as f:
                body = f.read()
        except OSError:
            return self.answer(404, b"not found\n")
        self.answer(200, body, "application/json")

    def answer(self, status, body, ctype="text/plain"):
        try:
            self.send_response(status)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the daemon gave up (size cap, timeout): expected


class Server(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request, client_address):
        pass


server = Server(("127.0.0.1", 0), Handler)
print(server.server_address[1], flush=True)
server.serve_forever()
