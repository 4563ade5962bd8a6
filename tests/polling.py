"""Waiting for something another process or thread does: a readiness poll, never a timing assertion."""

from __future__ import annotations

import time
from collections.abc import Callable


def wait_until(predicate: Callable[[], object], what: str, limit: float = 30.0) -> None:
    """Return once ``predicate()`` is true; fail naming ``what`` after ``limit`` seconds."""
    deadline = time.monotonic() + limit
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.02)
