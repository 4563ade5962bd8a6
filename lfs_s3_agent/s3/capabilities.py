"""What a store really does with the S3 features the agent relies on: found out by a probe, not assumed.

S3-compatible stores differ quietly (issue 13, measured on Ceph RGW 16 and behind proxies that act as
public reports describe Backblaze B2 and older MinIO):

- ``If-None-Match: *`` on PUT is honoured before the body (S3: the 412 comes instead of ``100
  Continue``), only after the whole body was sent (RGW, moto), or ignored (RGW on a versioned bucket);
- ``x-amz-checksum-*`` headers are accepted or refused (B2);
- a full-object SHA-256 given on upload is kept and returned by HEAD (S3, moto) or dropped (RGW 16);
- a wrong checksum is refused (S3) or accepted (RGW 16);
- ``ServerSideEncryption`` is applied and echoed, silently not applied (RGW over https without a key
  configured), or refused (RGW over http);
- DeleteObjects needs ``Content-MD5`` (older MinIO/Ceph) or takes any checksum (S3).

``probe`` writes one small object under the prefix (``.lfs-s3-agent-probe-<random>``; a foreign key,
never an oid), asks, and deletes it: 4 requests for what the agent adapts to (``full=True`` adds the
rest for ``doctor``, 3-4 more). ``CapabilityCache`` keeps the answer in the repository
(``<lfs dir>/lfs-s3-agent/capabilities.json``) for ``MAX_AGE`` per store and configuration, so a
push probes once a day, not once per process; the shared worker keeps it in memory.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import json
import logging
import os
import secrets
import sys
import time
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import TYPE_CHECKING, Any

from lfs_s3_agent.errors import CONTENT_MD5_REQUIRED, AgentError
from lfs_s3_agent.s3.keys import list_prefix

if TYPE_CHECKING:
    from types import FrameType

    from lfs_s3_agent.s3.client import S3Client

log = logging.getLogger(__name__)

PROBE_NAME = ".lfs-s3-agent-probe-"
MAX_AGE = 86400.0  #: seconds a probe's answer is trusted (a bucket's versioning may be switched on later)

#: On a store that answers If-None-Match only after the body, objects larger than this are asked about
#: with a HEAD first. Below it a wasted body costs less than the HEAD's round trip that every new object
#: would pay: 1 MiB is ~80 ms at 100 Mbit/s, the round trip to a remote region 20-80 ms; and most
#: uploads are new objects (git-lfs asks only for objects the remote-tracking refs don't have).
HEAD_FIRST_ABOVE = 1 << 20

BEFORE_BODY, AFTER_BODY, IGNORED = "before-body", "after-body", "ignored"
APPLIED, NOT_APPLIED, REFUSED, NOT_ASKED = "applied", "not-applied", "refused", "not-asked"


@dataclass(frozen=True)
class Capabilities:
    """One store's answers (None: not probed, ``full=False``)."""

    if_none_match: str = BEFORE_BODY  #: BEFORE_BODY, AFTER_BODY or IGNORED
    checksum_headers: bool = True  #: the store takes x-amz-checksum-* headers
    keeps_checksums: bool = True  #: a full-object SHA-256 given on upload comes back from HEAD
    sse: str = NOT_ASKED  #: APPLIED, NOT_APPLIED, REFUSED (the request failed with it, worked without) or NOT_ASKED
    verifies_checksums: bool | None = None  #: a wrong x-amz-checksum-sha256 is refused
    delete_needs_md5: bool | None = None  #: DeleteObjects without Content-MD5 is refused
    versioning: str | None = None  #: the bucket's versioning: "Enabled", "Suspended", "off"; None: unknown
    probed_at: float = 0.0

    def head_first(self, size: int) -> bool:
        """Should an upload of ``size`` bytes ask with a HEAD before its PUT?"""
        if self.if_none_match == IGNORED:
            return True
        return self.if_none_match == AFTER_BODY and size > HEAD_FIRST_ABOVE

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: Any) -> Capabilities | None:
        """From a cache entry; None when it is not one (another version, edited by hand)."""
        if not isinstance(data, dict):
            return None
        known = {f.name for f in fields(cls)}
        try:
            caps = cls(**{k: v for k, v in data.items() if k in known})
        except TypeError:
            return None
        if caps.if_none_match not in (BEFORE_BODY, AFTER_BODY, IGNORED) or not isinstance(caps.probed_at, float | int):
            return None
        return caps

    def lines(self, sse_setting: str) -> list[str]:
        """What each answer means, one line each (for ``doctor``)."""
        inm = {BEFORE_BODY: "honoured before the body is sent: one PUT per new object, none for stored ones",
               AFTER_BODY: "honoured only after the body is sent: objects above "
                           f"{HEAD_FIRST_ABOVE >> 20} MiB are asked about with a HEAD first",
               IGNORED: "ignored (e.g. a versioned bucket on Ceph RGW): every upload asks with a HEAD first"}
        out = [f"If-None-Match: {inm[self.if_none_match]}"]
        if self.versioning is not None:
            out.append(f"bucket versioning: {self.versioning}")
        out.append("checksum headers: " + ("accepted" if self.checksum_headers else
                                           "refused: the agent sends none (--checksums none) and checks every "
                                           "object's SHA-256 itself"))
        out.append("keeps checksums: " + ("yes" if self.keeps_checksums else
                                          "no: `link` needs --hash-missing; `copy` verifies by reading"))
        if self.verifies_checksums is not None:
            out.append("verifies checksums: " + ("yes" if self.verifies_checksums else
                                                 "no: a wrong x-amz-checksum-sha256 was accepted"))
        if self.delete_needs_md5 is not None:
            out.append("DeleteObjects: " + ("requires Content-MD5" if self.delete_needs_md5 else
                                            "takes boto3's checksum") + " (the agent always sends Content-MD5)")
        if sse_setting != "none":
            out.append(f"server-side encryption ({sse_setting}): {self.sse}")
        return out


