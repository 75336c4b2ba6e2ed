"""kit.netguard: every address class, one lookup per check, and DNS rebinding.

No DNS runs here, so the resolver is simulated: `socket.getaddrinfo` (what netguard, httpx,
requests and smtplib all end up calling) answers the made-up name ``rebind.test`` with
127.0.0.1 the first time and 127.0.0.2 afterwards, and 127.0.0.1 stands for a public address
(netguard's `is_internal` is told so), so no traffic leaves the machine. A server listens on
each of the two addresses, on the same port: the one on 127.0.0.2 must never be reached.
"""

from __future__ import annotations

import socket
import ssl
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import certifi
import httpx
import pytest
from pydantic import SecretStr

from asinwatch.alerts.senders import ChannelSpec, build_payload, send
from asinwatch.config import ApifySettings, get_settings
from asinwatch.ingestion.sources.apify import ApifySource
from asinwatch.ingestion.sources.errors import DisallowedHostError
from asinwatch.kit import netguard
from tests.kit.netguard_servers import Recorder, servers, write_certificate

NAME = "rebind.test"
PUBLIC = "127.0.0.1"  # stands for a public address in these tests
PRIVATE = "127.0.0.2"

INTERNAL = [
    "0.0.0.0",
    "10.1.2.3",
    "100.64.0.1",
    "100.100.100.200",  # shared address space: a cloud metadata service
    "100.127.255.254",
    "127.0.0.1",
    "169.254.169.254",
    "172.16.0.1",
    "192.0.0.8",
    "192.0.2.1",
    "192.168.1.1",
    "198.18.0.1",
    "198.51.100.7",
    "203.0.113.9",
    "224.0.0.1",
    "239.255.255.250",
    "240.0.0.1",
    "255.255.255.255",
    "::",
    "::1",
    "::8.8.8.8",  # IPv4-compatible (deprecated)
    "::ffff:10.0.0.1",
    "::ffff:169.254.169.254",
    "::ffff:0:8.8.8.8",  # IPv4-translated
    "100::1",
    "2001:db8::1",
    "2002:a9fe:a9fe::1",  # 6to4 wrapping 169.254.169.254
    "2002:0a00:0001::1",  # 6to4 wrapping 10.0.0.1
    "2002:7f00:1::",  # 6to4 wrapping 127.0.0.1
    "2001:0:4136:e378:8000:63bf:3fff:fdd2",  # Teredo: client 192.0.2.45
    "2001:0:a00:1:8000:63bf:f7f7:f7f7",  # Teredo: server 10.0.0.1, client 8.8.8.8
    "64:ff9b::a9fe:a9fe",  # NAT64 wrapping 169.254.169.254
    "64:ff9b::7f00:1",  # NAT64 wrapping 127.0.0.1
    "64:ff9b:1::a00:1",  # local-use NAT64 wrapping 10.0.0.1
    "64:ff9b:1:ab::808:808",  # local-use NAT64, not the /96 layout
    "64:ff9b:0:1::808:808",  # inside ::/8 but outside the NAT64 /96
    "fc00::1",
    "fd12:3456::1",
    "fe80::1",
    "fe80::1%2",
    "fec0::1",  # site-local
    "feff:ffff::1",
    "ff02::1",
    "ff0e::1",  # global-scope multicast
    "3fff::1",
    "5f00::1",
]
EXTERNAL = [
    "8.8.8.8",
    "1.1.1.1",
    "93.184.216.34",
    "100.63.255.255",  # just below the shared space
    "100.128.0.0",  # just above
    "2606:4700:4700::1111",
    "2a00:1450:4001::200e",
    "::ffff:8.8.8.8",
    "2002:808:808::1",  # 6to4 wrapping 8.8.8.8
    "2001:0:808:808:8000:63bf:f7f7:f7f7",  # Teredo: server 8.8.8.8, client 8.8.8.8
    "64:ff9b::808:808",  # NAT64 wrapping 8.8.8.8
    "64:ff9b:1::808:808",  # local-use NAT64 (/96 layout) wrapping 8.8.8.8
]


