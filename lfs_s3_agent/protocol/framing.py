"""Framing of git-lfs's custom transfer protocol: one JSON object per line.

Reading tolerates anything (bad UTF-8, bad JSON, endless lines) and turns it
into ``BadRequest``; writing emits exactly one compact, newline-terminated,
flushed line per message, under a lock so that worker threads' progress events
never interleave. Standard library only.
"""

from __future__ import annotations

import json
import threading
from typing import IO, Any

from lfs_s3_agent.errors import BadRequest

#: Longest request line we accept; git-lfs's requests are a few hundred bytes.
MAX_LINE = 1 << 20


def decode_line(line: bytes) -> dict[str, Any]:
    """Parse one request line into a JSON object, or raise ``BadRequest``."""
    try:
        text = line.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise BadRequest(f"request line is not UTF-8 ({exc.reason} at byte {exc.start})") from None
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise BadRequest(f"request line is not valid JSON ({exc.msg} at column {exc.colno})") from None
    except (ValueError, RecursionError) as exc:  # integers past Python's digit limit, nesting past the stack
        raise BadRequest(f"request line is not usable JSON ({type(exc).__name__}: {str(exc)[:100]})") from None
    if not isinstance(value, dict):
        raise BadRequest(f"request must be a JSON object, got {type(value).__name__}")
    return value


class LineReader:
    """Reads request lines from a binary stream; ``None`` means end of input."""

    def __init__(self, stream: IO[bytes], max_line: int = MAX_LINE) -> None:
        self._stream = stream
        self._max = max_line

    def read(self) -> bytes | None:
        """Return the next non-blank line without its newline, or None at EOF.

        A line longer than the limit is discarded whole and reported as BadRequest.
        """
        while True:
            line = self._stream.readline(self._max + 1)
            if not line:
                return None
            if len(line) > self._max and not line.endswith(b"\n"):
                while True:  # drain the rest of the oversized line
                    rest = self._stream.readline(self._max)
                    if not rest or rest.endswith(b"\n"):
                        break
                raise BadRequest(f"request line longer than {self._max} bytes")
            line = line.strip()
            if line:
                return line


class LineWriter:
    """Writes one flushed JSON line per message; safe to call from several threads."""

    def __init__(self, stream: IO[bytes]) -> None:
        self._stream = stream
        self._lock = threading.Lock()

    def write(self, message: dict[str, Any]) -> None:
        data = json.dumps(message, separators=(",", ":"), ensure_ascii=True).encode("ascii") + b"\n"
        with self._lock:
            self._stream.write(data)
            self._stream.flush()
