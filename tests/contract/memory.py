"""An in-memory ``ObjectStore``: the contract's reference implementation (no S3 at all)."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import IO

from lfs_s3_agent.errors import AgentError, Code, IntegrityError
from lfs_s3_agent.progress import ProgressReporter


class MemoryStore:
    def __init__(self) -> None:
        self.objects: dict[str, bytes] = {}
        self.requests: dict[str, int] = {}

    def describe(self, oid: str) -> str:
        return f"memory:{oid}"

    def stat(self, oid: str) -> int | None:
        data = self.objects.get(oid)
        return None if data is None else len(data)

    def upload(self, oid: str, size: int, path: Path, progress: ProgressReporter) -> bool:
        if oid in self.objects:
            progress.finish()
            return False
        data = path.read_bytes()
        if len(data) != size or hashlib.sha256(data).hexdigest() != oid:
            raise IntegrityError(f"{path}: does not hash to {oid}; nothing was stored")
        progress.add(len(data))
        self.objects[oid] = data
        progress.finish()
        return True

    def download(self, oid: str, size: int, sink: IO[bytes], progress: ProgressReporter) -> str:
        data = self.objects.get(oid)
        if data is None:
            raise AgentError(f"{self.describe(oid)}: not found", code=Code.NOT_FOUND)
        sink.write(data)
        progress.add(len(data))
        return hashlib.sha256(data).hexdigest()
