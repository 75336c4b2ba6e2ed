"""Channel targets: which URLs a channel may point at, the SSRF guard, and secret masking.

A webhook target is an http(s) URL. An Apprise target is an Apprise URL whose scheme is either
a vendor cloud (Slack, Discord, Telegram, LINE, Pushover, ntfy.sh: the host is the vendor's)
or a self-hosted HTTP endpoint (json://, ntfy://host/topic, gotify://, ...) whose host is the
user's choice and therefore SSRF-checked like a webhook. E-mail targets have their SMTP host
checked the same way. Any other Apprise scheme is refused: deny by default.

SSRF rule: a host that is, or resolves to, an internal address (anything not globally
reachable, `kit.netguard.is_internal`: loopback, private, shared 100.64/10, link-local,
site-local, reserved, multicast, and IPv6 forms wrapping such an IPv4) is refused unless it is
in `settings.alerts.delivery_allowed_hosts`; plain http (and the insecure Apprise variants) is
allowed only for allow-listed hosts. The check runs before any connection is opened, and the
senders then connect to the very addresses it checked (netguard's pinning), so a name that
re-resolves to an internal address at connect time (DNS rebinding) is never followed.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Literal
from urllib.parse import urlsplit

import apprise

from asinwatch.kit import netguard
from asinwatch.observability.logging import install_apprise_mask

# Apprise names the tokens of targets it cannot parse in its log lines: mask them.
install_apprise_mask()

ChannelKind = Literal["webhook", "apprise"]

# Vendor clouds: the plugin talks to the vendor's fixed public API.
APPRISE_CLOUD_SCHEMES = frozenset(
    {"slack", "discord", "tgram", "line", "pover", "pbul", "ntfy", "ntfys", "mailto", "mailtos"}
)
# Self-hosted HTTP endpoints: the URL's host is where the request goes. Value: is it TLS.
APPRISE_HTTP_SCHEMES: dict[str, bool] = {
    "json": False,
    "jsons": True,
    "xml": False,
    "xmls": True,
    "form": False,
    "forms": True,
    "ntfy": False,
    "ntfys": True,
    "gotify": False,
    "gotifys": True,
}
APPRISE_SCHEMES = APPRISE_CLOUD_SCHEMES | frozenset(APPRISE_HTTP_SCHEMES)
EMAIL_SCHEMES = frozenset({"mailto", "mailtos"})


class InvalidTargetError(ValueError):
    """A channel target that is malformed or not allowed (message is safe to show: no secrets)."""


@dataclass(frozen=True, slots=True)
class Destination:
    """Where a target actually connects: host, and whether the transport is TLS."""

    host: str
    secure: bool
    http: bool  # False for SMTP (no http/https rule, address rule only)


def mask_target(kind: str, target: str) -> str:
    """A target fit for logs and API output: no tokens, passwords or paths.

    Apprise URLs carry their secrets anywhere after the scheme, so only the scheme is kept
    (``slack://T000/B000/XXXX`` → ``slack://***``). Webhooks keep scheme, host and port.
    """
    try:
        parts = urlsplit(target)
        scheme = parts.scheme.lower()
        if kind != "webhook":
            return f"{scheme}://***" if scheme else "***"
        host = parts.hostname or ""
        port = f":{parts.port}" if parts.port else ""
    except ValueError:
        return "***"
    if ":" in host:
        host = f"[{host}]"
    rest = "/***" if (parts.path not in ("", "/") or parts.query or parts.fragment) else ""
    return f"{scheme}://{host}{port}{rest}"


def scrub(text: str, *secrets: str | None) -> str:
    """`text` with every non-empty secret replaced by ``***`` (for error messages we store)."""
    for secret in secrets:
        if secret:
            text = text.replace(secret, "***")
    return text


def check_destination(
    dest: Destination, allowed_hosts: Iterable[str], resolve: bool
) -> list[netguard.IPAddress] | None:
    """Refuse a destination that breaks the SSRF rule (see the module docstring).

    With `resolve=False` (validation at create time) only literal addresses and ``localhost``
    are judged; `resolve=True` (just before sending) resolves the name once and judges every
    address. Returns the checked addresses to connect to (pin), or None when the host is
    allow-listed or was not resolved.
    """
    host = netguard.normalise_host(dest.host)
    if not host:
        raise InvalidTargetError("target has no host")
    if host in {netguard.normalise_host(h) for h in allowed_hosts}:
        return None
    if dest.http and not dest.secure:
        raise InvalidTargetError(f"plain http to {host!r} is refused: use https")
    if host == "localhost" or host.endswith(".localhost"):
        raise InvalidTargetError(f"host {host!r} is internal and not allow-listed")
    literal = netguard.parse_address(host)
    if literal is None and not resolve:
        return None
    try:
        return netguard.check_addresses(
            host, [literal] if literal is not None else netguard.resolve(host)
        )
    except netguard.UnresolvableHostError as exc:
        raise InvalidTargetError(f"host {host!r} does not resolve") from exc
    except netguard.BlockedAddressError as exc:
        raise InvalidTargetError(f"host {host!r} is internal and not allow-listed") from exc


def webhook_destination(target: str) -> Destination:
    try:
        parts = urlsplit(target)
        host = parts.hostname or ""
        _ = parts.port  # raises on a malformed port
    except ValueError as exc:
        raise InvalidTargetError("webhook target is not a valid URL") from exc
    if parts.scheme.lower() not in ("http", "https"):
        raise InvalidTargetError("webhook target must be an http(s) URL")
    if not host:
        raise InvalidTargetError("webhook target has no host")
    if parts.username or parts.password:
        raise InvalidTargetError("webhook target must not embed credentials")
    return Destination(host=host, secure=parts.scheme.lower() == "https", http=True)


def apprise_plugin(target: str) -> Any:
    """The Apprise plugin object for a target (not yet sent), refusing unsupported schemes."""
    scheme = target.split("://", 1)[0].lower() if "://" in target else ""
    if scheme not in APPRISE_SCHEMES:
        supported = ", ".join(sorted(APPRISE_SCHEMES))
        raise InvalidTargetError(f"unsupported Apprise scheme {scheme!r}; supported: {supported}")
    plugin = apprise.Apprise.instantiate(target, suppress_exceptions=True)
    if plugin is None:
        raise InvalidTargetError(f"invalid {scheme}:// Apprise URL")
    return plugin


def apprise_destination(target: str, plugin: Any) -> Destination | None:
    """Where a self-hosted Apprise plugin connects; None for a vendor cloud."""
    scheme = target.split("://", 1)[0].lower()
    if scheme in EMAIL_SCHEMES:
        return Destination(
            host=str(getattr(plugin, "smtp_host", "") or ""), secure=True, http=False
        )
    if scheme in ("ntfy", "ntfys") and str(getattr(plugin, "mode", "")) == "cloud":
        return None
    if scheme in APPRISE_HTTP_SCHEMES:
        return Destination(
            host=str(getattr(plugin, "host", "") or ""),
            secure=APPRISE_HTTP_SCHEMES[scheme],
            http=True,
        )
    return None


def validate_target(
    kind: str, target: str, allowed_hosts: Iterable[str], resolve: bool = False
) -> Any:
    """Check a target; returns the Apprise plugin for apprise channels (None for webhooks).

    Raises `InvalidTargetError` with a message that never contains the target's secrets.
    """
    if len(target) > 2048:
        raise InvalidTargetError("target is longer than 2048 characters")
    if kind == "webhook":
        check_destination(webhook_destination(target), allowed_hosts, resolve)
        return None
    if kind == "apprise":
        plugin = apprise_plugin(target)
        dest = apprise_destination(target, plugin)
        if dest is not None:
            check_destination(dest, allowed_hosts, resolve)
        return plugin
    raise InvalidTargetError(f"unknown channel kind {kind!r}: use 'webhook' or 'apprise'")
