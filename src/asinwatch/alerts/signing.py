"""Webhook signatures: the `X-Asinwatch-Signature` header, made by us and checked by receivers.

Format: ``t=<unix seconds>,v1=<hex HMAC-SHA256(secret, f"{t}.{raw body}")>``. The timestamp is
signed with the body so a captured request cannot be replayed later than the tolerance.
Several ``v1=`` entries may appear (secret rotation); any one matching is enough.
"""

from __future__ import annotations

import hashlib
import hmac
import time

SIGNATURE_HEADER = "X-Asinwatch-Signature"
DELIVERY_HEADER = "X-Asinwatch-Delivery"
EVENT_HEADER = "X-Asinwatch-Event"
DEFAULT_TOLERANCE_S = 300


def _digest(secret: str, timestamp: int, body: bytes) -> str:
    message = str(timestamp).encode("ascii") + b"." + body
    return hmac.new(secret.encode("utf-8"), message, hashlib.sha256).hexdigest()


def sign(secret: str, body: bytes, timestamp: int | None = None) -> str:
    """The signature header value for `body` sent at `timestamp` (now by default)."""
    if not secret:
        raise ValueError("a webhook signing secret is required")
    t = int(time.time()) if timestamp is None else int(timestamp)
    return f"t={t},v1={_digest(secret, t, body)}"


def parse_signature(header: str) -> tuple[int, list[str]] | None:
    """``(timestamp, [v1 signatures])`` from a header, or None when it is malformed."""
    timestamp: int | None = None
    signatures: list[str] = []
    for part in header.split(","):
        key, sep, value = part.strip().partition("=")
        if not sep:
            return None
        if key == "t":
            if not value.isdigit() or timestamp is not None:
                return None
            timestamp = int(value)
        elif key == "v1":
            signatures.append(value)
    if timestamp is None or not signatures:
        return None
    return timestamp, signatures


def verify_signature(
    secret: str,
    header: str,
    body: bytes,
    tolerance_s: int = DEFAULT_TOLERANCE_S,
    now: float | None = None,
) -> bool:
    """True when `header` is a valid signature of `body` made with `secret` within tolerance.

    Compares in constant time; refuses timestamps more than `tolerance_s` away from `now`
    (either direction, so a clock-skewed future timestamp cannot extend a replay window).
    """
    if not secret or not header:
        return False
    parsed = parse_signature(header)
    if parsed is None:
        return False
    timestamp, signatures = parsed
    current = time.time() if now is None else now
    if abs(current - timestamp) > tolerance_s:
        return False
    expected = _digest(secret, timestamp, body)
    # Check every candidate so timing does not reveal which entry matched.
    matched = False
    for candidate in signatures:
        matched |= hmac.compare_digest(
            expected.encode("ascii"), candidate.encode("ascii", "replace")
        )
    return matched
