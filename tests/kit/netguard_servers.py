"""Test servers for the netguard tests: one HTTP(S) server per loopback address on the same
port, each recording the requests it got (path, Host header, TLS server name), and a
self-signed certificate for a made-up name."""

from __future__ import annotations

import datetime as dt
import ssl
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID


@dataclass
class Seen:
    method: str
    path: str
    host: str | None
    sni: str | None


@dataclass
class Recorder:
    address: str
    port: int = 0
    seen: list[Seen] = field(default_factory=list)
    sni: list[str | None] = field(default_factory=list)


def write_certificate(folder: Path, name: str) -> tuple[Path, Path]:
    """A self-signed certificate for DNS name `name` (its own trust anchor) and its key."""
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(name)]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = folder / f"{name}.pem", folder / f"{name}.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path


def _handler(rec: Recorder) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:
            pass

        def _answer(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            if length:
                self.rfile.read(length)
            sni = rec.sni[-1] if rec.sni else None
            rec.seen.append(Seen(self.command, self.path, self.headers.get("Host"), sni))
            body = b'{"ok": true}'
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_GET(self) -> None:
            self._answer()

        def do_POST(self) -> None:
            self._answer()

    return Handler


@contextmanager
def servers(
    addresses: list[str], cert: tuple[Path, Path] | None = None
) -> Iterator[list[Recorder]]:
    """One server per address, all on the same port (HTTPS when `cert` is given)."""
    recorders: list[Recorder] = []
    started: list[ThreadingHTTPServer] = []
    port = 0
    try:
        for address in addresses:
            rec = Recorder(address)
            httpd = ThreadingHTTPServer((address, port), _handler(rec))
            port = httpd.server_address[1]
            rec.port = port
            if cert is not None:
                ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
                ctx.load_cert_chain(str(cert[0]), str(cert[1]))

                def remember(sock: Any, name: str | None, _ctx: Any, rec: Recorder = rec) -> None:
                    rec.sni.append(name)

                ctx.sni_callback = remember
                httpd.socket = ctx.wrap_socket(httpd.socket, server_side=True)
            threading.Thread(
                target=httpd.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
            ).start()
            started.append(httpd)
            recorders.append(rec)
        yield recorders
    finally:
        for httpd in started:
            httpd.shutdown()
            httpd.server_close()
