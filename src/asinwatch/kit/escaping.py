"""Escaping of upstream text (titles, brands, seller names, bullets, anything scraped) for
each renderer: one function per output dialect, all pure.

Every function first makes the text one inert line (`plain`): CR, LF, the Unicode line
separators and other control / bidi-override / zero-width characters become a space and runs of
whitespace collapse, so upstream text can never start a heading, a list item, a quote or a new
header line. Then the dialect's metacharacters are escaped:

- `markdown`: CommonMark's inline metacharacters (with ``&`` and ``@``: no entity, raw HTML or
  e-mail autolink), the ``://`` and ``www.`` of autolinks and a leading block marker are
  backslash-escaped: no links, images, headings, lists, emphasis or HTML.
- `html`: HTML escaping with markupsafe (quotes included, safe in attributes too).
- `slack`: ``&``, ``<``, ``>`` as entities, Slack's own rule: no ``<!channel>``, ``<@U1>`` or
  ``<url|text>`` can form.
- `discord`: Markdown escaped with backslashes, and a zero-width space after every ``@`` so
  ``@everyone``, ``@here``, ``<@id>`` and ``<@&role>`` never ping.
- `telegram`: for the parse mode used: HTML entities (``HTML``) or MarkdownV2 / Markdown escapes.
- `email_text`: the plain line (text part and headers: no CR/LF header injection).

`quote` wraps an already escaped value in typographic quotes: seller names and titles in alert
texts are quoted so they read as someone else's words.
"""

from __future__ import annotations

import html as _html
import re
from collections.abc import Callable
from typing import Literal

from markupsafe import escape as _markup_escape

# C0/C1 controls (CR, LF, tab, ...), NEL, line/paragraph separators, zero-width characters,
# bidi embeddings/overrides/isolates, word joiners, BOM.
_UNSAFE_CHARS = re.compile(
    "[\x00-\x1f\x7f-\x9f\u00ad\u061c\u180e\u200b-\u200f\u2028-\u202e\u2060-\u206f\ufeff]"
)
_MARKDOWN_SPECIAL = re.compile(r"([\\`*_{}\[\]<>!|~&@])")
# Autolink starts (GFM): a scheme's "://" and "www.".
_MARKDOWN_AUTOLINK = re.compile(r"(?<=[A-Za-z0-9])(:)(?=//)|(?<=\bwww)(\.)", re.I)
# Block starts, which only matter at the start of a line: heading, list, quote, setext.
_MARKDOWN_BLOCK_START = re.compile(r"^(?:([#+\-=])|(\d+)([.)]))")
_DISCORD_SPECIAL = re.compile(r"([\\`*_~|<>\[\]:])")
_TELEGRAM_V2_SPECIAL = re.compile(r"([\\_*\[\]()~`>#+\-=|{}.!])")
_TELEGRAM_V1_SPECIAL = re.compile(r"([_*\[\]`])")
ZERO_WIDTH_SPACE = "\u200b"
TelegramMode = Literal["HTML", "MarkdownV2", "Markdown"]
Escaper = Callable[[object], str]


def plain(text: object) -> str:
    """One line of text: no control characters, no line breaks, whitespace collapsed."""
    return " ".join(_UNSAFE_CHARS.sub(" ", "" if text is None else str(text)).split())


def markdown(text: object) -> str:
    """Inert inside Markdown (CommonMark / GFM), table cells included."""
    escaped = _MARKDOWN_SPECIAL.sub(r"\\\1", plain(text))
    escaped = _MARKDOWN_AUTOLINK.sub(lambda m: "\\" + (m.group(1) or m.group(2)), escaped)
    return _block_start(escaped)


def _block_start(escaped: str) -> str:
    return _MARKDOWN_BLOCK_START.sub(
        lambda m: "\\" + m.group(1) if m.group(1) else m.group(2) + "\\" + m.group(3), escaped
    )


def html(text: object) -> str:
    """Inert inside HTML element content and quoted attribute values."""
    return str(_markup_escape(plain(text)))


def slack(text: object) -> str:
    """Inert inside Slack mrkdwn: ``&``, ``<``, ``>`` escaped as Slack requires."""
    return plain(text).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def discord(text: object) -> str:
    """Inert inside Discord markdown: no formatting, masked links or mentions."""
    escaped = _DISCORD_SPECIAL.sub(r"\\\1", plain(text))
    escaped = _block_start(escaped)
    return escaped.replace("@", "@" + ZERO_WIDTH_SPACE)


def telegram(text: object, parse_mode: TelegramMode = "HTML") -> str:
    """Inert inside a Telegram message sent with `parse_mode`."""
    line = plain(text)
    if parse_mode == "HTML":
        return _html.escape(line, quote=False)
    if parse_mode == "MarkdownV2":
        return _TELEGRAM_V2_SPECIAL.sub(r"\\\1", line)
    return _TELEGRAM_V1_SPECIAL.sub(r"\\\1", line)


def telegram_html(text: object) -> str:
    """`telegram` for the HTML parse mode (the one asinwatch sends with)."""
    return telegram(text, "HTML")


def email_text(text: object) -> str:
    """Plain text for an e-mail body line or header (never a CR or LF)."""
    return plain(text)


def quote(escaped: str) -> str:
    """An escaped value in typographic quotes: “value”."""
    return f"\u201c{escaped}\u201d"
