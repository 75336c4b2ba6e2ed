"""The channel management service: validation, masking, CRUD, the delivery log, retrying a
failed delivery and the test send (to the local receiver)."""

from __future__ import annotations

import pytest
from pydantic import SecretStr, ValidationError

from asinwatch.alerts import channels
from asinwatch.alerts.channel_schemas import ChannelCreate, ChannelUpdate
from asinwatch.alerts.delivery import DeliveryNotFoundError, DeliveryNotRetryableError
from asinwatch.alerts.targets import InvalidTargetError
from asinwatch.kit.db import async_session_scope
from tests.alerts.delivery_helpers import (
    GLOBAL_SECRET,
    Receiver,
    add_alert,
    deliveries,
    delivery_env,
    receiver,
    run_until_done,
)

__all__ = ["delivery_env", "receiver"]  # fixtures used by name below


def _create(name: str, kind: str, target: str, **kw: object) -> ChannelCreate:
    return ChannelCreate.model_validate({"name": name, "kind": kind, "target": target, **kw})


async def test_create_list_update_delete_with_masked_targets(delivery_env: None) -> None:
    async with async_session_scope() as s:
        hook = await channels.create_channel(
            s,
            _create(
                "ops",
                "webhook",
                "https://hooks.example.com/services/T0/B0/s3cr3t",
                secret="a-very-long-channel-secret",
                alert_types=["price_drop"],
                min_severity="warning",
            ),
        )
        chat = await channels.create_channel(
            s, _create("slack", "apprise", "slack://T000/B000/XXXXSECRET")
        )
    assert hook.target == "https://hooks.example.com/***"
    assert hook.has_secret
    assert (hook.alert_types, hook.min_severity) == (["price_drop"], "warning")
    assert chat.target == "slack://***"
    assert not chat.has_secret
    dumped = hook.model_dump_json() + chat.model_dump_json()
    assert "s3cr3t" not in dumped
    assert "XXXXSECRET" not in dumped
    assert "a-very-long-channel-secret" not in dumped

    async with async_session_scope() as s:
        listed = await channels.list_channels(s)
        assert [c.name for c in listed] == ["ops", "slack"]
        updated = await channels.update_channel(
            s, hook.id, ChannelUpdate(min_severity="critical", enabled=False, secret=None)
        )
    assert (updated.min_severity, updated.enabled, updated.has_secret) == ("critical", False, False)
    assert updated.target == hook.target  # untouched fields stay

    async with async_session_scope() as s:
        await channels.delete_channel(s, chat.id)
    async with async_session_scope() as s:
        with pytest.raises(channels.ChannelNotFoundError):
            await channels.get_channel(s, chat.id)
        assert [c.name for c in await channels.list_channels(s)] == ["ops"]


@pytest.mark.parametrize(
    ("kind", "target"),
    [
        ("webhook", "ftp://example.com/x"),
        ("webhook", "http://hooks.example.com/x"),  # http needs the allow-list
        ("webhook", "https://10.0.0.1/x"),
        ("webhook", "https://169.254.169.254/latest"),
        ("webhook", "https://localhost/x"),
        ("apprise", "kodi://example.com"),
        ("apprise", "json://10.0.0.1/x"),
    ],
)
async def test_bad_targets_are_refused_at_create(
    kind: str, target: str, delivery_env: None
) -> None:
    async with async_session_scope() as s:
        with pytest.raises(InvalidTargetError) as err:
            await channels.create_channel(s, _create("bad", kind, target))
        assert target not in str(err.value)
        assert await channels.list_channels(s) == []


