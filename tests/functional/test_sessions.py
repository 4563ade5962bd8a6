"""Scripted git-lfs sessions through serve(), S3 by in-process moto."""

from __future__ import annotations

import io
import json
from typing import Any

from botocore.exceptions import ClientError, ReadTimeoutError

from lfs_s3_agent.errors import Code, ConfigError
from lfs_s3_agent.s3.client import ClientSpec, S3Client
from lfs_s3_agent.store import S3Store
from tests.functional.conftest import BUCKET, INIT_DOWN, INIT_UP, Harness, oid_of

DATA = b"hello lfs " * 100_000  # ~1 MB
OID = oid_of(DATA)


def upload(oid: str, size: int, path: object) -> dict[str, Any]:
    return {"event": "upload", "oid": oid, "size": size, "path": str(path), "action": None}


def download(oid: str, size: int) -> dict[str, Any]:
    return {"event": "download", "oid": oid, "size": size, "action": None}


TERMINATE = {"event": "terminate"}


def assert_progress_ok(session: Any, oid: str, size: int) -> None:
    events = session.progress(oid)
    so_far = [e["bytesSoFar"] for e in events]
    assert so_far and so_far == sorted(so_far) and so_far[-1] == size
    assert sum(e["bytesSinceLast"] for e in events) == size


def test_upload_stores_bytes_under_content_address(harness: Harness) -> None:
    path = harness.file("a", DATA)
    s = harness.run(INIT_UP, upload(OID, len(DATA), path), TERMINATE)
    assert s.status == 0
    assert s.messages[0] == {}
    assert s.completes() == [{"event": "complete", "oid": OID}]
    assert s.calls == ["PutObject"]  # a new object costs one request
    assert_progress_ok(s, OID, len(DATA))
    body = harness.s3.get_object(Bucket=BUCKET, Key=f"repo/{OID[:2]}/{OID[2:4]}/{OID}")["Body"].read()
    assert body == DATA
    assert path.read_bytes() == DATA  # git-lfs's own object file is left alone


def test_upload_of_a_stored_object_is_skipped(harness: Harness) -> None:
    harness.put(DATA)
    s = harness.run(INIT_UP, upload(OID, len(DATA), harness.file("a", DATA)), TERMINATE)
    assert s.completes() == [{"event": "complete", "oid": OID}]
    # A conditional PUT (If-None-Match) is refused with 412; only then is the stored object inspected.
    assert s.calls == ["PutObject", "HeadObject"]
    versions = harness.s3.list_object_versions(Bucket=BUCKET).get("Versions", [])
    assert len(versions) == 1  # nothing was overwritten
    assert_progress_ok(s, OID, len(DATA))


def test_stored_object_of_wrong_size_is_replaced(harness: Harness) -> None:
    harness.put(b"short", OID)
    s = harness.run(INIT_UP, upload(OID, len(DATA), harness.file("a", DATA)), TERMINATE)
    assert s.completes() == [{"event": "complete", "oid": OID}]
    assert "PutObject" in s.calls
    assert harness.s3.get_object(Bucket=BUCKET, Key=harness.store.key(OID))["Body"].read() == DATA


def test_upload_with_content_not_matching_oid_stores_nothing(harness: Harness) -> None:
    wrong = b"x" * len(DATA)
    s = harness.run(INIT_UP, upload(OID, len(DATA), harness.file("a", wrong)), TERMINATE)
    (complete,) = s.completes()
    assert complete["error"]["code"] == Code.INTEGRITY
    assert "nothing was stored" in complete["error"]["message"]
    assert "Contents" not in harness.s3.list_objects_v2(Bucket=BUCKET)


def test_bad_upload_paths_fail_per_object_and_the_loop_goes_on(harness: Harness, tmp_path: Any) -> None:
    good = harness.file("good", DATA)
    (tmp_path / "dir").mkdir()
    s = harness.run(
        INIT_UP,
        upload("1" * 64, 5, tmp_path / "missing"),
        upload("2" * 64, 5, tmp_path / "dir"),
        upload("3" * 64, 99, good),
        upload(OID, len(DATA), good),
        TERMINATE,
    )
    errors = {c["oid"]: c.get("error") for c in s.completes()}
    assert errors["1" * 64]["code"] == Code.LOCAL_FILE and "missing" in errors["1" * 64]["message"]
    assert errors["2" * 64]["code"] == Code.LOCAL_FILE and "not a regular file" in errors["2" * 64]["message"]
    assert errors["3" * 64]["code"] == Code.LOCAL_FILE and "request says 99" in errors["3" * 64]["message"]
    assert errors[OID] is None


def test_download_verified_into_lfs_tmp(harness: Harness) -> None:
    harness.put(DATA)
    s = harness.run(INIT_DOWN, download(OID, len(DATA)), TERMINATE)
    (complete,) = s.completes()
    assert "error" not in complete
    path = complete["path"]
    assert path.startswith(str(harness.tmp_dir) + "/")
    with open(path, "rb") as fh:
        assert fh.read() == DATA
    assert_progress_ok(s, OID, len(DATA))


