"""The app's lifespan: startup objects are frozen out of the garbage collector."""

from __future__ import annotations

import gc

from fastapi import FastAPI


async def test_startup_objects_are_frozen_out_of_the_collector(app: FastAPI) -> None:
    # Full collections then walk only what requests allocate, not the ~200k startup objects.
    assert gc.get_freeze_count() > 1000
    assert app.state.cache is not None
