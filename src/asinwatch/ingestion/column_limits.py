"""The value ranges of the columns normalised records land in, read from the table models.

One definition: the SQLAlchemy column types (`metrics.models`) say what fits; normalisation
asks here instead of restating numbers, so widening a column (in a migration and the model)
widens the check with it. No I/O: this only inspects type objects.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from sqlalchemy import BigInteger, Integer, Numeric, SmallInteger

from asinwatch.metrics.models import ProductMetricDaily, Review


def int_range(column: Any) -> tuple[int, int]:
    """(min, max) of an integer column: int2, int4 or int8."""
    kind = column.type
    if isinstance(kind, BigInteger):
        bits = 64
    elif isinstance(kind, SmallInteger):
        bits = 16
    elif isinstance(kind, Integer):
        bits = 32
    else:
        raise TypeError(f"{column} is not an integer column")
    return -(2 ** (bits - 1)), 2 ** (bits - 1) - 1


def numeric_max(column: Any) -> Decimal:
    """The largest value a numeric(p, s) column holds, e.g. 9999999999.99 for (12, 2)."""
    kind = column.type
    if not isinstance(kind, Numeric) or kind.precision is None:
        raise TypeError(f"{column} is not a numeric(p, s) column")
    scale = kind.scale or 0
    return Decimal(10) ** (kind.precision - scale) - Decimal(1).scaleb(-scale)


_M = ProductMetricDaily.__table__.c
REVIEW_COUNT = int_range(_M.review_count)
BSR = int_range(_M.bsr)  # also every rank kept in bsr_ranks
OFFER_COUNT = int_range(_M.offer_count)
PURCHASE_VOLUME = int_range(_M.monthly_purchase_volume)
IMAGE_COUNT = int_range(_M.image_count)
BULLET_COUNT = int_range(_M.bullet_count)
PRICE_MAX = numeric_max(_M.buybox_price)
RATING_MAX = numeric_max(_M.rating)
REVIEW_RATING = int_range(Review.__table__.c.rating)
