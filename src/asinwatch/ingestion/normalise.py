"""Apify items -> standard records, or quarantine with a reason (pure: no I/O, no clock).

Decisions (documented here because later stages rely on them):
- An observation belongs to the ASIN we asked for. The claimed ASIN is `originalAsin`, else the
  ASIN in the `input` URL, else `asin`; when `asin` differs (a variant redirect or a merged
  listing) it is kept as `returned_asin`. An item whose claimed ASIN we did not ask for, or whose
  `originalAsin` contradicts its input URL, is quarantined as `wrong_asin`.
- Prices are Decimal with 2 places; a missing price is None (never 0) and says nothing about
  stock. The currency is the marketplace's ISO code; a symbol that cannot be that currency
  (e.g. "€" on amazon.com) quarantines the item (`currency_mismatch`), since mixing currencies
  would corrupt the price series. A missing symbol is taken as the marketplace's currency.
- The main BSR is the first entry of `bestsellerRanks`: Amazon lists the top-level category
  first and the sub-categories after it. Every entry is kept in `bsr_ranks`.
- A rating of 0 with no reviews is "no rating" (None), not an absurd value.
- Unknown fields are ignored; secondary fields that do not parse (stars breakdown, purchase
  volume) become None instead of quarantining an otherwise valid observation.
- One bad item never harms another: every value is checked against the range of the column it
  lands in (column_limits, read from the table models) and its real-world range (counts >= 0,
  ranks >= 1, prices finite and > 0 (shipping >= 0) and at most MAX_PRICE, ratings 1..5);
  outside either, the item is quarantined (`absurd_value`). Any unexpected exception while
  normalising one item quarantines that item (`unexpected`) instead of escaping.
- Text is cleaned (rawjson.clean_text: NUL and other controls, lone surrogates, bidi controls,
  zero-width characters) and capped at TEXT_LIMITS (Amazon's own limits with a margin); a
  longer value is cut, not refused, so the observation's numbers are kept. At most MAX_BULLETS
  bullets and MAX_IMAGES images are kept (their counts beyond the column range quarantine).
- The raw item is made jsonb-safe first (rawjson.sanitise_raw); one nested deeper than
  MAX_RAW_DEPTH is quarantined (`too_deep`).
- Times: the run's time (`observed_at`) and an item's own `scrapedAt` must lie between
  EARLIEST_OBSERVATION and `now` + MAX_FUTURE (`now` is passed in: normalisation reads no
  clock); a review date between EARLIEST_REVIEW_DATE and the day after the observation.
  Outside, the item is quarantined (`bad_time`): a year-1 or year-9999 date would otherwise
  freeze "latest" views or overflow date arithmetic downstream.

Quarantine codes: not_a_dict, block_page, missing_asin, wrong_asin, duplicate, bad_field,
absurd_value, currency_mismatch, too_deep, bad_time, unexpected.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Collection, Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal, InvalidOperation
from typing import Any

from asinwatch.catalog.marketplaces import get_marketplace, is_asin
from asinwatch.ingestion import column_limits as cols
from asinwatch.ingestion.rawjson import DEEP, MAX_RAW_DEPTH, clean_text, sanitise_raw
from asinwatch.ingestion.records import (
    CategoryRank,
    ListingContent,
    ProductRecord,
    Quarantined,
    ReviewRecord,
)

NOT_A_DICT = "not_a_dict"
BLOCK_PAGE = "block_page"
MISSING_ASIN = "missing_asin"
WRONG_ASIN = "wrong_asin"
DUPLICATE = "duplicate"
BAD_FIELD = "bad_field"
ABSURD_VALUE = "absurd_value"
CURRENCY_MISMATCH = "currency_mismatch"
TOO_DEEP = "too_deep"
BAD_TIME = "bad_time"
UNEXPECTED = "unexpected"

MAX_PRICE = min(Decimal(1_000_000), cols.PRICE_MAX)  # real-world bound within the column's
MAX_RATING = min(Decimal(5), cols.RATING_MAX)
EARLIEST_OBSERVATION = datetime(2000, 1, 1, tzinfo=UTC)
EARLIEST_REVIEW_DATE = date(1995, 7, 16)  # amazon.com opened
MAX_FUTURE = timedelta(hours=1)  # clock skew allowed between upstream and us
# Characters kept per text field: Amazon's own limit (in the comment) with a margin.
TEXT_LIMITS: dict[str, int] = {
    "title": 300,  # 200
    "brand": 100,  # 50
    "bullet": 1_000,  # 500 per bullet
    "description": 4_000,  # 2,000
    "aplus": 50_000,  # A+ modules, serialised
    "availability": 300,
    "seller_id": 64,  # 13-14
    "seller_name": 200,  # 40
    "category": 200,
    "image_url": 2_048,
    "variant_asin": 16,  # 10
    "review_id": 64,  # 13-14
    "review_title": 300,
    "review_body": 20_000,
    "review_variant": 300,
}
MAX_BULLETS = 20  # Amazon shows 5, allows 10
MAX_IMAGES = 100  # Amazon allows 9 per listing, more with variants
MAX_VARIANTS = 2_000  # Amazon's limit of child ASINs per parent
_MAX_REASON = 500
_CENT = Decimal("0.01")
_ASIN_IN_URL = re.compile(r"/(?:dp|gp/product|product-reviews)/([A-Za-z0-9]{10})(?:[/?#]|$)")
_NUMBER = re.compile(r"^-?\d+(?:\.\d+)?$")
_VOLUME = re.compile(r"^\s*(\d+(?:[.,]\d+)?)\s*([KkMm])?\s*\+?")
_CAPTCHA_MARKERS = (
    "robot check",
    "enter the characters you see below",
    "sorry! something went wrong",
    "<html",
    "<!doctype",
    "api-services-support@amazon",
)
# Symbols Apify copies from the page, and the ISO currencies each can stand for.
_SYMBOLS: dict[str, frozenset[str]] = {
    "$": frozenset({"USD", "CAD", "MXN", "AUD", "SGD"}),
    "US$": frozenset({"USD"}),
    "CA$": frozenset({"CAD"}),
    "C$": frozenset({"CAD"}),
    "CDN$": frozenset({"CAD"}),
    "MX$": frozenset({"MXN"}),
    "A$": frozenset({"AUD"}),
    "AU$": frozenset({"AUD"}),
    "S$": frozenset({"SGD"}),
    "R$": frozenset({"BRL"}),
    "£": frozenset({"GBP"}),
    "€": frozenset({"EUR"}),
    "kr": frozenset({"SEK"}),
    "zł": frozenset({"PLN"}),
    "TL": frozenset({"TRY"}),
    "₺": frozenset({"TRY"}),
    "د.إ": frozenset({"AED"}),
    "ر.س": frozenset({"SAR"}),
    "₹": frozenset({"INR"}),
    "Rs.": frozenset({"INR"}),
    "¥": frozenset({"JPY"}),
    "￥": frozenset({"JPY"}),
    "円": frozenset({"JPY"}),
}
_ISO = frozenset(
    {"USD", "CAD", "MXN", "BRL", "GBP", "EUR", "SEK", "PLN", "TRY", "AED", "SAR", "INR", "JPY"}
    | {"SGD", "AUD"}
)


class _Reject(Exception):  # noqa: N818 - internal control flow, never escapes this module
    def __init__(self, code: str, text: str) -> None:
        super().__init__(text)
        self.code = code
        self.text = text


@dataclass(frozen=True, slots=True)
class NormalisedProducts:
    records: list[ProductRecord]
    quarantined: list[Quarantined]
    missing_asins: list[str]  # asked for, but no valid item came back


@dataclass(frozen=True, slots=True)
class NormalisedReviews:
    reviews: list[ReviewRecord]
    quarantined: list[Quarantined]
    asins_without_reviews: list[str]


# --- small pure helpers ---------------------------------------------------------------


def canonical_json(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)


def content_hash(item: Any) -> str:
    """sha256 (hex) of the item's canonical JSON: equal items hash equal whatever the key order."""
    return hashlib.sha256(canonical_json(item).encode()).hexdigest()