async def test_update_revalidates_target_and_names_are_unique(delivery_env: None) -> None:
    async with async_session_scope() as s:
        a = await channels.create_channel(s, _create("a", "webhook", "https://a.example.com/x"))
        await channels.create_channel(s, _create("b", "webhook", "https://b.example.com/x"))
    async with async_session_scope() as s:
        with pytest.raises(InvalidTargetError):
            await channels.update_channel(
                s, a.id, ChannelUpdate(target=SecretStr("https://10.0.0.1/x"))
            )
        with pytest.raises(InvalidTargetError):  # kind change re-checks the old target
            await channels.update_channel(s, a.id, ChannelUpdate(kind="apprise"))
    async with async_session_scope() as s:
        with pytest.raises(channels.ChannelNameTakenError):
            await channels.create_channel(s, _create("a", "webhook", "https://c.example.com/x"))
    async with async_session_scope() as s:
        with pytest.raises(channels.ChannelNameTakenError):
            await channels.update_channel(s, a.id, ChannelUpdate(name="b"))
    async with async_session_scope() as s:
        assert (await channels.get_channel(s, a.id)).name == "a"


def test_schema_refuses_unknown_fields_short_secrets_and_bad_severity() -> None:
    with pytest.raises(ValidationError):
        _create("x", "webhook", "https://a.example.com", colour="red")
    with pytest.raises(ValidationError):
        _create("x", "webhook", "https://a.example.com", secret="short")
    with pytest.raises(ValidationError):
        _create("x", "webhook", "https://a.example.com", min_severity="urgent")
    with pytest.raises(ValidationError):
        _create("x", "email", "https://a.example.com")
    with pytest.raises(ValidationError):
        _create("x", "webhook", "https://a.example.com", alert_types=["Price Drop!"])


async def test_delivery_log_and_async_retry(
    delivery_env: None, receiver: Receiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ASINWATCH_ALERTS__DELIVERY_MAX_ATTEMPTS", "2")
    from asinwatch.config import reset_settings_cache

    reset_settings_cache()
    receiver.secrets = {"/ok": GLOBAL_SECRET, "/down": GLOBAL_SECRET}
    receiver.always_fail = {"/down"}
    async with async_session_scope() as s:
        await channels.create_channel(s, _create("ok", "webhook", receiver.url("/ok")))
        await channels.create_channel(s, _create("down", "webhook", receiver.url("/down")))
    alert_id = add_alert("B000000001", "price_drop", "critical")
    run_until_done()

    async with async_session_scope() as s:
        log = await channels.list_deliveries(s, alert_id)
    assert [(d.channel_name, d.status, d.attempts) for d in log] == [
        ("ok", "delivered", 1),
        ("down", "failed", 2),
    ]
    assert log[1].last_status_code == 500
    assert all(d.event_key == "opened:1" for d in log)

    receiver.always_fail = set()
    async with async_session_scope() as s:
        requeued = await channels.retry_delivery_async(s, log[1].id)
        assert requeued.status == "pending"
        with pytest.raises(DeliveryNotRetryableError):
            await channels.retry_delivery_async(s, log[0].delivery_id)
        with pytest.raises(DeliveryNotFoundError):
            await channels.retry_delivery_async(s, 999_999)
    run_until_done()
    assert [d.status for d in deliveries()] == ["delivered", "delivered"]
    assert receiver.per_alert("/down")[alert_id] == ({str(log[1].delivery_id)}, 1)


async def test_send_test_reaches_the_channel_signed(delivery_env: None, receiver: Receiver) -> None:
    own = "test-channel-secret-123456"
    receiver.secrets = {"/t": own}
    async with async_session_scope() as s:
        ch = await channels.create_channel(
            s, _create("t", "webhook", receiver.url("/t"), secret=own)
        )
        bad = await channels.create_channel(s, _create("u", "webhook", receiver.url("/u")))
    receiver.always_fail = {"/u"}
    async with async_session_scope() as s:
        outcome = await channels.send_test(s, ch.id)
        failed = await channels.send_test(s, bad.id)
        with pytest.raises(channels.ChannelNotFoundError):
            await channels.send_test(s, 424242)
    assert outcome.ok
    assert outcome.status_code == 200
    assert (failed.ok, failed.status_code, failed.error) == (False, 500, "HTTP 500")
    [req] = [r for r in receiver.requests if r.path == "/t"]
    assert req.signature_ok
    assert req.event == "test"
    assert req.delivery_id == str(outcome.delivery_id)
    assert deliveries() == []  # a test send records nothing
