"""The simulated marketplace: a deterministic history for every (marketplace, ASIN).

Nothing is stored per ASIN up front. A listing's static profile is derived from
hash(seed, marketplace, ASIN); day d's state from day d-1's and a generator seeded by
hash(seed, marketplace, ASIN, d). Timelines are computed lazily into compact arrays and kept
in a bounded LRU, so 5,000 ASINs x 100 days stays within tens of megabytes. Ground-truth events
(what changed on which day) are derived by diffing consecutive days' displayed state.

Labels are ground truth, not alert-worthiness:
- ``price_change`` labels every change of the displayed price, the 0.5-3 % noise nudges
  included, with its ``pct`` (vs the last displayed price); a consumer deciding what deserves
  an alert filters on it (the alert-accuracy bench keeps |pct| >= 5, the detector's default).
- ``negative_review_spike`` labels a day on which extra 1-2★ ratings were injected; the burst
  scales with the listing's normal 1-2★ velocity (`spike_size`), so a labelled spike is
  clearly above that listing's normal day, not three low ratings lost in a busy listing's flow.
- ``bsr_move`` labels a rank change of >= 30 % vs the previous day (not vs a median).
"""

from __future__ import annotations

import math
import threading
from array import array
from collections import OrderedDict
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from asinwatch.catalog.marketplaces import get_marketplace
from asinwatch.simulator.randomness import fake_asin, rng, token, unit

EVENT_TYPES = (
    "price_change",
    "out_of_stock",
    "back_in_stock",
    "buybox_seller_change",
    "hijacker",
    "listing_change",
    "bsr_move",
    "rating_drop",
    "negative_review_spike",
    "block_page",
)
CONTENT_FIELDS = ("title", "bullets", "description", "images", "aplus")
# Daily probability that a listing field is edited.
_EDIT_P = (0.008, 0.012, 0.008, 0.010, 0.005)
# A BSR change of at least this fraction vs the previous day is labelled a bsr_move.
BSR_MOVE_THRESHOLD = 0.30
# Negative-review spikes: daily probability, and the size of the burst of extra 1-2★ ratings
# (see `spike_size`): SPIKE_FACTOR x the listing's normal day, and never fewer than
# SPIKE_MIN_LOW (= 5 x a normal day of 0.8), plus 0-2 more at random.
SPIKE_P = 0.015
SPIKE_MIN_LOW = 4
SPIKE_FACTOR = 5.0

SELLER_BRAND, SELLER_AMAZON, SELLER_HIJACKER = 0, 1, 2

# Rough exchange rates so prices look plausible in each currency (not real rates).
_FX = {
    "USD": 1.0, "CAD": 1.35, "MXN": 17.0, "BRL": 5.0, "GBP": 0.79, "EUR": 0.92, "SEK": 10.5,
    "PLN": 4.0, "TRY": 32.0, "AED": 3.67, "SAR": 3.75, "INR": 83.0, "JPY": 150.0, "SGD": 1.35,
    "AUD": 1.5,
}  # fmt: skip
# The symbol Amazon shows (and Apify copies into `price.currency`).
CURRENCY_SYMBOL = {
    "USD": "$", "CAD": "$", "MXN": "$", "BRL": "R$", "GBP": "£", "EUR": "€", "SEK": "kr",
    "PLN": "zł", "TRY": "TL", "AED": "AED", "SAR": "SAR", "INR": "₹", "JPY": "￥", "SGD": "S$",
    "AUD": "$",
}  # fmt: skip
_ZERO_DECIMAL = {"JPY"}
_AMAZON_SELLER_IDS = {"amazon.com": "ATVPDKIKX0DER", "amazon.de": "A3JWKAKR8XB7XF"}

