"""Server-side copies (no object bytes pass through this machine) and how their result is checked.

``server_copy`` copies one object within an endpoint: ``CopyObject`` up to 5 GB (asking S3 for a
SHA-256 of the copy), ``UploadPartCopy`` above that (each part a ranged copy pinned to the
source's ETag). ``copy`` (the store to another place) and ``import`` (S3 objects into the
store) both use it.

A copy is only as good as its check. S3 computes a full-object SHA-256 for a ``CopyObject`` with
``ChecksumAlgorithm=SHA256`` and returns it; some stores (Ceph RGW 16) return none, and a
multipart copy never has one. ``checked`` decides: the checksum when there is one, else a
*verification read* (the copy streamed and hashed, which costs a download), else the copy is
reported as unverified; a copy whose bytes are not the oid is removed and is an error.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from lfs_s3_agent.errors import AgentError, IntegrityError
from lfs_s3_agent.s3.keys import checksum_of
from lfs_s3_agent.s3.retry import Attempts
from lfs_s3_agent.s3.transfer import PartPlan, hash_object

if TYPE_CHECKING:
    from lfs_s3_agent.s3.client import S3Client

SERVER_COPY_LIMIT = 5 * 1000**3  #: CopyObject's largest source; above it, UploadPartCopy
COPY_PART_SIZE = 512 << 20  #: part size of a server-side multipart copy (no bytes pass through here)
#: S3 error codes that mean "this store cannot copy server-side": copy through this machine instead
NO_SERVER_COPY = frozenset({"NotImplemented", "XAmzContentSHA256Mismatch"})

#: How a copy's bytes were checked: S3's SHA-256 of the copy, reading the copy back, hashed on the way
#: through this machine, the ETag of a small record, or not at all.
VERIFIED_BY = ("checksum", "read", "hashed", "etag")
UNVERIFIED = "unverified"


@dataclass(frozen=True)
class CopySource:
    """An object to copy from, pinned to what was seen of it (its version, else its ETag)."""

    bucket: str
    key: str
    version_id: str | None = None
    etag: str | None = None

    @property
    def url(self) -> str:
        return f"s3://{self.bucket}/{self.key}"

    def arg(self) -> dict[str, str]:
        """``CopySource=`` for CopyObject and UploadPartCopy."""
        out = {"Bucket": self.bucket, "Key": self.key}
        if self.version_id:
            out["VersionId"] = self.version_id
        return out

    def pin(self) -> dict[str, str]:
        """``CopySourceIfMatch`` when the source is pinned by its ETag (a version id pins by itself)."""
        return {"CopySourceIfMatch": self.etag} if self.etag and not self.version_id else {}


@dataclass(frozen=True)
class CopyResult:
    """What a server-side copy reported: its way, its ETag, and S3's SHA-256 of it (base64) if any."""

    how: str  #: "server-side" or "server-side multipart"
    checksum: str | None
    etag: str | None


def server_copy(client: S3Client, source: CopySource, *, bucket: str, key: str, size: int, args: dict[str, Any],
                part_size: int, concurrency: int) -> CopyResult:
    """Copy ``source`` to ``bucket``/``key`` with the destination's ``client``; ``args`` are the new object's
    (content type, metadata, encryption, storage class). A requester-pays source needs a client that says the
    requester pays (``ClientSpec.request_payer``): the copy reads the source."""
    if size > SERVER_COPY_LIMIT:
        _multipart_copy(client, source, bucket=bucket, key=key, size=size, args=args,
                        part_size=max(part_size, COPY_PART_SIZE), concurrency=concurrency)
        return CopyResult("server-side multipart", None, None)  # a composite at best: never the object's SHA-256
    resp = client.copy_object(Bucket=bucket, Key=key, CopySource=source.arg(), MetadataDirective="REPLACE",
                              ChecksumAlgorithm="SHA256", **source.pin(), **args)
    result = resp.get("CopyObjectResult", {})
    got = result.get("ChecksumSHA256")
    composite = got is not None and ("-" in got or result.get("ChecksumType") == "COMPOSITE")
    return CopyResult("server-side", None if composite else got, result.get("ETag"))


def _multipart_copy(client: S3Client, source: CopySource, *, bucket: str, key: str, size: int, args: dict[str, Any],
                    part_size: int, concurrency: int) -> None:
    plan = PartPlan.make(size, part_size, concurrency)
    pin = source.pin()
    if not pin and not source.version_id:  # pin the parts to one version of an unpinned source
        head = client.head_object(Bucket=source.bucket, Key=source.key)
        pin = {"CopySourceIfMatch": head["ETag"]}
    upload_id = client.create_multipart_upload(Bucket=bucket, Key=key, ChecksumAlgorithm="SHA256",
                                               **args)["UploadId"]

    def part(number: int, offset: int, length: int) -> dict[str, Any]:
        resp = client.upload_part_copy(Bucket=bucket, Key=key, UploadId=upload_id, PartNumber=number,
                                       CopySource=source.arg(), CopySourceRange=f"bytes={offset}-{offset + length - 1}",
                                       **pin)
        result = resp["CopyPartResult"]
        done = {"PartNumber": number, "ETag": result["ETag"]}
        if result.get("ChecksumSHA256"):
            done["ChecksumSHA256"] = result["ChecksumSHA256"]
        return done

    try:
        with ThreadPoolExecutor(plan.concurrency, thread_name_prefix="copy-part") as pool:
            parts = list(pool.map(lambda p: part(*p), plan.parts()))
        client.complete_multipart_upload(Bucket=bucket, Key=key, UploadId=upload_id, MultipartUpload={"Parts": parts})
    except BaseException:
        with contextlib.suppress(Exception):  # best effort: gc aborts stale uploads
            client.abort_multipart_upload(Bucket=bucket, Key=key, UploadId=upload_id)
        raise


def checked(result: CopyResult, oid: str, *, read: Callable[[], str] | None, where: str,
            discard: Callable[[], None], fix: str = "") -> str:
    """How a server-side copy of ``oid`` is known to be right: "checksum", "read" or "unverified".

    S3's SHA-256 of the copy decides when there is one; without one, ``read()`` (a verification
    read: the copy's SHA-256, read back) does, and without ``read`` the copy is "unverified". A copy
    whose bytes are not the oid is removed (``discard``) and ``IntegrityError`` names ``where`` (and ``fix``).
    """
    if result.checksum is not None:
        if result.checksum == checksum_of(oid):
            return "checksum"
        got = f"S3 computed another SHA-256 ({result.checksum}) while copying"
    elif read is None:
        return UNVERIFIED
    else:
        try:
            digest = read()
        except IntegrityError as err:
            got = err.message
        else:
            if digest == oid:
                return "read"
            got = f"the copy reads back as SHA-256 {digest}"
    discard()
    raise IntegrityError(f"{where}: its bytes do not hash to the oid {oid} ({got}); the copy was removed"
                         + (f": {fix}" if fix else ""))


def read_back(client: S3Client, *, bucket: str, key: str, size: int, max_attempts: int) -> Callable[[], str]:
    """A verification read of a copy: stream it through SHA-256, keeping nothing (bounded memory)."""
    def read() -> str:
        return hash_object(client, bucket=bucket, key=key, size=size, attempts=Attempts(max_attempts), extra={})

    return read


def discarder(client: S3Client, bucket: str, key: str) -> Callable[[], None]:
    """Remove a bad copy, best effort (the integrity error itself is what is reported)."""
    def discard() -> None:
        with contextlib.suppress(AgentError):
            client.delete_object(Bucket=bucket, Key=key)

    return discard