def fingerprint(value: Any) -> str:
    """A short stable hash (16 hex characters) of a content value, for change detection."""
    if isinstance(value, str):
        value = " ".join(value.split())
    return hashlib.sha256(canonical_json(value).encode()).hexdigest()[:16]


def asin_from_url(url: Any) -> str | None:
    """The ASIN in an Amazon product URL (`input` may also be {"url": ...})."""
    if isinstance(url, dict):
        url = url.get("url")
    if not isinstance(url, str):
        return None
    m = _ASIN_IN_URL.search(url)
    return m.group(1).upper() if m and is_asin(m.group(1).upper()) else None


def parse_purchase_volume(value: Any) -> int | None:
    """ "1K+ bought in past month" -> 1000, "50+ bought" -> 50, 2000 -> 2000; else None."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int) and value >= 0:
        return value
    if not isinstance(value, str):
        return None
    m = _VOLUME.match(value)
    if not m:
        return None
    number = Decimal(m.group(1).replace(",", "."))
    scale = {"k": 1_000, "m": 1_000_000}.get((m.group(2) or "").lower(), 1)
    return int(number * scale)


def parse_fraction(value: Any) -> float | None:
    """0.79, "79%", "79 %" or 79 (a percentage) -> 0.79; anything else -> None."""
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, str):
        text = value.strip().rstrip("%").strip()
        if not _NUMBER.match(text):
            return None
        number = float(text)
        return number / 100 if value.strip().endswith("%") or number > 1 else number
    if isinstance(value, int | float):
        number = float(value)
        return number / 100 if number > 1 else number
    return None


def _str(value: Any, field: str | None = None) -> str | None:
    """A cleaned, stripped text (None when empty), cut at TEXT_LIMITS[field] if given."""
    if isinstance(value, str):
        value = clean_text(value).strip()
        if field is not None:
            value = value[: TEXT_LIMITS[field]].rstrip()
        return value or None
    return None


def _str_list(value: Any, field: str | None = None, limit: int | None = None) -> tuple[str, ...]:
    if not isinstance(value, list):
        return ()
    out = tuple(s for s in (_str(v, field) for v in value) if s)
    return out[:limit] if limit is not None else out


def _count(value: int | None, name: str, column: tuple[int, int], minimum: int = 0) -> int | None:
    """A count or rank within its real-world minimum and its column's range, else refused."""
    if value is None:
        return None
    low, high = max(minimum, column[0]), column[1]
    if not low <= value <= high:
        raise _Reject(ABSURD_VALUE, f"{name} {value} is outside {low}..{high}")
    return value