@pytest.mark.parametrize("address", INTERNAL)
def test_internal_addresses(address: str) -> None:
    assert netguard.is_internal(address)
    with pytest.raises(netguard.BlockedAddressError):
        netguard.check_addresses("x.example", [netguard.parse_address(address)])  # type: ignore[list-item]


@pytest.mark.parametrize("address", EXTERNAL)
def test_external_addresses(address: str) -> None:
    assert not netguard.is_internal(address)


def test_a_name_with_one_internal_address_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    answers = {
        "mixed.example": ["93.184.216.34", "10.0.0.5", "93.184.216.34"],
        "public.example": ["93.184.216.34", "2606:4700::1", "93.184.216.34"],
    }
    calls: list[str] = []

    def fake(host: str, port: int | None) -> list[Any]:
        calls.append(host)
        if host not in answers:
            raise socket.gaierror("no such host")
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (a, 0)) for a in answers[host]]

    monkeypatch.setattr(netguard, "_system_getaddrinfo", fake)
    with pytest.raises(netguard.BlockedAddressError):
        netguard.checked_addresses("mixed.example")
    got = netguard.checked_addresses("Public.Example.")
    assert [str(a) for a in got] == ["93.184.216.34", "2606:4700::1"]  # no repeats
    with pytest.raises(netguard.UnresolvableHostError):
        netguard.checked_addresses("nowhere.example")
    assert calls == ["mixed.example", "public.example", "nowhere.example"]  # one lookup each


# --- DNS rebinding ----------------------------------------------------------------------------


@dataclass
class Resolver:
    answers: list[str]
    calls: int = 0


@pytest.fixture
def rebinding(monkeypatch: pytest.MonkeyPatch) -> Iterator[Resolver]:
    """`rebind.test` resolves to PUBLIC once, to PRIVATE ever after; PUBLIC counts as public."""
    resolver = Resolver(answers=[PUBLIC])
    real_lookup = socket.getaddrinfo

    def getaddrinfo(host: Any, port: Any, *args: Any, **kwargs: Any) -> Any:
        if host != NAME:
            return real_lookup(host, port, *args, **kwargs)
        answer = resolver.answers[min(resolver.calls, len(resolver.answers) - 1)]
        resolver.calls += 1
        if resolver.calls == 1:
            resolver.answers.append(PRIVATE)
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (answer, int(port or 0)))]

    real_is_internal = netguard.is_internal

    def is_internal(address: Any) -> bool:
        return str(address) != PUBLIC and real_is_internal(address)

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    monkeypatch.setattr(netguard, "is_internal", is_internal)
    yield resolver


@pytest.fixture
def pair() -> Iterator[tuple[Recorder, Recorder]]:
    with servers([PUBLIC, PRIVATE]) as (public, private):
        yield public, private


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    return write_certificate(tmp_path_factory.mktemp("tls"), NAME)


@pytest.fixture
def tls_pair(certificate: tuple[Path, Path]) -> Iterator[tuple[Recorder, Recorder]]:
    with servers([PUBLIC, PRIVATE], cert=certificate) as (public, private):
        yield public, private


def test_control_a_plain_client_follows_the_rebound_name(
    rebinding: Resolver, pair: tuple[Recorder, Recorder]
) -> None:
    # What the guard prevents: check first, then let the client look the name up again.
    public, private = pair
    assert [str(a) for a in netguard.checked_addresses(NAME)] == [PUBLIC]
    with httpx.Client(trust_env=False) as client:
        assert client.get(f"http://{NAME}:{public.port}/x").status_code == 200
    assert private.seen and not public.seen


def test_the_transport_connects_to_the_checked_address(
    rebinding: Resolver, pair: tuple[Recorder, Recorder]
) -> None:
    public, private = pair
    checked = netguard.checked_addresses(NAME)
    transport = netguard.GuardedTransport(pins={NAME: checked})
    with httpx.Client(transport=transport, trust_env=False) as client:
        for _ in range(2):
            assert client.get(f"http://{NAME}:{public.port}/x").status_code == 200
    assert [s.host for s in public.seen] == [f"{NAME}:{public.port}"] * 2
    assert private.seen == []
    assert rebinding.calls == 1  # the check's lookup was the only one


