"""Thread-safe, coalescing progress for one object (after s3transfer's aggregated callbacks).

git-lfs draws its progress bar from ``progress`` events, and workers 1..N-1 wait
until worker 0 reports its first bytes; so the first bytes are reported at once,
later ones at most every ``interval`` seconds, the numbers never go backwards or
past the object's size, and the last event is at the size. ``check`` is called on
every count, so a transfer whose requester has gone (the shared worker's agent
disconnected) stops at its next bytes. Standard library only.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

Emit = Callable[[int, int], None]  # (bytes_so_far, bytes_since_last)


class ProgressReporter:
    def __init__(self, size: int, emit: Emit, *, interval: float = 0.1,
                 clock: Callable[[], float] = time.monotonic, check: Callable[[], None] | None = None) -> None:
        self.size = size
        self._check = check
        self._emit = emit
        self._interval = interval
        self._clock = clock
        self._lock = threading.Lock()
        self._done = 0  # bytes counted so far
        self._sent = 0  # bytes_so_far of the last event
        self._last_time = 0.0

    @property
    def done(self) -> int:
        return self._done

    def add(self, nbytes: int) -> None:
        """Count ``nbytes`` newly transferred bytes (callers never count a byte twice)."""
        if self._check is not None:
            self._check()
        if nbytes <= 0:
            return
        with self._lock:
            self._done = min(self.size, self._done + nbytes)
            now = self._clock()
            if self._sent == 0 or self._done == self.size or now - self._last_time >= self._interval:
                self._flush(now)

    def finish(self) -> None:
        """Report the whole object as transferred (also when it was skipped as already present)."""
        with self._lock:
            self._done = self.size
            self._flush(self._clock())

    def _flush(self, now: float) -> None:
        if self._done > self._sent:
            self._emit(self._done, self._done - self._sent)
            self._sent = self._done
            self._last_time = now
