"""Upstream text in a competitive report is inert in its Markdown (and in the narrative)."""

from __future__ import annotations

import re

from markdown_it import MarkdownIt

from asinwatch.reports.competitive import (
    ProductSnapshot,
    build_competitive_report,
    render_narrative,
)

EVIL_TITLE = "Nice mug <script>alert(1)</script> [win](javascript:alert(1)) ![](http://track/p.gif)"
EVIL_SELLER = "\r\n# Heading\r\n<!channel> <https://evil|Amazon Seller Central>"


def _tags(markdown: str) -> list[str]:
    html = MarkdownIt("commonmark", {"html": True}).enable("table").render(markdown)
    return re.findall(r"<\s*([a-zA-Z][\w-]*)", html)


def test_hostile_titles_and_sellers_render_as_text() -> None:
    own = ProductSnapshot(
        asin="B000000001",
        title=EVIL_TITLE,
        price=10.0,
        currency="USD",
        bsr=5,
        bsr_category="Kitchen | <b>x</b>",
        buybox_seller_id="S1",
        buybox_seller_name=EVIL_SELLER,
    )
    comp = ProductSnapshot(
        asin="B000000002",
        title="\n## Injected\n- item",
        price=9.0,
        currency="USD",
        bsr=7,
        bsr_category="Other",
        buybox_seller_id="S2",
        buybox_seller_name="@everyone <img src=x onerror=alert(1)>",
    )
    md = build_competitive_report(own, [comp]).markdown
    tags = _tags(md)
    assert {"script", "a", "img", "b", "ol"}.isdisjoint(tags)
    assert tags.count("h1") == 1  # our title only: "# Heading" stayed text
    assert tags.count("h2") == 2  # Summary and "vs B000000002"
    assert tags.count("ul") == 1
    assert "\r" not in md
    html = MarkdownIt("commonmark", {"html": True}).enable("table").render(md)
    assert "Amazon Seller Central" in html and "alert(1)" in html  # shown, not acted on


def test_narrative_keeps_paragraphs_but_no_markup() -> None:
    text = "First <script>x</script> para.\r\n\r\n# Heading [l](javascript:x)\n\n![](http://t)"
    rendered = render_narrative(text)
    assert _tags(rendered) == ["p", "p", "p"]
