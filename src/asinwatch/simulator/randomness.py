"""Deterministic randomness for the simulator: every draw is a pure function of its key.

Python's ``hash()`` is salted per process, so keys are hashed with BLAKE2b instead; the same
(seed, parts...) gives the same numbers in every process, on every machine, in any order.
"""

from __future__ import annotations

import hashlib
import random

_ALNUM = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ"
_ALNUM_MIXED = "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"


def stable_int(*parts: object) -> int:
    """A 64-bit integer derived from the parts (their repr, joined)."""
    key = "\x1f".join(repr(p) for p in parts).encode()
    return int.from_bytes(hashlib.blake2b(key, digest_size=8).digest(), "big")


def unit(*parts: object) -> float:
    """A float in [0, 1) derived from the parts."""
    return stable_int(*parts) / 2**64


def rng(*parts: object) -> random.Random:
    """A private random generator seeded from the parts."""
    return random.Random(stable_int(*parts))


def token(length: int, *parts: object, alphabet: str = _ALNUM) -> str:
    """A string of `length` characters of `alphabet` derived from the parts."""
    r = rng("token", *parts)
    return "".join(r.choice(alphabet) for _ in range(length))


def apify_id(*parts: object) -> str:
    """A 17-character id shaped like Apify's run / dataset ids."""
    return token(17, *parts, alphabet=_ALNUM_MIXED)


def fake_asin(*parts: object) -> str:
    """A syntactically valid ASIN ("B0" + 8 characters) derived from the parts."""
    return "B0" + token(8, "asin", *parts)
