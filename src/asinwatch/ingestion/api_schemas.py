"""The body of POST /v1/ingest/runs as the API documents it (converted to `StartRunIn`)."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from asinwatch.catalog.marketplaces import ASIN_PATTERN
from asinwatch.ingestion.schemas import IngestBatchOut, IngestRunOut, StartRunIn

AsinStr = Annotated[str, StringConstraints(pattern=ASIN_PATTERN)]
JobIdStr = Annotated[
    str, StringConstraints(min_length=1, max_length=200, pattern=r"^[\x21-\x7e]+$")
]
MAX_ASINS = 10_000


class _StartRun(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    kind: Literal["product_details", "reviews"] = "product_details"
    job_id: JobIdStr | None = Field(
        None, description="caller-chosen id: starting the same job id again returns that run"
    )


class StartListedRun(_StartRun):
    """A run over the ASINs given."""

    asins: list[AsinStr] = Field(min_length=1, max_length=MAX_ASINS)

    def to_service(self, marketplace: str) -> StartRunIn:
        data = {**self.model_dump(), "marketplace": marketplace, "all_tracked": False}
        return StartRunIn.model_validate(data)


class StartTrackedRun(_StartRun):
    """A run over every active tracked product of the marketplace."""

    all_tracked: Literal[True]

    def to_service(self, marketplace: str) -> StartRunIn:
        return StartRunIn.model_validate({**self.model_dump(), "marketplace": marketplace})


StartRunBody = StartListedRun | StartTrackedRun


class IngestRunDetail(BaseModel):
    run: IngestRunOut
    batches: list[IngestBatchOut]
