"""The LLM narrative against a local fake OpenAI-compatible server: cost accounting in Redis,
the daily cap enforced before calling, and every failure giving None with a reason."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
import redis
from prometheus_client import REGISTRY

from asinwatch.config import Settings, get_settings, reset_settings_cache
from asinwatch.reports.narrative import cost_key, generate_narrative

REPORT = {
    "asin": "B000000001",
    "marketplace": "amazon.com",
    "generated_on": date(2026, 11, 29),
    "price": Decimal("19.99"),
    "competitors": [{"asin": "B000000002", "price": Decimal("17.49"), "rating": 4.4}],
}
API_KEY = "sk-test-narrative-key"
# usage 1200 / 300 at the default prices: 1.2 * 0.00015 + 0.3 * 0.0006
EXPECTED_COST = 1200 / 1000 * 0.00015 + 300 / 1000 * 0.0006


@dataclass
class FakeLlm:
    port: int = 0
    mode: str = "ok"  # ok | 500 | malformed | no_usage | hang | redirect
    requests: list[dict[str, Any]] = field(default_factory=list)
    release: threading.Event = field(default_factory=threading.Event)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"


def _handler(fake: FakeLlm) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:
            pass

        def _reply(self, status: int, body: bytes, extra: dict[str, str] | None = None) -> None:
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            for k, v in (extra or {}).items():
                self.send_header(k, v)
            self.end_headers()
            self.wfile.write(body)

        def do_POST(self) -> None:
            raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            fake.requests.append(
                {
                    "path": self.path,
                    "auth": self.headers.get("Authorization"),
                    "body": json.loads(raw),
                }
            )
            if fake.mode == "500":
                self._reply(500, b'{"error":{"message":"boom"}}')
            elif fake.mode == "malformed":
                self._reply(200, b"<html>not json</html>")
            elif fake.mode == "no_usage":
                self._reply(200, b'{"choices":[{"message":{"content":"hi"}}]}')
            elif fake.mode == "hang":
                fake.release.wait(30)
                self.close_connection = True
            elif fake.mode == "redirect":
                self._reply(302, b"{}", {"Location": "/elsewhere/chat/completions"})
            else:
                answer = {
                    "id": "chatcmpl-1",
                    "object": "chat.completion",
                    "choices": [
                        {
                            "index": 0,
                            "message": {"role": "assistant", "content": "  Price is above.  "},
                            "finish_reason": "stop",
                        }
                    ],
                    "usage": {
                        "prompt_tokens": 1200,
                        "completion_tokens": 300,
                        "total_tokens": 1500,
                    },
                }
                self._reply(200, json.dumps(answer).encode())

    return Handler


@pytest.fixture
def fake_llm() -> Iterator[FakeLlm]:
    fake = FakeLlm()
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(fake))
    server.daemon_threads = True
    fake.port = server.server_address[1]
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield fake
    fake.release.set()
    server.shutdown()
    server.server_close()


@pytest.fixture
def llm_settings(
    fake_llm: FakeLlm, monkeypatch: pytest.MonkeyPatch, redis_client: redis.Redis
) -> Iterator[Settings]:
    monkeypatch.setenv("ASINWATCH_LLM__ENABLED", "true")
    monkeypatch.setenv("ASINWATCH_LLM__BASE_URL", fake_llm.base_url)
    monkeypatch.setenv("ASINWATCH_LLM__API_KEY", API_KEY)
    monkeypatch.setenv("ASINWATCH_LLM__MODEL", "test-model")
    monkeypatch.setenv("ASINWATCH_LLM__TIMEOUT_S", "1")
    monkeypatch.setenv("ASINWATCH_LLM__MAX_COST_USD_PER_DAY", "1.0")
    reset_settings_cache()
    redis_client.delete(cost_key(get_settings()))
    yield get_settings()
    reset_settings_cache()


def _spent(client: redis.Redis, settings: Settings) -> float:
    value = client.get(cost_key(settings))
    return float(value) if value is not None else 0.0


def _llm_metric() -> float:
    return REGISTRY.get_sample_value("asinwatch_llm_cost_usd_total") or 0.0


def test_narrative_text_cost_and_daily_spend(
    llm_settings: Settings, fake_llm: FakeLlm, redis_client: redis.Redis
) -> None:
    metric_before = _llm_metric()
    result = generate_narrative(REPORT)

    assert result.reason == "ok"
    assert result.text == "Price is above."
    assert result.model == "test-model"
    assert result.cost_usd == pytest.approx(EXPECTED_COST)
    [req] = fake_llm.requests
    assert req["path"] == "/v1/chat/completions"
    assert req["auth"] == f"Bearer {API_KEY}"
    assert req["body"]["model"] == "test-model"
    assert req["body"]["max_tokens"] == llm_settings.llm.max_output_tokens
    sent_report = json.loads(req["body"]["messages"][1]["content"].split("\n", 1)[1])
    assert sent_report["price"] == "19.99"
    assert sent_report["competitors"][0]["asin"] == "B000000002"
    # The reservation was replaced by the real cost; the key expires within two days.
    key = cost_key(llm_settings)
    assert key == f"{llm_settings.redis.key_prefix}llm:cost:{datetime.now(UTC).date()}"
    assert _spent(redis_client, llm_settings) == pytest.approx(EXPECTED_COST)
    assert 0 < int(redis_client.ttl(key)) <= 2 * 86_400
    assert _llm_metric() - metric_before == pytest.approx(EXPECTED_COST)

    generate_narrative(REPORT)
    assert _spent(redis_client, llm_settings) == pytest.approx(2 * EXPECTED_COST)


def test_disabled_does_not_call(
    llm_settings: Settings, fake_llm: FakeLlm, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ASINWATCH_LLM__ENABLED", "false")
    reset_settings_cache()
    result = generate_narrative(REPORT)
    assert (result.text, result.reason, result.cost_usd) == (None, "disabled", 0.0)
    assert fake_llm.requests == []


def test_cap_reached_does_not_call(
    llm_settings: Settings, fake_llm: FakeLlm, redis_client: redis.Redis
) -> None:
    redis_client.set(cost_key(llm_settings), "1.0")
    result = generate_narrative(REPORT)
    assert (result.text, result.reason) == (None, "cap_reached")
    assert fake_llm.requests == []
    assert _spent(redis_client, llm_settings) == pytest.approx(1.0)


def test_cap_counts_the_worst_case_of_the_call_before_calling(
    llm_settings: Settings,
    fake_llm: FakeLlm,
    redis_client: redis.Redis,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Spent is below the cap, but this call's worst case would cross it.
    monkeypatch.setenv("ASINWATCH_LLM__MAX_COST_USD_PER_DAY", "0.0004")
    reset_settings_cache()
    redis_client.set(cost_key(get_settings()), "0.0002")
    result = generate_narrative(REPORT)
    assert result.reason == "cap_reached"
    assert fake_llm.requests == []


@pytest.mark.parametrize(
    ("mode", "reason", "spent_after"),
    [
        ("500", "http_500", 0.0),  # provider did no work: reservation released
        ("redirect", "http_302", 0.0),  # redirects are not followed
        ("malformed", "malformed_response", None),  # unknown: reservation kept
        ("hang", "timeout", None),
    ],
)
def test_failures_give_none_with_a_reason(
    mode: str,
    reason: str,
    spent_after: float | None,
    llm_settings: Settings,
    fake_llm: FakeLlm,
    redis_client: redis.Redis,
) -> None:
    fake_llm.mode = mode
    result = generate_narrative(REPORT)
    assert result.text is None
    assert result.reason == reason
    assert len(fake_llm.requests) == 1
    assert fake_llm.requests[0]["path"] == "/v1/chat/completions"
    spent = _spent(redis_client, llm_settings)
    if spent_after is None:
        assert 0 < spent < 0.01  # the worst-case reservation stays charged
    else:
        assert spent == pytest.approx(spent_after, abs=1e-12)


def test_answer_without_usage_is_malformed(llm_settings: Settings, fake_llm: FakeLlm) -> None:
    fake_llm.mode = "no_usage"
    result = generate_narrative(REPORT)
    assert (result.text, result.reason) == (None, "malformed_response")


@pytest.mark.parametrize(
    "base_url",
    [
        "http://10.0.0.1/v1",  # plain http only on loopback
        "http://api.openai.example/v1",
        "ftp://127.0.0.1/v1",
        "https://user:pw@api.example.com/v1",
    ],
)
def test_base_url_must_be_https_or_loopback(
    base_url: str, llm_settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ASINWATCH_LLM__BASE_URL", base_url)
    reset_settings_cache()
    assert generate_narrative(REPORT).reason == "host_not_allowed"


def test_missing_key_or_cost_tracking_means_no_call(
    llm_settings: Settings, fake_llm: FakeLlm, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ASINWATCH_LLM__API_KEY", "")
    reset_settings_cache()
    assert generate_narrative(REPORT).reason == "no_api_key"
    monkeypatch.setenv("ASINWATCH_LLM__API_KEY", API_KEY)
    # A Redis nobody listens on (port 1 on loopback): the cap cannot be checked.
    monkeypatch.setenv("ASINWATCH_REDIS__URL", "redis://127.0.0.1:1/0")
    reset_settings_cache()
    assert generate_narrative(REPORT).reason == "cost_tracking_unavailable"
    assert fake_llm.requests == []


def test_oversized_report_is_refused(
    llm_settings: Settings, fake_llm: FakeLlm, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ASINWATCH_LLM__MAX_INPUT_CHARS", "1000")
    reset_settings_cache()
    result = generate_narrative({"blob": "x" * 2000})
    assert result.reason == "report_too_large"
    assert fake_llm.requests == []
