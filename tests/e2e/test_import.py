"""import end to end: S3 objects copied into the LFS store, then pushed and cloned with real git and git-lfs.

Requests are counted by a recording proxy on 127.0.0.1 (tests/e2e/s3proxy.py): with the store (and so the
sources, reached like the store) behind it, a server-side import that reads no object bytes shows as no
GetObject at all. The fault proxy (tests/faultproxy.py) plays a store that returns no checksums.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
from typing import Any

import pytest

from tests.e2e.conftest import (
    NEEDS_STORED_CHECKSUMS,
    ON_RGW,
    Git,
    bucket_objects,
    commit_all,
    expected_key,
    git_common_dir,
    sha256,
)
from tests.e2e.s3proxy import CountingProxy
from tests.e2e.test_linked import MakeClone, no_incomplete_push_setting, pointer, put, tiles
from tests.faultproxy import Fault, FaultProxy
from tests.s3server import MotoServer

PREFIX = "repo"


def import_(git: Git, *args: str, check: bool = True) -> Any:
    proc = git.agent("import", *args, "--json", check=check)
    return json.loads(proc.stdout) if proc.stdout.strip() else proc


def test_import_hash_missing_checks_each_server_side_copy_on_any_store(make_clone: MakeClone, s3: MotoServer,
                                                                     bucket: str, source: str) -> None:
    # Runs on RGW 16 too, which keeps no checksums: the oid is hashed on the way (--hash-missing) and each
    # server-side copy, whose answer carries no SHA-256 there, is read back before it counts (issue 13: never
    # "0 failed" for a copy nobody checked). moto returns the copy's SHA-256, which decides instead.
    originals = {f"tiles/t{i}.laz": os.urandom(4000 + i) for i in range(3)}
    for key, data in originals.items():
        s3.client().put_object(Bucket=source, Key=key, Body=data)
    a = make_clone("a")
    report = import_(a, f"s3://{source}/tiles/*.laz", "--to", "data", "--no-checkout", "--hash-missing")
    assert report["imported"] == 3 and report["failed"] == 0, report
    assert {o["how"] for o in report["objects"]} == {"server-side"}
    assert {o["verified"] for o in report["objects"]} == ({"read"} if ON_RGW else {"checksum"})
    commit_all(a, "import tiles")
    a.run("push", "-q", "origin", "HEAD:main")
    for key in originals:
        s3.client().delete_object(Bucket=source, Key=key)
    b = make_clone("b")
    b.run("lfs", "pull")
    for key, data in originals.items():
        assert (b.path / "data" / key.split("/")[1]).read_bytes() == data, key


@NEEDS_STORED_CHECKSUMS
def test_server_side_import_reads_no_bytes_and_the_dataset_outlives_its_originals(
        make_clone: MakeClone, s3: MotoServer, bucket: str, source: str, proxy: CountingProxy) -> None:
    originals = tiles(s3, source, count=3)
    a = make_clone("a", endpoint_url=proxy.endpoint)  # the store behind the proxy; sources reached like it
    report = import_(a, f"s3://{source}/tiles/*.laz", "--to", "data", "--no-checkout")

    assert report["imported"] == 3 and report["failed"] == 0
    assert {o["how"] for o in report["objects"]} == {"server-side"}
    assert {o["verified"] for o in report["objects"]} == {"checksum"}
    # No object bytes passed through this machine: not one GetObject, to the source or to the store.
    assert proxy.object_gets(source) == [] and proxy.object_gets(bucket) == []
    assert report["requests"].get("GetObject", 0) == 0 and report["bytes_downloaded"] == 0
    assert proxy.writes(source) == []  # the originals were only read, server-side
    stored = bucket_objects(s3, bucket)
    for key, data in originals.items():
        oid = sha256(data)
        assert expected_key(PREFIX, oid) in stored
        assert s3.client().get_object(Bucket=bucket, Key=expected_key(PREFIX, oid))["Body"].read() == data
        assert (a.path / "data" / key.split("/")[1]).read_bytes() == pointer(data)
    assert not any(k.startswith(f"{PREFIX}/links/") for k in stored)  # ordinary objects: no link records
    links = git_common_dir(a) / "lfs-s3-agent" / "links"
    assert not links.exists() or not any(links.iterdir())

    # Pointers without local bytes push (the store holds them), and nothing is left switched on.
    commit_all(a, "import tiles")
    a.run("push", "-q", "origin", "HEAD:main")
    no_incomplete_push_setting(a)

    # The originals go away; a fresh clone does not notice: it reads the store only.
    client = s3.client()
    for key in originals:
        client.delete_object(Bucket=source, Key=key)
    proxy.clear()
    b = make_clone("b", endpoint_url=proxy.endpoint)
    b.run("lfs", "pull")
    for key, data in originals.items():
        assert (b.path / "data" / key.split("/")[1]).read_bytes() == data, key
    assert proxy.requests(source) == []


@NEEDS_STORED_CHECKSUMS
def test_import_from_another_endpoint_streams_each_original_once(
        make_clone: MakeClone, s3: MotoServer, bucket: str, source: str, proxy: CountingProxy) -> None:
    originals = tiles(s3, source, count=2, size=70_000)
    a = make_clone("a")  # the store on the server itself; the originals reached through the proxy: elsewhere
    proc = a.agent("import", f"s3://{source}/tiles/", "--to", "data", "--source-endpoint-url", proxy.endpoint)
    assert "streamed" in proc.stdout and "0 failed" in proc.stdout
    assert "not on the LFS store's endpoint" in proc.stdout
    for key, data in originals.items():
        assert (a.path / "data" / key.split("/")[1]).read_bytes() == data  # checked out
        assert proxy.object_bytes(source, key) == len(data), key  # read once: checkout and upload share it
        assert s3.client().get_object(Bucket=bucket, Key=expected_key(PREFIX, sha256(data)))["Body"].read() == data
    commit_all(a, "import")
    a.run("push", "-q", "origin", "HEAD:main")
    b = make_clone("b")
    b.run("lfs", "pull")
    assert all((b.path / "data" / k.split("/")[1]).read_bytes() == d for k, d in originals.items())


def b64sha(data: bytes) -> str:
    return base64.b64encode(hashlib.sha256(data).digest()).decode()


@pytest.mark.moto_only("an original whose stored checksum lies needs a server that keeps a claimed checksum "
                       "unchecked, as moto does")
def test_a_store_without_copy_checksums_gets_each_copy_read_back_and_a_lying_original_fails(
        make_clone: MakeClone, s3: MotoServer, bucket: str, source: str) -> None:
    good = os.urandom(3000)
    put(s3, source, "d/good.bin", good)
    claimed = os.urandom(3000)
    s3.client().put_object(Bucket=source, Key="d/bad.bin", Body=os.urandom(3000), ChecksumAlgorithm="SHA256",
                           ChecksumSHA256=b64sha(claimed))
    with FaultProxy(s3.endpoint) as fault:
        fault.add(Fault("strip-checksums", method="PUT", times=10**6))  # CopyObject answers carry no SHA-256
        a = make_clone("a", endpoint_url=fault.endpoint)
        proc = a.agent("import", f"s3://{source}/d/", "--to", "data", "--no-checkout", check=False)
        assert fault.faults[0].injected >= 2  # both copies came back without a checksum
    assert proc.returncode == 1, proc.stdout
    assert "1 by reading the copy back" in proc.stdout and "1 failed" in proc.stdout
    assert f"FAILED s3://{source}/d/bad.bin" in proc.stdout and "do not hash to the oid" in proc.stdout
    assert set(bucket_objects(s3, bucket)) == {expected_key(PREFIX, sha256(good))}  # the bad copy was removed
    assert (a.path / "data/good.bin").read_bytes() == pointer(good)
    assert not (a.path / "data/bad.bin").exists()