def fingerprint(*, endpoint: str | None, region: str | None, bucket: str, prefix: str, sse: str,
                sse_kms_key_id: str | None, checksums: str) -> str:
    """What a probe's answer depends on: a change in any of these probes again."""
    text = json.dumps([endpoint or "aws", region, bucket, prefix, sse, sse_kms_key_id, checksums])
    return hashlib.sha256(text.encode()).hexdigest()[:32]


class _WatchedBody:
    """A request body that tells whether its bytes went out (after ``100 Continue``) or were dropped.

    urllib3 reads a file-like body whatever happens; botocore's connection drops the bytes when the
    server has already answered the ``Expect: 100-continue`` with a final status (botocore
    ``awsrequest.AWSConnection.send``, ``_response_received``). So the first read looks up the
    connection that reads it: ``sent`` is False when that answer had come (a 412 before the body),
    True otherwise, including when the connection cannot be found (the cautious answer: HEAD first).
    """

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.pos = 0
        self.sent: bool | None = None  #: None: never read

    def read(self, size: int = -1) -> bytes:
        if self.sent is None:
            self.sent = not _response_already_received()
        end = len(self.data) if size is None or size < 0 else min(len(self.data), self.pos + size)
        chunk = self.data[self.pos:end]
        self.pos = end
        return chunk

    def seek(self, offset: int, whence: int = 0) -> int:
        self.pos = offset if whence == 0 else (self.pos + offset if whence == 1 else len(self.data) + offset)
        return self.pos

    def tell(self) -> int:
        return self.pos


def _response_already_received() -> bool:
    """Has the connection reading a request body (up the stack) already had its final answer?"""
    frame: FrameType | None = sys._getframe(2)
    for _ in range(16):
        if frame is None:
            break
        owner = frame.f_locals.get("self")
        if owner is not None and hasattr(owner, "_response_received"):
            return bool(owner._response_received)
        frame = frame.f_back
    return False


def probe(client: S3Client, *, bucket: str, prefix: str, sse_args: dict[str, Any], full: bool = False) -> Capabilities:
    """Ask the store (a small object under ``prefix``, deleted afterwards); ``AgentError`` when it cannot be
    written at all (the caller's upload would fail the same way).

    ``sse_args``: the ``ServerSideEncryption``/``SSEKMSKeyId`` arguments uploads carry ({} for none).
    ``full`` also asks what only ``doctor`` shows (bucket versioning, checksum verification, DeleteObjects).
    """
    from lfs_s3_agent.s3.transfer import precondition_failed

    key = f"{list_prefix(prefix)}{PROBE_NAME}{secrets.token_hex(8)}"
    body = b"lfs-s3-agent capability probe " + secrets.token_bytes(16)
    checksum = base64.b64encode(hashlib.sha256(body).digest()).decode()
    # The algorithm header as well: S3 keeps a checksum given as a value alone, moto only with it.
    with_checksum = {"ChecksumSHA256": checksum, "ChecksumAlgorithm": "SHA256"}
    base = {"Bucket": bucket, "Key": key, "ContentType": "application/octet-stream"}
    written: list[tuple[str, str | None]] = []  # (key, version id): each version made is removed again
    try:
        sse = NOT_ASKED
        try:
            resp = client.put_object(**base, Body=body, **with_checksum, **sse_args)
        except AgentError as err:
            if not sse_args or err.status != 400:
                raise
            resp = client.put_object(**base, Body=body, **with_checksum)  # works: SSE was the cause
            sse, sse_args = REFUSED, {}
        written.append((key, resp.get("VersionId")))
        checksum_headers = client.checksum_headers  # the client stops sending them where they were refused
        if sse_args and sse != REFUSED:
            sse = APPLIED if resp.get("ServerSideEncryption") == sse_args["ServerSideEncryption"] else NOT_APPLIED
        keeps = False
        if checksum_headers:
            keeps = client.head_object(Bucket=bucket, Key=key, ChecksumMode="ENABLED").get("ChecksumSHA256") == checksum
        watched = _WatchedBody(body)
        try:
            again = client.put_object(**base, Body=watched, ContentLength=len(body), IfNoneMatch="*",
                                      **(with_checksum if checksum_headers else {}), **sse_args)
            written.append((key, again.get("VersionId")))
            inm = IGNORED
        except AgentError as err:
            if not precondition_failed(err):
                raise
            inm = AFTER_BODY if watched.sent is not False else BEFORE_BODY
        caps = Capabilities(if_none_match=inm, checksum_headers=checksum_headers, keeps_checksums=keeps, sse=sse,
                            probed_at=time.time())
        if full:
            caps = _ask_more(client, caps, bucket=bucket, key=key, body=body, base=base, sse_args=sse_args,
                             written=written)
    finally:
        _remove(client, bucket, written)
    return caps


