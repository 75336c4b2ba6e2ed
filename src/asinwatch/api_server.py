"""Running the HTTP API under uvicorn: `serve()` behind `asinwatch api` (and so `asinwatch up`).

Owns the process around the app:

- the listening socket is bound here, before any event loop or lifespan: a busy port is one
  readable line and a non-zero exit at once (`PortInUseError`). uvicorn's own bind failure calls
  ``sys.exit`` inside the event loop, which uvloop never leaves: the process hung on shutdown
  and ignored SIGINT/SIGTERM until ``kill -9``;
- any other ``SystemExit`` of uvicorn's startup (a failed lifespan) leaves the loop the same
  way, as an exit status;
- settings.api → uvicorn: the request-head size cap and read timeout
  (`HeadLimitedHttpToolsProtocol`, or h11's own cap), the keep-alive and graceful-shutdown
  timeouts (SIGTERM/SIGINT end the process even with a request stuck in flight) and the
  trusted proxies whose ``X-Forwarded-For``/``-Proto`` are believed.
"""

from __future__ import annotations

import asyncio
import errno
import socket
from typing import Any

import orjson
import uvicorn

from asinwatch.config import ApiSettings, get_settings

try:
    from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
except ImportError:  # pragma: no cover - httptools ships with uvicorn[standard]
    HttpToolsProtocol = None  # type: ignore[assignment,misc]

APP = "asinwatch.app:create_app"
BACKLOG = 2048


class PortInUseError(OSError):
    """The API's address is taken (another server is listening there)."""


class HeadTooLargeError(Exception):
    """Raised from a parser callback when a request head passes settings.api.max_header_bytes."""


_TOO_LARGE = ("Request Header Fields Too Large", "request line and headers are too large")


def _problem_bytes(status: int, phrase: str, detail: str) -> bytes:
    body = orjson.dumps(
        {
            "type": "https://asinwatch.dev/problems/" + phrase.lower().replace(" ", "-"),
            "title": phrase,
            "status": status,
            "detail": detail,
        }
    )
    return (
        f"HTTP/1.1 {status} {phrase}\r\ncontent-type: application/problem+json\r\n"
        f"content-length: {len(body)}\r\nconnection: close\r\n\r\n"
    ).encode("ascii") + body


if HttpToolsProtocol is not None:

    class HeadLimitedHttpToolsProtocol(HttpToolsProtocol):
        """uvicorn's httptools protocol with a cap on the bytes of a request head (request
        line + headers: 431 above it, as h11's ``max_incomplete_event_size`` does for h11)
        and a deadline to receive it (408): a client can neither make the server buffer an
        endless header nor hold a connection by sending it slowly."""

        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            api = get_settings().api
            self._head_limit = api.max_header_bytes
            self._head_timeout_s = api.header_timeout_s
            self._in_head = True
            self._head_bytes = 0
            self._parsed_head_bytes = 0
            self._too_large = False
            self._head_timer: asyncio.TimerHandle | None = None

        def connection_made(self, transport: asyncio.BaseTransport) -> None:
            super().connection_made(transport)  # type: ignore[arg-type]
            self._start_head_timer()

        def connection_lost(self, exc: Exception | None) -> None:
            self._cancel_head_timer()
            super().connection_lost(exc)

        def data_received(self, data: bytes) -> None:
            super().data_received(data)
            # The parser buffers an unfinished header line itself: count raw bytes too.
            if self._in_head and not self.transport.is_closing():
                self._head_bytes += len(data)
                if self._head_bytes > self._head_limit:
                    self._refuse(431, *_TOO_LARGE)

        def on_message_begin(self) -> None:
            super().on_message_begin()
            self._in_head = True
            self._head_bytes = 0
            self._parsed_head_bytes = 0
            self._too_large = False
            if self._head_timer is None:
                self._start_head_timer()

        def on_url(self, url: bytes) -> None:
            self._count_parsed(len(url))
            super().on_url(url)

        def on_header(self, name: bytes, value: bytes) -> None:
            self._count_parsed(len(name) + len(value) + 4)
            super().on_header(name, value)

        def _count_parsed(self, n: int) -> None:
            self._parsed_head_bytes += n
            if self._parsed_head_bytes > self._head_limit:
                self._too_large = True
                raise HeadTooLargeError  # stops the parser; uvicorn answers via send_400_response

        def send_400_response(self, msg: str) -> None:
            if self._too_large:
                self._refuse(431, *_TOO_LARGE)
            else:
                super().send_400_response(msg)

        def on_headers_complete(self) -> None:
            self._in_head = False
            self._cancel_head_timer()
            super().on_headers_complete()

        def _start_head_timer(self) -> None:
            self._head_timer = self.loop.call_later(self._head_timeout_s, self._head_timed_out)

        def _cancel_head_timer(self) -> None:
            if self._head_timer is not None:
                self._head_timer.cancel()
                self._head_timer = None

        def _head_timed_out(self) -> None:
            self._head_timer = None
            if not self._in_head or self.transport.is_closing():
                return
            if self._head_bytes or self.cycle is None:
                self._refuse(408, "Request Timeout", "the request headers did not arrive in time")

        def _refuse(self, status: int, phrase: str, detail: str) -> None:
            self._cancel_head_timer()
            self.logger.warning("refused request: %s", detail)
            self.transport.write(_problem_bytes(status, phrase, detail))
            self.transport.close()