_BRANDS = (
    "Northpeak", "Lumora", "Kitchora", "Vantix", "Brisa", "Oakhaven", "Zentro", "Pawly",
    "Solvix", "Meadowline", "Trevi", "Kobaltz", "Hearthly", "Nimbra", "Quillon", "Ardent",
)  # fmt: skip
_CATEGORIES = (
    ("Home & Kitchen", "Kitchen & Dining", "Kitchen Utensils & Gadgets", "Kitchen Scales"),
    ("Sports & Outdoors", "Outdoor Recreation", "Camping & Hiking", "Water Bottles"),
    ("Pet Supplies", "Dogs", "Toys", "Chew Toys"),
    ("Electronics", "Computers & Accessories", "Cables", "USB Cables"),
    ("Beauty & Personal Care", "Skin Care", "Face", "Serums"),
    ("Tools & Home Improvement", "Power & Hand Tools", "Hand Tools", "Screwdrivers"),
    ("Office Products", "Office & School Supplies", "Writing Instruments", "Gel Pens"),
    ("Toys & Games", "Puzzles", "Jigsaw Puzzles", "Jigsaw Puzzles 1000 Pieces"),
)
_NOUNS = ("Scale", "Bottle", "Chew Toy", "Cable", "Serum", "Screwdriver Set", "Gel Pens", "Puzzle")
_ADJ = ("Premium", "Ultra", "Compact", "Heavy Duty", "Eco", "Pro", "Classic", "Smart", "Mini")
_COLORS = ("Black", "White", "Blue", "Green", "Grey", "Red", "Rose Gold", "Silver")
_FEATURES = (
    "Made from durable, food-safe materials",
    "Easy to clean and dishwasher safe",
    "Compact design that fits anywhere",
    "Backed by our 2-year warranty",
    "Precise and reliable every time",
    "Lightweight and travel friendly",
    "Ergonomic grip for all-day comfort",
    "Includes everything you need to get started",
    "Tested to the highest quality standards",
    "Perfect gift for family and friends",
)
_HIJACKERS = ("BestDealz Store", "QuickShip Outlet", "MegaValue Trading", "Prime Bargains 24")


@dataclass(frozen=True, slots=True)
class SimEvent:
    """A change the simulator injected, for precision / recall checks."""

    asin: str
    marketplace: str
    at: datetime
    type: str
    details: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {
            "asin": self.asin,
            "marketplace": self.marketplace,
            "at": self.at.isoformat(),
            "type": self.type,
            "details": self.details,
        }


@dataclass(frozen=True, slots=True)
class Profile:
    """What does not change about a listing (derived from the seed)."""

    marketplace: str
    asin: str
    currency: str
    symbol: str
    decimals: int
    country: str
    brand: str
    brand_seller_id: str
    amazon_seller_id: str
    categories: tuple[str, ...]
    noun: str
    base_price: int  # minor units
    list_price_ratio: float | None
    base_bsr: int
    star_weights: tuple[float, float, float, float, float]  # 1★ .. 5★
    base_reviews: int
    review_rate: float  # new ratings per day
    returned_asin: str | None  # the page redirects to this variant
    variant_asins: tuple[str, ...]
    has_aplus: bool
    listed: bool  # False: the page is gone, the crawler returns nothing


@dataclass(frozen=True, slots=True)
class DayView:
    """What a shopper would see on the page on one simulated day."""

    day: int
    price: int | None  # buy-box price in minor units; None when not buyable
    underlying_price: int
    list_price: int | None
    in_stock: bool
    seller_kind: int | None
    seller_id: str | None
    seller_name: str | None
    bsr: int
    star_counts: tuple[int, int, int, int, int]
    stars: Decimal | None
    versions: tuple[int, int, int, int, int]
    new_ratings: tuple[int, ...]  # ratings (1..5) posted on this day, newest last
    spike: bool


def charm_price(minor: float, decimals: int) -> int:
    """Round to a shelf-looking price: x.99, or a multiple of 10 for zero-decimal currencies."""
    if decimals == 0:
        return max(10, round(minor / 10) * 10)
    return max(99, round(minor / 100) * 100 - 1)


def round_stars(counts: tuple[int, ...]) -> Decimal | None:
    total = sum(counts)
    if total == 0:
        return None
    mean = Decimal(sum((i + 1) * c for i, c in enumerate(counts))) / Decimal(total)
    return mean.quantize(Decimal("0.1"), rounding=ROUND_HALF_UP)


