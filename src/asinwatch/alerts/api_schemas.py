"""Request/response shapes of the alert endpoints that the alert services do not define:
thresholds (the services return dataclasses), the threshold write body, and the channel
bodies as the API documents them (converted to the channel service's models)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any, Literal, Union

from annotated_types import Interval
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StringConstraints,
    create_model,
)
from pydantic.fields import FieldInfo

from asinwatch.alerts.channel_schemas import ChannelCreate, ChannelUpdate
from asinwatch.alerts.detectors import ALERT_TYPES, Thresholds
from asinwatch.alerts.targets import APPRISE_SCHEMES
from asinwatch.alerts.thresholds_service import ThresholdRow, ThresholdsView

JSON_SAFE_INT = 2**53 - 1


def _integral(value: Any) -> Any:
    # JSON Schema counts 5.0 as an integer; strict pydantic would not.
    return int(value) if isinstance(value, float) and value.is_integer() else value


def _field_type(info: FieldInfo) -> Any:
    base = info.annotation
    # Bounded to what every JSON reader keeps exact: PostgreSQL's jsonb writes 1e300 back as
    # a 301-digit integer, which no JSON encoder of ours can send again.
    bounds = Interval(ge=-JSON_SAFE_INT, le=JSON_SAFE_INT)
    if base in (int, int | None):
        return Annotated[(base, bounds, *info.metadata, BeforeValidator(_integral))]
    if base in (float, float | None):
        return Annotated[(base, bounds, *info.metadata)]
    return Annotated[(base, *info.metadata)] if info.metadata else base


# Rules between keys of one override that the detectors' models check in code.
_CROSS_FIELD: dict[str, dict[str, Any]] = {
    "price_change": {
        "description": "min_pct and min_abs may not both be null (nothing left to check)",
        "not": {
            "required": ["min_pct", "min_abs"],
            "properties": {"min_pct": {"type": "null"}, "min_abs": {"type": "null"}},
        },
    }
}


def _override_model(alert_type: str) -> type[BaseModel]:
    """The params one alert type accepts, every key optional (only the keys given override),
    with the constraints of the detector's own threshold model."""
    cls = type(Thresholds().for_type(alert_type))
    fields: dict[str, Any] = {
        name: (_field_type(info), None)
        for name, info in cls.model_fields.items()
        if name != "enabled"
    }
    model: type[BaseModel] = create_model(
        cls.__name__.removesuffix("Thresholds") + "Override",
        __config__=ConfigDict(
            extra="forbid", strict=True, json_schema_extra=_CROSS_FIELD.get(alert_type)
        ),
        **fields,
    )
    return model


def _threshold_in(alert_type: str) -> type[BaseModel]:
    params = _override_model(alert_type)
    model: type[BaseModel] = create_model(
        "".join(part.title() for part in alert_type.split("_")) + "ThresholdIn",
        __config__=ConfigDict(extra="forbid", strict=True),
        alert_type=(Literal[alert_type], ...),  # type: ignore[arg-type]
        enabled=(bool, Field(True, description="false switches this alert type off")),
        params=(params, Field(default_factory=params, description="the values to override")),
    )
    return model


_THRESHOLD_INS = tuple(_threshold_in(t) for t in ALERT_TYPES)
if TYPE_CHECKING:
    ThresholdIn = BaseModel
else:
    # One body model per alert type, told apart by `alert_type` (a discriminated union).
    ThresholdIn = Annotated[Union[_THRESHOLD_INS], Field(discriminator="alert_type")]  # noqa: UP007


def override_of(body: BaseModel) -> tuple[str, bool, dict[str, Any]]:
    """(alert type, enabled, the override keys the client actually sent as JSON values)."""
    data = body.model_dump(mode="json", exclude_unset=True)
    return str(data["alert_type"]), bool(getattr(body, "enabled", True)), data.get("params", {})


