"""Streaming helpers that move bytes between files and S3 while hashing and counting them.

``HashingReader`` is the body of an upload: it streams the file, feeds progress,
and at end of file checks the bytes against the oid and size. A mismatch raises
before the last byte is handed to the HTTP layer, so S3 never receives a complete
body and no object with the wrong content is created, even on stores that do not
check ``x-amz-checksum-sha256``.
"""

from __future__ import annotations

import hashlib
import io
from typing import IO

from lfs_s3_agent.errors import IntegrityError
from lfs_s3_agent.progress import ProgressReporter

CHUNK = 1 << 20


class HashingReader(io.RawIOBase):
    """A read-only, seekable-to-start view of ``size`` bytes of ``fileobj`` that must hash to ``oid``."""

    def __init__(self, fileobj: IO[bytes], size: int, oid: str, progress: ProgressReporter | None,
                 *, label: str = "") -> None:
        super().__init__()
        self._file = fileobj
        self._start = fileobj.tell()
        self._size = size
        self._oid = oid
        self._progress = progress
        self._label = label or oid
        self._hash = hashlib.sha256()
        self._pos = 0
        self._counted = 0  # bytes already reported to progress (reads may repeat after a seek)

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def __len__(self) -> int:
        return self._size

    def tell(self) -> int:
        return self._pos

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        # botocore rewinds the body to sign it (plain-HTTP endpoints) and to retry a request.
        target = {io.SEEK_SET: offset, io.SEEK_CUR: self._pos + offset, io.SEEK_END: self._size + offset}[whence]
        if not 0 <= target <= self._size:
            raise ValueError(f"seek to {target} outside 0..{self._size}")
        self._file.seek(self._start)
        self._hash = hashlib.sha256()
        self._pos = 0
        while self._pos < target:  # re-hash the skipped bytes so the final check stays exact
            chunk = self._file.read(min(CHUNK, target - self._pos))
            if not chunk:
                break
            self._hash.update(chunk)
            self._pos += len(chunk)
        return self._pos

    def read(self, n: int | None = -1) -> bytes:
        remaining = self._size - self._pos
        if remaining <= 0:
            self._verify(extra=self._file.read(1))
            return b""
        want = remaining if n is None or n < 0 else min(n, remaining)
        data = self._file.read(want)
        self._hash.update(data)
        self._pos += len(data)
        if self._progress is not None and self._pos > self._counted:
            self._progress.add(self._pos - self._counted)
            self._counted = self._pos
        if not data or self._pos == self._size:
            self._verify(extra=self._file.read(1) if data else b"")
        return data

    def readinto(self, buffer: bytearray | memoryview) -> int:  # type: ignore[override]
        data = self.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)

    def _verify(self, extra: bytes) -> None:
        if self._pos != self._size or extra:
            raise IntegrityError(
                f"{self._label}: the local file changed size while being uploaded "
                f"(expected {self._size} bytes); nothing was stored"
            )
        digest = self._hash.hexdigest()
        if digest != self._oid:
            raise IntegrityError(
                f"{self._label}: local file's SHA-256 is {digest}, not the oid; the local LFS "
                "object is corrupt (try `git lfs fsck`); nothing was stored"
            )
