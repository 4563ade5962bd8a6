"""Multipart uploads, resume, and parallel ranged downloads through serve(), S3 by in-process moto.

Part size is set to S3's minimum (5 MiB) so that a 12 MiB object has three parts.
"""

from __future__ import annotations

import os
import threading
from typing import Any

import pytest
from botocore.exceptions import ClientError

from lfs_s3_agent.errors import Code
from lfs_s3_agent.s3 import transfer
from lfs_s3_agent.settings import Settings
from lfs_s3_agent.store import S3Store
from tests.functional.conftest import BUCKET, INIT_DOWN, INIT_UP, Harness, oid_of
from tests.functional.test_sessions import TERMINATE, assert_progress_ok, download, upload

MiB = 1 << 20
DATA = os.urandom(12 * MiB + 12345)  # three parts of 5, 5 and ~2 MiB: a short last part at an odd size
OID = oid_of(DATA)


def small_parts(harness: Harness, **overrides: Any) -> S3Store:
    # moto reports every upload as initiated in 2010, so "never stale" (0) unless a test says otherwise.
    values = {"bucket": BUCKET, "prefix": "repo", "part_size": 5 * MiB, "multipart_threshold": 5 * MiB,
              "concurrency": 2, "max_attempts": 2, "stale_upload_days": 0, **overrides}
    store = S3Store(Settings(**values))
    store.client.raw.meta.events.register("before-call.s3.*", harness._count)
    return store


class Concurrency:
    """Wraps a client method and counts how many calls are in progress at once."""

    def __init__(self, client: Any, name: str) -> None:
        self.real = getattr(client, name)
        self.lock = threading.Lock()
        self.active = 0
        self.peak = 0
        self.calls = 0
        setattr(client, name, self)

    def __call__(self, **kwargs: Any) -> Any:
        with self.lock:
            self.active += 1
            self.calls += 1
            self.peak = max(self.peak, self.active)
        try:
            return self.real(**kwargs)
        finally:
            with self.lock:
                self.active -= 1


def test_multipart_upload_sends_checked_parts_and_records_the_oid(harness: Harness) -> None:
    store = small_parts(harness, concurrency=2)
    parts = Concurrency(store.client.raw, "upload_part")
    s = harness.run(INIT_UP, upload(OID, len(DATA), harness.file("big", DATA)), TERMINATE, store=store)
    assert s.completes() == [{"event": "complete", "oid": OID}]
    assert parts.calls == 3 and parts.peak <= 2
    assert s.calls.count("CreateMultipartUpload") == 1 and s.calls.count("CompleteMultipartUpload") == 1
    assert "PutObject" not in s.calls
    head = harness.s3.head_object(Bucket=BUCKET, Key=store.key(OID))
    assert head["Metadata"]["sha256"] == OID
    assert harness.s3.get_object(Bucket=BUCKET, Key=store.key(OID))["Body"].read() == DATA
    assert_progress_ok(s, OID, len(DATA))


def test_each_part_carries_its_sha256(harness: Harness) -> None:
    store = small_parts(harness)
    sent: list[dict[str, str]] = []
    store.client.raw.meta.events.register(
        "before-send.s3.UploadPart",
        lambda request, **_: sent.append({k.lower(): v for k, v in request.headers.items()}))
    harness.run(INIT_UP, upload(OID, len(DATA), harness.file("big", DATA)), TERMINATE, store=store)
    import base64
    import hashlib

    expected = [base64.b64encode(hashlib.sha256(DATA[o:o + 5 * MiB]).digest()).decode()
                for o in range(0, len(DATA), 5 * MiB)]
    got = [h["x-amz-checksum-sha256"] for h in sent]
    got = [g.decode() if isinstance(g, bytes) else g for g in got]
    assert sorted(got) == sorted(expected)
    assert all("aws-chunked" not in str(h.get("content-encoding", "")) for h in sent)


def kill_after(store: S3Store, good_parts: int) -> None:
    """Make upload_part fail from part ``good_parts + 1`` on, as if the agent died there."""
    real = store.client.raw.upload_part

    def flaky(**kwargs: Any) -> Any:
        if kwargs["PartNumber"] > good_parts:
            raise ClientError({"Error": {"Code": "AccessDenied", "Message": "cut"},
                               "ResponseMetadata": {"HTTPStatusCode": 403}}, "UploadPart")
        return real(**kwargs)

    store.client.raw.upload_part = flaky


