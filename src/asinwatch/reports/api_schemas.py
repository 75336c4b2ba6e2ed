"""Response shapes of the competitive report endpoints."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class ReportOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    marketplace: str
    asin: str
    kind: str
    version: int
    inputs_hash: str
    created_at: datetime
    body: dict[str, Any] = Field(description="the report: per-competitor gaps and a summary")
    narrative: str | None = Field(description="optional LLM narrative beside the report")
    stale_at: datetime | None = Field(
        None, description="null when fresh; else when this value went stale (refreshing now)"
    )


class ReportVersionOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    version: int
    inputs_hash: str
    created_at: datetime
