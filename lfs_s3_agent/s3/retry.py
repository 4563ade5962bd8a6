"""The one retry policy: how many attempts a request (or an object's download) gets, and how long to wait.

botocore's own retries are switched off (``client.make_client``), so nothing nests: every S3
call goes through ``S3Client.call``, which spends one attempt of an ``Attempts`` budget per
request. A caller that must go on after a response (a body that breaks off mid-stream, bytes
that fail their SHA-256) shares the same budget, so an object whose download fails every time
makes at most ``max_attempts`` GET requests in all. ``attempt`` is the loop itself, used by the S3
client and the public-URL reader alike. Standard library only (and our error types).
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Callable
from typing import TypeVar

from lfs_s3_agent.errors import AgentError, StoreError

log = logging.getLogger(__name__)
T = TypeVar("T")


def transient_status(status: int) -> bool:
    """Is an HTTP error status worth another attempt? 408 and 429 (slow down), and 5xx but 501.

    501 Not Implemented says the server lacks the feature (s3rver's answer to ListMultipartUploads):
    retried, it cost every multipart push 5 attempts with backoff, 2-4 s. botocore's standard mode
    retries 500 and 502-504 and throttling (retries/standard.py); the other 5xx (CDNs' 520-524,
    a proxy's) are kept, as they are usually a passing state of something in between.
    """
    return status in (408, 429) or (status >= 500 and status != 501)


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


def attempt(request: Callable[[], T], budget: Attempts, *, what: str,
            before_retry: Callable[[], None] | None = None) -> T:
    """Make ``request`` until it succeeds, raises an error that is not transient, or ``budget`` is spent.

    ``request`` raises our errors (translated): a transient one is tried again after a backoff (and
    ``before_retry``, e.g. rewinding a request body); the last one is raised when no attempt is left.
    """
    last: AgentError | None = None
    while True:
        try:
            number = budget.take()
        except ExhaustedError:
            raise last or StoreError(f"{what}: no attempt left", transient=True) from None
        if last is not None:
            time.sleep(backoff(number - 1))
            if before_retry is not None:
                before_retry()
        try:
            return request()
        except AgentError as err:
            if not err.transient:
                raise
            last = err
            log.info("%s: %s (attempt %d of %d)", what, err.message, number, budget.limit)