def _listed(value: Any, name: str, column: tuple[int, int]) -> None:
    """Refuse a list whose length (a stored count) would not fit its column."""
    if isinstance(value, list):
        _count(len(value), name, column)


def check_time(at: datetime, what: str, now: datetime | None) -> None:
    """Refuse a time before EARLIEST_OBSERVATION or after now + MAX_FUTURE (now None: no cap)."""
    moment = at if at.tzinfo else at.replace(tzinfo=UTC)
    latest = now + MAX_FUTURE if now is not None else None
    if moment < EARLIEST_OBSERVATION or (latest is not None and moment > latest):
        upper = latest.isoformat(timespec="seconds") if latest else "now"
        raise _Reject(
            BAD_TIME,
            f"{what} is dated {moment.isoformat()}, outside"
            f" {EARLIEST_OBSERVATION.date().isoformat()}..{upper}",
        )


def is_sane_time(at: datetime, now: datetime | None) -> bool:
    """`check_time` as a predicate (for a batch's or a product's "last seen" time)."""
    try:
        check_time(at, "", now)
    except _Reject:
        return False
    return True


def _scraped_at(item: dict[str, Any], now: datetime | None) -> None:
    """An item's own `scrapedAt`, when present and readable, must be a sane time too."""
    text = _str(item.get("scrapedAt"))
    if not text:
        return
    try:
        moment = datetime.fromisoformat(text[:40])
    except ValueError:
        return  # an unreadable secondary field says nothing
    check_time(moment, "scrapedAt", now)


def _integer(value: Any, name: str) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool):
        raise _Reject(BAD_FIELD, f"{name} is not a number: {value!r}")
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str):
        text = value.strip().lstrip("#").replace(",", "")
        if re.fullmatch(r"-?\d{1,30}", text):
            return int(text)
    raise _Reject(BAD_FIELD, f"{name} is not an integer: {str(value)[:40]!r}")


