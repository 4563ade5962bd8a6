"""Link records: what ties a linked oid to its original in S3, validated at the edge.

A *link record* says where a linked object's bytes live: bucket, key, version id (when the
bucket is versioned), ETag and size, plus hints for reaching the source (region, endpoint,
unsigned access) and whether it is requester-pays (which a clone must opt in to: it is charged);
never credentials. Records come from this clone
(``<git common dir>/lfs-s3-agent/links/<oid>.json``) and from the shared store
(``<prefix>/links/<oid[0:2]>/<oid[2:4]>/<oid>.json``), so they are untrusted input: every
field is checked (``LinkRecord`` is a pydantic model) before any request is made for it.

Also here: reading an oid from S3's full-object SHA-256 checksum, and ``broken_link``, the
one message for an original that is gone or changed.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from collections.abc import Mapping
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictInt, StrictStr, ValidationError, field_validator

from lfs_s3_agent.errors import AgentError, Code, StoreError
from lfs_s3_agent.s3glob import BUCKET_RE

_ENDPOINT = re.compile(r"https?://([A-Za-z0-9.-]+|\[[0-9A-Fa-f:.]+\])(:\d{1,5})?/?")


class LinkRecord(BaseModel):
    """``{oid, size, bucket, key, version_id, etag, region, endpoint_url, unsigned[, request_payer]}``; frozen,
    strict. ``request_payer`` is written only when true, so records of other buckets stay as older agents wrote
    (and read) them."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    oid: Annotated[StrictStr, Field(pattern=r"^[0-9a-f]{64}$")]
    size: Annotated[StrictInt, Field(ge=0)]
    bucket: StrictStr
    key: Annotated[StrictStr, Field(min_length=1, max_length=1024)]
    version_id: Annotated[StrictStr, Field(max_length=1024)] | None = None
    etag: Annotated[StrictStr, Field(max_length=200)] | None = None
    region: Annotated[StrictStr, Field(pattern=r"^[a-z0-9-]{2,40}$")] | None = None
    endpoint_url: StrictStr | None = None
    unsigned: StrictBool = False
    #: the original is in a requester-pays bucket: a clone fetches it only once its user opted in to pay
    #: (git config lfs-s3-source.<bucket>.request-payer true); never a hint that applies by itself
    request_payer: StrictBool = False

    @field_validator("bucket")
    @classmethod
    def _bucket(cls, value: str) -> str:
        if not BUCKET_RE.fullmatch(value):
            raise ValueError("not a bucket name")
        return value

    @field_validator("key", "version_id", "etag")
    @classmethod
    def _printable(cls, value: str | None) -> str | None:
        if value is not None and any(ord(c) < 32 or ord(c) == 127 for c in value):
            raise ValueError("has control characters")
        return value

    @field_validator("endpoint_url")
    @classmethod
    def _endpoint(cls, value: str | None) -> str | None:
        if value is not None and not _ENDPOINT.fullmatch(value):
            raise ValueError("must be http(s)://host[:port] (no user info, path or query)")
        return value.rstrip("/") if value else value

    @property
    def url(self) -> str:
        return f"s3://{self.bucket}/{self.key}"

    def describe(self) -> str:
        return self.url + (f" (version {self.version_id})" if self.version_id else "")

    def hints(self) -> dict[str, Any]:
        """How the record says its source is reached (hints only: see ``settings.source_settings``)."""
        return {"region": self.region, "endpoint_url": self.endpoint_url, "unsigned": self.unsigned}

    def to_json(self) -> bytes:
        fields = self.model_dump()
        if not fields["request_payer"]:
            del fields["request_payer"]  # what older agents wrote, and all that they accept
        return json.dumps({"version": 1, **fields}, sort_keys=True, indent=1).encode("utf-8") + b"\n"

    @classmethod
    def from_json(cls, data: bytes, *, where: str) -> LinkRecord:
        """Parse and check a record; ``StoreError`` (code 51) naming ``where`` when it is not valid."""
        try:
            raw = json.loads(data)
            if not isinstance(raw, dict):
                raise ValueError("not a JSON object")
            if raw.pop("version", 1) != 1:
                raise ValueError("unknown record version")
            return cls.model_validate(raw)
        except (ValueError, TypeError, RecursionError) as exc:
            if isinstance(exc, ValidationError):
                detail = "; ".join(f"{'.'.join(str(p) for p in e['loc']) or 'record'}: {e['msg']}"
                                   for e in exc.errors()[:5])
            else:
                detail = str(exc)[:200]
            raise StoreError(f"{where}: not a valid link record ({detail})", code=Code.LINK_BROKEN) from None


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


def broken_link(record: LinkRecord, err: AgentError) -> AgentError:
    """Say plainly when the original is gone or changed (code 51); other errors pass through."""
    if err.code in (Code.NOT_FOUND, Code.INTEGRITY) or (record.version_id and err.status == 400):
        return StoreError(
            f"linked original {record.describe()} was deleted or overwritten since it was linked "
            f"(expected {record.size} bytes, ETag {record.etag}); restore it, or link the new version "
            "with `lfs-s3-agent link` and commit the new pointer", code=Code.LINK_BROKEN, s3_code=err.s3_code,
            status=err.status)
    return err
