"""Pydantic shapes of ingestion runs, batches and dead letters (for the REST layer and CLI)."""

from __future__ import annotations

import uuid
from datetime import datetime
from decimal import Decimal
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from asinwatch.catalog.marketplaces import get_marketplace, normalise_asin


class StartRunIn(BaseModel):
    """Body of "start an ingestion run": either `asins` or `all_tracked`."""

    model_config = ConfigDict(extra="forbid")

    marketplace: str | None = None
    asins: list[str] | None = Field(default=None, max_length=100_000)
    all_tracked: bool = False
    kind: Literal["product_details", "reviews"] = "product_details"
    job_id: str | None = Field(default=None, min_length=1, max_length=200)

    @field_validator("marketplace")
    @classmethod
    def _market(cls, v: str | None) -> str | None:
        return get_marketplace(v).domain if v else None

    @field_validator("asins")
    @classmethod
    def _asins(cls, v: list[str] | None) -> list[str] | None:
        return [normalise_asin(a) for a in v] if v is not None else None


class IngestRunOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    job_id: str
    trigger: str
    kind: str
    marketplace: str
    status: str
    asins_requested: int
    asins_succeeded: int
    asins_quarantined: int
    asins_failed: int
    batches_total: int
    batches_done: int
    cost_usd: Decimal
    error: str | None
    params: dict[str, Any]
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None


class IngestBatchOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    batch_no: int
    status: str
    attempts: int
    asins: list[str]
    succeeded: int
    quarantined: int
    failed: int
    cost_usd: Decimal
    observed_at: datetime | None
    error: str | None
