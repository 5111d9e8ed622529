"""The spec's Python receiver, as a customer would write it: HMAC of the raw body as text.

``python spec_receiver.py SECRET`` listens on 127.0.0.1 (a free port), prints ``{"port": N}``,
and answers POSTs with 200 "OK" when ``X-Attribution-Signature`` verifies, 401 otherwise.
``GET /stats`` returns what it saw. Flask's ``request.get_data(as_text=True)`` is UTF-8 decoding
of the raw body; the verification is the spec's ``verify_signature``, word for word.
"""

import hashlib
import hmac
import json
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


def verify_signature(payload, signature, secret):
    expected = hmac.new(secret.encode(), payload.encode(), hashlib.sha256).hexdigest()

    return hmac.compare_digest(signature, expected)


SECRET = sys.argv[1]
STATS = {"verified": 0, "rejected": 0, "event_ids": []}


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_POST(self):
        raw = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        signature = self.headers.get("X-Attribution-Signature")
        payload = raw.decode("utf-8", "replace")  # request.get_data(as_text=True)
        if signature is None or not verify_signature(payload, signature, SECRET):
            STATS["rejected"] += 1
            self._reply(401, b"Invalid signature")
            return
        STATS["verified"] += 1
        STATS["event_ids"].append(json.loads(payload)["id"])
        self._reply(200, b"OK")

    def do_GET(self):
        self._reply(200, json.dumps(STATS).encode())

    def _reply(self, status, body):
        self.send_response(status)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
print(json.dumps({"port": server.server_address[1]}), flush=True)
server.serve_forever()
