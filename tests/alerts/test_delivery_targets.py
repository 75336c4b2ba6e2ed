"""Channel targets: the SSRF guard refuses internal addresses before connecting, http needs
the allow-list, unsupported Apprise schemes are refused, and secrets are masked."""

from __future__ import annotations

import socket
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest

from asinwatch.alerts.senders import ChannelSpec, build_payload, send
from asinwatch.alerts.targets import (
    Destination,
    InvalidTargetError,
    check_destination,
    mask_target,
    validate_target,
)
from asinwatch.config import Settings, get_settings, reset_settings_cache

INTERNAL_WEBHOOKS = [
    "https://10.0.0.1/hook",
    "https://169.254.169.254/latest/meta-data/",
    "https://localhost/hook",
    "https://localhost:8443/hook",
    "https://127.0.0.1/hook",
    "https://[::1]/hook",
    "https://[::ffff:10.0.0.1]/hook",
    "https://192.168.1.10/hook",
    "https://0.0.0.0/hook",
    "http://10.0.0.1/hook",
    "http://169.254.169.254/latest/meta-data/",
    "http://localhost/hook",
]


@pytest.fixture
def settings(monkeypatch: pytest.MonkeyPatch) -> Iterator[Settings]:
    monkeypatch.setenv("ASINWATCH_ALERTS__DELIVERY_ALLOWED_HOSTS", "[]")
    reset_settings_cache()
    yield get_settings()
    reset_settings_cache()


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


@pytest.mark.parametrize("url", INTERNAL_WEBHOOKS)
def test_internal_webhook_targets_are_refused_before_any_connection(
    url: str, settings: Settings
) -> None:
    seen: list[httpx.Request] = []

    def transport(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200)

    spec = ChannelSpec(id=1, name="x", kind="webhook", target=url, secret=None)
    with httpx.Client(transport=httpx.MockTransport(transport)) as client:
        result = send(spec, _payload(), settings, client)
    assert not result.ok
    assert result.permanent
    assert result.error is not None
    assert result.error.startswith("target refused")
    assert seen == []  # the guard ran before the transport was ever used
    with pytest.raises(InvalidTargetError):
        validate_target("webhook", url, settings.alerts.delivery_allowed_hosts)


@pytest.mark.parametrize(
    "url",
    [
        "json://10.0.0.1/hook",
        "jsons://10.0.0.1/hook",
        "jsons://169.254.169.254/x",
        "jsons://localhost/x",
        "ntfys://192.168.0.5/topic",
        "json://public.example.com/hook",  # insecure variant, host not allow-listed
        "mailtos://user:pw@example.com?smtp=10.0.0.1",
    ],
)
def test_internal_or_insecure_apprise_targets_are_refused(url: str, settings: Settings) -> None:
    spec = ChannelSpec(id=1, name="x", kind="apprise", target=url, secret=None)
    result = send(spec, _payload(), settings)
    assert not result.ok
    assert result.permanent
    assert result.error is not None
    assert result.error.startswith("target refused")


@pytest.mark.parametrize(
    "url", ["kodi://10.0.0.1", "windows://", "ftp://x/y", "not a url", "json://"]
)
def test_unsupported_or_invalid_apprise_urls_are_refused(url: str) -> None:
    with pytest.raises(InvalidTargetError):
        validate_target("apprise", url, [])


@pytest.mark.parametrize(
    "url",
    ["ftp://example.com/x", "https://", "file:///etc/passwd", "https://user:pw@example.com/x"],
)
def test_malformed_webhook_urls_are_refused(url: str) -> None:
    with pytest.raises(InvalidTargetError):
        validate_target("webhook", url, [])


def test_allow_listed_hosts_may_use_http_and_internal_addresses() -> None:
    allowed = ["127.0.0.1", "hooks.internal"]
    validate_target("webhook", "http://127.0.0.1:9000/x", allowed, resolve=True)
    validate_target("webhook", "http://hooks.internal/x", allowed, resolve=True)
    validate_target("apprise", "json://127.0.0.1:9000/x", allowed, resolve=True)
    with pytest.raises(InvalidTargetError, match="use https"):
        validate_target("webhook", "http://hooks.example.com/x", allowed)


def test_vendor_cloud_apprise_urls_are_accepted() -> None:
    for url in [
        "slack://T000/B000/XXXX",
        "discord://1234/abcd",
        "tgram://123456:abc/789",
        "ntfy://mytopic",
        "mailtos://user:pw@gmail.com",
    ]:
        assert validate_target("apprise", url, []) is not None


def test_names_are_judged_by_the_addresses_they_resolve_to(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    answers = {"internal.example": "10.1.2.3", "public.example": "93.184.216.34"}

    def fake_getaddrinfo(host: str, *args: Any, **kwargs: Any) -> list[Any]:
        if host not in answers:
            raise socket.gaierror("no such host")
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (answers[host], 0))]

    monkeypatch.setattr(socket, "getaddrinfo", fake_getaddrinfo)
    with pytest.raises(InvalidTargetError, match="internal"):
        check_destination(Destination("internal.example", True, True), [], resolve=True)
    with pytest.raises(InvalidTargetError, match="does not resolve"):
        check_destination(Destination("nowhere.example", True, True), [], resolve=True)
    check_destination(Destination("public.example", True, True), [], resolve=True)
    # At create time names are not resolved (no DNS on the request path); sends resolve.
    check_destination(Destination("internal.example", True, True), [], resolve=False)


@pytest.mark.parametrize(
    ("kind", "target", "masked"),
    [
        ("apprise", "slack://T000/B000/XXXX", "slack://***"),
        ("apprise", "tgram://123456:AAbbCC/987", "tgram://***"),
        ("apprise", "mailtos://user:password@gmail.com", "mailtos://***"),
        (
            "webhook",
            "https://hooks.example.com/services/T0/B0/secret",
            "https://hooks.example.com/***",
        ),
        ("webhook", "https://example.com:8443/?token=abc", "https://example.com:8443/***"),
        ("webhook", "https://example.com", "https://example.com"),
        ("webhook", "https://[::1]:9/x", "https://[::1]:9/***"),
    ],
)
def test_targets_are_masked(kind: str, target: str, masked: str) -> None:
    assert mask_target(kind, target) == masked
