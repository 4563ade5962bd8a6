"""What stores quietly do differently, found out by the agent and adapted to (issue 13), end to end.

Each test pushes and pulls through real git-lfs. The request counts come from the server side: Ceph
RGW's ops log when the tier runs there (``make interop``), else a proxy in front of moto
(``tests/faultproxy.py``) that also plays the stores the suite cannot run: one that refuses
``x-amz-checksum-*`` headers (Backblaze B2's S3 API), one that needs ``Content-MD5`` on DeleteObjects
(older MinIO and Ceph), one that drops ``If-None-Match`` (RGW on a versioned bucket), one that answers
it before the body as S3 does, and one that does not apply SSE.
"""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.conftest import (
    EXTERNAL_HTTPS,
    ON_RGW,
    Git,
    bucket_objects,
    commit_all,
    expected_key,
    log_env,
    new_bucket,
    read_upload_log,
    sha256,
    tree_digests,
    write_files,
)
from tests.faultproxy import FaultProxy
from tests.polling import wait_until
from tests.s3server import MotoServer

MakeClone = Callable[..., Git]
MIB = 1 << 20
EMULATED = "the proxy plays another store in front of moto (it needs moto's unchecked signatures or moto's SSE)"


def capabilities(git: Git) -> dict[str, Any]:
    """What the agent recorded about the store in this clone (one entry: one store and configuration)."""
    entries = json.loads((git.path / ".git" / "lfs-s3-agent" / "capabilities.json").read_text())
    assert len(entries) == 1, entries
    return dict(next(iter(entries.values())))


class Bodies:
    """Object bodies the server received: (method, key, bytes), from RGW's ops log or the proxy's record."""

    def __init__(self, s3: MotoServer, bucket: str, proxy: FaultProxy | None) -> None:
        self.s3, self.bucket, self.proxy = s3, bucket, proxy
        self.ops_log: Path | None = getattr(s3, "ops_log", None) if proxy is None else None
        self._mark = 0

    def mark(self) -> None:
        """Count only what comes after this."""
        if self.proxy is not None:
            self._mark = len(self.proxy.received)
        elif self.ops_log is not None:
            self._mark = self.ops_log.stat().st_size

    def since_mark(self) -> list[tuple[str, str, int]]:
        if self.proxy is not None:
            prefix = f"/{self.bucket}/"
            return [(m, path[len(prefix):].partition("?")[0], n) for m, path, n in self.proxy.received[self._mark:]
                    if path.startswith(prefix)]
        assert self.ops_log is not None, "on this endpoint the test needs RGW's ops log (LFS_S3_TEST_OPS_LOG)"
        # RGW writes its ops log asynchronously: a request of our own, found in the log, marks its end.
        sentinel = f"ops-log-sync-{uuid.uuid4().hex}"
        self.s3.client().put_object(Bucket=self.bucket, Key=sentinel, Body=b"")
        entries: list[dict[str, Any]] = []

        def read() -> bool:
            with self.ops_log.open("rb") as fh:  # type: ignore[union-attr]
                fh.seek(self._mark)
                entries[:] = ops_entries(fh.read().decode("utf-8", "replace"))
            return any(sentinel in e.get("uri", "") for e in entries)

        wait_until(read, "RGW's ops log to record the requests")
        out = []
        for e in entries:
            method, _, rest = e["uri"].partition(" ")
            path = rest.rpartition(" ")[0].partition("?")[0]
            if path.startswith(f"/{self.bucket}/") and sentinel not in path:
                out.append((method, path[len(self.bucket) + 2:], int(e.get("bytes_received") or 0)))
        return out


def ops_entries(text: str) -> list[dict[str, Any]]:
    """RGW's ops log entries: JSON objects one after another (not always one per line), the last one perhaps
    still being written (left for the next read)."""
    decoder = json.JSONDecoder()
    entries, at = [], 0
    while True:
        while at < len(text) and text[at] in " \t\r\n,[]":
            at += 1
        if at >= len(text):
            return entries
        try:
            entry, at = decoder.raw_decode(text, at)
        except json.JSONDecodeError:
            return entries
        entries.append(entry)


