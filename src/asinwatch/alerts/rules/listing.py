"""Listing content detector: which fields changed, with a readable difflib diff per field."""

from __future__ import annotations

import difflib
import re

from asinwatch.alerts.rules.base import Finding, Severity, recovery
from asinwatch.alerts.rules.thresholds import LISTING_CHANGED, ListingChangedThresholds
from asinwatch.ingestion.records import ListingContent

_SENTENCE_END = re.compile(r"(?<=[.!?])\s+")


def _lines(content: ListingContent, name: str) -> list[str]:
    """A field as lines to diff: one per bullet/image/variant, one per sentence of text."""
    value = getattr(content, name)
    if isinstance(value, tuple):
        return [str(v) for v in value]
    if not value:
        return []
    if name == "title":
        return [value]
    return [s for line in str(value).splitlines() for s in _SENTENCE_END.split(line) if s]


def field_diff(name: str, old: list[str], new: list[str], max_lines: int) -> list[str]:
    """Unified diff lines of a field (headers kept, truncated to `max_lines`)."""
    diff = list(
        difflib.unified_diff(old, new, f"{name} (before)", f"{name} (after)", lineterm="", n=1)
    )
    if len(diff) > max_lines:
        diff = [*diff[:max_lines], f"... ({len(diff) - max_lines} more diff lines)"]
    return diff


def detect_listing_changed(
    previous: ListingContent | None,
    current: ListingContent | None,
    params: ListingChangedThresholds,
) -> Finding | None:
    """Compare the watched fields of the previous and current listing content.

    Silent when either content is unknown (first snapshot, or content not fetched).
    """
    if previous is None or current is None:
        return None
    changes: dict[str, dict[str, object]] = {}
    for name in params.watch_fields:
        old, new = _lines(previous, name), _lines(current, name)
        if old == new:
            continue
        change: dict[str, object] = {
            "diff": field_diff(name, old, new, params.max_diff_lines),
            "added": len([x for x in new if x not in old]),
            "removed": len([x for x in old if x not in new]),
        }
        if name == "title":
            change.update(old=previous.title, new=current.title)
        if name == "images":
            change["main_image_changed"] = old[:1] != new[:1]
            change.update(old_count=len(old), new_count=len(new))
        if name == "bullets":
            change.update(old_count=len(old), new_count=len(new))
        changes[name] = change
    if not changes:
        return recovery(LISTING_CHANGED, "Listing unchanged", "event")
    fields = list(changes)
    main_image = bool(changes.get("images", {}).get("main_image_changed"))
    # Title and main image drive search and click-through: those changes deserve attention.
    severity: Severity = "warning" if "title" in changes or main_image else "info"
    title = "Listing changed: " + ", ".join(fields)
    return Finding(
        LISTING_CHANGED, severity, title, {"fields": fields, "changes": changes}, kind="event"
    )
