"""Sending one notification to one channel: the webhook payload, the templated chat text, and
the two transports (signed webhook over httpx, Apprise for chat / e-mail services).

Senders never raise for a delivery problem: they return a `SendResult` whose error text holds
no secret (targets are masked, channel secrets scrubbed). The SSRF guard runs before any
connection is opened, and the connection goes to the addresses it checked (kit.netguard), not
to a second lookup. Nothing here touches the database.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from string import Template
from typing import Any, Literal

import apprise
import httpx
import orjson
import structlog

from asinwatch import __version__
from asinwatch.alerts.signing import DELIVERY_HEADER, EVENT_HEADER, SIGNATURE_HEADER, sign
from asinwatch.alerts.targets import (
    InvalidTargetError,
    apprise_destination,
    apprise_plugin,
    check_destination,
    mask_target,
    scrub,
    webhook_destination,
)
from asinwatch.config import Settings
from asinwatch.kit import escaping, netguard

log = structlog.get_logger(__name__)

USER_AGENT = f"asinwatch/{__version__}"
MAX_ERROR_CHARS = 500

TITLE_TEMPLATE = Template("[$severity_label] $title")
BODY_TEMPLATE = Template(
    "$marketplace $asin: $alert_type ($event)\nSeverity: $severity · Status: $status\n"
    "Occurred at: $occurred_at\n$details_text"
)

# How each chat service gets the text: its escaper, and how the title is set in bold at the top
# of the body (chat services get the whole message in the body; Apprise's own title handling
# differs between services and versions). Other services get plain text with a separate title.
Dialect = Literal["text", "email", "slack", "discord", "telegram", "telegram_md", "telegram_md2"]
ESCAPERS: dict[str, escaping.Escaper] = {
    "text": escaping.plain,
    "email": escaping.email_text,
    "slack": escaping.slack,
    "discord": escaping.discord,
    "telegram": escaping.telegram_html,
}
BOLD_TITLE: dict[str, str] = {"slack": "*{}*", "discord": "**{}**", "telegram": "<b>{}</b>"}
# Telegram's Markdown parse modes (a target's ?format=markdown): everything is escaped, the
# template's own punctuation included (MarkdownV2 refuses any unescaped reserved character).
TELEGRAM_MARKDOWN: dict[str, escaping.TelegramMode] = {
    "telegram_md": "Markdown",
    "telegram_md2": "MarkdownV2",
}
SCHEME_DIALECTS: dict[str, Dialect] = {
    "slack": "slack",
    "discord": "discord",
    "tgram": "telegram",
    "mailto": "email",
    "mailtos": "email",
}


def dialect_of(target: str) -> Dialect:
    """The rendering dialect of an Apprise target (by its scheme)."""
    scheme = target.split("://", 1)[0].lower() if "://" in target else ""
    return SCHEME_DIALECTS.get(scheme, "text")


@dataclass(frozen=True, slots=True)
class ChannelSpec:
    """What a sender needs to know about a channel (a plain snapshot of the row)."""

    id: int
    name: str
    kind: str
    target: str
    secret: str | None

    @property
    def masked_target(self) -> str:
        return mask_target(self.kind, self.target)


@dataclass(frozen=True, slots=True)
class SendResult:
    ok: bool
    status_code: int | None = None
    error: str | None = None
    # Retrying cannot help (target refused, channel misconfigured): fail at once.
    permanent: bool = False


def event_name(event_key: str) -> str:
    """``"opened:1"`` → ``"opened"``: the event an event key stands for."""
    return event_key.split(":", 1)[0] or event_key


def build_payload(
    *,
    alert: Mapping[str, Any],
    event_key: str,
    delivery_id: uuid.UUID,
    occurred_at: datetime,
) -> dict[str, Any]:
    """The webhook JSON body for one alert notification.

    `alert` holds id, alert_type, severity, title, details, marketplace, asin, status.
    `occurred_at` is when the notification was queued, so it is stable across retries.
    """
    return {
        "delivery_id": str(delivery_id),
        "event": event_name(event_key),
        "event_key": event_key,
        "occurred_at": occurred_at.isoformat(),
        "alert_id": alert["id"],
        "alert_type": alert["alert_type"],
        "severity": alert["severity"],
        "title": alert["title"],
        "details": alert.get("details") or {},
        "marketplace": alert["marketplace"],
        "asin": alert["asin"],
        "status": alert["status"],
    }


def _detail(value: Any, esc: escaping.Escaper) -> str:
    """A detail value: strings (seller names, titles, ...) quoted, everything escaped."""
    if isinstance(value, str):
        return escaping.quote(esc(value))
    if isinstance(value, Mapping | list | tuple):
        return esc(orjson.dumps(value, option=orjson.OPT_SORT_KEYS, default=str).decode())
    return esc(value)


def render_message(payload: Mapping[str, Any], dialect: Dialect = "text") -> tuple[str, str]:
    """The chat / e-mail title and body for a payload, every value escaped for `dialect`.

    Chat dialects (slack, discord, telegram) return an empty title and the title in bold as
    the body's first line; text and email return a one-line title and a plain body.
    """
    if dialect in TELEGRAM_MARKDOWN:
        mode = TELEGRAM_MARKDOWN[dialect]
        title, body = render_message(payload, "text")
        lines = [escaping.telegram(line, mode) for line in body.splitlines()]
        return "", "\n".join([f"*{escaping.telegram(title, mode)}*", *lines])
    esc = ESCAPERS[dialect]
    details = payload.get("details") or {}
    details_text = "\n".join(
        f"{esc(k)}: {_detail(v, esc)}" for k, v in sorted(details.items(), key=lambda kv: kv[0])
    )
    values = {
        **{k: esc(v) for k, v in payload.items() if k != "details"},
        "severity_label": esc(str(payload["severity"]).upper()),
        "details_text": details_text,
    }
    title = TITLE_TEMPLATE.safe_substitute(values)
    body = BODY_TEMPLATE.safe_substitute(values).rstrip()
    if dialect in BOLD_TITLE:
        return "", BOLD_TITLE[dialect].format(title) + "\n" + body
    return title, body


def notify_type(payload: Mapping[str, Any]) -> apprise.NotifyType:
    if payload.get("event") == "resolved":
        return apprise.NotifyType.SUCCESS
    return {
        "critical": apprise.NotifyType.FAILURE,
        "warning": apprise.NotifyType.WARNING,
    }.get(str(payload.get("severity")), apprise.NotifyType.INFO)


def encode_body(payload: Mapping[str, Any]) -> bytes:
    return orjson.dumps(payload, option=orjson.OPT_SORT_KEYS, default=str)


def signing_secret(channel: ChannelSpec, settings: Settings) -> str:
    return channel.secret or settings.alerts.webhook_secret.get_secret_value()


def send_webhook(
    channel: ChannelSpec,
    payload: Mapping[str, Any],
    settings: Settings,
    client: httpx.Client | None = None,
) -> SendResult:
    """POST the signed payload; 2xx is success, anything else (3xx included) a failure."""
    allowed = settings.alerts.delivery_allowed_hosts
    try:
        dest = webhook_destination(channel.target)
        addresses = check_destination(dest, allowed, resolve=True)
    except InvalidTargetError as exc:
        return SendResult(ok=False, error=f"target refused: {exc}", permanent=True)
    secret = signing_secret(channel, settings)
    body = encode_body(payload)
    headers = {
        "Content-Type": "application/json",
        "User-Agent": USER_AGENT,
        SIGNATURE_HEADER: sign(secret, body),
        DELIVERY_HEADER: str(payload["delivery_id"]),
        EVENT_HEADER: str(payload["event"]),
    }
    own_client = client is None
    http = client or httpx.Client(
        # Connects to the addresses just checked, never to a fresh (rebound) lookup.
        transport=netguard.GuardedTransport(
            trusted_hosts=allowed, pins={dest.host: addresses} if addresses else None
        ),
        timeout=settings.alerts.delivery_timeout_s,
        follow_redirects=False,
        # Proxies from the environment would sidestep the SSRF guard's view of the target.
        trust_env=False,
    )
    try:
        response = http.post(channel.target, content=body, headers=headers)
    except netguard.BlockedAddressError as exc:
        return SendResult(ok=False, error=f"target refused: {exc}", permanent=True)
    except httpx.TimeoutException:
        return SendResult(ok=False, error="timeout")
    except httpx.HTTPError as exc:
        error = scrub(f"{type(exc).__name__}: {exc}", channel.target, secret)
        return SendResult(ok=False, error=error[:MAX_ERROR_CHARS])
    finally:
        if own_client:
            http.close()
    if 200 <= response.status_code < 300:
        return SendResult(ok=True, status_code=response.status_code)
    return SendResult(
        ok=False, status_code=response.status_code, error=f"HTTP {response.status_code}"
    )


def send_apprise(
    channel: ChannelSpec, payload: Mapping[str, Any], settings: Settings
) -> SendResult:
    """Notify through Apprise with the templated title and body."""
    try:
        plugin = apprise_plugin(channel.target)
        dest = apprise_destination(channel.target, plugin)
        addresses = (
            check_destination(dest, settings.alerts.delivery_allowed_hosts, resolve=True)
            if dest is not None
            else None
        )
    except InvalidTargetError as exc:
        return SendResult(ok=False, error=f"target refused: {exc}", permanent=True)
    # The guard judged this host: a redirect must not take the request somewhere else.
    plugin.redirects = False
    plugin.socket_connect_timeout = settings.alerts.delivery_timeout_s
    plugin.socket_read_timeout = settings.alerts.delivery_timeout_s
    dialect = dialect_of(channel.target)
    if dialect == "telegram" and plugin.resolve_format(None) == apprise.NotifyFormat.MARKDOWN:
        two = str(getattr(plugin, "markdown_ver", "")) == "MarkdownV2"
        dialect = "telegram_md2" if two else "telegram_md"
    title, body = render_message(payload, dialect)
    # The body is rendered for the service already: Apprise must pass it through unchanged
    # (None), except e-mail and other services, declared plain text (Apprise escapes it for
    # an HTML part), and Telegram in HTML mode, declared HTML (reduced to Telegram's tags, our
    # entities kept). Slack's legacy attachment mode would re-link <!channel> and <url|text>
    # in passed-through text; its Block Kit mode sends the mrkdwn as given.
    body_format: apprise.NotifyFormat | None = {
        "email": apprise.NotifyFormat.TEXT,
        "text": apprise.NotifyFormat.TEXT,
        "telegram": apprise.NotifyFormat.HTML,
    }.get(dialect)
    if dialect == "slack":
        plugin.use_blocks = True
    notifier = apprise.Apprise()
    notifier.add(plugin)
    # Apprise resolves by itself (requests, smtplib): pin its lookups to the checked addresses.
    pins = {dest.host: addresses} if dest is not None and addresses else {}
    with apprise.LogCapture(level=logging.WARNING) as captured, netguard.pinned(pins):
        try:
            ok = bool(
                notifier.notify(
                    body=body,
                    title=title,
                    notify_type=notify_type(payload),
                    body_format=body_format,
                )
            )
        except Exception as exc:  # a plugin bug must not kill the delivery loop
            ok = False
            log.warning("apprise raised", channel_id=channel.id, error=type(exc).__name__)
        logs = captured.getvalue() if hasattr(captured, "getvalue") else ""
    if ok:
        return SendResult(ok=True)
    last_line = logs.strip().splitlines()[-1] if logs.strip() else "apprise notify failed"
    error = scrub(last_line, channel.target, channel.secret)
    return SendResult(ok=False, error=error[:MAX_ERROR_CHARS])


def send(
    channel: ChannelSpec,
    payload: Mapping[str, Any],
    settings: Settings,
    client: httpx.Client | None = None,
) -> SendResult:
    """Send one notification to one channel, whatever its kind."""
    if channel.kind == "webhook":
        return send_webhook(channel, payload, settings, client)
    if channel.kind == "apprise":
        return send_apprise(channel, payload, settings)
    return SendResult(ok=False, error=f"unknown channel kind {channel.kind!r}", permanent=True)
