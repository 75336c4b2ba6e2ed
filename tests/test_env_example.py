""".env.example lists every setting (a test fails when a new one is not documented)."""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel

from asinwatch.config import Settings

ROOT = Path(__file__).resolve().parents[1]


def _env_names(model: type[BaseModel], prefix: str) -> list[str]:
    names: list[str] = []
    for name, field in model.model_fields.items():
        ann = field.annotation
        if isinstance(ann, type) and issubclass(ann, BaseModel):
            names += _env_names(ann, f"{prefix}{name.upper()}__")
        else:
            names.append(f"{prefix}{name.upper()}")
    return names


def test_every_setting_is_documented() -> None:
    text = (ROOT / ".env.example").read_text()
    documented = {
        line.lstrip("# ").split("=", 1)[0]
        for line in text.splitlines()
        if "=" in line and line.lstrip("# ").startswith("ASINWATCH_")
    }
    missing = [n for n in _env_names(Settings, "ASINWATCH_") if n not in documented]
    assert missing == []
    # Each key carries a one-line meaning on the line above it.
    lines = text.splitlines()
    for i, line in enumerate(lines):
        if line.lstrip("# ").startswith("ASINWATCH_") and "=" in line:
            above = lines[i - 1]
            assert above.startswith("# ") and not above.startswith("# ASINWATCH_"), line
