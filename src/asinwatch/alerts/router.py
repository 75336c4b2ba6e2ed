"""Alerts, per-product thresholds and notification channels.

Roles: every GET is viewer; acknowledge / resolve are operator; thresholds and channels are
admin. Writes go through the request's unit of work (api_deps.Uow): alert and threshold
writes queue the product's summary (it lists the open alerts), dropped once it has committed.
Channel targets and secrets go out masked (alerts.channels).
"""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Path, Query, Request
from starlette.responses import Response

from asinwatch.alerts import channels, thresholds_service
from asinwatch.alerts import service as alerts
from asinwatch.alerts.api_schemas import (
    ChannelCreateIn,
    ChannelUpdateIn,
    ThresholdIn,
    ThresholdsOut,
    override_of,
    thresholds_out,
)
from asinwatch.alerts.channel_schemas import ChannelOut, ChannelTestOutcome
from asinwatch.alerts.detectors import ALERT_TYPES
from asinwatch.alerts.service import AlertDetail, AlertOut
from asinwatch.api_deps import (
    ASIN_PATTERN,
    NOT_MODIFIED,
    Admin,
    Asin,
    Idem,
    Marketplace,
    Operator,
    Paging,
    Session,
    Uow,
    Viewer,
    errors,
    not_found,
    require_product,
    uncached_json,
    validation_problem,
    write_json,
)
from asinwatch.auth.guards import enforce_principal_rate_limit
from asinwatch.catalog.cache_keys import summary_key
from asinwatch.catalog.marketplaces import normalise_asin
from asinwatch.kit.pagination import Page, paginate
from asinwatch.kit.problems import ProblemError

router = APIRouter(prefix="/v1", dependencies=[Depends(enforce_principal_rate_limit)])

MAX_ID = 2**63 - 1
AlertId = Annotated[int, Path(ge=1, le=MAX_ID, description="alert id")]
ChannelId = Annotated[int, Path(ge=1, le=MAX_ID, description="channel id")]
AlertTypeName = Literal[ALERT_TYPES]  # type: ignore[valid-type]


def _conflict(detail: str, type_suffix: str) -> ProblemError:
    return ProblemError(409, detail=detail, type_suffix=type_suffix)


# --- alerts ------------------------------------------------------------------------------


@router.get(
    "/alerts",
    tags=["alerts"],
    response_model=Page[AlertOut],
    summary="Alerts, newest first, filtered (cursor pagination)",
    responses={**NOT_MODIFIED, **errors(404)},
)
async def list_alerts(
    request: Request,
    marketplace: Marketplace,
    page: Paging,
    session: Session,
    _: Viewer,
    status: Annotated[Literal["open", "acknowledged", "resolved"] | None, Query()] = None,
    severity: Annotated[Literal["info", "warning", "critical"] | None, Query()] = None,
    alert_type: Annotated[AlertTypeName | None, Query()] = None,
    asin: Annotated[str | None, Query(pattern=ASIN_PATTERN)] = None,
) -> Response:
    try:
        result = await alerts.list_alerts(
            session,
            page,
            status=status,
            severity=severity,
            alert_type=alert_type,
            marketplace=marketplace,
            asin=normalise_asin(asin) if asin else None,
        )
    except alerts.AlertQueryError as exc:
        raise validation_problem(["query"], str(exc)) from None
    return uncached_json(request, result)


@router.get(
    "/alerts/{alert_id}",
    tags=["alerts"],
    response_model=AlertDetail,
    summary="One alert with its history and delivery log",
    responses={**NOT_MODIFIED, **errors(404)},
)
async def get_alert(request: Request, alert_id: AlertId, session: Session, _: Viewer) -> Response:
    try:
        detail = await alerts.get_alert(session, alert_id)
    except alerts.AlertNotFoundError as exc:
        raise not_found(str(exc)) from None
    return uncached_json(request, detail)


async def _transition(uow: Uow, alert_id: int, actor: str, action: str) -> Response:
    try:
        if action == "acknowledge":
            out = await alerts.acknowledge(uow.session, alert_id, actor)
        else:
            out = await alerts.resolve(uow.session, alert_id, actor)
    except alerts.AlertNotFoundError as exc:
        raise not_found(str(exc)) from None
    except alerts.AlertStateError as exc:
        raise _conflict(str(exc), "alert-state") from None
    if out.asin != "-":
        uow.invalidate(summary_key(out.marketplace, out.asin))
    return write_json(out)


@router.post(
    "/alerts/{alert_id}/acknowledge",
    tags=["alerts"],
    response_model=AlertOut,
    summary="Acknowledge an alert (idempotent; 409 when resolved)",
    responses=errors(404, 409),
)
async def acknowledge_alert(alert_id: AlertId, uow: Uow, who: Operator, idem: Idem) -> Response:
    return await idem.run(lambda: _transition(uow, alert_id, who.sub, "acknowledge"))


@router.post(
    "/alerts/{alert_id}/resolve",
    tags=["alerts"],
    response_model=AlertOut,
    summary="Resolve an alert (idempotent)",
    responses=errors(404, 409),
)
async def resolve_alert(alert_id: AlertId, uow: Uow, who: Operator, idem: Idem) -> Response:
    return await idem.run(lambda: _transition(uow, alert_id, who.sub, "resolve"))


# --- thresholds --------------------------------------------------------------------------


async def _known_product(session: Session, marketplace: str, asin: str) -> None:
    await require_product(session, marketplace, asin)


@router.get(
    "/products/{asin}/thresholds",
    tags=["thresholds"],
    response_model=ThresholdsOut,
    summary="The alert thresholds that apply to a product, and their overrides",
    responses={**NOT_MODIFIED, **errors(404)},
)
async def get_thresholds(
    request: Request, asin: Asin, marketplace: Marketplace, session: Session, _: Viewer
) -> Response:
    await _known_product(session, marketplace, asin)
    view = await thresholds_service.get_thresholds(session, marketplace, asin)
    return uncached_json(request, thresholds_out(view))


