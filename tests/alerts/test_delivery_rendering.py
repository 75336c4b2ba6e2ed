"""Hostile upstream text in an alert arrives inert at Slack, Discord, Telegram and e-mail.

Each message goes through the real Apprise plugin; the vendor's HTTP API (unreachable from
tests) is replaced at the `requests` boundary to record the exact payload a vendor would get.
E-mail goes to a real SMTP server on 127.0.0.1.
"""

from __future__ import annotations

import email
import email.policy
import json
import re
import socketserver
import threading
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from email.message import EmailMessage
from typing import Any

import pytest
import requests

from asinwatch.alerts.senders import ChannelSpec, build_payload, render_message, send_apprise
from asinwatch.config import Settings, get_settings, reset_settings_cache

SELLER = "\r\n# Heading <!channel> @everyone <@123456> <https://evil.example|Amazon Seller Central>"
TITLE = (
    f"Hijacker on the buy box: “{SELLER}” (S9) <script>alert(1)</script> "
    "[x](javascript:alert(1)) ![](http://track.example/p.gif) <b>b</b>"
)


def _payload() -> dict[str, Any]:
    return build_payload(
        alert={
            "id": 7,
            "alert_type": "hijacker",
            "severity": "critical",
            "title": TITLE,
            "details": {
                "seller_name": SELLER,
                "listing_title": "<script>alert(1)</script> <b>b</b>",
                "seller_id": "S9\r\nBcc: x@evil.example",
            },
            "marketplace": "amazon.com",
            "asin": "B000000001",
            "status": "open",
        },
        event_key="opened:1",
        delivery_id=uuid.uuid4(),
        occurred_at=datetime(2026, 1, 1, tzinfo=UTC),
    )


@pytest.fixture
def settings(monkeypatch: pytest.MonkeyPatch) -> Iterator[Settings]:
    monkeypatch.setenv("ASINWATCH_ALERTS__DELIVERY_ALLOWED_HOSTS", '["127.0.0.1"]')
    reset_settings_cache()
    yield get_settings()
    reset_settings_cache()


@pytest.fixture
def vendor(monkeypatch: pytest.MonkeyPatch) -> list[dict[str, Any]]:
    """Record every vendor API call Apprise makes and answer it like the vendor would."""
    sent: list[dict[str, Any]] = []

    def answer(method: str, url: str, **kwargs: Any) -> requests.Response:
        body = kwargs.get("data") or kwargs.get("json")
        sent.append({"url": url, "body": json.loads(body) if isinstance(body, str) else body})
        response = requests.Response()
        response.status_code = 200
        response.url = url
        ok = b"ok" if "hooks.slack.com" in url else b'{"ok": true, "result": {"message_id": 1}}'
        response._content = ok
        return response

    monkeypatch.setattr(requests, "request", answer)
    monkeypatch.setattr(requests, "post", lambda url, **kw: answer("POST", url, **kw))
    return sent


def _send(target: str, settings: Settings) -> None:
    channel = ChannelSpec(id=1, name="c", kind="apprise", target=target, secret=None)
    result = send_apprise(channel, _payload(), settings)
    assert result.ok, result.error


def _assert_one_line_foreign_text(text: str) -> None:
    assert not re.search(r"\r(?!\n)", text)  # only the line breaks of our template
    assert not re.search(r"^\s*#", text, re.M)  # "# Heading" never starts a line


def test_slack_gets_no_mention_and_no_link(vendor, settings) -> None:
    _send("slack://T1JJ3T3L2/A1BRTD4JD/TIiajkdnlazkcOXrIdevi7FQ", settings)
    (call,) = vendor
    text = json.dumps(call["body"])
    blocks = call["body"]["attachments"][0]["blocks"]
    mrkdwn = " ".join(b["text"]["text"] for b in blocks if b["type"] == "section")
    _assert_one_line_foreign_text(mrkdwn)
    assert "<" not in mrkdwn and ">" not in mrkdwn  # no <!channel>, <@U..>, <url|text>
    assert "&lt;!channel&gt;" in mrkdwn and "Amazon Seller Central&gt;" in mrkdwn
    assert "&amp;lt;" not in text  # escaped once, not twice
    assert "“" in mrkdwn  # the seller name is quoted