def _decimal(value: Any, name: str) -> Decimal | None:
    if value is None:
        return None
    if isinstance(value, bool):
        raise _Reject(BAD_FIELD, f"{name} is not a number: {value!r}")
    if isinstance(value, int | float):
        text = repr(value)
    elif isinstance(value, str) and _NUMBER.match(value.strip()):
        text = value.strip()
    else:
        raise _Reject(BAD_FIELD, f"{name} is not a number: {str(value)[:40]!r}")
    try:
        number = Decimal(text)
    except InvalidOperation:
        raise _Reject(BAD_FIELD, f"{name} is not a number: {text[:40]!r}") from None
    if not number.is_finite():
        raise _Reject(BAD_FIELD, f"{name} is not a finite number")
    return number


def _money(value: Any, name: str, currency: str, *, zero_ok: bool = False) -> Decimal | None:
    """A price field ({value, currency} or a bare number) in the marketplace's currency."""
    symbol: Any = None
    if isinstance(value, dict):
        symbol = value.get("currency")
        value = value.get("value")
    amount = _decimal(value, name)
    if amount is None:
        return None
    if symbol is not None:
        sym = str(symbol).strip()
        allowed = _SYMBOLS.get(sym) or (frozenset({sym.upper()}) if sym.upper() in _ISO else None)
        if allowed is None:
            raise _Reject(CURRENCY_MISMATCH, f"{name} has unknown currency symbol {sym[:8]!r}")
        if currency not in allowed:
            raise _Reject(
                CURRENCY_MISMATCH, f"{name} currency {sym!r} is not {currency} of the marketplace"
            )
    if amount < 0 or amount > MAX_PRICE:
        raise _Reject(ABSURD_VALUE, f"{name} {amount} is outside 0..{MAX_PRICE}")
    cents = amount.quantize(_CENT)
    if cents == 0 and not zero_ok:
        raise _Reject(ABSURD_VALUE, f"{name} {amount} is not a price (must be above 0)")
    return cents


def _quarantine(marketplace: str, asin: str | None, code: str, text: str, raw: Any) -> Quarantined:
    if not isinstance(raw, dict):
        raw = sanitise_raw({"value": raw}).value  # depth-bounded; other types as their repr
    reason = clean_text(f"{code}: {text}")[:_MAX_REASON]
    return Quarantined(marketplace, asin, reason, raw, code)


def _guess_asin(item: dict[str, Any], *keys: str) -> str | None:
    """The ASIN an item is attributed to when it is quarantined (the input URL's first)."""
    found = asin_from_url(item.get("input"))
    for key in keys:
        if found:
            break
        s = _str(item.get(key))
        found = s.upper() if s and is_asin(s.upper()) else None
    return found


def _claimed_asin(
    item: dict[str, Any], original_key: str, returned_key: str
) -> tuple[str, str | None]:
    """(the ASIN the item is for, the ASIN the page answered with when different)."""

    def clean(value: Any) -> str | None:
        s = _str(value)
        return s.upper() if s and is_asin(s.upper()) else None

    input_asin = asin_from_url(item.get("input"))
    original = clean(item.get(original_key))
    returned = clean(item.get(returned_key))
    if input_asin and original and input_asin != original:
        raise _Reject(WRONG_ASIN, f"input URL is for {input_asin} but the page is {original}")
    claimed = original or input_asin or returned
    if claimed is None:
        raise _Reject(MISSING_ASIN, "item carries no recognisable ASIN")
    return claimed, (returned if returned and returned != claimed else None)


def _looks_blocked(item: dict[str, Any]) -> str | None:
    if item.get("#error"):
        return f"scraper reported an error ({str(item['#error'])[:40]})"
    title = _str(item.get("title")) or ""
    text = " ".join(
        s.lower() for s in (title, _str(item.get("description")) or "") if isinstance(s, str)
    )
    for marker in _CAPTCHA_MARKERS:
        if marker in text:
            return f"captcha or error page ({marker!r})"
    price = item.get("price")
    price_value = price.get("value") if isinstance(price, dict) else price
    signals = (title, price_value, item.get("stars"), item.get("reviewsCount"))
    if all(s in (None, "", 0) for s in signals) and not _str_list(item.get("features")):
        return "no title, price, rating, review count or bullets"
    return None