@router.put(
    "/products/{asin}/thresholds",
    tags=["thresholds"],
    response_model=ThresholdsOut,
    summary="Override one alert type's thresholds for a product (replaces that override)",
    responses=errors(404),
)
async def set_threshold(
    asin: Asin, marketplace: Marketplace, body: ThresholdIn, uow: Uow, _: Admin
) -> Response:
    await _known_product(uow.session, marketplace, asin)
    alert_type, enabled, params = override_of(body)
    try:
        view = await thresholds_service.set_threshold(
            uow.session, marketplace, asin, alert_type, params, enabled=enabled
        )
    except thresholds_service.ThresholdValidationError as exc:
        raise ProblemError(
            422,
            title="Request validation failed",
            detail=str(exc),
            type_suffix="validation-error",
            extra={
                "errors": [
                    {"loc": ["body", "params"], "msg": e, "type": "value_error"} for e in exc.errors
                ]
            },
        ) from None
    uow.invalidate(summary_key(marketplace, asin))
    return write_json(thresholds_out(view))


@router.delete(
    "/products/{asin}/thresholds/{alert_type}",
    tags=["thresholds"],
    status_code=204,
    summary="Remove a product's override of one alert type",
    responses=errors(404),
)
async def delete_threshold(
    asin: Asin, alert_type: AlertTypeName, marketplace: Marketplace, uow: Uow, _: Admin
) -> Response:
    await _known_product(uow.session, marketplace, asin)
    if not await thresholds_service.delete_threshold(uow.session, marketplace, asin, alert_type):
        raise not_found(f"no {alert_type} override for {asin} on {marketplace}")
    uow.invalidate(summary_key(marketplace, asin))
    return Response(status_code=204, headers={"Cache-Control": "no-store"})


# --- notification channels ---------------------------------------------------------------


@router.get(
    "/channels",
    tags=["channels"],
    response_model=Page[ChannelOut],
    summary="Notification channels (targets masked)",
    responses={**NOT_MODIFIED, **errors(404)},
)
async def list_channels(request: Request, page: Paging, session: Session, _: Viewer) -> Response:
    after = page.after(scope="channels")
    if after is not None and (isinstance(after, bool) or not isinstance(after, int)):
        raise validation_problem(["query", "cursor"], "cursor does not belong to this list")
    rows = [c for c in await channels.list_channels(session) if after is None or c.id > after]
    result = paginate(rows[: page.fetch_limit], page, key=lambda c: c.id, scope="channels")
    return uncached_json(request, result)


@router.post(
    "/channels",
    tags=["channels"],
    status_code=201,
    response_model=ChannelOut,
    summary="Create a channel (Idempotency-Key accepted)",
    responses=errors(409),
)
async def create_channel(body: ChannelCreateIn, uow: Uow, _: Admin, idem: Idem) -> Response:
    async def work() -> Response:
        try:
            out = await channels.create_channel(uow.session, body.to_service())
        except channels.InvalidTargetError as exc:
            raise validation_problem(["body", "target"], str(exc)) from None
        except channels.ChannelNameTakenError as exc:
            raise _conflict(str(exc), "channel-name-taken") from None
        return write_json(out, status_code=201, headers={"Location": f"/v1/channels/{out.id}"})

    return await idem.run(work)


@router.get(
    "/channels/{channel_id}",
    tags=["channels"],
    response_model=ChannelOut,
    summary="One channel (target masked)",
    responses={**NOT_MODIFIED, **errors(404)},
)
async def get_channel(
    request: Request, channel_id: ChannelId, session: Session, _: Viewer
) -> Response:
    try:
        out = await channels.get_channel(session, channel_id)
    except channels.ChannelNotFoundError as exc:
        raise not_found(str(exc)) from None
    return uncached_json(request, out)


@router.patch(
    "/channels/{channel_id}",
    tags=["channels"],
    response_model=ChannelOut,
    summary="Change a channel (only the fields given)",
    responses=errors(404, 409),
)
async def update_channel(
    channel_id: ChannelId, body: ChannelUpdateIn, uow: Uow, _: Admin
) -> Response:
    try:
        out = await channels.update_channel(uow.session, channel_id, body.to_service())
    except channels.ChannelNotFoundError as exc:
        raise not_found(str(exc)) from None
    except channels.InvalidTargetError as exc:
        raise validation_problem(["body", "target"], str(exc)) from None
    except channels.ChannelNameTakenError as exc:
        raise _conflict(str(exc), "channel-name-taken") from None
    return write_json(out)


@router.delete(
    "/channels/{channel_id}",
    tags=["channels"],
    status_code=204,
    summary="Delete a channel and its delivery log",
    responses=errors(404),
)
async def delete_channel(channel_id: ChannelId, uow: Uow, _: Admin) -> Response:
    try:
        await channels.delete_channel(uow.session, channel_id)
    except channels.ChannelNotFoundError as exc:
        raise not_found(str(exc)) from None
    return Response(status_code=204, headers={"Cache-Control": "no-store"})


@router.post(
    "/channels/{channel_id}/test",
    tags=["channels"],
    response_model=ChannelTestOutcome,
    summary="Send a test notification through a channel (once, not recorded)",
    responses=errors(404),
)
async def test_channel(channel_id: ChannelId, session: Session, _: Admin) -> Response:
    try:
        outcome = await channels.send_test(session, channel_id)
    except channels.ChannelNotFoundError as exc:
        raise not_found(str(exc)) from None
    return write_json(outcome)