@contextmanager
def counted(s3: MotoServer, bucket: str) -> Iterator[tuple[str, Bodies]]:
    """(the endpoint a clone should use, the body counter): RGW directly, moto through a counting proxy."""
    if ON_RGW:
        yield s3.endpoint, Bodies(s3, bucket, None)
        return
    with FaultProxy(s3.endpoint, ca_bundle=getattr(s3, "ca_bundle", None)) as proxy:
        yield proxy.endpoint, Bodies(s3, bucket, proxy)


@pytest.mark.parametrize("versioned", [False, True], ids=["unversioned", "versioned"])
def test_a_re_push_sends_no_object_bodies_above_a_mebibyte(make_clone: MakeClone, s3: MotoServer, versioned: bool,
                                                          tmp_path: Path) -> None:
    # RGW 16 answers If-None-Match only after the body (unversioned) or ignores it (versioned); moto answers
    # after the body too. Either way, a re-push must not send the bytes of objects it stores already.
    bucket = new_bucket(s3, "redo")
    if versioned:
        s3.client().put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
    big = {f"big/{i}.bin": os.urandom(MIB + MIB // 2 + i) for i in range(3)}
    small = {f"small/{i}.bin": os.urandom(50_000 + i) for i in range(3)}
    with counted(s3, bucket) as (endpoint, bodies):
        a = make_clone("a", bucket=bucket, endpoint_url=endpoint)
        a.run("lfs", "track", "*.bin")
        write_files(a.path, {**big, **small})
        commit_all(a, "assets")
        a.run("push", "-q", "origin", "HEAD:main")
        found = capabilities(a)
        expected = ("ignored" if versioned and ON_RGW else "after-body")  # what these two servers do
        assert found["if_none_match"] == expected, found

        bodies.mark()
        second_log = tmp_path / "push2.log"
        a.run("lfs", "push", "--all", "origin", env=log_env(second_log))
        sent = [(m, key, n) for m, key, n in bodies.since_mark() if m == "PUT" and n > 0]
    assert [line for line in read_upload_log(second_log) if line[0] == "uploaded"] == []
    big_keys = {expected_key("repo", sha256(d)) for d in big.values()}
    assert [s for s in sent if s[1] in big_keys] == [], "a re-push sent the body of an object stored already"
    small_keys = {expected_key("repo", sha256(d)) for d in small.values()}
    if expected == "ignored":
        assert sent == [], "with If-None-Match ignored every upload must ask first"
    else:
        # Below 1 MiB the body goes and is refused (412): cheaper than a HEAD for every new object.
        assert {key for _, key, _ in sent} <= small_keys
    versions = s3.client().list_object_versions(Bucket=bucket, Prefix="repo/").get("Versions", [])
    assert len([v for v in versions if v["Key"] in big_keys | small_keys]) == len(big) + len(small), \
        "a re-push made a new version of an object"


def test_doctor_shows_what_the_store_does(make_clone: MakeClone, s3: MotoServer, bucket: str) -> None:
    s3.client().put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
    a = make_clone("a")
    report = json.loads(a.agent("doctor", "--json", check=False).stdout)
    store = next(c for c in report["checks"] if c["name"] == "store")
    assert store["status"] == "ok", store
    lines = "\n".join(store["lines"])
    assert "bucket versioning: Enabled" in lines
    if ON_RGW:
        assert "If-None-Match: ignored" in lines and "keeps checksums: no" in lines, lines
        assert "verifies checksums: no" in lines
    else:
        assert "If-None-Match: honoured only after the body" in lines and "keeps checksums: yes" in lines, lines
    assert "DeleteObjects: takes boto3's checksum" in lines
    checksums = next(c for c in report["checks"] if c["name"] == "checksums")
    # RGW 16 over https refuses boto3's default checksum trailer: a warning about other tools, not a failure.
    assert checksums["status"] == ("warn" if ON_RGW and EXTERNAL_HTTPS else "ok"), checksums
    assert (a.path / ".git" / "lfs-s3-agent" / "capabilities.json").is_file()


def test_sse_the_store_does_not_apply_fails_the_push_and_stores_nothing(make_clone: MakeClone, s3: MotoServer,
                                                                       bucket: str) -> None:
    # RGW 16 refuses SSE over http and does not apply it over https (no key configured); on moto the proxy
    # removes the x-amz-server-side-encryption answer header, as a store that ignores the request would.
    files = {"a.bin": os.urandom(70_000), "b.bin": os.urandom(1_000)}

    def push(endpoint: str) -> tuple[Git, str]:
        a = make_clone("a", sse="AES256", endpoint_url=endpoint)
        a.run("lfs", "track", "*.bin")
        write_files(a.path, files)
        commit_all(a, "assets")
        proc = a.try_("push", "-q", "origin", "HEAD:main")
        assert proc.returncode != 0, "a push whose objects would not be encrypted must fail"
        return a, proc.stderr

    if ON_RGW:
        _, err = push(s3.endpoint)
        why = "does not apply it" if EXTERNAL_HTTPS else "applies server-side encryption only over https"
    else:
        with FaultProxy(s3.endpoint, behaviours={"strip-sse"}) as proxy:
            _, err = push(proxy.endpoint)
        why = "does not apply it"
    assert why in err and "--sse none" in err, err
    assert [k for k in bucket_objects(s3, bucket) if k.startswith("repo/")] == [], "an unencrypted object was stored"


@pytest.mark.moto_only(EMULATED)
def test_import_into_a_store_that_does_not_apply_sse_copies_nothing(make_clone: MakeClone, s3: MotoServer,
                                                                   bucket: str) -> None:
    # A server-side copy into the store would be as unencrypted as an upload: the same check stops it.
    source = new_bucket(s3, "ssesrc")
    s3.client().put_object(Bucket=source, Key="d/x.bin", Body=os.urandom(5_000))
    with FaultProxy(s3.endpoint, behaviours={"strip-sse"}) as proxy:
        a = make_clone("a", sse="AES256", endpoint_url=proxy.endpoint)
        proc = a.agent("import", f"s3://{source}/d/*.bin", "--to", "data", "--hash-missing", check=False)
    assert proc.returncode != 0 and "does not apply it" in proc.stderr, proc.stderr
    assert [k for k in bucket_objects(s3, bucket) if k.startswith("repo/")] == []
    assert not (a.path / "data" / "x.bin").exists()


@pytest.mark.moto_only(EMULATED)
def test_a_store_refusing_checksum_headers_takes_pushes_pulls_links_and_gc(make_clone: MakeClone, s3: MotoServer,
                                                                         bucket: str, tmp_path: Path) -> None:
    files = {"small.bin": os.urandom(40_000), "big.bin": os.urandom(6 * MIB + 123)}  # one multipart object
    with FaultProxy(s3.endpoint, behaviours={"reject-checksum-headers"}) as proxy:
        flags = {"endpoint_url": proxy.endpoint, "multipart_threshold": "5MiB", "part_size": "5MiB"}
        a = make_clone("a", **flags)
        a.run("lfs", "track", "*.bin")
        write_files(a.path, files)
        commit_all(a, "assets")
        a.run("push", "-q", "origin", "HEAD:main")
        assert capabilities(a)["checksum_headers"] is False
        assert proxy.refused, "the proxy should have refused the first checksum header"

        b = make_clone("b", **flags)
        b.run("lfs", "pull")
        assert tree_digests(b.path) == tree_digests(a.path)

        # A clone that knows (the recorded capability) sends no checksum header at all: nothing refused.
        write_files(a.path, {"more.bin": os.urandom(9_000)})
        commit_all(a, "more")
        before = len(proxy.refused)
        a.run("push", "-q", "origin", "HEAD:main")
        assert proxy.refused[before:] == []

        # A linked original in a bucket of the same store: hashed on the way (no checksum to read there).
        source = new_bucket(s3, "b2src")
        original = os.urandom(30_000)
        s3.client().put_object(Bucket=source, Key="survey/x.bin", Body=original)
        a.agent("link", f"s3://{source}/survey/*.bin", "--to", "data", "--hash-missing")
        commit_all(a, "linked")
        a.run("push", "-q", "origin", "HEAD:main")
        b.run("pull", "-q", "origin", "main")
        b.run("lfs", "pull")
        assert (b.path / "data" / "x.bin").read_bytes() == original

        # gc's DeleteObjects carries Content-MD5 in place of the checksum header it may not send.
        stray = os.urandom(5_000)
        s3.client().put_object(Bucket=bucket, Key=expected_key("repo", sha256(stray)), Body=stray)
        a.agent("gc", "--force", "--grace", "0", "--allow-short-grace")
        assert expected_key("repo", sha256(stray)) not in bucket_objects(s3, bucket)


@pytest.mark.moto_only(EMULATED)
def test_gc_on_a_store_that_needs_content_md5_on_delete(make_clone: MakeClone, s3: MotoServer, bucket: str) -> None:
    with FaultProxy(s3.endpoint, behaviours={"require-delete-md5"}) as proxy:
        a = make_clone("a", endpoint_url=proxy.endpoint)
        a.run("lfs", "track", "*.bin")
        write_files(a.path, {"kept.bin": os.urandom(3_000)})
        commit_all(a, "one")
        a.run("push", "-q", "origin", "HEAD:main")
        stray = os.urandom(4_000)
        s3.client().put_object(Bucket=bucket, Key=expected_key("repo", sha256(stray)), Body=stray)
        out = a.agent("gc", "--force", "--grace", "0", "--allow-short-grace").stdout
        assert "deleted 1 object" in out, out
        assert proxy.refused == []
        doctor = json.loads(a.agent("doctor", "--json", check=False).stdout)
    store = next(c for c in doctor["checks"] if c["name"] == "store")
    assert "DeleteObjects: requires Content-MD5 (the agent always sends Content-MD5)" in store["lines"]
    assert expected_key("repo", sha256(stray)) not in bucket_objects(s3, bucket)


@pytest.mark.moto_only(EMULATED)
@pytest.mark.parametrize("behaviour", ["ignore-if-none-match", "early-precondition"])
def test_re_push_of_small_objects_where_if_none_match_is_ignored_or_answered_early(
        make_clone: MakeClone, s3: MotoServer, bucket: str, behaviour: str) -> None:
    files = {f"f{i}.bin": os.urandom(20_000 + i) for i in range(5)}
    keys = {expected_key("repo", sha256(d)) for d in files.values()}
    with FaultProxy(s3.endpoint, behaviours={behaviour}) as proxy:
        a = make_clone("a", endpoint_url=proxy.endpoint)
        a.run("lfs", "track", "*.bin")
        write_files(a.path, files)
        commit_all(a, "assets")
        a.run("push", "-q", "origin", "HEAD:main")
        assert capabilities(a)["if_none_match"] == ("ignored" if behaviour == "ignore-if-none-match" else
                                                    "before-body")
        bodies = Bodies(s3, bucket, proxy)
        bodies.mark()
        a.run("lfs", "push", "--all", "origin")
        second = [(m, key, n) for m, key, n in bodies.since_mark() if key in keys]
    assert [s for s in second if s[0] == "PUT" and s[2] > 0] == [], second
    heads = sorted(key for m, key, _ in second if m == "HEAD")
    puts = sorted(key for m, key, _ in second if m == "PUT")
    if behaviour == "ignore-if-none-match":
        assert heads == sorted(keys) and puts == [], second  # asked first: nothing sent
    else:
        # S3's way: a PUT each, refused before its body; then the HEAD that checks what is stored is whole.
        assert puts == sorted(keys) and heads == sorted(keys), second
