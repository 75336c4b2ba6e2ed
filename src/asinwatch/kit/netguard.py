"""Outbound address guard (no domain knowledge): which addresses are internal, resolving a
host once, and connecting to exactly the address that was checked.

- `is_internal(ip)`: every address that is not globally reachable is internal: loopback,
  private, link-local, shared address space (100.64.0.0/10, e.g. 100.100.100.200), reserved,
  documentation, benchmarking, multicast, unspecified, IPv6 unique-local and the deprecated
  site-local fec0::/10. Python's `is_global` is the base; the explicit lists below fill the
  gaps of older Pythons. IPv6 forms that carry an IPv4 address are judged by that address:
  IPv4-mapped (::ffff:0:0/96), 6to4 (2002::/16), Teredo (2001::/32: server and client),
  NAT64 (64:ff9b::/96, and the local-use 64:ff9b:1::/48 in its /96 layout; any other layout
  of the local-use prefix is internal).
- `resolve(host, port)`: the addresses a name resolves to (one lookup; a literal is itself).
- `checked_addresses(host, port)`: `resolve`, then `BlockedAddressError` when any address is
  internal (a name with one internal address could be steered to it).
- `GuardedTransport` / `AsyncGuardedTransport`: httpx transports that resolve the request's
  host once, check every address, then connect to the first checked address while keeping the
  name in the Host header and as the TLS SNI / certificate name (httpx's ``sni_hostname``
  request extension), so a name that re-resolves elsewhere (DNS rebinding) is never followed.
  Hosts in `trusted_hosts` pass unchanged (the caller's allow-list).
- `pinned({host: addresses})`: for clients that are not httpx (Apprise uses requests and
  smtplib): within the block, this thread's / task's `socket.getaddrinfo` answers those hosts
  with the checked addresses only. The hook is installed on first use and passes every other
  lookup through.
"""

from __future__ import annotations

import contextvars
import ipaddress
import socket
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any

import anyio
import httpx

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

_V4 = ipaddress.IPv4Network
_V6 = ipaddress.IPv6Network
# Not globally reachable (IANA special-purpose registries), whatever `is_global` says.
INTERNAL_V4 = tuple(
    _V4(n)
    for n in (
        "0.0.0.0/8",
        "10.0.0.0/8",
        "100.64.0.0/10",  # shared address space (carrier-grade NAT, cloud metadata 100.100.100.200)
        "127.0.0.0/8",
        "169.254.0.0/16",
        "172.16.0.0/12",
        "192.0.0.0/24",
        "192.0.2.0/24",
        "192.88.99.0/24",  # deprecated 6to4 relay anycast
        "192.168.0.0/16",
        "198.18.0.0/15",
        "198.51.100.0/24",
        "203.0.113.0/24",
        "224.0.0.0/4",  # multicast
        "240.0.0.0/4",  # reserved, and 255.255.255.255
    )
)
INTERNAL_V6 = tuple(
    _V6(n)
    for n in (
        "::/8",  # unspecified, loopback, IPv4-compatible (deprecated), IPv4-translated
        "100::/64",
        "2001::/23",
        "2001:db8::/32",
        "3fff::/20",
        "5f00::/16",
        "fc00::/7",  # unique local
        "fe80::/10",  # link-local
        "fec0::/10",  # site-local (deprecated, still routed internally by some networks)
        "ff00::/8",  # multicast
    )
)
NAT64_WELL_KNOWN = _V6("64:ff9b::/96")
NAT64_LOCAL_USE = _V6("64:ff9b:1::/48")
NAT64_LOCAL_USE_96 = _V6("64:ff9b:1::/96")
SIX_TO_FOUR = _V6("2002::/16")
TEREDO = _V6("2001::/32")


class BlockedAddressError(ValueError):
    """A host that is, or resolves to, an internal address (the message names no secret)."""


class UnresolvableHostError(ValueError):
    """A name that does not resolve (or resolves to nothing usable)."""


def parse_address(value: str) -> IPAddress | None:
    """The address `value` spells (brackets and an IPv6 zone are dropped), or None for a name."""
    text = value.strip().strip("[]").split("%", 1)[0]
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        return None


def embedded_ipv4(ip: ipaddress.IPv6Address) -> tuple[ipaddress.IPv4Address, ...] | None:
    """The IPv4 addresses an IPv6 translation/tunnel form stands for; None for other forms."""
    if ip.ipv4_mapped is not None:
        return (ip.ipv4_mapped,)
    if ip in NAT64_WELL_KNOWN or ip in NAT64_LOCAL_USE_96:
        return (ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF),)
    if ip in SIX_TO_FOUR and ip.sixtofour is not None:
        return (ip.sixtofour,)
    if ip in TEREDO and ip.teredo is not None:
        return ip.teredo
    return None