def expected_low_ratings(p: Profile) -> float:
    """The listing's normal number of new 1-2★ ratings per day."""
    return p.review_rate * (p.star_weights[0] + p.star_weights[1])


def spike_size(p: Profile) -> int:
    """The smallest burst of extra 1-2★ ratings injected by a negative-review spike.

    A seller calls a day a spike when it is clearly worse than the listing's normal day, so
    the burst scales with the normal 1-2★ velocity: four extra low ratings stand out on a
    listing that gets one every few weeks but not on one that gets two a day, whose spike
    is ten or more. The floor keeps a quiet listing's spike several reviews strong.
    """
    return max(SPIKE_MIN_LOW, math.ceil(SPIKE_FACTOR * expected_low_ratings(p)))


def sample_asins(seed: int, n: int) -> list[str]:
    """n distinct deterministic ASINs (benchmarks and tests use them as a catalogue)."""
    out: list[str] = []
    seen: set[str] = set()
    i = 0
    while len(out) < n:
        a = fake_asin(seed, "sample", i)
        i += 1
        if a not in seen:
            seen.add(a)
            out.append(a)
    return out


class Timeline:
    """One listing's daily history, computed on demand into compact arrays."""

    __slots__ = (
        "_bsr", "_hij", "_new", "_price", "_seller", "_spike", "_stars", "_stock", "_ver",
        "profile", "seed",
    )  # fmt: skip

    def __init__(self, seed: int, profile: Profile) -> None:
        self.seed = seed
        self.profile = profile
        self._price = array("l")
        self._stock = bytearray()
        self._seller = bytearray()
        self._hij = array("l")
        self._bsr = array("l")
        self._stars = [array("l") for _ in range(5)]
        self._new = [array("H") for _ in range(5)]
        self._ver = [array("H") for _ in range(5)]
        self._spike = bytearray()
        self._init_day0()

    def __len__(self) -> int:
        return len(self._price)

    def _init_day0(self) -> None:
        p = self.profile
        self._price.append(p.base_price)
        self._stock.append(1)
        self._seller.append(SELLER_BRAND)
        self._hij.append(0)
        self._bsr.append(p.base_bsr)
        remaining = p.base_reviews
        for i in range(5):
            c = round(p.base_reviews * p.star_weights[i]) if i < 4 else remaining
            c = max(0, min(c, remaining))
            remaining -= c
            self._stars[i].append(c)
            self._new[i].append(0)
            self._ver[i].append(0)
        self._spike.append(0)

    def ensure(self, day: int) -> None:
        while len(self) <= day:
            self._step(len(self))

    def _step(self, d: int) -> None:
        p = self.profile
        r = rng(self.seed, "day", p.marketplace, p.asin, d)
        prev = d - 1
        # Price: mostly unchanged, sometimes nudged (noise), sometimes a real move.
        price = self._price[prev]
        u = r.random()
        if u < 0.14:
            small = u < 0.10
            mag = r.uniform(0.005, 0.03) if small else r.uniform(0.08, 0.25)
            moved = price * (1 + (mag if r.random() < 0.5 else -mag))
            lo, hi = p.base_price * 0.5, p.base_price * 1.8
            price = charm_price(min(max(moved, lo), hi), p.decimals)
        self._price.append(price)
        # Stock-outs and restocks.
        in_stock = bool(self._stock[prev])
        in_stock = r.random() >= 0.025 if in_stock else r.random() < 0.4
        self._stock.append(1 if in_stock else 0)
        # The buy box: usually the brand, sometimes Amazon retail, sometimes a hijacker.
        seller, hij = self._seller[prev], self._hij[prev]
        u = r.random()
        if seller == SELLER_BRAND:
            if u < 0.015:
                seller, hij = SELLER_HIJACKER, d
            elif u < 0.03:
                seller = SELLER_AMAZON
        elif (seller == SELLER_AMAZON and u < 0.3) or (seller == SELLER_HIJACKER and u < 0.35):
            seller = SELLER_BRAND
        self._seller.append(seller)
        self._hij.append(hij)
        # Best-seller rank: a log-normal walk with occasional jumps; worse while out of stock.
        f = math.exp(r.gauss(0.0, 0.06))
        if r.random() < 0.04:
            f *= math.exp((1 if r.random() < 0.5 else -1) * r.uniform(0.4, 0.9))
        if not in_stock:
            f *= 1.08
        self._bsr.append(min(max(round(self._bsr[prev] * f), 1), 3_000_000))
        # New ratings at the listing's rate; a negative spike now and then.
        n = int(p.review_rate) + (1 if r.random() < p.review_rate - int(p.review_rate) else 0)
        new = [0, 0, 0, 0, 0]
        for _ in range(n):
            new[r.choices(range(5), weights=p.star_weights)[0]] += 1
        spike = r.random() < SPIKE_P
        if spike:
            # Its own generator: the spike's size does not shift the day's other draws.
            sr = rng(self.seed, "spike", p.marketplace, p.asin, d)
            for _ in range(spike_size(p) + sr.randint(0, 2)):
                new[0 if sr.random() < 0.6 else 1] += 1
        for i in range(5):
            self._new[i].append(new[i])
            self._stars[i].append(self._stars[i][prev] + new[i])
        self._spike.append(1 if spike else 0)
        # Listing edits.
        for i, prob in enumerate(_EDIT_P):
            if i == 4 and not p.has_aplus:
                self._ver[i].append(self._ver[i][prev])
                continue
            bump = 1 if r.random() < prob else 0
            self._ver[i].append(self._ver[i][prev] + bump)

    def view(self, day: int) -> DayView:
        day = max(day, 0)
        self.ensure(day)
        p = self.profile
        in_stock = bool(self._stock[day])
        kind = self._seller[day]
        underlying = self._price[day]
        price: int | None = None
        seller_id = seller_name = None
        seller_kind: int | None = None
        if in_stock:
            seller_kind = kind
            price = underlying
            if kind == SELLER_HIJACKER:
                price = charm_price(underlying * 0.92, p.decimals)
            seller_id, seller_name = seller_identity(self.seed, p, kind, self._hij[day])
        counts = tuple(self._stars[i][day] for i in range(5))
        new_ratings: list[int] = []
        for i in range(5):
            new_ratings.extend([i + 1] * self._new[i][day])
        rng(self.seed, "order", p.marketplace, p.asin, day).shuffle(new_ratings)
        list_price = None
        if p.list_price_ratio is not None:
            list_price = charm_price(p.base_price * p.list_price_ratio, p.decimals)
        return DayView(
            day=day,
            price=price,
            underlying_price=underlying,
            list_price=list_price,
            in_stock=in_stock,
            seller_kind=seller_kind,
            seller_id=seller_id,
            seller_name=seller_name,
            bsr=self._bsr[day],
            star_counts=(counts[0], counts[1], counts[2], counts[3], counts[4]),
            stars=round_stars(counts),
            versions=(
                self._ver[0][day],
                self._ver[1][day],
                self._ver[2][day],
                self._ver[3][day],
                self._ver[4][day],
            ),
            new_ratings=tuple(new_ratings),
            spike=bool(self._spike[day]),
        )


