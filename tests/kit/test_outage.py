"""kit/outage.py: connection-level errors are retried with backoff, everything else is not."""

from __future__ import annotations

import psycopg
import psycopg.errors
import pytest
import redis.exceptions
from sqlalchemy.exc import OperationalError

from asinwatch.kit.outage import is_outage, outage_retry


def test_outages_are_recognised_and_statement_errors_are_not() -> None:
    assert is_outage(psycopg.OperationalError("server closed the connection"))
    assert is_outage(OperationalError("SELECT 1", {}, psycopg.OperationalError("gone")))
    assert is_outage(redis.exceptions.ConnectionError("refused"))
    assert not is_outage(psycopg.errors.QueryCanceled("statement timeout"))
    assert not is_outage(ValueError("bad input"))


def test_a_short_outage_is_ridden_out(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ASINWATCH_RECOVERY__OUTAGE_RETRY_S", "30")
    calls: list[int] = []

    def flaky() -> str:
        calls.append(1)
        if len(calls) < 3:
            raise psycopg.OperationalError("connection refused")
        return "ok"

    assert outage_retry(flaky) == "ok"
    assert len(calls) == 3


def test_other_errors_and_long_outages_are_raised(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ASINWATCH_RECOVERY__OUTAGE_RETRY_S", "0")
    with pytest.raises(psycopg.OperationalError):
        outage_retry(lambda: (_ for _ in ()).throw(psycopg.OperationalError("down")))
    calls: list[int] = []

    def bad() -> None:
        calls.append(1)
        raise ValueError("not an outage")

    monkeypatch.setenv("ASINWATCH_RECOVERY__OUTAGE_RETRY_S", "30")
    with pytest.raises(ValueError):
        outage_retry(bad)
    assert calls == [1]