# --- products -------------------------------------------------------------------------


def normalise_product(
    item: Any,
    *,
    marketplace: str,
    requested: Collection[str],
    observed_at: datetime,
    now: datetime | None = None,
) -> ProductRecord | Quarantined:
    """One `junglee/amazon-crawler` item -> a ProductRecord, or Quarantined with the reason.

    `now` (the time the item was received) bounds how far in the future a time may be.
    """
    mp = get_marketplace(marketplace)
    if not isinstance(item, dict):
        return _quarantine(mp.domain, None, NOT_A_DICT, f"item is a {type(item).__name__}", item)
    asin: str | None = None
    body: dict[str, Any] = item
    try:
        clean = sanitise_raw(item)
        body = clean.value
        asin = _guess_asin(body, "originalAsin", "asin")
        if DEEP in clean.issues:
            raise _Reject(TOO_DEEP, f"item is nested deeper than {MAX_RAW_DEPTH} levels")
        blocked = _looks_blocked(body)
        if blocked:
            raise _Reject(BLOCK_PAGE, blocked)
        claimed, returned = _claimed_asin(body, "originalAsin", "asin")
        asin = claimed
        if claimed not in requested:
            raise _Reject(WRONG_ASIN, f"item is for {claimed}, which this batch did not ask for")
        check_time(observed_at, "the run", now)
        _scraped_at(body, now)
        return _product(body, mp.domain, mp.currency, claimed, returned, observed_at)
    except _Reject as rej:
        return _quarantine(mp.domain, asin, rej.code, rej.text, body)
    except Exception as exc:  # a bug or an unforeseen shape: this item only, never the batch
        return _quarantine(mp.domain, asin, UNEXPECTED, f"{type(exc).__name__}: {exc}", body)