def test_resume_sends_only_the_missing_parts(harness: Harness) -> None:
    path = harness.file("big", DATA)
    first = small_parts(harness, concurrency=1)
    kill_after(first, good_parts=2)
    s = harness.run(INIT_UP, upload(OID, len(DATA), path), TERMINATE, store=first)
    assert s.completes()[0]["error"]["code"] == Code.ACCESS_DENIED
    assert len(harness.s3.list_multipart_uploads(Bucket=BUCKET)["Uploads"]) == 1  # left for resume

    second = small_parts(harness)
    parts = Concurrency(second.client.raw, "upload_part")
    s = harness.run(INIT_UP, upload(OID, len(DATA), path), TERMINATE, store=second)
    assert s.completes() == [{"event": "complete", "oid": OID}]
    assert parts.calls == 1  # parts 1 and 2 were reused
    assert "CreateMultipartUpload" not in s.calls
    assert harness.s3.get_object(Bucket=BUCKET, Key=second.key(OID))["Body"].read() == DATA
    assert "Uploads" not in harness.s3.list_multipart_uploads(Bucket=BUCKET)
    assert_progress_ok(s, OID, len(DATA))


def test_resume_resends_a_part_whose_bytes_do_not_match(harness: Harness) -> None:
    path = harness.file("big", DATA)
    first = small_parts(harness, concurrency=1)
    kill_after(first, good_parts=2)
    harness.run(INIT_UP, upload(OID, len(DATA), path), TERMINATE, store=first)
    (pending,) = harness.s3.list_multipart_uploads(Bucket=BUCKET)["Uploads"]
    harness.s3.upload_part(Bucket=BUCKET, Key=pending["Key"], UploadId=pending["UploadId"], PartNumber=1,
                           Body=os.urandom(5 * MiB))  # same size, other bytes
    second = small_parts(harness)
    parts = Concurrency(second.client.raw, "upload_part")
    s = harness.run(INIT_UP, upload(OID, len(DATA), path), TERMINATE, store=second)
    assert s.completes() == [{"event": "complete", "oid": OID}]
    assert parts.calls == 2  # part 1 (wrong bytes) and part 3 (missing)
    assert harness.s3.get_object(Bucket=BUCKET, Key=second.key(OID))["Body"].read() == DATA


def test_stale_unfinished_upload_is_aborted_not_resumed(harness: Harness, monkeypatch: pytest.MonkeyPatch) -> None:
    path = harness.file("big", DATA)
    first = small_parts(harness, concurrency=1)
    kill_after(first, good_parts=2)
    harness.run(INIT_UP, upload(OID, len(DATA), path), TERMINATE, store=first)
    second = small_parts(harness, stale_upload_days=1)
    (pending,) = harness.s3.list_multipart_uploads(Bucket=BUCKET)["Uploads"]
    initiated = pending["Initiated"].timestamp()

    def two_days_later() -> float:  # the upload must look two days old whatever date moto reports
        return initiated + 2 * 86400

    monkeypatch.setattr(transfer.time, "time", two_days_later)
    parts = Concurrency(second.client.raw, "upload_part")
    s = harness.run(INIT_UP, upload(OID, len(DATA), path), TERMINATE, store=second)
    assert s.completes() == [{"event": "complete", "oid": OID}]
    assert parts.calls == 3
    assert s.calls.count("AbortMultipartUpload") == 1
    assert "Uploads" not in harness.s3.list_multipart_uploads(Bucket=BUCKET)


def test_corrupt_local_file_is_never_completed(harness: Harness) -> None:
    bad = bytearray(DATA)
    bad[7 * MiB] ^= 0xFF
    store = small_parts(harness)
    s = harness.run(INIT_UP, upload(OID, len(DATA), harness.file("big", bytes(bad))), TERMINATE, store=store)
    (complete,) = s.completes()
    assert complete["error"]["code"] == Code.INTEGRITY and "nothing was stored" in complete["error"]["message"]
    assert "Contents" not in harness.s3.list_objects_v2(Bucket=BUCKET)
    assert "Uploads" not in harness.s3.list_multipart_uploads(Bucket=BUCKET)


