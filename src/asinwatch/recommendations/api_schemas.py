"""Response shapes of the recommendation endpoints."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from asinwatch.jobs.api_schemas import JobOut


class RecommendationSetOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    marketplace: str
    asin: str
    version: int
    ruleset_version: str
    inputs_hash: str
    created_at: datetime
    items: list[dict[str, Any]] = Field(
        description="rule_id, title, evidence, expected_impact, priority (1 = high)"
    )
    stale_at: datetime | None = Field(
        None, description="null when fresh; else when this value went stale (refreshing now)"
    )


class RefreshAccepted(BaseModel):
    job: JobOut