def test_discord_pings_nobody(vendor, settings) -> None:
    _send("discord://4174216298/JHMHI8qBe7bk2ZwO5U711o3dV_js", settings)
    (call,) = vendor
    content = call["body"]["content"]
    _assert_one_line_foreign_text(content)
    assert not re.search(r"@(everyone|here|\d)", content)
    assert not re.search(r"(?<!\\)<", content)  # no <@id>, no <url>, no tag
    assert not re.search(r"(?<!\\)\]\(", content)  # no masked link
    assert "allowed_mentions" not in call["body"] and "allow_mentions" not in call["body"]


def test_discord_embeds_detect_no_ping(vendor, settings) -> None:
    _send("discord://4174216298/JHMHI8qBe7bk2ZwO5U711o3dV_js?format=markdown", settings)
    (call,) = vendor
    assert "allow_mentions" not in call["body"]
    assert "👉" not in json.dumps(call["body"], ensure_ascii=False)


def test_telegram_html_has_only_our_bold_tag(vendor, settings) -> None:
    _send("tgram://123456789:abcdefg_hijklmnop/12315544/", settings)
    (call,) = vendor
    assert call["body"]["parse_mode"] == "HTML"
    text = call["body"]["text"]
    _assert_one_line_foreign_text(text)
    assert re.findall(r"<[^>]*>", text) == ["<b>", "</b>"]
    assert "&lt;script&gt;" in text and "&lt;!channel&gt;" in text


@pytest.mark.parametrize(("mdv", "mode"), [("v2", "MarkdownV2"), ("v1", "MARKDOWN")])
def test_telegram_markdown_modes_escape_everything(vendor, settings, mdv, mode) -> None:
    _send(f"tgram://123456789:abcdefg_hijklmnop/12315544/?format=markdown&mdv={mdv}", settings)
    (call,) = vendor
    assert call["body"]["parse_mode"] == mode
    text = call["body"]["text"]
    _assert_one_line_foreign_text(text)
    reserved = r"[_*\[\]()~`>#+\-=|{}.!]" if mode == "MarkdownV2" else r"[_*\[\]`]"
    unescaped = re.findall(r"(?<!\\)" + reserved, text.replace("\\\\", ""))
    # Only the two asterisks of our bold title are markup.
    assert unescaped == ["*", "*"], unescaped
    assert text.startswith("*") and "*\n" in text


class _Smtp(socketserver.StreamRequestHandler):
    messages: list[bytes]

    def handle(self) -> None:
        self.wfile.write(b"220 test\r\n")
        while line := self.rfile.readline():
            cmd = line.strip().upper()
            if cmd.startswith((b"EHLO", b"HELO")):
                self.wfile.write(b"250 test\r\n")
            elif cmd == b"DATA":
                self.wfile.write(b"354 go\r\n")
                data = b""
                while (chunk := self.rfile.readline()) not in (b".\r\n", b""):
                    data += chunk
                type(self).messages.append(data)
                self.wfile.write(b"250 queued\r\n")
            elif cmd == b"QUIT":
                self.wfile.write(b"221 bye\r\n")
                return
            else:
                self.wfile.write(b"250 ok\r\n")


@pytest.fixture
def smtp() -> Iterator[tuple[int, list[bytes]]]:
    handler = type("Handler", (_Smtp,), {"messages": []})
    server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server.server_address[1], handler.messages
    server.shutdown()
    server.server_close()


@pytest.mark.parametrize("fmt", ["text", "html"])
def test_email_headers_stay_single_and_bodies_are_inert(smtp, settings, fmt) -> None:
    port, messages = smtp
    _send(
        f"mailto://127.0.0.1:{port}?from=alerts@example.com&to=ops@example.com&mode=insecure"
        f"&format={fmt}",
        settings,
    )
    (raw,) = messages
    msg = email.message_from_bytes(raw, policy=email.policy.default)
    assert isinstance(msg, EmailMessage)
    subject = str(msg["Subject"])
    assert "\r" not in subject and "\n" not in subject and subject.startswith("[CRITICAL]")
    assert msg["Bcc"] is None
    for part in msg.walk():
        if part.get_content_maintype() != "text":
            continue
        content = part.get_content()
        if part.get_content_subtype() == "html":
            assert "<script" not in content and "<b>" not in content
            assert "&lt;script&gt;" in content
        else:
            assert "Bcc: x@evil.example" not in content.splitlines()[0]
            _assert_one_line_foreign_text(content)


def test_every_dialect_quotes_the_seller_in_details() -> None:
    for dialect in ("text", "email", "slack", "discord", "telegram"):
        _, body = render_message(_payload(), dialect)  # type: ignore[arg-type]
        assert re.search(r"seller\\?_name\\?: “[^\n]*Amazon Seller Central[^\n]*”", body), dialect