def test_zero_byte_object_round_trip(harness: Harness) -> None:
    empty = oid_of(b"")
    s = harness.run(INIT_UP, upload(empty, 0, harness.file("e", b"")), TERMINATE)
    assert s.completes() == [{"event": "complete", "oid": empty}]
    s = harness.run(INIT_DOWN, download(empty, 0), TERMINATE)
    (complete,) = s.completes()
    assert "error" not in complete
    with open(complete["path"], "rb") as fh:
        assert fh.read() == b""


def test_replaced_bytes_are_caught_and_no_temp_file_survives(harness: Harness) -> None:
    harness.put(b"y" * len(DATA), OID)
    s = harness.run(INIT_DOWN, download(OID, len(DATA)), TERMINATE)
    (complete,) = s.completes()
    assert complete["error"]["code"] == Code.INTEGRITY
    assert harness.store.key(OID) in complete["error"]["message"]
    assert list(harness.tmp_dir.iterdir()) == []


def test_truncated_and_oversized_objects_are_caught(harness: Harness) -> None:
    harness.put(DATA[:-1], OID)
    (complete,) = harness.run(INIT_DOWN, download(OID, len(DATA)), TERMINATE).completes()
    assert complete["error"]["code"] == Code.INTEGRITY and "truncated" in complete["error"]["message"]
    harness.put(DATA + b"!", OID)
    (complete,) = harness.run(INIT_DOWN, download(OID, len(DATA)), TERMINATE).completes()
    assert complete["error"]["code"] == Code.INTEGRITY and "larger" in complete["error"]["message"]
    assert list(harness.tmp_dir.iterdir()) == []


def test_missing_object_and_missing_bucket(harness: Harness) -> None:
    (complete,) = harness.run(INIT_DOWN, download(OID, 5), TERMINATE).completes()
    assert complete["error"]["code"] == Code.NOT_FOUND
    harness.s3.delete_bucket(Bucket=BUCKET)
    s = harness.run(INIT_UP, upload(OID, len(DATA), harness.file("a", DATA)), download(OID, 5), TERMINATE)
    codes = [c["error"]["code"] for c in s.completes()]
    assert codes == [Code.NO_SUCH_BUCKET, Code.NO_SUCH_BUCKET]
    assert f"bucket '{BUCKET}' does not exist" in s.completes()[0]["error"]["message"]
    assert list(harness.tmp_dir.iterdir()) == []


def test_malformed_lines_never_stop_the_loop(harness: Harness) -> None:
    harness.put(DATA)
    s = harness.run(
        b"this is not json\n",
        b"\xff\xfe\n",
        INIT_DOWN,
        b"[]\n",
        {"event": "download"},  # no oid: nothing to answer, logged
        {"event": "bogus", "oid": "f" * 64},
        download("NOT-AN-OID", 5),
        download(OID, len(DATA)),
        TERMINATE,
    )
    assert s.status == 0
    assert s.messages[0] == {}
    by_oid = {c["oid"]: c for c in s.completes()}
    assert by_oid["f" * 64]["error"]["code"] == Code.BAD_REQUEST
    assert by_oid["NOT-AN-OID"]["error"]["code"] == Code.BAD_REQUEST
    assert "error" not in by_oid[OID]
    assert len(s.completes()) == 3
    assert all(line.startswith(b"{") for line in s.raw.splitlines())


def test_requests_before_init_and_a_second_init(harness: Harness) -> None:
    s = harness.run(download(OID, 5), INIT_DOWN, INIT_DOWN, TERMINATE)
    assert s.messages[0]["error"]["code"] == Code.BAD_REQUEST and "before a successful init" in s.messages[0][
        "error"]["message"]
    assert s.messages[1] == {}
    assert s.messages[2]["error"]["message"] == "init already received in this session"


def test_config_error_fails_init_with_code_32(harness: Harness) -> None:
    s = harness.run(INIT_UP, upload(OID, 5, "/x"), TERMINATE,
                    config_error=ConfigError("no bucket is configured: run `lfs-s3-agent install`"))
    assert s.messages[0]["error"]["code"] == 32
    assert "lfs-s3-agent install" in s.messages[0]["error"]["message"]
    assert s.completes()[0]["error"]["code"] == Code.BAD_REQUEST  # no transfers without a good init
    assert harness.calls == []


def test_init_is_answered_when_on_init_fails(harness: Harness) -> None:
    """``on_init`` (the launcher's stamp, only an optimisation) runs before the init reply since 150db54:
    whatever it raises is logged and the reply is still written (review, b3b8276)."""
    from lfs_s3_agent.agent import serve

    def stamp() -> None:
        raise UnicodeEncodeError("utf-8", "x", 0, 1, "a stamp that cannot be written")

    out = io.BytesIO()
    lines = b"".join(json.dumps(m).encode() + b"\n" for m in (INIT_UP, TERMINATE))
    assert serve(io.BytesIO(lines), out, harness.store, tmp_dir=harness.tmp_dir, on_init=stamp) == 0
    assert out.getvalue() == b"{}\n"