def _remove(client: S3Client, bucket: str, written: list[tuple[str, str | None]]) -> None:
    """Delete what the probe wrote: each version by its id (a versioned bucket keeps no trace, if allowed)."""
    for name, version in written:
        try:
            client.delete_object(Bucket=bucket, Key=name, **({"VersionId": version} if version else {}))
        except AgentError as err:
            if version:
                with contextlib.suppress(AgentError):
                    client.delete_object(Bucket=bucket, Key=name)
                    continue
            log.info("the capability probe s3://%s/%s was left in place: %s", bucket, name, err.message)


def _ask_more(client: S3Client, caps: Capabilities, *, bucket: str, key: str, body: bytes, base: dict[str, Any],
              sse_args: dict[str, Any], written: list[tuple[str, str | None]]) -> Capabilities:
    """``doctor``'s extra questions; each one that cannot be asked stays None."""
    from dataclasses import replace

    from lfs_s3_agent.s3.client import make_client

    versioning: str | None = None
    with contextlib.suppress(AgentError):
        versioning = client.get_bucket_versioning(Bucket=bucket).get("Status") or "off"
    verifies: bool | None = None
    if caps.checksum_headers:
        wrong = base64.b64encode(hashlib.sha256(b"not the body").digest()).decode()
        other = key + "-wrong"
        try:
            accepted = client.put_object(**{**base, "Key": other}, Body=body, ChecksumSHA256=wrong,
                                         ChecksumAlgorithm="SHA256", **sse_args)
            written.append((other, accepted.get("VersionId")))
            verifies = False
        except AgentError as err:
            verifies = True if err.status == 400 else None
    needs_md5: bool | None = None
    plain = make_client(client.spec)
    plain.delete_md5 = False  # the Content-MD5 every client of the agent adds is what is being asked about
    plain.checksum_headers = client.checksum_headers
    spare = key + "-delete"
    with contextlib.suppress(AgentError):
        made = client.put_object(**{**base, "Key": spare}, Body=b"", **sse_args)
        entry = (spare, made.get("VersionId"))
        written.append(entry)
        try:
            one = {"Key": spare, **({"VersionId": entry[1]} if entry[1] else {})}
            plain.delete_objects(Bucket=bucket, Delete={"Objects": [one], "Quiet": True})
            written.remove(entry)
            needs_md5 = False
        except AgentError as err:
            needs_md5 = True if err.incompatible == CONTENT_MD5_REQUIRED else None
    return replace(caps, versioning=versioning, verifies_checksums=verifies, delete_needs_md5=needs_md5)


class CapabilityCache:
    """Probe answers kept in a JSON file, per store fingerprint (a missing or unreadable file is an empty cache)."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def _entries(self) -> dict[str, Any]:
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return {}
        return data if isinstance(data, dict) else {}

    def get(self, key: str, *, now: float | None = None) -> Capabilities | None:
        caps = Capabilities.from_json(self._entries().get(key))
        if caps is None or (now or time.time()) - caps.probed_at > MAX_AGE:
            return None
        return caps

    def put(self, key: str, caps: Capabilities) -> None:
        """Record an answer (best effort: a cache that cannot be written only means probing again)."""
        entries = self._entries()
        entries[key] = caps.to_json()
        tmp = self.path.with_name(f"{self.path.name}.{os.getpid()}.tmp")
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            tmp.write_text(json.dumps(entries, indent=1, sort_keys=True), encoding="utf-8")
            os.replace(tmp, self.path)
        except OSError as exc:
            log.info("cannot record the store's capabilities in %s: %s", self.path, exc)
            with contextlib.suppress(OSError):
                tmp.unlink()