def seller_identity(seed: int, p: Profile, kind: int, hijacker_n: int) -> tuple[str, str]:
    if kind == SELLER_BRAND:
        return p.brand_seller_id, f"{p.brand} Official"
    if kind == SELLER_AMAZON:
        return p.amazon_seller_id, get_marketplace(p.marketplace).domain.capitalize()
    sid = "A" + token(13, seed, "hijacker", p.marketplace, p.asin, hijacker_n)
    name = _HIJACKERS[int(unit(seed, "hijacker-name", sid) * len(_HIJACKERS))]
    return sid, name


def make_profile(seed: int, marketplace: str, asin: str, dead_rate: float) -> Profile:
    mp = get_marketplace(marketplace)
    r = rng(seed, "profile", mp.domain, asin)
    brand = _BRANDS[r.randrange(len(_BRANDS))]
    cat_i = r.randrange(len(_CATEGORIES))
    usd = math.exp(r.uniform(math.log(8), math.log(250)))
    decimals = 0 if mp.currency in _ZERO_DECIMAL else 2
    minor = usd * _FX[mp.currency] * (10**decimals)
    q = r.uniform(0.0, 1.0)  # listing quality: shapes the star distribution
    w5 = 0.45 + 0.3 * q
    w4 = 0.18
    w1 = 0.12 * (1 - q) + 0.02
    w2 = 0.06 * (1 - q) + 0.01
    w3 = max(0.01, 1 - w5 - w4 - w1 - w2)
    weights = (w1, w2, w3, w4, w5)
    total = sum(weights)
    variants = tuple(fake_asin(seed, "variant", mp.domain, asin, i) for i in range(r.randint(0, 3)))
    redirect = variants[0] if variants and r.random() < 0.15 else None
    return Profile(
        marketplace=mp.domain,
        asin=asin,
        currency=mp.currency,
        symbol=CURRENCY_SYMBOL[mp.currency],
        decimals=decimals,
        country=mp.country,
        brand=brand,
        brand_seller_id="A" + token(13, seed, "brand-seller", mp.domain, brand),
        amazon_seller_id=_AMAZON_SELLER_IDS.get(mp.domain)
        or "A" + token(13, seed, "amazon", mp.domain),
        categories=_CATEGORIES[cat_i],
        noun=_NOUNS[cat_i],
        base_price=charm_price(minor, decimals),
        list_price_ratio=r.uniform(1.1, 1.5) if r.random() < 0.4 else None,
        base_bsr=round(math.exp(r.uniform(math.log(50), math.log(400_000)))),
        star_weights=(
            weights[0] / total,
            weights[1] / total,
            weights[2] / total,
            weights[3] / total,
            weights[4] / total,
        ),
        base_reviews=round(math.exp(r.uniform(0, math.log(20_000)))) - 1,
        review_rate=math.exp(r.uniform(math.log(0.2), math.log(12))),
        returned_asin=redirect,
        variant_asins=variants,
        has_aplus=r.random() < 0.6,
        listed=unit(seed, "listed", mp.domain, asin) >= dead_rate,
    )


