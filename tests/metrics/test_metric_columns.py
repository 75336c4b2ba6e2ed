"""Metric column lists are derived from the table objects and the API models, not restated."""

from __future__ import annotations

from sqlalchemy import inspect

from asinwatch.catalog.api_schemas import LatestMetrics, ProductInfo
from asinwatch.catalog.models import Product
from asinwatch.catalog.repository import LATEST_JSON, PRODUCT_JSON, json_object
from asinwatch.metrics.api_schemas import MetricPointOut
from asinwatch.metrics.models import (
    METRIC_COLUMNS,
    METRIC_ROW_COLUMNS,
    RANGE_COLUMNS,
    ProductLatest,
    ProductMetricDaily,
)


def _columns(model: type) -> list[str]:
    return [c.name for c in inspect(model).columns]


def test_metric_columns_are_the_daily_table_without_its_key() -> None:
    assert list(METRIC_ROW_COLUMNS) == _columns(ProductMetricDaily)
    assert ("marketplace", "asin", "date", *METRIC_COLUMNS) == METRIC_ROW_COLUMNS
    assert "buybox_price" in METRIC_COLUMNS and "observed_at" in METRIC_COLUMNS
    # the mart read model shares every metric column
    assert set(METRIC_COLUMNS) <= set(_columns(ProductLatest))


def test_the_range_read_selects_what_the_covering_index_includes() -> None:
    (index,) = inspect(ProductMetricDaily).local_table.indexes
    assert index.dialect_options["postgresql"]["include"] == list(RANGE_COLUMNS)
    assert tuple(MetricPointOut.model_fields) == ("date", *RANGE_COLUMNS)


def test_json_fragments_select_the_fields_of_their_api_models() -> None:
    assert json_object("d", ("date", "bsr")) == "json_build_object('date', d.date, 'bsr', d.bsr)"
    for name in LatestMetrics.model_fields:
        assert name in _columns(ProductLatest) and f"'{name}', l.{name}" in LATEST_JSON
    for name in ProductInfo.model_fields:
        assert name in _columns(Product) and f"'{name}', p.{name}" in PRODUCT_JSON