@pytest.mark.parametrize("size", [5 * MiB + 1, 12 * MiB + 12345, 15 * MiB])
def test_ranged_download_at_odd_sizes(harness: Harness, size: int) -> None:
    data = DATA[:size] if size <= len(DATA) else DATA + os.urandom(size - len(DATA))
    oid = harness.put(data)
    store = small_parts(harness, concurrency=2)
    gets = Concurrency(store.client.raw, "get_object")
    seen: list[dict[str, Any]] = []
    real = gets.real

    def spy(**kwargs: Any) -> Any:
        seen.append(kwargs)
        return real(**kwargs)

    gets.real = spy
    s = harness.run(INIT_DOWN, download(oid, size), TERMINATE, store=store)
    (complete,) = s.completes()
    assert "error" not in complete
    with open(complete["path"], "rb") as fh:
        assert fh.read() == data
    n_parts = -(-size // (5 * MiB))
    assert gets.calls == n_parts and gets.peak <= 2
    assert sorted(kw["Range"] for kw in seen) == sorted(
        f"bytes={o}-{min(o + 5 * MiB, size) - 1}" for o in range(0, size, 5 * MiB))
    assert all("IfMatch" in kw for kw in seen[1:])  # later ranges pinned to the first one's version
    assert_progress_ok(s, oid, size)


def test_ranged_download_catches_replaced_and_resized_objects(harness: Harness) -> None:
    store = small_parts(harness)
    harness.put(os.urandom(len(DATA)), OID)
    (complete,) = harness.run(INIT_DOWN, download(OID, len(DATA)), TERMINATE, store=store).completes()
    assert complete["error"]["code"] == Code.INTEGRITY and store.key(OID) in complete["error"]["message"]
    harness.put(DATA + b"extra", OID)
    (complete,) = harness.run(INIT_DOWN, download(OID, len(DATA)), TERMINATE, store=store).completes()
    assert complete["error"]["code"] == Code.INTEGRITY and "expected" in complete["error"]["message"]
    assert list(harness.tmp_dir.iterdir()) == []


def test_fresh_unfinished_upload_is_resumed_not_aborted(harness: Harness, monkeypatch: pytest.MonkeyPatch) -> None:
    path = harness.file("big", DATA)
    first = small_parts(harness, concurrency=1)
    kill_after(first, good_parts=1)
    harness.run(INIT_UP, upload(OID, len(DATA), path), TERMINATE, store=first)
    (pending,) = harness.s3.list_multipart_uploads(Bucket=BUCKET)["Uploads"]
    initiated = pending["Initiated"].timestamp()
    monkeypatch.setattr(transfer.time, "time", lambda: initiated + 3600)  # an hour old, within 7 days
    second = small_parts(harness, stale_upload_days=7)
    parts = Concurrency(second.client.raw, "upload_part")
    s = harness.run(INIT_UP, upload(OID, len(DATA), path), TERMINATE, store=second)
    assert s.completes() == [{"event": "complete", "oid": OID}]
    assert parts.calls == 2 and "AbortMultipartUpload" not in s.calls


def test_upload_completed_by_a_concurrent_push_is_success(harness: Harness) -> None:
    """Two pushes of one oid: the other finishes first; ours sees NoSuchUpload and finds the object stored."""
    store = small_parts(harness)
    real_complete = store.client.raw.complete_multipart_upload

    def other_push_wins(**kwargs: Any) -> Any:
        real_complete(**kwargs)  # the other push completes this very upload...
        raise ClientError({"Error": {"Code": "NoSuchUpload", "Message": "gone"},  # ...so ours is told it's gone
                           "ResponseMetadata": {"HTTPStatusCode": 404}}, "CompleteMultipartUpload")

    store.client.raw.complete_multipart_upload = other_push_wins
    s = harness.run(INIT_UP, upload(OID, len(DATA), harness.file("big", DATA)), TERMINATE, store=store)
    assert s.completes() == [{"event": "complete", "oid": OID}]
    assert harness.s3.get_object(Bucket=BUCKET, Key=store.key(OID))["Body"].read() == DATA


def test_object_stored_by_a_concurrent_push_is_not_overwritten(harness: Harness) -> None:
    """If-None-Match: the second writer of an oid gets 412 and accepts the first writer's object."""
    store = small_parts(harness)
    real_create = store.client.raw.create_multipart_upload

    def other_push_stores_first(**kwargs: Any) -> Any:
        harness.s3.put_object(Bucket=BUCKET, Key=store.key(OID), Body=DATA, Metadata={"sha256": OID})
        return real_create(**kwargs)

    store.client.raw.create_multipart_upload = other_push_stores_first
    s = harness.run(INIT_UP, upload(OID, len(DATA), harness.file("big", DATA)), TERMINATE, store=store)
    assert s.completes() == [{"event": "complete", "oid": OID}]
    assert "Uploads" not in harness.s3.list_multipart_uploads(Bucket=BUCKET)  # ours was aborted
    versions = harness.s3.list_object_versions(Bucket=BUCKET).get("Versions", [])
    assert len(versions) == 1