class MarketModel:
    """Profiles and timelines of every listing, with a bounded cache of timelines."""

    def __init__(
        self, seed: int, epoch: date, *, dead_rate: float = 0.0, cache_size: int = 6000
    ) -> None:
        self.seed = seed
        self.epoch = epoch
        self.dead_rate = dead_rate
        self._cache_size = cache_size
        self._timelines: OrderedDict[tuple[str, str], Timeline] = OrderedDict()
        self._lock = threading.RLock()

    def day_of(self, moment: datetime) -> int:
        """The simulated day index of a moment (days before the epoch are day 0)."""
        return max((moment.astimezone(UTC).date() - self.epoch).days, 0)

    def day_start(self, day: int) -> datetime:
        return datetime.combine(self.epoch + timedelta(days=day), datetime.min.time(), UTC)

    def profile(self, marketplace: str, asin: str) -> Profile:
        return self.timeline(marketplace, asin).profile

    def timeline(self, marketplace: str, asin: str) -> Timeline:
        key = (get_marketplace(marketplace).domain, asin)
        with self._lock:
            tl = self._timelines.get(key)
            if tl is None:
                tl = Timeline(self.seed, make_profile(self.seed, key[0], asin, self.dead_rate))
                self._timelines[key] = tl
                while len(self._timelines) > self._cache_size:
                    self._timelines.popitem(last=False)
            else:
                self._timelines.move_to_end(key)
            return tl

    def view(self, marketplace: str, asin: str, day: int) -> DayView:
        with self._lock:
            return self.timeline(marketplace, asin).view(day)

    def content(self, p: Profile, versions: tuple[int, ...]) -> dict[str, Any]:
        """Title, bullets, description, images and A+ for the given field versions."""
        s, mp, a = self.seed, p.marketplace, p.asin
        tv, bv, dv, iv, av = versions
        rt = rng(s, "title", mp, a, tv)
        title = (
            f"{p.brand} {rt.choice(_ADJ)} {p.noun}, {rt.choice(_FEATURES).split(',')[0]} - "
            f"{rt.choice(_COLORS)}, {rt.randint(1, 12)} Pack"
        )
        rb = rng(s, "bullets", mp, a, bv)
        bullets = [
            f.upper().split(" ")[0] + " - " + f for f in rb.sample(_FEATURES, rb.randint(3, 7))
        ]
        rd = rng(s, "description", mp, a, dv)
        description = " ".join(rd.sample(_FEATURES, 5)) + f". Model {token(6, s, mp, a, dv)}."
        ri = rng(s, "images", mp, a, iv)
        images = [
            f"https://m.media-amazon.com/images/I/{token(11, s, 'img', mp, a, iv, k)}"
            "._AC_SL1500_.jpg"
            for k in range(ri.randint(3, 9))
        ]
        aplus = None
        if p.has_aplus:
            ra = rng(s, "aplus", mp, a, av)
            aplus = " | ".join(ra.sample(_FEATURES, 4))
        return {
            "title": title,
            "features": bullets,
            "description": description,
            "highResolutionImages": images,
            "aPlusContent": aplus,
        }

    def events(
        self, marketplace: str, asin: str, first_day: int, last_day: int
    ) -> Iterator[SimEvent]:
        """Ground-truth events on days first_day..last_day (day d = change from d-1 to d)."""
        first_day = max(first_day, 1)
        if last_day < first_day:
            return
        with self._lock:
            tl = self.timeline(marketplace, asin)
            if not tl.profile.listed:
                return
            views = [tl.view(d) for d in range(0, last_day + 1)]
        mp = tl.profile.marketplace
        last_price, last_seller = views[0].price, views[0].seller_id
        for d in range(1, last_day + 1):
            prev, cur = views[d - 1], views[d]
            out: list[tuple[str, dict[str, Any]]] = []
            if cur.price is not None and last_price is not None and cur.price != last_price:
                pct = round((cur.price - last_price) / last_price * 100, 2)
                out.append(("price_change", {"old": last_price, "new": cur.price, "pct": pct}))
            if prev.in_stock and not cur.in_stock:
                out.append(("out_of_stock", {}))
            if not prev.in_stock and cur.in_stock:
                out.append(("back_in_stock", {}))
            seller_changed = (
                cur.seller_id is not None
                and last_seller is not None
                and cur.seller_id != last_seller
            )
            if seller_changed:
                out.append(("buybox_seller_change", {"old": last_seller, "new": cur.seller_id}))
                if cur.seller_kind == SELLER_HIJACKER:
                    hijack = {"seller_id": cur.seller_id, "seller_name": cur.seller_name}
                    out.append(("hijacker", {**hijack, "price": cur.price}))
            for i, name in enumerate(CONTENT_FIELDS):
                if cur.versions[i] != prev.versions[i]:
                    out.append(("listing_change", {"field": name, "version": cur.versions[i]}))
            change = (cur.bsr - prev.bsr) / prev.bsr
            if abs(change) >= BSR_MOVE_THRESHOLD:
                out.append(
                    ("bsr_move", {"old": prev.bsr, "new": cur.bsr, "pct": round(change * 100, 2)})
                )
            if (
                cur.stars is not None
                and prev.stars is not None
                and cur.stars <= prev.stars - Decimal("0.1")
            ):
                out.append(("rating_drop", {"old": str(prev.stars), "new": str(cur.stars)}))
            if cur.spike:
                low = sum(1 for x in cur.new_ratings if x <= 2)
                out.append(("negative_review_spike", {"new_low_ratings": low}))
            if cur.price is not None:
                last_price = cur.price
            if cur.seller_id is not None:
                last_seller = cur.seller_id
            if d >= first_day:
                at = self.day_start(d)
                for typ, details in out:
                    yield SimEvent(asin, mp, at, typ, details)