def test_the_transport_checks_each_lookup_it_makes(
    rebinding: Resolver, pair: tuple[Recorder, Recorder]
) -> None:
    public, private = pair
    with httpx.Client(transport=netguard.GuardedTransport(), trust_env=False) as client:
        assert client.get(f"http://{NAME}:{public.port}/first").status_code == 200
        with pytest.raises(netguard.BlockedAddressError):
            client.get(f"http://{NAME}:{public.port}/second")
    assert [s.path for s in public.seen] == ["/first"]
    assert private.seen == []


async def test_the_async_transport_checks_each_lookup_it_makes(
    rebinding: Resolver, pair: tuple[Recorder, Recorder]
) -> None:
    public, private = pair
    transport = netguard.AsyncGuardedTransport()
    async with httpx.AsyncClient(transport=transport, trust_env=False) as client:
        assert (await client.get(f"http://{NAME}:{public.port}/first")).status_code == 200
        with pytest.raises(netguard.BlockedAddressError):
            await client.get(f"http://{NAME}:{public.port}/second")
    assert [s.path for s in public.seen] == ["/first"]
    assert private.seen == []


def test_trusted_hosts_and_literals(pair: tuple[Recorder, Recorder]) -> None:
    public, _ = pair
    trusted = netguard.GuardedTransport(trusted_hosts=[PUBLIC])
    with httpx.Client(transport=trusted, trust_env=False) as client:
        assert client.get(f"http://{PUBLIC}:{public.port}/ok").status_code == 200
    with (
        httpx.Client(transport=netguard.GuardedTransport(), trust_env=False) as client,
        pytest.raises(netguard.BlockedAddressError),
    ):
        client.get(f"http://{PUBLIC}:{public.port}/refused")
    assert [s.path for s in public.seen] == ["/ok"]


def test_tls_keeps_the_name_for_sni_and_the_certificate(
    rebinding: Resolver, tls_pair: tuple[Recorder, Recorder], certificate: tuple[Path, Path]
) -> None:
    public, private = tls_pair
    verify = ssl.create_default_context(cafile=str(certificate[0]))
    transport = netguard.GuardedTransport(
        pins={NAME: netguard.checked_addresses(NAME)}, verify=verify
    )
    with httpx.Client(transport=transport, trust_env=False) as client:
        assert client.get(f"https://{NAME}:{public.port}/tls").status_code == 200
    # The certificate (issued to the name only) verified, so SNI and the check used the name.
    assert public.sni == [NAME]
    assert [(s.path, s.host) for s in public.seen] == [("/tls", f"{NAME}:{public.port}")]
    assert private.seen == [] and private.sni == []


def test_pinned_lookups_are_scoped(rebinding: Resolver) -> None:
    pin = [netguard.parse_address("93.184.216.34")]
    seen_elsewhere: list[str] = []
    with netguard.pinned({NAME: pin}):  # type: ignore[dict-item]
        inside = socket.getaddrinfo(NAME, 443, 0, socket.SOCK_STREAM)
        assert [i[4] for i in inside] == [("93.184.216.34", 443)]
        with pytest.raises(socket.gaierror):  # no IPv6 address was checked
            socket.getaddrinfo(NAME, 443, socket.AF_INET6)
        # Another thread does not inherit this block's pins.
        t = threading.Thread(
            target=lambda: seen_elsewhere.append(socket.getaddrinfo(NAME, 1)[0][4][0])
        )
        t.start()
        t.join()
    assert seen_elsewhere == [PUBLIC]
    assert socket.getaddrinfo(NAME, 1)[0][4][0] == PRIVATE  # unpinned again


# --- the callers: alert senders and the Apify adapter -------------------------------------------


def trust_test_certificate(monkeypatch: pytest.MonkeyPatch, cert: Path) -> None:
    """Clients built with default TLS settings trust the test certificate (only)."""
    monkeypatch.setenv("SSL_CERT_FILE", str(cert))
    monkeypatch.delenv("SSL_CERT_DIR", raising=False)
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(cert))  # requests, under Apprise
    monkeypatch.setattr(certifi, "where", lambda: str(cert))