class ThresholdRowOut(BaseModel):
    alert_type: str
    enabled: bool
    params: dict[str, Any]


class ThresholdsOut(BaseModel):
    marketplace: str
    asin: str
    effective: dict[str, dict[str, Any]] = Field(
        description="alert type -> the values that apply (defaults, then overrides)"
    )
    marketplace_overrides: dict[str, ThresholdRowOut]
    product_overrides: dict[str, ThresholdRowOut]


def _row(r: ThresholdRow) -> ThresholdRowOut:
    return ThresholdRowOut(alert_type=r.alert_type, enabled=r.enabled, params=r.params)


def thresholds_out(view: ThresholdsView) -> ThresholdsOut:
    return ThresholdsOut(
        marketplace=view.marketplace,
        asin=view.asin,
        effective=view.effective,
        marketplace_overrides={k: _row(v) for k, v in view.marketplace_overrides.items()},
        product_overrides={k: _row(v) for k, v in view.product_overrides.items()},
    )


# --- channel bodies ----------------------------------------------------------------------
# The channel service's models validate the same rules in code; these state them in the
# schema too (patterns, lengths, the alert-type enum), so the OpenAPI contract says exactly
# which bodies are well formed. Whether a target is allowed (SSRF rule) is still decided by
# the service: that depends on the address, not the shape.

NO_NUL = r"^[^\x00]*$"
ChannelNameStr = Annotated[
    str,
    StringConstraints(min_length=1, max_length=100, pattern=r"^[^\s\x00](?:[^\x00]*[^\s\x00])?$"),
]
_APPRISE = "|".join(sorted(APPRISE_SCHEMES))
WebhookTarget = Annotated[
    str,
    StringConstraints(max_length=2048, pattern=r"^https?://[^\s\x00/?#@]+(?:[/?#][^\s\x00]*)?$"),
]
AppriseTarget = Annotated[
    str, StringConstraints(max_length=2048, pattern=rf"^(?:{_APPRISE})://[^\s\x00]+$")
]
TargetStr = Annotated[
    str, StringConstraints(max_length=2048, pattern=rf"^(?:https?|{_APPRISE})://[^\s\x00]+$")
]
SecretText = Annotated[str, StringConstraints(min_length=16, max_length=256, pattern=NO_NUL)]
AlertType = Literal[ALERT_TYPES]  # type: ignore[valid-type]
Severity = Literal["info", "warning", "critical"]


class _ChannelCreate(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    name: ChannelNameStr
    secret: SecretText | None = Field(None, description="webhook signing secret; never echoed")
    alert_types: list[AlertType] = Field(default_factory=list, max_length=50)
    min_severity: Severity = "info"
    enabled: bool = True

    def to_service(self) -> ChannelCreate:
        return ChannelCreate.model_validate(self.model_dump())


class WebhookChannelIn(_ChannelCreate):
    kind: Literal["webhook"]
    target: WebhookTarget = Field(description="http(s) URL; plain http only to allow-listed hosts")


class AppriseChannelIn(_ChannelCreate):
    kind: Literal["apprise"]
    target: AppriseTarget = Field(description="an Apprise URL of a supported scheme")


ChannelCreateIn = Annotated[WebhookChannelIn | AppriseChannelIn, Field(discriminator="kind")]


class ChannelUpdateIn(BaseModel):
    """A partial update: only the fields given change (``secret: null`` clears the secret)."""

    model_config = ConfigDict(extra="forbid", strict=True)

    name: ChannelNameStr | None = None
    kind: Literal["webhook", "apprise"] | None = None
    target: TargetStr | None = None
    secret: SecretText | None = None
    alert_types: list[AlertType] | None = Field(None, max_length=50)
    min_severity: Severity | None = None
    enabled: bool | None = None

    def to_service(self) -> ChannelUpdate:
        return ChannelUpdate.model_validate(self.model_dump(exclude_unset=True))