def http_protocol() -> Any:
    """The HTTP implementation: httptools with the head limits, or h11 (limits built in)."""
    return HeadLimitedHttpToolsProtocol if HttpToolsProtocol is not None else "h11"


def uvicorn_config(host: str, port: int, workers: int, api: ApiSettings) -> uvicorn.Config:
    return uvicorn.Config(
        APP,
        factory=True,
        host=host,
        port=port,
        workers=workers,
        http=http_protocol(),
        h11_max_incomplete_event_size=api.max_header_bytes,
        timeout_keep_alive=api.keep_alive_timeout_s,
        timeout_graceful_shutdown=api.graceful_shutdown_s,
        proxy_headers=bool(api.trusted_proxies),
        forwarded_allow_ips=api.trusted_proxies or None,
        backlog=BACKLOG,
        log_config=None,
        access_log=False,
    )


def bind(host: str, port: int) -> socket.socket:
    """The listening socket (as uvicorn binds it), or `PortInUseError` / `OSError`."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        if exc.errno == errno.EADDRINUSE:
            raise PortInUseError(
                f"cannot listen on {host}:{port}: the address is in use (another server runs "
                "there; stop it or choose another --port / ASINWATCH_API__PORT)"
            ) from None
        raise OSError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None
    sock.set_inheritable(True)
    return sock


def run_server(config: uvicorn.Config, sock: socket.socket) -> int:
    """One uvicorn server on `sock` until a signal; its exit status. A ``SystemExit`` raised in
    the loop (uvicorn's startup failures) is turned into a return value inside the loop."""
    server = uvicorn.Server(config)

    async def main() -> int:
        try:
            await server.serve(sockets=[sock])
        except SystemExit as exc:
            return exc.code if isinstance(exc.code, int) else 1
        return 0 if server.started else 3

    with asyncio.Runner(loop_factory=config.get_loop_factory()) as runner:
        return runner.run(main())


def serve(host: str | None = None, port: int | None = None, workers: int = 1) -> int:
    """`asinwatch api`: bind (fail at once when busy), then serve until SIGINT/SIGTERM."""
    api = get_settings().api
    host = host or api.host
    port = port or api.port
    config = uvicorn_config(host, port, workers, api)
    sock = bind(host, port)
    try:
        if workers > 1:
            from uvicorn.supervisors import Multiprocess

            Multiprocess(config, sockets=[sock]).run()
            return 0
        return run_server(config, sock)
    finally:
        sock.close()
