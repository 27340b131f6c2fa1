#!/usr/bin/env python3
"""A webhook receiver for latchkey's tests.

It checks every message as the Standard Webhooks specification says, with Python's own
`hmac` (an implementation independent of the CA's): the HMAC-SHA256, keyed with the base64
secret after `whsec_`, of `{webhook-id}.{webhook-timestamp}.{body}` must equal one of the
`v1,<base64>` signatures of `webhook-signature`, and the timestamp must be within five minutes
of now (unless --no-clock-check: a CA on a clock the test moves). It records every request,
one JSON line each, in DIR/received.jsonl.

usage: receiver.py DIR [--fail-first N] [--no-clock-check]

DIR/secret    the webhook's secret, read at each request (the test writes it once the
              webhook is added; the URL must exist before that)
DIR/hold      while it exists, every signed request is answered 503
DIR/port      the port, written once listening
"""

import base64
import hashlib
import hmac
import http.server
import json
import os
import sys
import threading
import time

DIR = sys.argv[1]
FAIL_FIRST = int(sys.argv[sys.argv.index("--fail-first") + 1]) if "--fail-first" in sys.argv else 0
CLOCK_CHECK = "--no-clock-check" not in sys.argv
TOLERANCE = 5 * 60

lock = threading.Lock()
signed_requests = 0


def verify(msg_id, timestamp, signatures, body):
    """Whether the request is signed with the secret, and why not if it is not."""
    try:
        with open(os.path.join(DIR, "secret")) as f:
            secret = f.read().strip()
    except FileNotFoundError:
        return False, "no secret yet"
    if not secret.startswith("whsec_"):
        return False, "secret without whsec_"
    key = base64.b64decode(secret[len("whsec_"):])
    if CLOCK_CHECK and abs(time.time() - int(timestamp)) > TOLERANCE:
        return False, "timestamp out of tolerance"
    signed = f"{msg_id}.{timestamp}.".encode() + body
    expected = base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode()
    for signature in signatures.split(" "):
        version, _, value = signature.partition(",")
        if version == "v1" and hmac.compare_digest(value, expected):
            return True, ""
    return False, "no matching signature"


class Handler(http.server.BaseHTTPRequestHandler):
    def do_POST(self):
        global signed_requests
        body = self.rfile.read(int(self.headers.get("content-length", "0")))
        msg_id = self.headers.get("webhook-id", "")
        timestamp = self.headers.get("webhook-timestamp", "0")
        verified, why = verify(msg_id, timestamp, self.headers.get("webhook-signature", ""), body)
        with lock:
            if not verified:
                answer = 401
            elif os.path.exists(os.path.join(DIR, "hold")):
                answer = 503
            else:
                signed_requests += 1
                answer = 500 if signed_requests <= FAIL_FIRST else 204
            record = {
                "id": msg_id,
                "timestamp": timestamp,
                "verified": verified,
                "why": why,
                "answer": answer,
                "path": self.path,
                "content_type": self.headers.get("content-type", ""),
                "body": json.loads(body) if body else None,
                "raw": body.decode(),
                "headers": {
                    name: self.headers.get(name, "")
                    for name in ("webhook-id", "webhook-timestamp", "webhook-signature")
                },
            }
            with open(os.path.join(DIR, "received.jsonl"), "a") as f:
                f.write(json.dumps(record) + "\n")
        self.send_response(answer)
        self.send_header("content-length", "0")
        self.end_headers()

    def log_message(self, *args):
        pass


server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
with open(os.path.join(DIR, "port.tmp"), "w") as f:
    f.write(str(server.server_address[1]))
os.rename(os.path.join(DIR, "port.tmp"), os.path.join(DIR, "port"))
server.serve_forever()