def _product(
    item: dict[str, Any],
    marketplace: str,
    currency: str,
    asin: str,
    returned: str | None,
    observed_at: datetime,
) -> ProductRecord:
    buybox = _money(item.get("price"), "price", currency)
    list_price = _money(item.get("listPrice"), "listPrice", currency)
    shipping = _money(item.get("shippingPrice"), "shippingPrice", currency, zero_ok=True)

    offers = item.get("offers")
    offer_prices: list[Decimal] = []
    if isinstance(offers, list):
        _listed(offers, "offer count", cols.OFFER_COUNT)
        for i, offer in enumerate(offers):
            if isinstance(offer, dict):
                p = _money(offer.get("price"), f"offers[{i}].price", currency)
                if p is not None:
                    offer_prices.append(p)
    offer_count = len(offers) if isinstance(offers, list) and offers else None

    stars = _decimal(item.get("stars"), "stars")
    reviews = _count(
        _integer(item.get("reviewsCount"), "reviewsCount"), "reviewsCount", cols.REVIEW_COUNT
    )
    if stars is not None and stars == 0 and not reviews:
        stars = None
    if stars is not None and not Decimal(1) <= stars <= MAX_RATING:
        raise _Reject(ABSURD_VALUE, f"stars {stars} is outside 1..{MAX_RATING}")

    ranks: list[CategoryRank] = []
    raw_ranks = item.get("bestsellerRanks")
    if isinstance(raw_ranks, list):
        for entry in raw_ranks:
            if not isinstance(entry, dict):
                continue
            rank = _count(
                _integer(entry.get("rank"), "bestsellerRanks.rank"),
                "best-seller rank",
                cols.BSR,
                minimum=1,
            )
            if rank is None:
                continue
            ranks.append(CategoryRank(_str(entry.get("category"), "category") or "", rank))

    crumbs = _str(item.get("breadCrumbs"))
    top = crumbs.split(">")[0].strip()[: TEXT_LIMITS["category"]] if crumbs else None
    category = top or (ranks[0].category if ranks else None) or None

    raw_seller = item.get("seller")
    seller: dict[str, Any] = raw_seller if isinstance(raw_seller, dict) else {}
    in_stock = item.get("inStock") if isinstance(item.get("inStock"), bool) else None

    title = _str(item.get("title"), "title")
    _listed(item.get("features"), "bullet count", cols.BULLET_COUNT)
    bullets = _str_list(item.get("features"), "bullet", MAX_BULLETS)
    description = _str(item.get("description"), "description")
    _listed(item.get("highResolutionImages"), "image count", cols.IMAGE_COUNT)
    images = _str_list(item.get("highResolutionImages"), "image_url", MAX_IMAGES) or _str_list(
        [item.get("thumbnailImage")], "image_url"
    )
    raw_aplus = item.get("aPlusContent")
    aplus: str | None = None
    if isinstance(raw_aplus, str):
        aplus = _str(raw_aplus, "aplus")
    elif raw_aplus not in (None, [], {}):
        aplus = _str(canonical_json(raw_aplus), "aplus")
    variants = tuple(
        sorted(a.upper() for a in _str_list(item.get("variantAsins"), "variant_asin", MAX_VARIANTS))
    )
    content = ListingContent(title, bullets, description, images, aplus, variants)
    fingerprints = {
        "title": fingerprint(title or ""),
        "bullets": fingerprint(list(bullets)),
        "description": fingerprint(description or ""),
        "images": fingerprint(list(images)),
        "aplus": fingerprint(aplus or ""),
        "variants": fingerprint(list(variants)),
    }
    volume = _count(
        parse_purchase_volume(item.get("monthlyPurchaseVolume")),
        "monthlyPurchaseVolume",
        cols.PURCHASE_VOLUME,
    )
    return ProductRecord(
        marketplace=marketplace,
        asin=asin,
        observed_at=observed_at,
        returned_asin=returned,
        title=title,
        brand=_str(item.get("brand"), "brand"),
        category=category,
        buybox_price=buybox,
        list_price=list_price,
        shipping_price=shipping,
        lowest_offer_price=min(offer_prices) if offer_prices else None,
        currency=currency,
        in_stock=in_stock,
        availability_text=_str(item.get("inStockText"), "availability"),
        buybox_seller_id=_str(seller.get("id"), "seller_id"),
        buybox_seller_name=_str(seller.get("name"), "seller_name"),
        offer_count=offer_count,
        bsr=ranks[0].rank if ranks else None,
        bsr_category=ranks[0].category if ranks else None,
        bsr_ranks=tuple(ranks),
        rating=stars.quantize(_CENT) if stars is not None else None,
        review_count=reviews,
        stars_breakdown=_breakdown(item.get("starsBreakdown")),
        monthly_purchase_volume=volume,
        content=content,
        fingerprints=fingerprints,
        image_count=_count(len(images), "image count", cols.IMAGE_COUNT),
        bullet_count=_count(len(bullets), "bullet count", cols.BULLET_COUNT),
        has_aplus=aplus is not None,
    )


def _breakdown(value: Any) -> dict[str, float] | None:
    if not isinstance(value, dict):
        return None
    out: dict[str, float] = {}
    for star in range(5, 0, -1):
        key = f"{star}star"
        if key not in value:
            continue
        frac = parse_fraction(value[key])
        if frac is None or not 0 <= frac <= 1:
            return None
        out[key] = round(frac, 4)
    return out or None


def normalise_products(
    items: Iterable[Any],
    *,
    marketplace: str,
    requested: Iterable[str],
    observed_at: datetime,
    now: datetime | None = None,
) -> NormalisedProducts:
    """A batch's items -> records (one per requested ASIN at most), quarantine and the missing."""
    wanted = list(dict.fromkeys(a.strip().upper() for a in requested))
    wanted_set = set(wanted)
    records: list[ProductRecord] = []
    quarantined: list[Quarantined] = []
    seen: set[str] = set()
    for item in items:
        result = normalise_product(
            item, marketplace=marketplace, requested=wanted_set, observed_at=observed_at, now=now
        )
        if isinstance(result, Quarantined):
            quarantined.append(result)
        elif result.asin in seen:
            quarantined.append(
                _quarantine(
                    result.marketplace, result.asin, DUPLICATE, "second item for this ASIN", item
                )
            )
        else:
            seen.add(result.asin)
            records.append(result)
    return NormalisedProducts(records, quarantined, [a for a in wanted if a not in seen])


