"""Moving bytes between files and S3 while hashing and counting them.

``HashingReader`` is the body of an upload: it streams the file, feeds progress,
and at end of file checks the bytes against the oid and size. A mismatch raises
before the last byte is handed to the HTTP layer, so S3 never receives a complete
body and no object with the wrong content is created, even on stores that do not
check ``x-amz-checksum-sha256``. ``multipart_upload`` and ``ranged_download`` move large
objects in parallel parts with bounded memory; ``fetch`` is the one download path (the
store's objects, linked originals, ``verify --deep``, ``link --hash-missing``).

Every request goes through ``client.S3Client`` (translation and retries); what must go on
after a response (a body that breaks off, bytes that fail their SHA-256) shares the
request's ``retry.Attempts`` budget. Errors writing the local file are ``LocalFileError``
(code 41), never retried as network errors.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import io
import itertools
import logging
import os
import stat
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, cast

from lfs_s3_agent.errors import AgentError, Code, IntegrityError, LocalFileError
from lfs_s3_agent.progress import ProgressReporter
from lfs_s3_agent.s3.keys import b64sha256
from lfs_s3_agent.s3.retry import Attempts

if TYPE_CHECKING:
    from lfs_s3_agent.s3.client import S3Client
    from lfs_s3_agent.s3.public import PublicClient

    Reader = S3Client | PublicClient  #: where downloads come from: S3, or a public URL (s3/public.py)

CHUNK = 1 << 20

log = logging.getLogger(__name__)


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
        self.failure: AgentError | None = None  #: why reading stopped (the HTTP layer may wrap what we raise)

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
        try:
            data = self._file.read(want)
        except OSError as exc:
            self.failure = LocalFileError(f"{self._label}: cannot read the object to upload ({exc.strerror or exc}); "
                                          "nothing was stored")
            raise self.failure from None
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
        try:
            self._check(extra)
        except AgentError as exc:
            self.failure = exc
            raise

    def _check(self, extra: bytes) -> None:
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


# -- multipart upload and ranged download ------------------------------------------------------

MiB = 1 << 20
MIN_PART = 5 * MiB  #: S3's smallest part (except the last)
MAX_PART = 5 * 1024 * MiB  #: S3's largest part
MAX_PARTS = 10_000  #: S3's most parts per upload
MAX_OBJECT = 5 * 1024 * 1024 * MiB  #: 5 TiB


@dataclass(frozen=True)
class PartPlan:
    """How an object is cut into parts and how many are in flight at once."""

    size: int
    part_size: int
    concurrency: int

    @classmethod
    def make(cls, size: int, part_size: int, concurrency: int, *, minimum: int = MIN_PART) -> PartPlan:
        """Grow the part size so ``size`` fits in 10,000 parts; shrink concurrency to keep memory.

        Memory in flight stays within the configured ``concurrency * part_size`` (or one part when
        a huge object needs parts bigger than that budget).
        """
        if size > MAX_OBJECT:
            raise AgentError(f"an object of {size} bytes is larger than S3's 5 TiB limit", code=Code.LOCAL_FILE)
        needed = -(-size // MAX_PARTS)  # ceil
        needed = -(-needed // MiB) * MiB  # whole MiB, so plans are stable across runs
        part = min(MAX_PART, max(part_size, minimum, needed))
        budget = max(part, concurrency * part_size)
        return cls(size=size, part_size=part, concurrency=max(1, min(concurrency, budget // part)))

    def parts(self) -> list[tuple[int, int, int]]:
        """(part number from 1, offset, length) for every part."""
        return [(n + 1, off, min(self.part_size, self.size - off))
                for n, off in enumerate(range(0, self.size, self.part_size))]


class PartBody(io.RawIOBase):
    """An in-memory part as a request body; progress counts each byte once, even if re-sent."""

    def __init__(self, data: bytes, progress: ProgressReporter | None) -> None:
        super().__init__()
        self._view = memoryview(data)
        self._pos = 0
        self._counted = 0
        self._progress = progress

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def __len__(self) -> int:
        return len(self._view)

    def tell(self) -> int:
        return self._pos

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._pos, io.SEEK_END: len(self._view)}[whence]
        self._pos = max(0, min(len(self._view), base + offset))
        return self._pos

    def read(self, n: int | None = -1) -> bytes:
        end = len(self._view) if n is None or n < 0 else min(len(self._view), self._pos + n)
        data = self._view[self._pos:end].tobytes()
        self._pos = end
        if self._progress is not None and end > self._counted:
            self._progress.add(end - self._counted)
            self._counted = end
        return data

    def readinto(self, buffer: bytearray | memoryview) -> int:  # type: ignore[override]
        data = self.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)


@dataclass
class UploadStats:
    parts_sent: int = 0
    parts_reused: int = 0
    upload_id: str = ""
    raced: bool = False  #: another push stored the object first; ours was not needed


def precondition_failed(err: AgentError) -> bool:
    """Did S3 refuse a conditional request (If-None-Match / If-Match) with 412?"""
    return err.status == 412 or err.s3_code in ("PreconditionFailed", "412")


def _aborted(client: S3Client, bucket: str, key: str, upload_id: str) -> None:
    with contextlib.suppress(AgentError):  # best effort: gc also aborts stale uploads
        client.abort_multipart_upload(Bucket=bucket, Key=key, UploadId=upload_id)


def paginate(client: S3Client, op: str, items: str, **args: Any) -> list[dict[str, Any]]:
    """Every ``items`` entry of a listing operation, page after page (each page retried on its own)."""
    out: list[dict[str, Any]] = []
    markers: dict[str, Any] = {}
    follow = {"list_multipart_uploads": (("NextKeyMarker", "KeyMarker"), ("NextUploadIdMarker", "UploadIdMarker")),
              "list_parts": (("NextPartNumberMarker", "PartNumberMarker"),),
              "list_objects_v2": (("NextContinuationToken", "ContinuationToken"),)}[op]
    while True:
        page = client.call(op, **args, **markers)
        out.extend(page.get(items, []))
        if not page.get("IsTruncated"):
            return out
        markers = {to: page[frm] for frm, to in follow if page.get(frm)}
        if not markers:
            return out


def find_resumable(client: S3Client, bucket: str, key: str,
                   stale_after: float) -> tuple[str | None, dict[int, dict[str, Any]]]:
    """The newest unfinished upload of ``key`` and its parts.

    Uploads older than ``stale_after`` seconds are aborted instead (0: none is ever stale).
    """
    try:
        uploads = [u for u in paginate(client, "list_multipart_uploads", "Uploads", Bucket=bucket, Prefix=key)
                   if u["Key"] == key]
    except AgentError as err:
        if err.code in (Code.ACCESS_DENIED, Code.S3_ERROR):  # e.g. no s3:ListBucketMultipartUploads
            log.info("%s: cannot list unfinished uploads (%s); starting afresh", key, err.message)
            return None, {}
        raise
    fresh = []
    for upload in uploads:
        if stale_after and time.time() - upload["Initiated"].timestamp() > stale_after:
            log.info("%s: aborting stale multipart upload %s", key, upload["UploadId"])
            _aborted(client, bucket, key, upload["UploadId"])
        else:
            fresh.append(upload)
    if not fresh:
        return None, {}
    upload_id = max(fresh, key=lambda u: u["Initiated"])["UploadId"]
    try:
        parts = {p["PartNumber"]: p
                 for p in paginate(client, "list_parts", "Parts", Bucket=bucket, Key=key, UploadId=upload_id)}
    except AgentError as err:
        log.info("%s: cannot list parts of %s (%s); starting afresh", key, upload_id, err.message)
        return None, {}
    return upload_id, parts


def _same_part(listed: dict[str, Any], data: bytes, checksum: str) -> bool:
    """Is a part already in S3 these exact bytes? By its SHA-256 checksum, else by its MD5 ETag."""
    if listed.get("Size") != len(data):
        return False
    if listed.get("ChecksumSHA256"):
        return bool(listed["ChecksumSHA256"] == checksum)
    return bool(str(listed.get("ETag", "")).strip('"') == hashlib.md5(data).hexdigest())


def multipart_upload(client: S3Client, *, bucket: str, key: str, oid: str, path: Path, plan: PartPlan,
                     progress: ProgressReporter, create_args: dict[str, Any], stale_after: float,
                     only_if_absent: bool = False, checksums: bool = True) -> UploadStats:
    """Upload ``path`` in parallel parts, each checked by S3 against its SHA-256; resume where possible.

    ``checksums=False`` (a store that refuses x-amz-checksum-* headers): each part carries its
    Content-MD5 instead, which every S3 API checks.

    The file is read once, in order, by this thread, which hashes the whole object; worker
    threads hash and send parts (hashlib releases the GIL, so both proceed at once). At most
    ``plan.concurrency`` parts are in memory. The upload is completed only if the whole file
    hashes to the oid; otherwise it is aborted and nothing is stored. A failed part leaves the
    upload open so that the next push resumes it.
    """
    stats = UploadStats()
    upload_id, listed = find_resumable(client, bucket, key, stale_after)
    if upload_id is None:
        upload_id = client.create_multipart_upload(Bucket=bucket, Key=key, **create_args,
                                                   **({"ChecksumAlgorithm": "SHA256"} if checksums else {}))["UploadId"]
    else:
        log.info("%s: resuming upload %s (%d parts already in S3)", key, upload_id, len(listed))
    stats.upload_id = upload_id
    done: dict[int, dict[str, Any]] = {}
    failures: list[AgentError] = []
    slots = threading.BoundedSemaphore(plan.concurrency)

    def send(number: int, data: bytes) -> None:
        try:
            checksum = b64sha256(data)
            integrity = ({"ChecksumSHA256": checksum, "ChecksumAlgorithm": "SHA256"} if checksums else
                         {"ContentMD5": base64.b64encode(hashlib.md5(data).digest()).decode()})
            resp = client.upload_part(Bucket=bucket, Key=key, UploadId=upload_id, PartNumber=number,
                                      Body=PartBody(data, progress), ContentLength=len(data), **integrity)
            done[number] = {"PartNumber": number, "ETag": resp["ETag"],
                            **({"ChecksumSHA256": checksum} if checksums else {})}
            stats.parts_sent += 1
        except AgentError as exc:
            failures.append(exc)
        except Exception as exc:  # a bug: reported for this object, never a hang
            failures.append(AgentError(f"{key}: part {number} failed: {type(exc).__name__}: {exc}"))
        finally:
            slots.release()

    whole = hashlib.sha256()
    with open(path, "rb") as fh, ThreadPoolExecutor(plan.concurrency, thread_name_prefix="part") as pool:
        for number, _offset, length in plan.parts():
            slots.acquire()
            if failures:
                slots.release()
                break
            try:
                data = fh.read(length)
            except OSError as exc:
                slots.release()
                raise LocalFileError(f"{path}: cannot read the object to upload ({exc.strerror})") from None
            whole.update(data)
            if len(data) != length:
                slots.release()
                failures.append(IntegrityError(f"{path}: the local file is shorter than {plan.size} bytes"))
                break
            old = listed.get(number)
            if old is not None:
                checksum = b64sha256(data)
                if _same_part(old, data, checksum):
                    done[number] = {"PartNumber": number, "ETag": old["ETag"],
                                    **({"ChecksumSHA256": checksum} if checksums else {})}
                    stats.parts_reused += 1
                    progress.add(length)
                    slots.release()
                    continue
            pool.submit(send, number, data)
        grew = fh.read(1) if not failures else b""
    if failures:
        # A concurrent push of the same oid may have completed this very upload (which it resumed)
        # or its own: then the object is there, recorded as this oid, and nothing is lost.
        if not isinstance(failures[0], IntegrityError) and completed_elsewhere(client, bucket, key, plan.size, oid):
            stats.raced = True
            return stats
        raise failures[0]
    if grew:
        _aborted(client, bucket, key, upload_id)
        raise IntegrityError(f"{path}: the local file is longer than {plan.size} bytes; nothing was stored")
    if whole.hexdigest() != oid:
        _aborted(client, bucket, key, upload_id)
        raise IntegrityError(f"{path}: local file's SHA-256 is {whole.hexdigest()}, not the oid; the local LFS "
                             "object is corrupt (try `git lfs fsck`); nothing was stored")
    parts = [done[n] for n in sorted(done)]
    try:
        client.complete_multipart_upload(Bucket=bucket, Key=key, UploadId=upload_id,
                                         MultipartUpload={"Parts": parts},
                                         **({"IfNoneMatch": "*"} if only_if_absent else {}))
    except AgentError:
        # Another push of the same oid may have stored it first, or completed this very upload.
        if completed_elsewhere(client, bucket, key, plan.size, oid):
            _aborted(client, bucket, key, upload_id)
            stats.raced = True
            return stats
        raise
    return stats


def completed_elsewhere(client: S3Client, bucket: str, key: str, size: int, oid: str) -> bool:
    """Is the object now stored, with our size and recorded oid (by another agent)?"""
    try:
        head = client.head_object(Bucket=bucket, Key=key)
    except AgentError:
        return False
    return int(head["ContentLength"]) == size and head.get("Metadata", {}).get("sha256") == oid


def _write(sink: IO[bytes], chunk: bytes | memoryview) -> None:
    try:
        sink.write(chunk)
    except OSError as exc:
        raise LocalFileError(f"cannot write the download to disk ({exc.strerror or exc}); check free space and "
                             "permissions in .git/lfs") from None


def stream_download(client: Reader, *, bucket: str, key: str, size: int, sink: IO[bytes],
                    progress: ProgressReporter, attempts: Attempts, extra: dict[str, Any], etag: str | None,
                    checked: bool = False) -> str:
    """Stream an object into ``sink``; return its SHA-256. A body cut off mid-stream is resumed.

    A body that breaks off mid-stream is resumed with a ranged GET pinned to the same ETag, so a
    changed object cannot be spliced onto the bytes already written; every GET, first or resumed,
    spends one attempt of ``attempts``. ``checked``: the caller compares the digest with a known
    oid, so botocore's own check of a response checksum is skipped (see ``_direct_reader``).
    """
    hasher = hashlib.sha256()
    written = 0
    while True:
        args: dict[str, Any] = {"Bucket": bucket, "Key": key, **extra}
        if etag:
            args["IfMatch"] = etag
        if written:
            args["Range"] = f"bytes={written}-"
        resp = client.get_object(attempts=attempts, **args)
        etag = etag or resp.get("ETag")
        try:
            direct = _direct_reader(resp["Body"], checked=checked)
            for chunk in (_chunks_into(direct, _stream_buffer()) if direct is not None
                          else resp["Body"].iter_chunks(CHUNK)):
                written += len(chunk)
                if written > size:
                    raise IntegrityError(f"s3://{bucket}/{key}: the stored object is larger than {size} bytes; "
                                         "it does not match the oid")
                for start in range(0, len(chunk), WRITE):
                    _write(sink, chunk[start:start + WRITE])
                hasher.update(chunk)
                progress.add(len(chunk))
            return hasher.hexdigest()
        except AgentError:
            raise
        except Exception as exc:
            err = client.error(exc, bucket, key)
            if not err.transient or attempts.left <= 0:
                raise err from None
            log.warning("s3://%s/%s: %s; resuming at byte %d", bucket, key, err.message, written)
            attempts.wait()


_buffers = threading.local()  # each thread's streaming buffer (the shared worker runs one thread per agent)


def _stream_buffer() -> memoryview:
    """This thread's CHUNK-sized buffer, kept for its next object.

    A fresh 1 MiB ``bytes`` per read (``iter_chunks``) is fresh memory for the kernel to fault
    in, and its 1 MiB write fills large page-cache folios, which is costly on this project's VM
    (see ``WRITE``): 200 x 1 MiB through the shared worker cost 1.0 s of system time that way.
    """
    buffer: memoryview | None = getattr(_buffers, "view", None)
    if buffer is None:
        buffer = _buffers.view = memoryview(bytearray(CHUNK))
    return buffer


def _chunks_into(readinto: Callable[[memoryview], int], buffer: memoryview) -> Iterator[memoryview]:
    """Fill ``buffer`` from the body and yield what was read; each chunk is valid until the next one."""
    while True:
        got = 0
        while got < len(buffer) and (n := readinto(buffer[got:])):
            got += n
        if got:
            yield buffer[:got]
        if got < len(buffer):
            return


class HashSink:
    """A write-only sink that hashes and counts what it is given, keeping nothing (bounded memory)."""

    def __init__(self) -> None:
        self.hash = hashlib.sha256()
        self.size = 0

    def write(self, data: bytes) -> int:
        self.hash.update(data)
        self.size += len(data)
        return len(data)


def hash_object(client: Reader, *, bucket: str, key: str, size: int, attempts: Attempts, extra: dict[str, Any],
                etag: str | None = None) -> str:
    """Stream an object once through SHA-256 and return the digest; ``IntegrityError`` if it is not ``size`` bytes.

    Nothing is stored: this is how an oid is learnt without a checksum (``--hash-missing``) and how a
    copy is read back to be verified.
    """
    sink = HashSink()
    digest = stream_download(client, bucket=bucket, key=key, size=size, sink=sink,  # type: ignore[arg-type]
                             progress=ProgressReporter(size, lambda a, b: None), attempts=attempts, extra=extra,
                             etag=etag)
    if sink.size != size:
        raise IntegrityError(f"s3://{bucket}/{key}: read {sink.size} bytes, expected {size}")
    return digest


def ranged_download(client: Reader, *, bucket: str, key: str, fd: int, plan: PartPlan,
                    progress: ProgressReporter, max_attempts: int, extra: dict[str, Any] | None = None,
                    etag: str | None = None, attempts: Attempts | None = None, checked: bool = False) -> str:
    """Fetch the object in parallel ranges written at their offsets; return the SHA-256 of it all.

    The first range comes alone and its ETag pins every other range (``If-Match``), so bytes of
    two versions are never mixed. Ranges are hashed in order as they land, so the file is
    never read back; at most ``plan.concurrency`` ranges are in memory.

    Each range is read into a buffer of its own, which is reused once the range is hashed, so
    the bytes are not copied or allocated afresh on their way (see ``_reader``). Writes to the
    file are small (see ``WRITE``) and take turns: threads writing to one file at once contend
    for its inode lock in the kernel, which costs CPU and gains nothing. ``checked``: as for
    ``stream_download``.
    """
    ranges = plan.parts()
    pinned: list[str] = [etag] if etag else []
    spare: list[bytearray] = []  # buffers of ranges already hashed
    write_lock = threading.Lock()

    def buffer(length: int) -> memoryview:
        return memoryview(spare.pop() if spare else bytearray(ranges[0][2]))[:length]

    def fetch(offset: int, view: memoryview) -> memoryview:
        """One range into ``view``, written at its offset as it arrives; ``view`` is returned for hashing."""
        length = len(view)
        counted = 0
        # Each range has its own budget; the first shares the caller's (it decides whether to go on).
        budget = attempts if offset == 0 and attempts is not None else Attempts(max_attempts)
        while True:
            args: dict[str, Any] = {"Bucket": bucket, "Key": key, "Range": f"bytes={offset}-{offset + length - 1}",
                                    **(extra or {})}
            if pinned:
                args["IfMatch"] = pinned[0]
            got = 0
            resp = client.get_object(attempts=budget, **args)
            try:
                total = str(resp.get("ContentRange", "")).rpartition("/")[2]
                if total.isdigit() and int(total) != plan.size:
                    raise IntegrityError(f"s3://{bucket}/{key}: the stored object has {total} bytes, expected "
                                         f"{plan.size}; it was replaced or is corrupt")
                if not pinned:
                    pinned.append(resp["ETag"])
                readinto = _reader(resp["Body"], checked=checked)
                while got < length and (n := readinto(view[got:got + CHUNK])):
                    with write_lock:
                        try:
                            _pwrite_all(fd, view[got:got + n], offset + got)
                        except OSError as exc:
                            raise LocalFileError(f"cannot write the download to disk ({exc.strerror or exc}); "
                                                 "check free space and permissions in .git/lfs") from None
                    got += n
                    if got > counted:  # a retried range counts only bytes beyond its last attempt
                        progress.add(got - counted)
                        counted = got
                if readinto(memoryview(bytearray(1))):
                    got += 1
            except AgentError:
                raise
            except Exception as exc:
                err = client.error(exc, bucket, key)
                if not err.transient or budget.left <= 0:
                    raise err from None
                log.warning("s3://%s/%s: %s; retrying the range at %d", bucket, key, err.message, offset)
                budget.wait()
                continue
            if got != length:
                raise IntegrityError(f"s3://{bucket}/{key}: range at {offset} returned {got} bytes, expected "
                                     f"{length}; the stored object is truncated or was replaced")
            return view

    hasher = hashlib.sha256()

    def hashed(view: memoryview) -> None:
        hasher.update(view)
        spare.append(cast(bytearray, view.obj))

    _, first_offset, first_length = ranges[0]
    hashed(fetch(first_offset, buffer(first_length)))
    pending = iter(ranges[1:])
    window: deque[Future[memoryview]] = deque()
    with ThreadPoolExecutor(plan.concurrency, thread_name_prefix="range") as pool:
        try:
            for _, offset, length in itertools.islice(pending, plan.concurrency):
                window.append(pool.submit(fetch, offset, buffer(length)))
            while window:
                hashed(window.popleft().result())
                nxt = next(pending, None)
                if nxt is not None:
                    window.append(pool.submit(fetch, nxt[1], buffer(nxt[2])))
        except BaseException:
            for future in window:
                future.cancel()
            raise
    return hasher.hexdigest()


#: Downloaded bytes go to the file in writes of at most this size, as s5cmd's do. Linux sizes
#: a new page-cache folio by the write that creates it, and filling large folios proved far
#: costlier: on a VM that hands freed memory back to its host, 1 GiB written in 1 MiB writes took
#: 2.1-2.3 s of system time against 0.3-1.1 s in 32 KiB writes (16 and 64 KiB: 0.4-2.2 s). The
#: extra system calls cost about 0.1 s/GiB where memory is cheap to fill.
WRITE = 32 << 10


def _pwrite_all(fd: int, data: memoryview, offset: int) -> None:
    done = 0
    while done < len(data):
        done += os.pwrite(fd, data[done:done + WRITE], offset + done)


def _reader(body: Any, *, checked: bool = False) -> Callable[[memoryview], int]:
    """``readinto`` for a GetObject body: bytes straight from the socket into the caller's buffer.

    botocore's StreamingBody reads through urllib3's HTTPResponse, which reads http.client's; each
    ``read`` (and urllib3's ``readinto``) makes a fresh ``bytes`` that is copied again. For a plain
    body (identity transfer with a Content-Length, not decoded), http.client's ``readinto`` fills
    the buffer from the socket, inside urllib3's own error handling, so a broken or short body
    raises what ``StreamingBody.read`` would, a broken connection is closed, and a finished one
    goes back to the pool. These are private parts of botocore and urllib3: if they are not as
    expected, the public ``read`` is used, which is slower, not wrong. Like ``read``, this hands
    over the stored bytes: a Content-Encoding such as gzip is not decoded.

    A body that botocore checks against a response checksum (``x-amz-checksum-*``, which S3 sends
    for boto3's default ``response_checksum_validation=when_supported``; our single-request
    uploads store a SHA-256 one) is read this way only when ``checked``: the caller compares the
    SHA-256 of every byte with the oid, the same hash as S3's or a stronger check than its CRCs,
    so botocore hashing the bytes again only cost CPU (1 MiB objects from moto: 7.5 -> 7.0 ms of
    CPU each, ~0.7 CPU s/GiB). Otherwise (an oid being learnt from the bytes) botocore's check
    is the only one, and it stays.
    """
    direct = _direct_reader(body, checked=checked)
    if direct is not None:
        return direct
    public = getattr(body, "readinto", None)  # recent botocore only; it also checks a response checksum
    if public is not None:
        return public  # type: ignore[no-any-return]

    def copying(view: memoryview) -> int:
        data = body.read(len(view))
        view[:len(data)] = data
        return len(data)

    return copying


def _direct_reader(body: Any, *, checked: bool = False) -> Callable[[memoryview], int] | None:
    import http.client

    from botocore import httpchecksum
    from botocore.exceptions import ReadTimeoutError, ResponseStreamingError
    from botocore.response import StreamingBody
    from urllib3.exceptions import IncompleteRead, ProtocolError
    from urllib3.exceptions import ReadTimeoutError as URLLib3ReadTimeoutError

    raw = getattr(body, "_raw_stream", None)
    fp = getattr(raw, "_fp", None)
    catcher = getattr(raw, "_error_catcher", None)
    # A private name: a botocore without it has its checksummed bodies read (and checked) the public way.
    checksummed = getattr(httpchecksum, "StreamingChecksumBody", None)
    plain = type(body) is StreamingBody or (checked and checksummed is not None and type(body) is checksummed)
    if (not plain or not isinstance(fp, http.client.HTTPResponse) or not callable(catcher)
            or fp.chunked or fp.length is None or getattr(raw, "decode_content", True) is not False
            or getattr(raw, "length_remaining", None) != fp.length):
        return None  # a checksum to check here, chunked or decoded content, or unknown internals
    expected = fp.length
    done = 0

    def readinto(view: memoryview) -> int:
        nonlocal done
        try:
            with catcher():  # socket errors to urllib3's, closing or releasing the connection
                n = fp.readinto(view)
                if not n and view and fp.length:  # the connection ended early: as urllib3 reports it
                    raise IncompleteRead(done, expected - done)
        except URLLib3ReadTimeoutError as e:  # ...and urllib3's to botocore's, as StreamingBody.read does
            raise ReadTimeoutError(endpoint_url=e.url, error=e) from e  # type: ignore[arg-type]
        except ProtocolError as e:
            raise ResponseStreamingError(error=e) from e
        done += n
        return n

    return readinto


@dataclass(frozen=True)
class Knobs:
    """The transfer settings the byte movers need (a subset of ``config.Settings``)."""

    multipart_threshold: int = 16 * MiB
    part_size: int = 8 * MiB
    concurrency: int = 8
    max_attempts: int = 5

    @classmethod
    def of(cls, values: Any) -> Knobs:
        """From a Settings model or a plain mapping of setting values."""
        def get(name: str) -> int:
            return int(values[name] if isinstance(values, dict) else getattr(values, name))

        return cls(get("multipart_threshold"), get("part_size"), get("concurrency"), get("max_attempts"))


def fetch(client: Reader, *, bucket: str, key: str, size: int, sink: IO[bytes], progress: ProgressReporter,
          knobs: Knobs, version_id: str | None = None, etag: str | None = None, expect: str | None = None) -> str:
    """Download an object into ``sink`` (one stream, or parallel ranges when large); return its SHA-256.

    ``sink`` must be a real file when the object is large (ranges are written at their offsets).
    With ``expect`` (the oid), bytes that do not hash to it are downloaded afresh once, within
    the same attempt budget: a mismatch can be damage in transit (a proxy, a flaky link) rather
    than at rest. The caller still checks the digest it gets; as it does, botocore's check of a
    response checksum is skipped (``_reader``).
    """
    extra = {"VersionId": version_id} if version_id else {}
    attempts = Attempts(knobs.max_attempts)
    checked = afresh = expect is not None  # one fresh download is allowed after bytes that fail a check
    while True:
        try:
            if size > knobs.multipart_threshold:
                sink.flush()
                digest = ranged_download(
                    client, bucket=bucket, key=key, fd=sink.fileno(),
                    plan=PartPlan.make(size, knobs.part_size, knobs.concurrency, minimum=1), progress=progress,
                    max_attempts=knobs.max_attempts, extra=extra, etag=etag, attempts=attempts, checked=checked,
                )
            else:
                digest = stream_download(client, bucket=bucket, key=key, size=size, sink=sink, progress=progress,
                                         attempts=attempts, extra=extra, etag=etag, checked=checked)
        except AgentError as err:
            # Bytes damaged on the way (a response checksum, a short or long body): once more, afresh.
            if err.code != Code.INTEGRITY or not afresh or attempts.left <= 0 or not rewind(sink):
                raise
            log.warning("%s; downloading it once more", err.message)
        else:
            if expect is None or digest == expect or not afresh or attempts.left <= 0 or not rewind(sink):
                return digest
            log.warning("s3://%s/%s: the downloaded bytes hash to %s, not %s; downloading it once more", bucket,
                        key, digest, expect)
        afresh = False


def rewind(sink: IO[bytes]) -> bool:
    """Empty ``sink`` for a fresh download (a device such as /dev/null needs nothing); False if impossible."""
    try:
        sink.seek(0)
        sink.truncate()
        return True
    except (OSError, ValueError, AttributeError):
        try:
            return not stat.S_ISREG(os.fstat(sink.fileno()).st_mode)
        except (OSError, ValueError, AttributeError):
            return False
