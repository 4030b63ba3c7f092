# A WSGI upstream (wsgiref, the standard library's reference server) for the
# gateway's header test. WSGI servers put request headers in the environ
# as HTTP_<NAME> with '-' turned into '_', so X_Client_Identity and
# X-Client-Identity land in the same key (wsgiref joins them with a
# comma). It answers with every HTTP_* key, prints its port as a JSON line
# and exits when its standard input closes.
import json
import sys
import threading
from wsgiref.simple_server import WSGIRequestHandler, make_server


def app(environ, start_response):
    body = json.dumps({k: v for k, v in environ.items() if k.startswith("HTTP_")}).encode()
    start_response("200 OK", [("Content-Type", "application/json"), ("Content-Length", str(len(body)))])
    return [body]


class Quiet(WSGIRequestHandler):
    def log_message(self, *args):
        pass


srv = make_server("127.0.0.1", 0, app, handler_class=Quiet)
threading.Thread(target=srv.serve_forever, daemon=True).start()
print(json.dumps({"port": srv.server_port}), flush=True)
sys.stdin.read()
