"""Keys, a local JWKS server on 127.0.0.1, token factories and a tiny app guarded by roles."""

from __future__ import annotations

import base64
import json
import threading
import time
from collections.abc import AsyncIterator, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Annotated, Any

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from fastapi import Depends, FastAPI
from jwt.algorithms import ECAlgorithm, RSAAlgorithm

from asinwatch.auth.dependencies import get_verifier, require_role
from asinwatch.auth.jwt import JwksKeyStore, JwtVerifier
from asinwatch.auth.roles import Principal
from asinwatch.config import get_settings
from asinwatch.kit.problems import install_problem_handlers


class JwksServer:
    """Serves `document` at /jwks.json and counts every request by path."""

    def __init__(self) -> None:
        self.document: dict[str, Any] = {"keys": []}
        self.hits: dict[str, int] = {}
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                server.hits[self.path] = server.hits.get(self.path, 0) + 1
                if self.path != "/jwks.json":
                    self.send_response(404)
                    self.end_headers()
                    return
                body = json.dumps(server.document).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: Any) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.base = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.url = self.base + "/jwks.json"
        self.thread = threading.Thread(
            target=self.httpd.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        )
        self.thread.start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture(scope="session")
def rsa_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.fixture(scope="session")
def ec_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def rsa_jwk(key: rsa.RSAPrivateKey, kid: str) -> dict[str, Any]:
    jwk = json.loads(RSAAlgorithm.to_jwk(key.public_key()))
    return {**jwk, "kid": kid, "alg": "RS256", "use": "sig"}


def ec_jwk(key: ec.EllipticCurvePrivateKey, kid: str) -> dict[str, Any]:
    jwk = json.loads(ECAlgorithm.to_jwk(key.public_key()))
    return {**jwk, "kid": kid, "alg": "ES256", "use": "sig"}


@pytest.fixture
def jwks_server(
    rsa_key: rsa.RSAPrivateKey, ec_key: ec.EllipticCurvePrivateKey
) -> Iterator[JwksServer]:
    server = JwksServer()
    server.document = {"keys": [rsa_jwk(rsa_key, "rsa-1"), ec_jwk(ec_key, "ec-1")]}
    yield server
    server.close()


def claims(role: str | None = "viewer", **over: Any) -> dict[str, Any]:
    auth = get_settings().auth
    now = int(time.time())
    out: dict[str, Any] = {
        "iss": auth.issuer,
        "aud": auth.audience,
        "sub": "user-1",
        "iat": now,
        "exp": now + 300,
        "jti": "tok-1",
        "role": "authenticated",
    }
    if role is not None:
        out["app_metadata"] = {"role": role}
    out.update(over)
    return {k: v for k, v in out.items() if v is not None}


def hs_token(role: str | None = "viewer", secret: str | None = None, **over: Any) -> str:
    key = secret or get_settings().auth.jwt_secret.get_secret_value()
    return jwt.encode(claims(role, **over), key, algorithm="HS256")


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def raw_token(header: dict[str, Any], payload: dict[str, Any], signature: bytes = b"") -> str:
    return ".".join(
        [b64(json.dumps(header).encode()), b64(json.dumps(payload).encode()), b64(signature)]
    )


def make_app(verifier: JwtVerifier) -> FastAPI:
    app = FastAPI()
    install_problem_handlers(app)
    app.dependency_overrides[get_verifier] = lambda: verifier

    def who(p: Principal) -> dict[str, Any]:
        return {"sub": p.sub, "role": p.role, "token_id": p.token_id}

    @app.get("/viewer")
    async def viewer(p: Annotated[Principal, Depends(require_role("viewer"))]) -> dict[str, Any]:
        return who(p)

    @app.get("/operator")
    async def operator(
        p: Annotated[Principal, Depends(require_role("operator"))],
    ) -> dict[str, Any]:
        return who(p)

    @app.get("/admin")
    async def admin(p: Annotated[Principal, Depends(require_role("admin"))]) -> dict[str, Any]:
        return who(p)

    return app


@pytest.fixture
def verifier(jwks_server: JwksServer) -> JwtVerifier:
    auth = get_settings().auth
    return JwtVerifier(auth, JwksKeyStore(jwks_server.url, cache_s=auth.jwks_cache_s))


@pytest.fixture
async def client(verifier: JwtVerifier) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=make_app(verifier))
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as c:
        yield c
