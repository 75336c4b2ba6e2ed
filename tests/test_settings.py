"""Settings: nested env keys, and production mode refusing default or empty secrets."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from asinwatch.config import Settings


def test_nested_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ASINWATCH_INGEST__BATCH_SIZE", "80")
    monkeypatch.setenv("ASINWATCH_APIFY__ALLOWED_HOSTS", '["api.apify.com", "proxy.local"]')
    s = Settings()
    assert s.ingest.batch_size == 80
    assert s.apify.allowed_hosts == ["api.apify.com", "proxy.local"]


def test_production_refuses_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ASINWATCH_ENV", "production")
    with pytest.raises(ValidationError) as info:
        Settings()
    text = str(info.value)
    assert "ASINWATCH_AUTH__JWT_SECRET" in text
    assert "ASINWATCH_ALERTS__WEBHOOK_SECRET" in text
    assert "ASINWATCH_APIFY__TOKEN" in text


def test_production_accepts_real_secrets(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ASINWATCH_ENV", "production")
    monkeypatch.setenv("ASINWATCH_AUTH__JWT_SECRET", "x" * 40)
    monkeypatch.setenv("ASINWATCH_ALERTS__WEBHOOK_SECRET", "w" * 32)
    monkeypatch.setenv("ASINWATCH_APIFY__TOKEN", "apify_api_realtoken")
    s = Settings()
    assert s.env == "production"
    assert "realtoken" not in repr(s)  # secrets never print


def test_bad_values_rejected(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ASINWATCH_INGEST__DAILY_AT", "25:99")
    with pytest.raises(ValidationError, match="HH:MM"):
        Settings()
    monkeypatch.delenv("ASINWATCH_INGEST__DAILY_AT")
    monkeypatch.setenv("ASINWATCH_DEFAULT_MARKETPLACE", "amazon.xx")
    with pytest.raises(ValidationError, match="unknown marketplace"):
        Settings()
