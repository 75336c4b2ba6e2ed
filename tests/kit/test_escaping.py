"""Every renderer's escaper turns hostile upstream text into inert output.

Markdown is checked by rendering it with a CommonMark parser (markdown-it-py, raw HTML on),
HTML by parsing the result; chat dialects by the syntax each service acts on.
"""

from __future__ import annotations

import re
from html.parser import HTMLParser

import pytest
from markdown_it import MarkdownIt

from asinwatch.kit import escaping

HOSTILE = [
    "<script>alert(1)</script>",
    "[click](javascript:alert(1))",
    "![](http://track.example/pixel.gif)",
    "\r\n# Heading",
    "Good title\r\n# Heading\n- item\n> quote",
    "<!channel> hey <https://evil.example|Amazon Seller Central>",
    "@everyone @here <@123456> <@&42>",
    '<b>bold</b> <a href="https://evil.example">x</a> <tg-spoiler>s</tg-spoiler>',
    "*bold* _it_ ~strike~ `code` ||spoiler||",
    "see https://evil.example and www.evil.example or a@b.example",
    "<img src=x onerror=alert(1)>",
    "&lt;script&gt; &#x3C;b&#x3E;",
    "1. ordered",
    "\u202egnp.exe\u2028line\u2029para\x85nel\x0bvt",
]
ALL = [
    escaping.plain,
    escaping.markdown,
    escaping.html,
    escaping.slack,
    escaping.discord,
    escaping.telegram_html,
    escaping.email_text,
]


def _md_html(text: str) -> str:
    return MarkdownIt("commonmark", {"html": True}).enable("table").render(text)


@pytest.mark.parametrize("escaper", ALL, ids=lambda f: f.__name__)
@pytest.mark.parametrize("text", HOSTILE)
def test_every_escaper_gives_one_line_without_control_characters(escaper, text) -> None:
    out = escaper(text)
    assert not re.search(r"[\r\n\x0b\x0c\x85\u2028\u2029\u202a-\u202e]", out)


@pytest.mark.parametrize("text", HOSTILE)
def test_markdown_renders_as_one_paragraph_of_text(text: str) -> None:
    rendered = _md_html(escaping.markdown(text))
    # Only the paragraph wrapper: no heading, list, quote, link, image, code or raw HTML.
    tags = set(re.findall(r"<\s*([a-zA-Z][\w-]*)", rendered))
    assert tags <= {"p"}, (text, rendered)


@pytest.mark.parametrize("text", HOSTILE)
def test_markdown_survives_inside_a_table_cell_and_bold(text: str) -> None:
    doc = (
        f"| a | b |\n|---|---|\n| {escaping.markdown(text)} | x |\n\n**{escaping.markdown(text)}**"
    )
    rendered = _md_html(doc)
    tags = set(re.findall(r"<\s*([a-zA-Z][\w-]*)", rendered))
    assert tags <= {"table", "thead", "tbody", "tr", "th", "td", "p", "strong"}, rendered
    assert rendered.count("<td>") == 2  # the "|" of the text did not add a cell


def test_markdown_keeps_the_visible_text() -> None:
    rendered = _md_html(escaping.markdown("[click](javascript:alert(1)) <b>x</b>"))
    assert "[click](javascript:alert(1)) &lt;b&gt;x&lt;/b&gt;" in rendered


class _Tags(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: list[str] = []

    def handle_starttag(self, tag: str, attrs: object) -> None:
        self.tags.append(tag)


@pytest.mark.parametrize("text", HOSTILE)
def test_html_holds_no_markup(text: str) -> None:
    out = escaping.html(text)
    parser = _Tags()
    parser.feed(f'<p title="{out}">{out}</p>')
    assert parser.tags == ["p"]
    assert "<" not in out and '"' not in out


@pytest.mark.parametrize("text", HOSTILE)
def test_slack_has_no_control_sequences(text: str) -> None:
    out = escaping.slack(text)
    # Slack acts on <...> (mentions, links) and on & entities it did not produce.
    assert "<" not in out and ">" not in out
    assert not re.search(r"&(?!amp;|lt;|gt;)", out)


def test_slack_escapes_per_slack_rules() -> None:
    assert (
        escaping.slack("<!channel> & <https://e|A>") == "&lt;!channel&gt; &amp; &lt;https://e|A&gt;"
    )


@pytest.mark.parametrize("text", HOSTILE)
def test_discord_never_pings_nor_links(text: str) -> None:
    out = escaping.discord(text)
    assert not re.search(r"@(everyone|here|\d|&)", out)  # a zero-width space follows each @
    assert not re.search(r"(?<!\\)[<\[\]*_~`|]", out)  # every markup character is escaped


@pytest.mark.parametrize("text", HOSTILE)
def test_telegram_html_has_no_tags(text: str) -> None:
    out = escaping.telegram_html(text)
    assert "<" not in out and ">" not in out
    assert not re.search(r"&(?!amp;|lt;|gt;)", out)


@pytest.mark.parametrize("text", HOSTILE)
def test_telegram_markdown_v2_escapes_every_reserved_character(text: str) -> None:
    out = escaping.telegram(text, "MarkdownV2")
    assert not re.search(r"(?<!\\)[_*\[\]()~`>#+\-=|{}.!]", out.replace("\\\\", ""))


def test_quote_marks_foreign_text() -> None:
    assert escaping.quote(escaping.plain("Evil\r\nCo")) == "\u201cEvil Co\u201d"
