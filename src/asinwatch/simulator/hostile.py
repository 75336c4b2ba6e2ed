"""Hostile items: one odd value in an otherwise valid item, per ASIN (`SimConfig.hostile`).

`SimConfig.hostile` maps an ASIN to one of HOSTILE_KINDS; that ASIN's item (and, for some
kinds, its reviews) carries the fault, every other item of the run stays normal. Values JSON
cannot carry through Starlette's encoder (NaN, lone surrogates, 5,000-deep nesting) are
written by `dump_json` the way a non-strict upstream would send them.
"""

from __future__ import annotations

import json
from typing import Any

from asinwatch.simulator.items import block_item
from asinwatch.simulator.market import DayView, MarketModel, Profile

INT4_OVERFLOW = 2**31
INT2_OVERFLOW = 2**15
DEEP_LEVELS = 5_000
HUGE_TITLE_CHARS = 5_000_000
HOSTILE_KINDS = (
    "review_count_overflow",
    "rank_overflow",
    "purchase_volume_overflow",
    "image_count_overflow",
    "bullet_count_overflow",
    "lone_surrogate",
    "nul",
    "deep_nesting",
    "year_1",
    "year_9999",
    "nan_price",
    "zero_price",
    "huge_title",
    "block_other_asin",
)
_DEEP_TOKEN = "@@asinwatch-sim-deep@@"


class DeepJson:
    """A value `dump_json` writes as `levels` nested arrays (json.dumps would recurse)."""

    def __init__(self, levels: int) -> None:
        self.levels = levels


def hostile_item(
    market: MarketModel,
    p: Profile,
    v: DayView,
    url: str,
    kind: str,
    good: dict[str, Any],
    salt: object,
) -> dict[str, Any]:
    """`good` (the listing's normal item) with the fault `kind` injected."""
    item = dict(good)
    if kind == "review_count_overflow":
        item["reviewsCount"] = INT4_OVERFLOW
    elif kind == "rank_overflow":
        item["bestsellerRanks"] = [{**good["bestsellerRanks"][0], "rank": INT4_OVERFLOW}]
    elif kind == "purchase_volume_overflow":
        item["monthlyPurchaseVolume"] = INT4_OVERFLOW
    elif kind == "image_count_overflow":
        item["highResolutionImages"] = [f"i{n}" for n in range(INT2_OVERFLOW)]
    elif kind == "bullet_count_overflow":
        item["features"] = [f"b{n}" for n in range(INT2_OVERFLOW)]
    elif kind == "lone_surrogate":
        item["title"] = str(good["title"]) + " \ud800"
        item["brand"] = "\udfff" + str(good["brand"])
    elif kind == "nul":
        item["title"] = "\x00" + str(good["title"])
        item["description"] = "nul\x00inside"
        item["weird\x00key"] = "x"
    elif kind == "deep_nesting":
        item["attributes"] = DeepJson(DEEP_LEVELS)
    elif kind == "year_1":
        item["scrapedAt"] = "0001-01-01T00:00:00.000Z"
    elif kind == "year_9999":
        item["scrapedAt"] = "9999-12-31T23:59:59.999Z"
    elif kind == "nan_price":
        item["price"] = {"value": float("nan"), "currency": (good["price"] or {}).get("currency")}
    elif kind == "zero_price":
        item["price"] = {"value": 0, "currency": (good["price"] or {}).get("currency")}
    elif kind == "huge_title":
        item["title"] = "T" * HUGE_TITLE_CHARS
    elif kind == "block_other_asin":
        return block_item(market, p, v, url, "wrong_asin", salt)
    else:
        raise ValueError(f"unknown hostile kind {kind!r}")
    return item


def hostile_reviews(reviews: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    """The listing's reviews with the text or date faults of `kind` (others unchanged)."""
    if not reviews:
        return reviews
    first = dict(reviews[0])
    if kind == "nul":
        first["reviewDescription"] = "Broke\x00 fast"
    elif kind == "lone_surrogate":
        first["reviewTitle"] = "Meh \ud800"
    elif kind == "year_9999":
        first["date"] = "9999-12-31"
    elif kind == "year_1":
        first["date"] = "0001-01-01"
    else:
        return reviews
    return [first, *reviews[1:]]


def dump_json(value: Any) -> bytes:
    """JSON as a lax upstream writes it: NaN literals, escaped lone surrogates, deep arrays."""
    deep: list[int] = []

    def default(obj: Any) -> Any:
        if isinstance(obj, DeepJson):
            deep.append(obj.levels)
            return _DEEP_TOKEN
        raise TypeError(f"{type(obj).__name__} is not JSON serialisable")

    text = json.dumps(
        value, ensure_ascii=True, allow_nan=True, separators=(",", ":"), default=default
    )
    for levels in deep:
        text = text.replace(json.dumps(_DEEP_TOKEN), "[" * levels + "1" + "]" * levels, 1)
    return text.encode("ascii")