def is_internal(address: IPAddress | str) -> bool:
    """True for every address that is not globally reachable (see the module docstring)."""
    ip = parse_address(address) if isinstance(address, str) else address
    if ip is None:
        raise ValueError(f"not an IP address: {address!r}")
    if isinstance(ip, ipaddress.IPv4Address):
        return not ip.is_global or any(ip in net for net in INTERNAL_V4)
    if ip.scope_id:
        return True  # a zone only makes sense on a local link
    wrapped = embedded_ipv4(ip)
    if wrapped is not None:
        return any(is_internal(v4) for v4 in wrapped)
    if ip in NAT64_LOCAL_USE:
        return True  # a local-use NAT64 layout other than /96: cannot tell where it leads
    return not ip.is_global or any(ip in net for net in INTERNAL_V6)


def normalise_host(host: str) -> str:
    return host.strip().strip("[]").lower().rstrip(".")


def _system_getaddrinfo(host: str, port: int | None) -> list[Any]:
    """The one DNS lookup of this module (tests replace it to simulate a resolver)."""
    return socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)


def resolve(host: str, port: int | None = None) -> list[IPAddress]:
    """Every address `host` resolves to, in resolver order without repeats (one lookup)."""
    literal = parse_address(host)
    if literal is not None:
        return [literal]
    try:
        infos = _system_getaddrinfo(normalise_host(host), port)
    except (OSError, UnicodeError) as exc:
        raise UnresolvableHostError(f"host {host!r} does not resolve") from exc
    out: list[IPAddress] = []
    for info in infos:
        ip = parse_address(str(info[4][0]))
        if ip is not None and ip not in out:
            out.append(ip)
    if not out:
        raise UnresolvableHostError(f"host {host!r} resolves to no address")
    return out


def check_addresses(host: str, addresses: Sequence[IPAddress]) -> list[IPAddress]:
    """`addresses` when none is internal, else `BlockedAddressError`."""
    if not addresses:
        raise UnresolvableHostError(f"host {host!r} resolves to no address")
    if any(is_internal(ip) for ip in addresses):
        raise BlockedAddressError(f"host {host!r} is, or resolves to, an internal address")
    return list(addresses)


def checked_addresses(host: str, port: int | None = None) -> list[IPAddress]:
    """Resolve `host` once and return its addresses when all are external."""
    return check_addresses(host, resolve(host, port))


class _Guard:
    """What both transports share: which host gets which checked address."""

    def __init__(
        self,
        trusted_hosts: Iterable[str],
        pins: Mapping[str, Sequence[IPAddress]] | None,
    ) -> None:
        self.trusted = frozenset(normalise_host(h) for h in trusted_hosts)
        self.pins = {normalise_host(h): list(a) for h, a in (pins or {}).items()}

    def needs_lookup(self, request: httpx.Request) -> str | None:
        """The host to resolve before this request, or None when nothing must be looked up."""
        host = normalise_host(request.url.host)
        if host in self.trusted or parse_address(host) is not None or host in self.pins:
            return None
        return host

    def address_for(self, request: httpx.Request, looked_up: list[IPAddress] | None) -> None:
        host = normalise_host(request.url.host)
        if host in self.trusted:
            return
        literal = parse_address(host)
        if literal is not None:
            check_addresses(host, [literal])
            return
        addresses = check_addresses(host, looked_up if looked_up is not None else self.pins[host])
        _pin_request(request, host, addresses[0])


def _pin_request(request: httpx.Request, host: str, ip: IPAddress) -> None:
    """Send `request` to `ip`; the Host header (set when the request was built) and the TLS
    server name stay `host`, so virtual hosting and certificate checks work as for the name."""
    request.url = request.url.copy_with(host=str(ip))
    if request.url.scheme in ("https", "wss"):
        request.extensions = {**request.extensions, "sni_hostname": host}


def _lookup_error(request: httpx.Request, exc: UnresolvableHostError) -> httpx.ConnectError:
    # A failed lookup is a transient network error, as httpx reports it for a plain client.
    return httpx.ConnectError(str(exc), request=request)


class GuardedTransport(httpx.BaseTransport):
    """An httpx transport that connects only to checked external addresses (module docstring).

    `pins` gives addresses the caller has already checked (no second lookup); other names are
    resolved per request. One pool per name, so a TLS connection is reused only for its name.
    Extra keyword arguments go to each `httpx.HTTPTransport` (verify, retries, limits ...).
    """

    def __init__(
        self,
        *,
        trusted_hosts: Iterable[str] = (),
        pins: Mapping[str, Sequence[IPAddress]] | None = None,
        inner: httpx.BaseTransport | None = None,
        **transport_options: Any,
    ) -> None:
        self._guard = _Guard(trusted_hosts, pins)
        self._inner = inner
        self._options = transport_options
        self._pools: dict[str, httpx.BaseTransport] = {}
        self._lock = threading.Lock()

    def _pool(self, name: str) -> httpx.BaseTransport:
        if self._inner is not None:
            return self._inner
        with self._lock:
            pool = self._pools.get(name)
            if pool is None:
                pool = self._pools[name] = httpx.HTTPTransport(**self._options)
            return pool

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        name = normalise_host(request.url.host)
        host = self._guard.needs_lookup(request)
        try:
            looked_up = resolve(host, request.url.port) if host else None
        except UnresolvableHostError as exc:
            raise _lookup_error(request, exc) from exc
        self._guard.address_for(request, looked_up)
        return self._pool(name).handle_request(request)

    def close(self) -> None:
        if self._inner is not None:
            self._inner.close()
        for pool in self._pools.values():
            pool.close()


