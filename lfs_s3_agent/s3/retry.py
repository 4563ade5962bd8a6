"""The one retry policy: how many attempts a request (or an object's download) gets, and how long to wait.

botocore's own retries are switched off (``client.make_client``), so nothing nests: every S3
call goes through ``S3Client.call``, which spends one attempt of an ``Attempts`` budget per
request. A caller that must go on after a response (a body that breaks off mid-stream, bytes
that fail their SHA-256) shares the same budget, so an object whose download fails every time
makes at most ``max_attempts`` GET requests in all. Standard library only.
"""

from __future__ import annotations

import random
import threading
import time


def backoff(attempt: int, base: float = 0.2, cap: float = 10.0) -> float:
    """Full-jitter exponential backoff (seconds) before retry number ``attempt`` (1, 2, ...)."""
    return random.uniform(0, min(cap, base * (2 ** attempt)))


class Attempts:
    """A budget of attempts shared by every request made for one purpose (thread-safe)."""

    def __init__(self, limit: int) -> None:
        self.limit = max(1, limit)
        self.used = 0
        self._lock = threading.Lock()

    def take(self) -> int:
        """Spend one attempt and return its number (1-based); ``ExhaustedError`` when none is left."""
        with self._lock:
            if self.used >= self.limit:
                raise ExhaustedError(self.limit)
            self.used += 1
            return self.used

    @property
    def left(self) -> int:
        return self.limit - self.used

    def wait(self) -> None:
        """Sleep before the next attempt of this budget (nothing before the first)."""
        if self.used:
            time.sleep(backoff(self.used))


class ExhaustedError(Exception):
    """No attempt left; the caller re-raises the last real error instead."""

    def __init__(self, limit: int) -> None:
        super().__init__(f"all {limit} attempts used")
