"""Raw upstream JSON made safe to keep: bounded-depth parsing and jsonb-safe values (pure).

PostgreSQL `jsonb` refuses NUL (`\\u0000`), lone UTF-16 surrogates and NaN/Infinity, and
Python's json module raises RecursionError on a document nested ~1,000 levels deep. So:
- `loads_bounded` parses an upstream body; when the stdlib parser gives up on depth, every
  container deeper than `max_depth` is replaced in the text by the cut marker before parsing,
  so one absurd item cannot make the whole page (and every good item on it) unreadable;
- `sanitise_raw` returns a copy of an item that jsonb and `json.dumps` accept: NUL and lone
  surrogates removed from strings and keys, non-finite floats as strings ("NaN"), strings
  capped at `MAX_RAW_STRING` characters, containers deeper than `MAX_RAW_DEPTH` replaced by
  the cut marker. It reports what it changed; an item it had to cut is quarantined by
  normalisation (`too_deep`), the rest is ordinary cleaning. A clean item is returned as is;
- `clean_text` removes what no stored or displayed text should hold: control characters,
  lone surrogates, bidi embedding/override/isolate controls and zero-width characters.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from typing import Any

MAX_RAW_DEPTH = 32  # real actor items nest < 10 levels
MAX_RAW_STRING = 100_000  # characters of one raw string kept in staging
MAX_DOCUMENT_DEPTH = 64  # depth at which `loads_bounded` cuts a too-deep body
CUT_KEY = "#cut"
CUT_TEXT = f"nesting deeper than {MAX_RAW_DEPTH} levels was cut"
DEEP = "deep"  # issue: a container was cut (or the item already carries the cut marker)

# What PostgreSQL jsonb cannot hold.
_JSONB_UNSAFE = re.compile("[\x00\ud800-\udfff]")
# C0/C1 controls (tab, newline and carriage return stay), lone surrogates, bidi controls
# (embeddings, overrides, isolates and the LRM/RLM/ALM marks), zero-width characters, BOM.
_TEXT_UNSAFE = re.compile(
    "[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\ud800-\udfff\u061c\u200b-\u200f"
    "\u202a-\u202e\u2060-\u2064\u2066-\u2069\ufeff]"
)
# In json.dumps(..., ensure_ascii=False) output NUL is escaped (a literal backslash-u0000
# in a string also matches: that only sends the item down the slow path).
_DUMPED_NUL = "\\u0000"
_DUMPED_CUT = json.dumps(CUT_KEY)
_TOKEN = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"|[\[\]{}]', re.DOTALL)


def cut_marker() -> dict[str, str]:
    return {CUT_KEY: CUT_TEXT}


def clean_text(text: str) -> str:
    """`text` without control, bidi-control, zero-width characters and lone surrogates."""
    if text.isprintable():  # C-speed: every character removed here is unprintable
        return text
    return _TEXT_UNSAFE.sub("", text)


def jsonb_safe_text(text: str) -> str:
    """`text` without what a PostgreSQL text or jsonb value refuses (NUL, lone surrogates)."""
    return _JSONB_UNSAFE.sub("", text)


@dataclass(frozen=True, slots=True)
class Sanitised:
    value: Any
    issues: frozenset[str]  # "deep", "text" (NUL/surrogate removed), "long", "non_finite"


def sanitise_raw(value: Any, max_depth: int = MAX_RAW_DEPTH) -> Sanitised:
    """A jsonb-safe copy of a raw item (the item itself when nothing needed changing)."""
    if _is_clean(value, max_depth):
        return Sanitised(value, frozenset())
    issues: set[str] = set()
    out = _sanitise(value, 0, max_depth, issues)
    return Sanitised(out, frozenset(issues))


def _is_clean(value: Any, max_depth: int) -> bool:
    """The fast path (C-speed json.dumps and regexes): nothing for `_sanitise` to change."""
    try:
        text = json.dumps(value, ensure_ascii=False, allow_nan=False, check_circular=False)
    except (TypeError, ValueError, RecursionError):
        return False
    if len(text) > MAX_RAW_STRING or _DUMPED_NUL in text or _DUMPED_CUT in text:
        return False
    try:
        text.encode("utf-8")  # fails on a lone surrogate (json.dumps leaves them raw here)
    except UnicodeEncodeError:
        return False
    return _shallow(value, max_depth)


def _shallow(value: Any, levels: int) -> bool:
    """No container nested `levels` deep or more (only containers are visited)."""
    if isinstance(value, dict):
        children: Any = value.values()
    elif isinstance(value, list | tuple):
        children = value
    else:
        return True
    if levels <= 0:
        return False
    return all(_shallow(c, levels - 1) for c in children if isinstance(c, dict | list | tuple))


def _sanitise(value: Any, depth: int, max_depth: int, issues: set[str]) -> Any:
    if isinstance(value, str):
        return _string(value, issues)
    if isinstance(value, float):
        if math.isfinite(value):
            return value
        issues.add("non_finite")
        return "NaN" if math.isnan(value) else ("Infinity" if value > 0 else "-Infinity")
    if isinstance(value, dict):
        if depth >= max_depth or CUT_KEY in value:
            issues.add(DEEP)
            return cut_marker()
        changed = False
        out: dict[str, Any] = {}
        for k, v in value.items():
            key = _string(k, issues) if isinstance(k, str) else str(k)
            new = _sanitise(v, depth + 1, max_depth, issues)
            changed = changed or key is not k or new is not v
            out[key] = new
        return out if changed else value
    if isinstance(value, list | tuple):
        if depth >= max_depth:
            issues.add(DEEP)
            return cut_marker()
        items = [_sanitise(v, depth + 1, max_depth, issues) for v in value]
        if isinstance(value, list) and all(a is b for a, b in zip(items, value, strict=True)):
            return value
        return items
    if value is None or isinstance(value, bool | int):
        return value
    issues.add("text")
    return _string(repr(value), issues)  # not a JSON type: kept readable


def _string(text: str, issues: set[str]) -> str:
    if _JSONB_UNSAFE.search(text):
        issues.add("text")
        text = _JSONB_UNSAFE.sub("", text)
    if len(text) > MAX_RAW_STRING:
        issues.add("long")
        text = text[:MAX_RAW_STRING]
    return text


def loads_bounded(data: bytes | str, max_depth: int = MAX_DOCUMENT_DEPTH) -> Any:
    """`json.loads(data)`, except that containers deeper than `max_depth` become the cut marker
    instead of raising RecursionError. Raises ValueError for a body that is not JSON."""
    try:
        return json.loads(data)
    except RecursionError:
        pass
    text = data if isinstance(data, str) else data.decode(json.detect_encoding(data))
    try:
        return json.loads(_cut_deep(text, max_depth))
    except RecursionError:
        raise ValueError("JSON nested too deeply") from None


def _cut_deep(text: str, max_depth: int) -> str:
    """`text` with every container opened below `max_depth` replaced by the cut marker."""
    marker = json.dumps(cut_marker())
    parts: list[str] = []
    depth = 0
    last = 0  # end of the text already copied
    cut_from: int | None = None
    for m in _TOKEN.finditer(text):
        tok = m.group()
        if tok[0] == '"':
            continue
        if tok in "[{":
            depth += 1
            if depth > max_depth and cut_from is None:
                cut_from = m.start()
        else:
            depth -= 1
            if cut_from is not None and depth == max_depth:
                parts.append(text[last:cut_from])
                parts.append(marker)
                last = m.end()
                cut_from = None
    if cut_from is not None:  # unterminated: let json.loads report the error
        return text
    parts.append(text[last:])
    return "".join(parts)
