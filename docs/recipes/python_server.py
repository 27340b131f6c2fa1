"""A Python service that accepts latchkey keys (docs/relying-parties.md).

Usage: python3 python_server.py PORT SERVER_CERT SERVER_KEY CA_CHAIN CRL_BUNDLE

CA_CHAIN is `GET /v1/ca` (intermediate, then root); CRL_BUNDLE is the file that
`latchkey crl sync --bundle --out CRL_BUNDLE` keeps fresh. OpenSSL checks a CRL for every CA
in the chain (VERIFY_CRL_CHECK_CHAIN); a new TLS context is made whenever the CRL file
changes, so a revocation applies to the next connection without a restart.
"""
import http.server
import json
import os
import ssl
import sys
import threading

PORT, SERVER_CERT, SERVER_KEY, CA_CHAIN, CRL_BUNDLE = sys.argv[1:6]


class Contexts:
    """The TLS context for the CRL file as it is now."""

    def __init__(self):
        self.lock = threading.Lock()
        self.seen = None
        self.context = None

    def current(self):
        stamp = os.stat(CRL_BUNDLE).st_mtime_ns
        with self.lock:
            if stamp != self.seen:
                context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
                context.load_cert_chain(SERVER_CERT, SERVER_KEY)
                context.verify_mode = ssl.CERT_REQUIRED
                context.load_verify_locations(cafile=CA_CHAIN)
                context.load_verify_locations(cafile=CRL_BUNDLE)  # PEM CRLs load here too
                context.verify_flags |= ssl.VERIFY_CRL_CHECK_CHAIN
                self.context, self.seen = context, stamp
            return self.context


CONTEXTS = Contexts()


def identity(cert):
    """Tenant, owner, key id and scopes from a latchkey certificate (as getpeercert gives it)."""
    subject = [pair for rdn in cert["subject"] for pair in rdn]
    values = lambda name: sorted(v for k, v in subject if k == name)
    uris = [v for k, v in cert.get("subjectAltName", ()) if k == "URI"]
    key_id = uris[0].rsplit("/key/", 1)[1] if uris else None
    return {
        "owner": values("commonName")[0],
        "tenant": values("organizationName")[0],
        "key_id": key_id,
        "scopes": values("organizationalUnitName"),
    }


class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        who = identity(self.connection.getpeercert())
        body = json.dumps(who).encode()
        # Authorize on the scopes, e.g.: if "read:metrics" not in who["scopes"]: 403.
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


class Server(http.server.ThreadingHTTPServer):
    def get_request(self):
        sock, address = self.socket.accept()
        # The handshake (and the certificate and CRL checks) happens here; a refused client
        # raises ssl.SSLError, which the server drops.
        return CONTEXTS.current().wrap_socket(sock, server_side=True), address


Server(("127.0.0.1", int(PORT)), Handler).serve_forever()
