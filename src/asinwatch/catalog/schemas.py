"""Pydantic shapes of the catalog: what callers send and get back."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field, field_validator

from asinwatch.catalog.marketplaces import get_marketplace, normalise_asin


class ProductIn(BaseModel):
    """A product to track."""

    model_config = ConfigDict(extra="forbid")

    asin: str = Field(examples=["B0C1234567"])
    marketplace: str | None = Field(None, examples=["amazon.com"])
    is_own: bool = True
    title: str | None = Field(None, max_length=1000)
    brand: str | None = Field(None, max_length=200)
    category: str | None = Field(None, max_length=500)
    seller_allowlist: list[str] = Field(default_factory=list, max_length=100)
    tags: list[str] = Field(default_factory=list, max_length=50)

    @field_validator("asin")
    @classmethod
    def _asin(cls, v: str) -> str:
        return normalise_asin(v)

    @field_validator("marketplace")
    @classmethod
    def _marketplace(cls, v: str | None) -> str | None:
        return None if v is None else get_marketplace(v).domain


class ProductOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    marketplace: str
    asin: str
    is_own: bool
    title: str | None
    brand: str | None
    category: str | None
    tracking_state: str
    seller_allowlist: list[str]
    tags: list[str]
    last_seen_at: datetime | None
    last_valid_at: datetime | None
    invalid_runs: int
    created_at: datetime
    updated_at: datetime
