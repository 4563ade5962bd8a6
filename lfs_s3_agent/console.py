"""Progress for long commands: a redrawn line on a terminal, a few plain lines otherwise."""

from __future__ import annotations

import sys
import threading
import time
from typing import TextIO


def human_bytes(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(n) < 1024 or unit == "TiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} TiB"


class Progress:
    """``with Progress("HEAD", total) as p: p.advance(1, nbytes)`` (thread-safe)."""

    def __init__(self, label: str, total: int, *, stream: TextIO | None = None, quiet: bool = False) -> None:
        self.label = label
        self.total = total
        self.done = 0
        self.bytes = 0
        self.stream = stream or sys.stderr
        self.tty = self.stream.isatty()
        self.quiet = quiet
        self._lock = threading.Lock()
        self._last = 0.0

    def __enter__(self) -> Progress:
        if not self.quiet and not self.tty:
            print(f"{self.label}: {self.total} objects ...", file=self.stream)
        return self

    def advance(self, count: int = 1, nbytes: int = 0) -> None:
        with self._lock:
            self.done += count
            self.bytes += nbytes
            now = time.monotonic()
            if self.tty and not self.quiet and (now - self._last > 0.1 or self.done == self.total):
                self._last = now
                self.stream.write(f"\r{self.label}: {self.done}/{self.total} objects, {human_bytes(self.bytes)}")
                self.stream.flush()

    def __exit__(self, *exc: object) -> None:
        if self.quiet:
            return
        if self.tty:
            self.stream.write("\n")
        else:
            print(f"{self.label}: {self.done}/{self.total} objects, {human_bytes(self.bytes)}", file=self.stream)
