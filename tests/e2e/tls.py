"""A test CA and HTTPS servers on 127.0.0.1 for the background worker's fetches.

`make_ca(dir)` writes a CA and a server certificate for 127.0.0.1 (files the postgres user can
read: the cluster trusts the CA through `oidc.fetch_ca_file`). `StubIdp` is a small HTTPS
OpenID Provider stand-in serving a discovery document and a key set, with switchable bad
answers for the failure policy; it stops at teardown."""

from __future__ import annotations

import datetime
import json
import ssl
import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import ipaddress

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID


@dataclass(frozen=True)
class Ca:
    ca: Path  # PEM of the CA certificate
    cert: Path  # the server's certificate chain (PEM)
    key: Path  # the server's private key (PEM)


def make_ca(directory: Path) -> Ca:
    now = datetime.datetime.now(datetime.timezone.utc)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "pg_oidc_authz test CA")])
    ca = (x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name)
          .public_key(ca_key.public_key()).serial_number(x509.random_serial_number())
          .not_valid_before(now - datetime.timedelta(minutes=5)).not_valid_after(now + datetime.timedelta(days=1))
          .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
          .add_extension(x509.KeyUsage(digital_signature=False, content_commitment=False, key_encipherment=False,
                                       data_encipherment=False, key_agreement=False, key_cert_sign=True,
                                       crl_sign=True, encipher_only=False, decipher_only=False), critical=True)
          .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
          .sign(ca_key, hashes.SHA256()))
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")]))
            .issuer_name(ca_name).public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5)).not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                           critical=False)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False)
            .sign(ca_key, hashes.SHA256()))
    out = Ca(directory / "ca.pem", directory / "server.pem", directory / "server.key")
    out.ca.write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    out.cert.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    out.key.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                          serialization.NoEncryption()))
    for f in (out.ca, out.cert, out.key):
        f.chmod(0o644)
    return out


class StubIdp:
    """HTTPS on 127.0.0.1: `/.well-known/openid-configuration` and `/jwks`. `mode` picks
    the answer: "ok", or one bad answer of the failure policy."""

    MODES = ("ok", "timeout", "http-error", "too-large", "not-json", "wrong-issuer", "bad-keys",
             "redirect", "no-jwks-uri")

    def __init__(self, ca: Ca, jwks: dict[str, Any]) -> None:
        self.jwks = jwks
        self.mode = "ok"
        self.requests = 0
        self.stalled = threading.Event()  # set while a "timeout" answer is being withheld
        stub = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_GET(self) -> None:  # noqa: N802 - http.server's name
                stub.requests += 1
                stub.answer(self)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(ca.cert, ca.key)
        self.server.socket = context.wrap_socket(self.server.socket, server_side=True)
        self.issuer = f"https://127.0.0.1:{self.server.server_port}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def answer(self, h: BaseHTTPRequestHandler) -> None:
        mode = self.mode
        if h.path == "/.well-known/openid-configuration":
            doc: Any = {"issuer": self.issuer, "jwks_uri": f"{self.issuer}/jwks"}
            if mode == "wrong-issuer":
                doc["issuer"] = self.issuer + "/"
            if mode == "no-jwks-uri":
                del doc["jwks_uri"]
            self.send(h, 200, json.dumps(doc).encode())
        elif h.path == "/jwks":
            if mode == "timeout":
                self.stalled.set()
                time.sleep(3)
                self.stalled.clear()
            if mode == "http-error":
                return self.send(h, 503, b'{"error": "unavailable"}')
            if mode == "too-large":
                return self.send(h, 200, b'{"keys": [], "pad": "' + b"x" * (1 << 20) + b'"}')
            if mode == "not-json":
                return self.send(h, 200, b'{"keys": [')
            if mode == "redirect":
                return self.send(h, 302, b"", {"Location": "https://127.0.0.2/jwks"})
            jwks = self.jwks
            if mode == "bad-keys":
                jwks = {"keys": [dict(k, d="AAAA") for k in jwks["keys"]]}  # private members
            self.send(h, 200, json.dumps(jwks).encode(), {"Cache-Control": "max-age=1"})
        else:
            self.send(h, 404, b"{}")

    @staticmethod
    def send(h: BaseHTTPRequestHandler, status: int, body: bytes, headers: dict[str, str] | None = None) -> None:
        try:
            h.send_response(status)
            h.send_header("Content-Type", "application/json")
            h.send_header("Content-Length", str(len(body)))
            for k, v in (headers or {}).items():
                h.send_header(k, v)
            h.end_headers()
            h.wfile.write(body)
        except OSError:
            pass  # the worker gave up (timeout): nothing to answer

    def stop(self) -> None:
        if self.thread.is_alive():
            self.server.shutdown()
            self.server.server_close()
