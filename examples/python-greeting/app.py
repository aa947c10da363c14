"""A web process that imports a package the Python buildpack installed."""
import os
from http.server import BaseHTTPRequestHandler, HTTPServer

import greeting


class Handler(BaseHTTPRequestHandler):
    def do_GET(self):
        body = (greeting.hello(os.environ.get("HOSTNAME", "?")) + "\n").encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


HTTPServer(("127.0.0.1", int(os.environ["PORT"])), Handler).serve_forever()