# --- reviews --------------------------------------------------------------------------


def _review_date(value: Any, observed_at: datetime) -> date | None:
    text = _str(value)
    if not text:
        return None
    try:
        day = date.fromisoformat(text[:10])
    except ValueError:
        return None
    latest = observed_at.date() + timedelta(days=1)  # time zones: "today" somewhere already
    if not EARLIEST_REVIEW_DATE <= day <= latest:
        raise _Reject(
            BAD_TIME,
            f"review is dated {day.isoformat()}, outside"
            f" {EARLIEST_REVIEW_DATE.isoformat()}..{latest.isoformat()}",
        )
    return day


def normalise_review(
    item: Any,
    *,
    marketplace: str,
    requested: Collection[str],
    observed_at: datetime,
    now: datetime | None = None,
) -> ReviewRecord | Quarantined:
    """One `junglee/amazon-reviews-scraper` item -> a ReviewRecord, or Quarantined."""
    mp = get_marketplace(marketplace)
    if not isinstance(item, dict):
        return _quarantine(mp.domain, None, NOT_A_DICT, f"item is a {type(item).__name__}", item)
    asin: str | None = None
    body: dict[str, Any] = item
    try:
        clean = sanitise_raw(item)
        body = clean.value
        asin = _guess_asin(body, "productOriginalAsin", "productAsin")
        if DEEP in clean.issues:
            raise _Reject(TOO_DEEP, f"item is nested deeper than {MAX_RAW_DEPTH} levels")
        claimed, _ = _claimed_asin(body, "productOriginalAsin", "productAsin")
        asin = claimed
        if claimed not in requested:
            raise _Reject(WRONG_ASIN, f"review is for {claimed}, which this batch did not ask for")
        check_time(observed_at, "the run", now)
        _scraped_at(body, now)
        review_id = _str(body.get("reviewId"), "review_id")
        if not review_id:
            raise _Reject(BAD_FIELD, "review has no reviewId")
        rating = _integer(body.get("ratingScore"), "ratingScore")
        if rating is None:
            raise _Reject(BAD_FIELD, "review has no ratingScore")
        _count(rating, "ratingScore", cols.REVIEW_RATING)
        if not 1 <= rating <= 5:
            raise _Reject(ABSURD_VALUE, f"ratingScore {rating} is outside 1..5")
        verified, vine = body.get("isVerified"), body.get("isAmazonVine")
        return ReviewRecord(
            marketplace=mp.domain,
            asin=claimed,
            review_id=review_id,
            rating=rating,
            title=_str(body.get("reviewTitle"), "review_title"),
            body=_str(body.get("reviewDescription"), "review_body"),
            review_date=_review_date(body.get("date"), observed_at),
            is_verified=verified if isinstance(verified, bool) else None,
            is_vine=vine if isinstance(vine, bool) else None,
            variant=_str(body.get("variant"), "review_variant"),
            observed_at=observed_at,
        )
    except _Reject as rej:
        return _quarantine(mp.domain, asin, rej.code, rej.text, body)
    except Exception as exc:  # a bug or an unforeseen shape: this item only, never the batch
        return _quarantine(mp.domain, asin, UNEXPECTED, f"{type(exc).__name__}: {exc}", body)


def normalise_reviews(
    items: Iterable[Any],
    *,
    marketplace: str,
    requested: Iterable[str],
    observed_at: datetime,
    now: datetime | None = None,
) -> NormalisedReviews:
    """A batch's review items -> de-duplicated reviews (by review id) and quarantine."""
    wanted = list(dict.fromkeys(a.strip().upper() for a in requested))
    wanted_set = set(wanted)
    reviews: list[ReviewRecord] = []
    quarantined: list[Quarantined] = []
    seen: set[str] = set()
    for item in items:
        result = normalise_review(
            item, marketplace=marketplace, requested=wanted_set, observed_at=observed_at, now=now
        )
        if isinstance(result, Quarantined):
            quarantined.append(result)
        elif result.review_id not in seen:
            seen.add(result.review_id)
            reviews.append(result)
    with_reviews = {r.asin for r in reviews}
    return NormalisedReviews(reviews, quarantined, [a for a in wanted if a not in with_reviews])
