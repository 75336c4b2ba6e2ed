"""Response shape of a job (GET /v1/jobs/{id}, and the 202 of the endpoints that start one)."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict


class JobOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    kind: str
    status: Literal["queued", "running", "succeeded", "failed"]
    params: dict[str, Any]
    result: dict[str, Any] | None
    error: str | None
    created_by: str | None
    attempts: int
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
