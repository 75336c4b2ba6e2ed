"""Webhook signatures: what `verify_signature` accepts and what it rejects."""

from __future__ import annotations

import hashlib
import hmac

import pytest

from asinwatch.alerts.signing import parse_signature, sign, verify_signature

SECRET = "whsec-test-0123456789abcdef"
BODY = b'{"alert_id":1,"event":"opened"}'
T = 1_800_000_000


def test_signature_format_is_hmac_sha256_over_timestamp_dot_body() -> None:
    header = sign(SECRET, BODY, timestamp=T)
    expected = hmac.new(SECRET.encode(), f"{T}.".encode() + BODY, hashlib.sha256).hexdigest()
    assert header == f"t={T},v1={expected}"
    assert verify_signature(SECRET, header, BODY, now=T + 10)


@pytest.mark.parametrize(
    ("secret", "body", "now"),
    [
        ("another-secret-0123456789", BODY, T),  # wrong secret
        (SECRET, BODY + b" ", T),  # body tampered
        (SECRET, BODY.replace(b"1", b"2"), T),  # body tampered
        (SECRET, BODY, T + 301),  # stale: older than the tolerance
        (SECRET, BODY, T - 301),  # from the future beyond the tolerance
        ("", BODY, T),  # no secret
    ],
)
def test_bad_signatures_are_rejected(secret: str, body: bytes, now: int) -> None:
    header = sign(SECRET, BODY, timestamp=T)
    assert not verify_signature(secret, header, body, now=now)


@pytest.mark.parametrize(
    "header",
    [
        "",
        "garbage",
        f"t={T}",
        "v1=abcdef",
        f"t=abc,v1={'0' * 64}",
        f"t={T},v1={'0' * 64}",
        f"t={T},t={T},v1={'0' * 64}",
        f"t={T},v1=ünïcode",
    ],
)
def test_malformed_or_forged_headers_are_rejected(header: str) -> None:
    assert not verify_signature(SECRET, header, BODY, now=T)


def test_timestamp_is_bound_to_the_signature() -> None:
    # Moving the timestamp forward (to dodge the tolerance) breaks the HMAC.
    header = sign(SECRET, BODY, timestamp=T)
    digest = header.split("v1=")[1]
    assert not verify_signature(SECRET, f"t={T + 1000},v1={digest}", BODY, now=T + 1000)


def test_any_of_several_v1_entries_may_match_for_secret_rotation() -> None:
    good = sign(SECRET, BODY, timestamp=T).split("v1=")[1]
    header = f"t={T},v1={'0' * 64},v1={good}"
    assert verify_signature(SECRET, header, BODY, now=T)
    assert parse_signature(header) == (T, ["0" * 64, good])


def test_tolerance_is_configurable_and_default_accepts_fresh() -> None:
    assert verify_signature(SECRET, sign(SECRET, BODY), BODY)
    header = sign(SECRET, BODY, timestamp=T)
    assert verify_signature(SECRET, header, BODY, tolerance_s=1000, now=T + 900)
    assert not verify_signature(SECRET, header, BODY, tolerance_s=60, now=T + 61)


def test_signing_needs_a_secret() -> None:
    with pytest.raises(ValueError, match="secret"):
        sign("", BODY)