class AsyncGuardedTransport(httpx.AsyncBaseTransport):
    """`GuardedTransport` for `httpx.AsyncClient` (the lookup runs in a worker thread)."""

    def __init__(
        self,
        *,
        trusted_hosts: Iterable[str] = (),
        pins: Mapping[str, Sequence[IPAddress]] | None = None,
        inner: httpx.AsyncBaseTransport | None = None,
        **transport_options: Any,
    ) -> None:
        self._guard = _Guard(trusted_hosts, pins)
        self._inner = inner
        self._options = transport_options
        self._pools: dict[str, httpx.AsyncBaseTransport] = {}

    def _pool(self, name: str) -> httpx.AsyncBaseTransport:
        if self._inner is not None:
            return self._inner
        pool = self._pools.get(name)
        if pool is None:
            pool = self._pools[name] = httpx.AsyncHTTPTransport(**self._options)
        return pool

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        name = normalise_host(request.url.host)
        host = self._guard.needs_lookup(request)
        try:
            looked_up = (
                await anyio.to_thread.run_sync(resolve, host, request.url.port) if host else None
            )
        except UnresolvableHostError as exc:
            raise _lookup_error(request, exc) from exc
        self._guard.address_for(request, looked_up)
        return await self._pool(name).handle_async_request(request)

    async def aclose(self) -> None:
        if self._inner is not None:
            await self._inner.aclose()
        for pool in self._pools.values():
            await pool.aclose()


# --- pinning for clients that are not httpx ----------------------------------------------------

_PINS: contextvars.ContextVar[Mapping[str, tuple[IPAddress, ...]] | None] = contextvars.ContextVar(
    "netguard_pins", default=None
)
_hook_lock = threading.Lock()


def _service_port(port: object) -> int:
    if port is None:
        return 0
    if isinstance(port, bytes):
        port = port.decode()
    if isinstance(port, str):
        return int(port) if port.isdigit() else socket.getservbyname(port)
    return int(str(port))


def _pinned_answer(addresses: Sequence[IPAddress], port: Any, family: int, type_: int) -> list[Any]:
    number = _service_port(port)
    out: list[Any] = []
    for ip in addresses:
        fam = socket.AF_INET6 if ip.version == 6 else socket.AF_INET
        if family not in (0, socket.AF_UNSPEC, fam):
            continue
        sockaddr: tuple[Any, ...] = (
            (str(ip), number) if fam == socket.AF_INET else (str(ip), number, 0, 0)
        )
        out.append((fam, type_ or socket.SOCK_STREAM, socket.IPPROTO_TCP, "", sockaddr))
    if not out:
        raise socket.gaierror(socket.EAI_NONAME, "no pinned address of the asked family")
    return out


def _make_hook(previous: Callable[..., Any]) -> Callable[..., Any]:
    def getaddrinfo(
        host: Any, port: Any, family: int = 0, type: int = 0, proto: int = 0, flags: int = 0
    ) -> Any:
        pins = _PINS.get()
        if pins:
            name = host.decode() if isinstance(host, bytes) else host
            addresses = pins.get(normalise_host(name)) if isinstance(name, str) else None
            if addresses is not None:
                return _pinned_answer(addresses, port, family, type)
        return previous(host, port, family, type, proto, flags)

    getaddrinfo.netguard_hook = True  # type: ignore[attr-defined]
    return getaddrinfo


def _install_hook() -> None:
    """Wrap the current `socket.getaddrinfo` (once; again if someone replaced it since)."""
    with _hook_lock:
        if not getattr(socket.getaddrinfo, "netguard_hook", False):
            socket.getaddrinfo = _make_hook(socket.getaddrinfo)


@contextmanager
def pinned(pins: Mapping[str, Sequence[IPAddress]]) -> Iterator[None]:
    """Within the block, lookups of these hosts (this thread / task only) return only the given
    checked addresses, so a library that resolves by itself connects where the guard looked."""
    if not pins:
        yield
        return
    _install_hook()
    merged = {**(_PINS.get() or {}), **{normalise_host(h): tuple(a) for h, a in pins.items()}}
    token = _PINS.set(merged)
    try:
        yield
    finally:
        _PINS.reset(token)
