"""Functional tier: whole git-lfs sessions replayed through ``serve()`` against in-process moto."""

from __future__ import annotations

import hashlib
import io
import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import boto3
import pytest
from moto import mock_aws

from lfs_s3_agent.agent import serve
from lfs_s3_agent.errors import ConfigError
from lfs_s3_agent.settings import Settings
from lfs_s3_agent.store import S3Store

BUCKET = "lfs-test"


@pytest.fixture(autouse=True)
def s3_behaviour(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> None:
    """Stores here behave as S3 documents (If-None-Match answered before the body, checksums kept), so
    sessions count only the requests of the transfer itself. In-process moto cannot say otherwise: no
    HTTP is spoken. Tests marked ``probe`` run the real probe (``s3.capabilities``)."""
    if request.node.get_closest_marker("probe") is None:
        import time

        from lfs_s3_agent.s3.capabilities import Capabilities

        known = Capabilities(probed_at=time.time())
        monkeypatch.setattr(S3Store, "capabilities", lambda self, **_: known)
INIT_UP = {"event": "init", "operation": "upload", "remote": "origin", "concurrent": True,
           "concurrenttransfers": 8}
INIT_DOWN = {**INIT_UP, "operation": "download"}


def oid_of(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@dataclass
class Session:
    status: int
    messages: list[dict[str, Any]]
    raw: bytes
    calls: list[str] = field(default_factory=list)

    def completes(self) -> list[dict[str, Any]]:
        return [m for m in self.messages if m.get("event") == "complete"]

    def progress(self, oid: str) -> list[dict[str, Any]]:
        return [m for m in self.messages if m.get("event") == "progress" and m["oid"] == oid]


class Harness:
    """Feeds request lines to ``serve()`` and decodes every reply line."""

    def __init__(self, tmp_path: Path, s3: Any) -> None:
        self.tmp_dir = tmp_path / "lfs" / "tmp"
        self.files = tmp_path / "files"
        self.files.mkdir()
        self.s3 = s3
        self.store = S3Store(Settings(bucket=BUCKET, prefix="repo", max_attempts=3))
        self.calls: list[str] = []
        self.store.client.raw.meta.events.register("before-call.s3.*", self._count)

    def _count(self, model: Any, **_: Any) -> None:
        self.calls.append(model.name)

    def file(self, name: str, data: bytes) -> Path:
        path = self.files / name
        path.write_bytes(data)
        return path

    def put(self, data: bytes, oid: str | None = None) -> str:
        oid = oid or oid_of(data)
        self.s3.put_object(Bucket=BUCKET, Key=self.store.key(oid), Body=data)
        return oid

    def run(self, *requests: dict[str, Any] | bytes, config_error: ConfigError | None = None,
            store: Any = None) -> Session:
        lines = b"".join(r if isinstance(r, bytes) else json.dumps(r).encode() + b"\n" for r in requests)
        out = io.BytesIO()
        self.calls.clear()
        status = serve(io.BytesIO(lines), out, store or self.store, tmp_dir=self.tmp_dir,
                       config_error=config_error, progress_interval=0)
        raw = out.getvalue()
        return Session(status, [json.loads(line) for line in raw.splitlines()], raw, list(self.calls))


@pytest.fixture
def s3() -> Iterator[Any]:
    with mock_aws():
        client = boto3.client("s3", region_name="us-east-1")
        client.create_bucket(Bucket=BUCKET)
        yield client


@pytest.fixture
def harness(tmp_path: Path, s3: Any) -> Harness:
    return Harness(tmp_path, s3)
