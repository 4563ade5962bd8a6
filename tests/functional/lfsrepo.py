"""A git repository whose commits carry LFS pointer files, with the objects put straight into (mock) S3.

No git-lfs filter is involved: the pointer text is committed as it is, which is exactly what
git-lfs would have committed, so the maintenance commands see a real history in milliseconds.
"""

from __future__ import annotations

import hashlib
import subprocess
from pathlib import Path
from typing import Any

from lfs_s3_agent.links import LinkRecord
from lfs_s3_agent.pointer import Pointer
from lfs_s3_agent.s3.keys import link_key

BUCKET = "lfs-test"


def oid_of(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def object_key(prefix: str, oid: str) -> str:
    """The documented layout, written out independently of the agent's code."""
    return f"{prefix}/{oid[0:2]}/{oid[2:4]}/{oid}" if prefix else f"{oid[0:2]}/{oid[2:4]}/{oid}"


class LfsRepo:
    def __init__(self, path: Path, s3: Any, *, prefix: str = "repo", bucket: str = BUCKET,
                 init: bool = True) -> None:
        self.path = path
        self.s3 = s3
        self.prefix = prefix
        self.bucket = bucket
        if init:
            subprocess.run(["git", "init", "-q", str(path)], check=True)
            self.git("config", "lfs-s3-agent.bucket", bucket)
            self.git("config", "lfs-s3-agent.prefix", prefix)

    def git(self, *args: str) -> str:
        proc = subprocess.run(["git", *args], cwd=self.path, capture_output=True, text=True, check=False)
        assert proc.returncode == 0, f"git {' '.join(args)}: {proc.stderr}"
        return proc.stdout

    def key(self, oid: str) -> str:
        return object_key(self.prefix, oid)

    def store(self, data: bytes, *, oid: str | None = None, metadata: bool = True) -> str:
        """Put bytes into the store as the agent would (``sha256`` metadata), under ``oid`` (default: their hash)."""
        oid = oid or oid_of(data)
        self.s3.put_object(Bucket=self.bucket, Key=self.key(oid), Body=data,
                           Metadata={"sha256": oid} if metadata else {})
        return oid

    def write(self, name: str, data: bytes, *, store: bool = True) -> Pointer:
        """Write the pointer for ``data`` at ``name`` (and store the bytes unless told not to)."""
        pointer = Pointer(oid_of(data), len(data))
        path = self.path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(pointer.encode())
        if store:
            self.store(data)
        return pointer

    def link(self, name: str, data: bytes, source_bucket: str, source_key: str, *,
             record_in_store: bool = True) -> LinkRecord:
        """Put ``data`` in a source bucket and commit-ready pointer + link record for it (no stored bytes)."""
        self.s3.put_object(Bucket=source_bucket, Key=source_key, Body=data)
        head = self.s3.head_object(Bucket=source_bucket, Key=source_key)
        version = head.get("VersionId")
        record = LinkRecord(oid=oid_of(data), size=len(data), bucket=source_bucket, key=source_key,
                            version_id=version if version not in (None, "null") else None, etag=head["ETag"])
        self.write(name, data, store=False)
        if record_in_store:
            self.s3.put_object(Bucket=self.bucket, Key=link_key(self.prefix, record.oid), Body=record.to_json())
        return record

    def commit(self, message: str) -> str:
        self.git("add", "-A")
        self.git("commit", "-qm", message)
        return self.git("rev-parse", "HEAD").strip()

    def all_keys(self) -> set[str]:
        out: set[str] = set()
        for page in self.s3.get_paginator("list_objects_v2").paginate(Bucket=self.bucket):
            out.update(obj["Key"] for obj in page.get("Contents", []))
        return out
