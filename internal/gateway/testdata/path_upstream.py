# A Python http.server upstream for the gateway's differential path test.
# It listens on two ports, one per gateway route, and answers every GET
# with the route its port stands for and the path http.server resolves the
# request to: SimpleHTTPRequestHandler.translate_path, relative to the
# directory it serves. It prints the two ports as one JSON line and exits
# when its standard input closes.
import http.server
import json
import os
import sys
import threading

root = os.path.realpath(sys.argv[1])


def handler(route):
    class H(http.server.SimpleHTTPRequestHandler):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, directory=root, **kwargs)

        def log_message(self, *args):
            pass

        def do_GET(self):
            fs = self.translate_path(self.path)
            rel = fs[len(root):] or "/"
            body = json.dumps({"route": route, "raw": self.path, "resolved": [rel]}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    return H


servers = {}
for route in ("admin", "api"):
    s = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler(route))
    s.daemon_threads = True
    threading.Thread(target=s.serve_forever, daemon=True).start()
    servers[route] = s.server_address[1]
print(json.dumps(servers), flush=True)
sys.stdin.read()
