"""Linked objects: files that stay where they already live in S3, versioned by LFS pointer.

A *link record* ties an oid to its original: bucket, key, version id (when the bucket is
versioned), ETag and size, plus hints for reaching the source (region, endpoint, unsigned
access); never credentials. Records live in two places:

- locally, at ``<git common dir>/lfs-s3-agent/links/<oid>.json``, written by ``link`` and
  by any download that resolved a link (so a later push knows without asking S3);
- in the LFS store, at ``<prefix>/links/<oid[0:2]>/<oid[2:4]>/<oid>.json``, written by the
  push that carries the pointer (instead of the bytes), and read by every clone's download
  when the oid's own key is absent.

The original is fetched by version id when known, else pinned to the recorded ETag, so an
original that was overwritten or deleted is reported by URL and never served as the object.
"""

from __future__ import annotations

import base64
import binascii
import json
import os
import re
import tempfile
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from lfs_s3_agent import gitrepo
from lfs_s3_agent.errors import AgentError, Code, StoreError
from lfs_s3_agent.pointer import is_oid

SOURCE_SECTION = "lfs-s3-source"
#: botocore Config arguments for stores that reject boto3's default CRC32 checksums.
_WHEN_REQUIRED: dict[str, Any] = {"request_checksum_calculation": "when_required",
                                  "response_checksum_validation": "when_required"}


@dataclass(frozen=True)
class LinkRecord:
    oid: str
    size: int
    bucket: str
    key: str
    version_id: str | None = None
    etag: str | None = None
    region: str | None = None
    endpoint_url: str | None = None
    unsigned: bool = False

    @property
    def url(self) -> str:
        return f"s3://{self.bucket}/{self.key}"

    def describe(self) -> str:
        return self.url + (f" (version {self.version_id})" if self.version_id else "")

    def to_json(self) -> bytes:
        return json.dumps({"version": 1, **asdict(self)}, sort_keys=True, indent=1).encode("utf-8") + b"\n"

    @classmethod
    def from_json(cls, data: bytes, *, where: str) -> LinkRecord:
        try:
            raw = json.loads(data)
            raw.pop("version", None)
            record = cls(**raw)
        except (ValueError, TypeError) as exc:
            raise StoreError(f"{where}: not a valid link record ({exc})", code=Code.LINK_BROKEN) from None
        if not is_oid(record.oid) or not isinstance(record.size, int) or record.size < 0:
            raise StoreError(f"{where}: link record has an invalid oid or size", code=Code.LINK_BROKEN)
        return record


def link_key(prefix: str, oid: str) -> str:
    tail = f"links/{oid[0:2]}/{oid[2:4]}/{oid}.json"
    return f"{prefix}/{tail}" if prefix else tail


def local_links_dir(common_dir: Path) -> Path:
    return common_dir / "lfs-s3-agent" / "links"