def test_eof_without_terminate_exits_cleanly(harness: Harness) -> None:
    assert harness.run(INIT_UP).status == 0
    assert harness.run().status == 0


class FlakyBody:
    """A streaming body that breaks off after ``cut`` bytes, like a reset connection."""

    def __init__(self, data: bytes, cut: int) -> None:
        self.stream = io.BytesIO(data)
        self.cut = cut

    def iter_chunks(self, size: int) -> Any:
        sent = 0
        while chunk := self.stream.read(min(size, 4096)):
            if sent + len(chunk) > self.cut:
                raise ReadTimeoutError(endpoint_url="http://s3")
            sent += len(chunk)
            yield chunk


def test_interrupted_download_resumes_with_a_pinned_range(harness: Harness) -> None:
    harness.put(DATA)
    real_get = harness.store.client.raw.get_object
    seen: list[dict[str, Any]] = []

    def flaky_get(**kwargs: Any) -> Any:
        seen.append(kwargs)
        resp = real_get(**kwargs)
        if len(seen) == 1:
            resp["Body"] = FlakyBody(resp["Body"].read(), cut=300_000)
        return resp

    harness.store.client.raw.get_object = flaky_get  # type: ignore[method-assign]
    s = harness.run(INIT_DOWN, download(OID, len(DATA)), TERMINATE)
    (complete,) = s.completes()
    assert "error" not in complete
    with open(complete["path"], "rb") as fh:
        assert fh.read() == DATA
    assert len(seen) == 2
    assert seen[1]["Range"] == f"bytes={300_000 - 300_000 % 4096}-"
    assert seen[1]["IfMatch"]  # the resumed bytes must come from the same object version
    assert_progress_ok(s, OID, len(DATA))


def test_head_403_is_an_error_not_absent(harness: Harness) -> None:
    class Forbidden:
        def __init__(self, code: str) -> None:
            self.code = code
            self.calls: list[str] = []

        def head_object(self, **_: Any) -> Any:
            self.calls.append("head")
            raise ClientError({"Error": {"Code": "403", "Message": "Forbidden"},
                               "ResponseMetadata": {"HTTPStatusCode": 403}}, "HeadObject")

        def list_objects_v2(self, **_: Any) -> Any:
            self.calls.append("list")
            raise ClientError({"Error": {"Code": self.code, "Message": "m"},
                               "ResponseMetadata": {"HTTPStatusCode": 403}}, "ListObjectsV2")

        def put_object(self, **kwargs: Any) -> Any:
            assert kwargs.get("IfNoneMatch") == "*", "must not overwrite when HEAD was forbidden"
            self.calls.append("put")
            raise ClientError({"Error": {"Code": "PreconditionFailed", "Message": "exists"},  # something is there
                               "ResponseMetadata": {"HTTPStatusCode": 412}}, "PutObject")

    for code, expected in (("InvalidAccessKeyId", Code.CREDENTIALS), ("AccessDenied", Code.ACCESS_DENIED)):
        store = S3Store(harness.store.settings)
        fake = Forbidden(code)
        store._client = S3Client(fake, ClientSpec.for_store(store.settings))
        s = harness.run(INIT_UP, upload(OID, len(DATA), harness.file("a", DATA)), TERMINATE, store=store)
        assert s.completes()[0]["error"]["code"] == expected
        assert fake.calls == ["put", "head", "list"]


def test_same_size_object_recorded_as_another_oid_is_replaced(harness: Harness) -> None:
    harness.s3.put_object(Bucket=BUCKET, Key=harness.store.key(OID), Body=b"z" * len(DATA),
                          Metadata={"sha256": "f" * 64})
    s = harness.run(INIT_UP, upload(OID, len(DATA), harness.file("a", DATA)), TERMINATE)
    assert s.completes() == [{"event": "complete", "oid": OID}]
    assert "PutObject" in s.calls
    assert harness.s3.get_object(Bucket=BUCKET, Key=harness.store.key(OID))["Body"].read() == DATA


def test_head_before_put_asks_first_for_stores_without_conditional_writes(harness: Harness) -> None:
    from lfs_s3_agent.settings import Settings
    from lfs_s3_agent.store import S3Store

    store = S3Store(Settings(bucket=BUCKET, prefix="repo", head_before_put="true"))
    store.client.raw.meta.events.register("before-call.s3.*", harness._count)
    harness.put(DATA)
    s = harness.run(INIT_UP, upload(OID, len(DATA), harness.file("a", DATA)), TERMINATE, store=store)
    assert s.completes() == [{"event": "complete", "oid": OID}]
    assert s.calls == ["HeadObject"]  # stored already: not sent again
    other = b"new object" * 1000
    s = harness.run(INIT_UP, upload(oid_of(other), len(other), harness.file("b", other)), TERMINATE, store=store)
    assert s.calls == ["HeadObject", "PutObject"]
