"""The model registry: imports every domain's model module so `Base.metadata` is complete
(Alembic autogenerate and env, tests). Outside kit, which imports no domain."""

from asinwatch.alerts import models as alerts_models
from asinwatch.catalog import models as catalog_models
from asinwatch.ingestion import models as ingestion_models
from asinwatch.jobs import models as jobs_models
from asinwatch.kit import idempotency_model
from asinwatch.kit.db import Base
from asinwatch.metrics import models as metrics_models
from asinwatch.recommendations import models as recommendations_models
from asinwatch.reports import models as reports_models

__all__ = [
    "Base",
    "alerts_models",
    "catalog_models",
    "idempotency_model",
    "ingestion_models",
    "jobs_models",
    "metrics_models",
    "recommendations_models",
    "reports_models",
]