def _payload() -> dict[str, Any]:
    return build_payload(
        alert={
            "id": 1,
            "alert_type": "price_drop",
            "severity": "critical",
            "title": "t",
            "details": {},
            "marketplace": "amazon.com",
            "asin": "B000000001",
            "status": "open",
        },
        event_key="opened:1",
        delivery_id=uuid.uuid4(),
        occurred_at=datetime.now(UTC),
    )


def test_webhook_delivery_is_not_rebound(
    rebinding: Resolver,
    tls_pair: tuple[Recorder, Recorder],
    certificate: tuple[Path, Path],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    public, private = tls_pair
    trust_test_certificate(monkeypatch, certificate[0])
    monkeypatch.setenv("ASINWATCH_ALERTS__DELIVERY_ALLOWED_HOSTS", "")
    spec = ChannelSpec(1, "w", "webhook", f"https://{NAME}:{public.port}/hook", None)
    result = send(spec, _payload(), get_settings())
    assert result.ok, result.error
    assert [(s.method, s.path) for s in public.seen] == [("POST", "/hook")]
    assert public.sni == [NAME]
    assert private.seen == []


def test_apprise_delivery_is_not_rebound(
    rebinding: Resolver,
    tls_pair: tuple[Recorder, Recorder],
    certificate: tuple[Path, Path],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Apprise resolves by itself (requests): its lookup is pinned to the checked address, and
    # the certificate for the name verifies (SNI is the name).
    public, private = tls_pair
    trust_test_certificate(monkeypatch, certificate[0])
    monkeypatch.setenv("ASINWATCH_ALERTS__DELIVERY_ALLOWED_HOSTS", "")
    target = f"jsons://{NAME}:{public.port}/hook"
    result = send(ChannelSpec(1, "a", "apprise", target, None), _payload(), get_settings())
    assert result.ok, result.error
    assert [(s.method, s.path) for s in public.seen] == [("POST", "/hook")]
    assert public.sni == [NAME]
    assert private.seen == []


def test_apprise_delivery_to_a_name_resolving_internal_is_refused(
    rebinding: Resolver, tls_pair: tuple[Recorder, Recorder], monkeypatch: pytest.MonkeyPatch
) -> None:
    public, private = tls_pair
    rebinding.answers[:] = [PRIVATE]
    monkeypatch.setenv("ASINWATCH_ALERTS__DELIVERY_ALLOWED_HOSTS", "")
    target = f"jsons://{NAME}:{public.port}/hook?verify=no"
    result = send(ChannelSpec(1, "a", "apprise", target, None), _payload(), get_settings())
    assert not result.ok and result.permanent
    assert public.seen == [] and private.seen == []


async def test_apify_allow_listed_name_resolving_internal_is_refused(
    rebinding: Resolver, tls_pair: tuple[Recorder, Recorder]
) -> None:
    public, private = tls_pair
    rebinding.answers[:] = [PRIVATE]
    settings = ApifySettings(
        token=SecretStr("t"),
        base_url=f"https://{NAME}:{public.port}/v2",
        allowed_hosts=[NAME],
        max_retries=0,
    )
    async with ApifySource(settings) as source:
        with pytest.raises(DisallowedHostError, match="internal"):
            await source._request("GET", "/actor-runs/run-1", "get_run")
    assert public.seen == [] and private.seen == []


async def test_apify_allow_listed_name_is_pinned(
    rebinding: Resolver,
    tls_pair: tuple[Recorder, Recorder],
    certificate: tuple[Path, Path],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # First lookup public → the request goes there; the next lookup is the rebound private
    # address → refused, never connected.
    public, private = tls_pair
    trust_test_certificate(monkeypatch, certificate[0])
    settings = ApifySettings(
        token=SecretStr("t"),
        base_url=f"https://{NAME}:{public.port}/v2",
        allowed_hosts=[NAME],
        max_retries=0,
    )
    async with ApifySource(settings) as source:
        await source._request("GET", "/actor-runs/run-1", "get_run")
        with pytest.raises(DisallowedHostError):
            await source._request("GET", "/actor-runs/run-2", "get_run")
    assert [s.path for s in public.seen] == ["/v2/actor-runs/run-1"]
    assert private.seen == []