class LocalLinks:
    """The link records this clone knows, one JSON file per oid."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory

    def path(self, oid: str) -> Path:
        return self.directory / f"{oid}.json"

    def get(self, oid: str) -> LinkRecord | None:
        try:
            data = self.path(oid).read_bytes()
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise StoreError(f"cannot read link record {self.path(oid)}: {exc}", code=Code.LOCAL_FILE) from None
        return LinkRecord.from_json(data, where=str(self.path(oid)))

    def put(self, record: LinkRecord) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=self.directory, prefix=".tmp-")
        try:
            with os.fdopen(fd, "wb") as fh:
                fh.write(record.to_json())
            os.replace(tmp, self.path(record.oid))
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    def any(self) -> bool:
        return self.directory.is_dir() and any(self.directory.glob("*.json"))


# -- full-object SHA-256 from HEAD ---------------------------------------------------------------

_PART_SUFFIX = re.compile(r"-\d+\"?$")


def full_object_sha256(head: Mapping[str, Any]) -> tuple[str | None, str]:
    """The oid from a ``head_object(ChecksumMode="ENABLED")`` answer, or (None, why not).

    A multipart object's ChecksumSHA256 is COMPOSITE (a hash of part hashes, ``<b64>-N``),
    not the file's SHA-256: it is detected and refused rather than recorded as the oid.
    """
    value = head.get("ChecksumSHA256")
    if not value:
        return None, "no SHA-256 checksum"
    kind = head.get("ChecksumType")
    etag = str(head.get("ETag", ""))
    if kind == "COMPOSITE" or "-" in value or (kind != "FULL_OBJECT" and _PART_SUFFIX.search(etag)):
        return None, "a composite (multipart) SHA-256, not the whole object's"
    try:
        digest = base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        return None, f"an unreadable SHA-256 checksum {value!r}"
    if len(digest) != 32:
        return None, f"an unreadable SHA-256 checksum {value!r}"
    return digest.hex(), ""


# -- reaching source buckets ---------------------------------------------------------------------

def truthy(value: str | None) -> bool:
    return (value or "").strip().lower() in ("1", "true", "yes", "on")


@dataclass(frozen=True)
class SourceSettings:
    """How to reach one source bucket; per bucket, since sources may differ from the LFS store."""

    region: str | None = None
    endpoint_url: str | None = None
    profile: str | None = None
    unsigned: bool = False
    sources: dict[str, str] = field(default_factory=dict, compare=False, hash=False)


def source_settings(bucket: str, *, flags: Mapping[str, Any] | None = None, record: LinkRecord | None = None,
                    cwd: str | os.PathLike[str] | None = None, env: Mapping[str, str] | None = None
                    ) -> SourceSettings:
    """Flags > git config ``lfs-s3-source.<bucket>.*`` > the link record's hints > ``AWS_NO_SIGN_REQUEST``."""
    env = os.environ if env is None else env
    values: dict[str, Any] = {"unsigned": truthy(env.get("AWS_NO_SIGN_REQUEST"))}
    if record is not None:
        values.update(region=record.region, endpoint_url=record.endpoint_url, unsigned=record.unsigned
                      or values["unsigned"])
    prefix = f"{SOURCE_SECTION}.{bucket}."
    names = {"region": "region", "endpoint-url": "endpoint_url", "profile": "profile",
             "no-sign-request": "unsigned"}
    try:
        pairs = gitrepo.read_config(rf"^{re.escape(prefix)}", cwd=cwd)
    except AgentError:
        pairs = []
    for key, value in pairs:
        name = names.get(key[len(prefix):])
        if name:
            values[name] = truthy(value) if name == "unsigned" else value
    for name, value in (flags or {}).items():
        if value is not None and value is not False:
            values[name] = value
    return SourceSettings(region=values.get("region"), endpoint_url=values.get("endpoint_url"),
                          profile=values.get("profile"), unsigned=bool(values.get("unsigned")))


def make_source_client(source: SourceSettings, *, max_attempts: int = 5, timeout: int = 60,
                       checksums_when_required: bool = False) -> Any:
    """A boto3 client for a source bucket: its own region/endpoint/profile, or unsigned for public data."""
    import botocore.session
    from botocore import UNSIGNED
    from botocore.config import Config

    config = Config(
        retries={"max_attempts": max_attempts, "mode": "standard"},
        connect_timeout=timeout, read_timeout=timeout,
        s3={"addressing_style": "path" if source.endpoint_url else "auto", "payload_signing_enabled": False},
        max_pool_connections=32,
        **({"signature_version": UNSIGNED} if source.unsigned else {}),
        **(_WHEN_REQUIRED if checksums_when_required else {}),
    )
    session = botocore.session.Session(profile=None if source.unsigned else source.profile)
    return session.create_client("s3", region_name=source.region, endpoint_url=source.endpoint_url, config=config)


def broken_link(record: LinkRecord, err: AgentError) -> AgentError:
    """Say plainly when the original is gone or changed; other errors pass through."""
    message = err.message
    if err.code == Code.NOT_FOUND or "NoSuchVersion" in message or err.code == Code.INTEGRITY:
        return StoreError(
            f"linked original {record.describe()} was deleted or overwritten since it was linked "
            f"(expected {record.size} bytes, ETag {record.etag}); restore it, or link the new version "
            "with `lfs-s3-agent link` and commit the new pointer", code=Code.LINK_BROKEN)
    return err
