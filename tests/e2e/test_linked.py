"""Linked mode end to end: real git, real git-lfs, the agent as `install` wires it, a moto server.

The originals live in a *source* bucket, separate from the LFS bucket. Every request to a source
goes through a recording proxy on 127.0.0.1 (tests/e2e/s3proxy.py): the ``link`` command reaches it
through ``--source-endpoint-url`` (or git config ``lfs-s3-source.<bucket>.endpoint-url``), and clones
through the endpoint hint the link record carries. That is how these tests count the GETs and bytes
an original served, see which version was asked for, and check that requests to a public source
were unsigned, without any hook inside the agent.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import stat
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.conftest import (
    NEEDS_STORED_CHECKSUMS,
    S3_IMPL,
    Git,
    bucket_objects,
    commit_all,
    expected_key,
    git_common_dir,
    leftover_tmp_files,
    pointer_oid,
    sha256,
)
from tests.e2e.s3proxy import CountingProxy
from tests.s3server import MotoServer

MakeClone = Callable[..., Git]
MIB = 1 << 20
PREFIX = "repo"  # make_clone's default prefix in the LFS bucket


# -- fixtures and helpers --------------------------------------------------------------------------

def trust_source(clone: Git, bucket: str, proxy: CountingProxy) -> None:
    """What a user does once for a source on its own endpoint (not the store's, not AWS)."""
    clone.run("config", f"lfs-s3-source.{bucket}.endpoint-url", proxy.endpoint)


def put(s3: MotoServer, bucket: str, key: str, data: bytes, *, checksum: bool = True, **extra: Any) -> dict[str, Any]:
    """Upload an original; with ``checksum`` S3 stores its full-object SHA-256."""
    args: dict[str, Any] = {"ChecksumAlgorithm": "SHA256"} if checksum else {}
    if checksum and S3_IMPL != "moto":
        # Precomputed, so boto3 sends it as a header: RGW 16 refuses boto3's checksum trailer over https.
        # (moto stores a precomputed value only with the algorithm header too: its tests keep the trailer.)
        args["ChecksumSHA256"] = b64sha(data)
    return dict(s3.client().put_object(Bucket=bucket, Key=key, Body=data, **args, **extra))


def put_multipart(s3: MotoServer, bucket: str, key: str) -> bytes:
    """A two-part upload made with ChecksumAlgorithm=SHA256: its checksum is a composite of part hashes."""
    client = s3.client()
    data = os.urandom(5 * MIB) + os.urandom(1000)
    upload = client.create_multipart_upload(Bucket=bucket, Key=key, ChecksumAlgorithm="SHA256",
                                            ContentType="application/vnd.laszip", Metadata={"survey": "2024"})
    parts = []
    for number, chunk in enumerate((data[: 5 * MIB], data[5 * MIB:]), start=1):
        part = client.upload_part(Bucket=bucket, Key=key, UploadId=upload["UploadId"], PartNumber=number,
                                  Body=chunk, ChecksumAlgorithm="SHA256")
        parts.append({"PartNumber": number, "ETag": part["ETag"], "ChecksumSHA256": part["ChecksumSHA256"]})
    client.complete_multipart_upload(Bucket=bucket, Key=key, UploadId=upload["UploadId"],
                                     MultipartUpload={"Parts": parts})
    head = client.head_object(Bucket=bucket, Key=key, ChecksumMode="ENABLED")
    # The premise of the composite tests: what S3 reports is not the file's SHA-256.
    assert head["ETag"].strip('"').endswith("-2")
    assert head.get("ChecksumSHA256") != b64sha(data)
    return data


def b64sha(data: bytes) -> str:
    return base64.b64encode(hashlib.sha256(data).digest()).decode()


def pointer(data: bytes) -> bytes:
    return (f"version https://git-lfs.github.com/spec/v1\noid sha256:{sha256(data)}\nsize {len(data)}\n"
            .encode())


def link(git: Git, *args: str, check: bool = True, env: dict[str, str] | None = None) -> Any:
    """Run ``lfs-s3-agent link ... --json``; the parsed report, or the CompletedProcess when ``check`` is off."""
    runner = git
    if env is not None:
        runner = Git(git.path)
        runner.env = {**git.env, **env}  # not Git(path, env): that would put os.environ's credentials back
    proc = runner.agent("link", *args, "--json", check=check)
    return json.loads(proc.stdout) if check else proc


def snapshot(s3: MotoServer, bucket: str) -> dict[str, tuple[Any, ...]]:
    """Every object with what would change if anything wrote to it."""
    client = s3.client()
    out = {}
    for key, info in bucket_objects(s3, bucket).items():
        head = client.head_object(Bucket=bucket, Key=key, ChecksumMode="ENABLED")
        out[key] = (info["ETag"], info["LastModified"], info["Size"], head.get("ChecksumSHA256"))
    return out


def lfs_object(git: Git, oid: str) -> Path:
    return git_common_dir(git) / "lfs" / "objects" / oid[0:2] / oid[2:4] / oid


def local_record(git: Git, oid: str) -> dict[str, Any]:
    path = git_common_dir(git) / "lfs-s3-agent" / "links" / f"{oid}.json"
    return dict(json.loads(path.read_text(encoding="utf-8")))


def store_record(s3: MotoServer, bucket: str, oid: str) -> dict[str, Any]:
    key = f"{PREFIX}/links/{oid[0:2]}/{oid[2:4]}/{oid}.json"
    return dict(json.loads(s3.client().get_object(Bucket=bucket, Key=key)["Body"].read()))


def no_incomplete_push_setting(git: Git) -> None:
    """The push went through without lfs.allowincompletepush being left on anywhere."""
    proc = git.try_("config", "--get", "lfs.allowincompletepush")
    assert proc.returncode == 1 and proc.stdout == "", proc.stdout


def without_aws_credentials(git: Git) -> Git:
    """The same repository, run with no AWS credentials at all (and no instance-metadata lookups)."""
    env = {k: v for k, v in git.env.items() if k not in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY",
                                                          "AWS_SESSION_TOKEN", "AWS_PROFILE")}
    env["AWS_EC2_METADATA_DISABLED"] = "true"
    clean = Git(git.path)
    clean.env = env
    return clean


def tiles(s3: MotoServer, bucket: str, count: int = 3, size: int = 3000, **extra: Any) -> dict[str, bytes]:
    """``tiles/t<i>.laz`` originals with full-object SHA-256 checksums; key -> bytes."""
    out = {}
    for i in range(count):
        data = os.urandom(size + i)
        put(s3, bucket, f"tiles/t{i}.laz", data, **extra)
        out[f"tiles/t{i}.laz"] = data
    return out


# -- link with checksums present -------------------------------------------------------------------

@NEEDS_STORED_CHECKSUMS
def test_link_with_checksums_checks_out_bytes(make_clone: MakeClone, s3: MotoServer, source: str, bucket: str,
                                              proxy: CountingProxy) -> None:
    originals = {
        "tiles/a.laz": os.urandom(4000),
        "tiles/b.tif": os.urandom(2000),
        "tiles/2024/north/c.laz": os.urandom(3000),
        "tiles/2024/d.tif": os.urandom(1000),
        "extra/e.laz": os.urandom(500),
    }
    for key, data in originals.items():
        put(s3, source, key, data)
    put(s3, source, "tiles/notes.txt", b"not matched")
    put(s3, source, "tiles/f.las", b"not matched either")
    before = snapshot(s3, source)

    a = make_clone("a")
    report = link(a, f"s3://{source}/tiles/**/*.{{laz,tif}}", f"s3://{source}/extra/e.laz", "--to", "data",
                  "--source-endpoint-url", proxy.endpoint)

    # Files mirror the keys below each pattern's literal prefix, byte-identical to the originals.
    placed = {"data/a.laz": "tiles/a.laz", "data/b.tif": "tiles/b.tif", "data/2024/north/c.laz":
              "tiles/2024/north/c.laz", "data/2024/d.tif": "tiles/2024/d.tif", "data/e.laz": "extra/e.laz"}
    for path, key in placed.items():
        assert (a.path / path).read_bytes() == originals[key], path
    assert sorted(str(p.relative_to(a.path)) for p in (a.path / "data").rglob("*") if p.is_file()) == sorted(placed)
    assert report["linked"] == 5
    assert report["bytes_referenced"] == sum(len(d) for d in originals.values())
    assert report["bytes_downloaded"] == sum(len(d) for d in originals.values())
    assert sorted(report["paths"]) == sorted(placed)

    # .gitattributes makes git-lfs filter them, so git stores pointers.
    assert report["gitattributes"] == "data/** filter=lfs diff=lfs merge=lfs -text"
    assert "data/** filter=lfs diff=lfs merge=lfs -text\n" in (a.path / ".gitattributes").read_text()
    a.run("add", ".gitattributes", "data")
    for path, key in placed.items():
        assert a.run("show", f":{path}").encode() == pointer(originals[key]), path
        assert lfs_object(a, sha256(originals[key])).read_bytes() == originals[key]

    # Link records hold where each original is; nothing went to the LFS bucket; the source was only read.
    record = local_record(a, sha256(originals["tiles/2024/north/c.laz"]))
    assert (record["bucket"], record["key"], record["size"]) == (source, "tiles/2024/north/c.laz", 3000)
    assert record["etag"] == before["tiles/2024/north/c.laz"][0]
    assert record["unsigned"] is False
    assert bucket_objects(s3, bucket) == {}
    assert snapshot(s3, source) == before
    assert proxy.writes(source) == []
    assert all(s.signed for s in proxy.requests(source))  # signed by default (the proxy tells them apart)
    assert proxy.object_gets(source, "tiles/notes.txt") == []
    # each original was read exactly once
    for key, data in originals.items():
        assert proxy.object_bytes(source, key) == len(data), key



@NEEDS_STORED_CHECKSUMS
def test_relinking_a_grown_dataset_needs_no_force(make_clone: MakeClone, s3: MotoServer, source: str,
                                                  proxy: CountingProxy) -> None:
    """Run the same link again after new originals arrived: files already holding their linked
    content (checked out by the first run) are not "someone else's files" and must not need --force."""
    originals = tiles(s3, source, count=2)
    a = make_clone("a")
    args = (f"s3://{source}/tiles/*.laz", "--to", "data", "--source-endpoint-url", proxy.endpoint)
    link(a, *args)
    commit_all(a, "first batch")
    originals["tiles/t9.laz"] = os.urandom(1234)
    put(s3, source, "tiles/t9.laz", originals["tiles/t9.laz"])

    proc = link(a, *args, check=False)
    assert proc.returncode == 0, proc.stderr
    for key, data in originals.items():
        assert (a.path / "data" / key.split("/")[1]).read_bytes() == data, key
    assert (a.path / ".gitattributes").read_text().count("data/**") == 1
    assert a.run("status", "--porcelain") == "?? data/t9.laz\n"


# -- composite and missing checksums ---------------------------------------------------------------

@NEEDS_STORED_CHECKSUMS
def test_composite_and_missing_checksums_are_refused_then_hash_missing(
        make_clone: MakeClone, s3: MotoServer, source: str, proxy: CountingProxy) -> None:
    good = os.urandom(2000)
    put(s3, source, "tiles/good.laz", good)
    plain = os.urandom(3000)
    put(s3, source, "tiles/plain.laz", plain, checksum=False)
    big = put_multipart(s3, source, "tiles/big.laz")
    a = make_clone("a")
    pattern = f"s3://{source}/tiles/*.laz"

    proc = link(a, pattern, "--to", "data", "--source-endpoint-url", proxy.endpoint, check=False)
    assert proc.returncode == 1
    err = proc.stderr
    assert f"s3://{source}/tiles/big.laz" in err and "composite" in err
    assert f"s3://{source}/tiles/plain.laz" in err and "no SHA-256 checksum" in err
    assert f"s3://{source}/tiles/good.laz" not in err
    assert "lfs-s3-agent add-checksum" in err and pattern in err  # remedy 1
    assert "--hash-missing" in err  # remedy 2
    # Refused before anything was written or downloaded.
    assert not (a.path / "data").exists()
    assert not (a.path / ".gitattributes").exists()
    assert not (git_common_dir(a) / "lfs-s3-agent" / "links").exists() or not any(
        (git_common_dir(a) / "lfs-s3-agent" / "links").iterdir())
    assert proxy.object_gets(source) == []

    proxy.clear()
    report = link(a, pattern, "--to", "data", "--hash-missing", "--source-endpoint-url", proxy.endpoint)
    assert report["linked"] == 3 and report["hashed"] == 2
    for name, data in (("good", good), ("plain", plain), ("big", big)):
        assert (a.path / f"data/{name}.laz").read_bytes() == data, name
        a.run("add", f"data/{name}.laz")
        # the oid is the file's own SHA-256, never the composite value
        assert a.run("show", f":data/{name}.laz").encode() == pointer(data), name
        # each original read once: hashing and checkout share one download
        assert proxy.object_bytes(source, f"tiles/{name}.laz") == len(data), name
    assert proxy.writes(source) == []


@NEEDS_STORED_CHECKSUMS
def test_hash_missing_with_no_checkout_stores_nothing(make_clone: MakeClone, s3: MotoServer, source: str,
                                                      proxy: CountingProxy) -> None:
    plain = os.urandom(3000)
    put(s3, source, "tiles/plain.laz", plain, checksum=False)
    big = put_multipart(s3, source, "tiles/big.laz")
    a = make_clone("a")
    report = link(a, f"s3://{source}/tiles/", "--to", "data", "--hash-missing", "--no-checkout",
                  "--source-endpoint-url", proxy.endpoint)
    assert report["hashed"] == 2
    assert (a.path / "data/plain.laz").read_bytes() == pointer(plain)
    assert (a.path / "data/big.laz").read_bytes() == pointer(big)
    assert not lfs_object(a, sha256(plain)).exists() and not lfs_object(a, sha256(big)).exists()
    assert proxy.object_bytes(source, "tiles/plain.laz") == len(plain)  # streamed once through SHA-256
    assert proxy.object_bytes(source, "tiles/big.laz") == len(big)
    assert leftover_tmp_files(git_common_dir(a) / "lfs") == []


@NEEDS_STORED_CHECKSUMS
def test_add_checksum_dry_run_then_plain_link(make_clone: MakeClone, s3: MotoServer, source: str,
                                              proxy: CountingProxy) -> None:
    good = os.urandom(2000)
    put(s3, source, "tiles/good.laz", good)
    plain = os.urandom(3000)
    put(s3, source, "tiles/plain.laz", plain, checksum=False, ContentType="application/vnd.laszip",
        Metadata={"crs": "EPSG:2154"}, CacheControl="max-age=60")
    big = put_multipart(s3, source, "tiles/big.laz")
    a = make_clone("a")
    pattern = f"s3://{source}/tiles/*.laz"
    before = snapshot(s3, source)

    dry = a.agent("add-checksum", pattern, "--dry-run", "--source-endpoint-url", proxy.endpoint)
    assert f"would add SHA-256: s3://{source}/tiles/plain.laz" in dry.stdout
    assert f"would add SHA-256: s3://{source}/tiles/big.laz" in dry.stdout
    assert "tiles/good.laz" not in dry.stdout
    assert "1 already had one" in dry.stdout
    assert snapshot(s3, source) == before
    assert proxy.writes(source) == []

    done = a.agent("add-checksum", pattern, "--source-endpoint-url", proxy.endpoint)
    assert f"added SHA-256: s3://{source}/tiles/plain.laz" in done.stdout
    assert f"added SHA-256: s3://{source}/tiles/big.laz" in done.stdout
    assert "ACL" in done.stderr  # copying in place does not keep ACLs: said out loud
    client = s3.client()
    for key, data in (("tiles/plain.laz", plain), ("tiles/big.laz", big)):
        head = client.head_object(Bucket=source, Key=key, ChecksumMode="ENABLED")
        assert head.get("ChecksumSHA256") == b64sha(data), key
        assert client.get_object(Bucket=source, Key=key)["Body"].read() == data, key
    head = client.head_object(Bucket=source, Key="tiles/plain.laz")
    assert head["ContentType"] == "application/vnd.laszip"
    assert head["Metadata"] == {"crs": "EPSG:2154"}
    assert head.get("CacheControl") == "max-age=60"
    big_head = client.head_object(Bucket=source, Key="tiles/big.laz")
    assert big_head["ContentType"] == "application/vnd.laszip" and big_head["Metadata"] == {"survey": "2024"}
    assert snapshot(s3, source)["tiles/good.laz"] == before["tiles/good.laz"]  # only what needed it was written

    proxy.clear()
    report = link(a, pattern, "--to", "data", "--no-checkout", "--source-endpoint-url", proxy.endpoint)
    assert report["linked"] == 3 and report["hashed"] == 0 and report["bytes_downloaded"] == 0
    for name, data in (("good", good), ("plain", plain), ("big", big)):
        assert (a.path / f"data/{name}.laz").read_bytes() == pointer(data), name
    assert proxy.object_gets(source) == []


# -- --no-checkout -> commit -> push -> clone -> pull ----------------------------------------------

@NEEDS_STORED_CHECKSUMS
def test_no_checkout_push_clone_pull(make_clone: MakeClone, s3: MotoServer, source: str, bucket: str,
                                     proxy: CountingProxy) -> None:
    originals = tiles(s3, source, count=3)
    originals["tiles/big.laz"] = os.urandom(17 * MIB)  # above the multipart threshold: parallel ranged GETs
    put(s3, source, "tiles/big.laz", originals["tiles/big.laz"])
    before = snapshot(s3, source)
    a = make_clone("a")

    report = link(a, f"s3://{source}/tiles/*.laz", "--to", "data/tiles", "--no-checkout",
                  "--source-endpoint-url", proxy.endpoint)
    assert report["linked"] == 4 and report["bytes_downloaded"] == 0
    # Zero object bytes: the proxy saw HEADs and a listing, not one GetObject.
    assert proxy.object_gets(source) == [] and proxy.object_bytes(source) == 0
    assert {s.method for s in proxy.requests(source)} <= {"HEAD", "GET"}
    assert leftover_tmp_files(git_common_dir(a) / "lfs") == []
    for key, data in originals.items():
        path = a.path / "data" / key
        assert path.read_bytes() == pointer(data), key
        assert not lfs_object(a, sha256(data)).exists(), key

    commit_all(a, "link tiles")
    proxy.clear()
    push = a.try_("push", "origin", "HEAD:main")
    assert push.returncode == 0, push.stderr
    no_incomplete_push_setting(a)
    assert proxy.object_gets(source) == []  # the push did not fetch the originals either
    # Only link records went to the LFS store, one per oid, naming the originals.
    assert set(bucket_objects(s3, bucket)) == {f"{PREFIX}/links/{sha256(d)[0:2]}/{sha256(d)[2:4]}/{sha256(d)}.json"
                                               for d in originals.values()}
    rec = store_record(s3, bucket, sha256(originals["tiles/t1.laz"]))
    assert (rec["bucket"], rec["key"], rec["size"], rec["etag"]) == (
        source, "tiles/t1.laz", len(originals["tiles/t1.laz"]), before["tiles/t1.laz"][0])
    assert rec["endpoint_url"] == proxy.endpoint

    b = make_clone("b")
    trust_source(b, source, proxy)  # the record's endpoint is a hint: each clone says it trusts it
    assert (b.path / "data/tiles/t0.laz").read_bytes() == pointer(originals["tiles/t0.laz"])
    proxy.clear()
    b.run("lfs", "pull")
    for key, data in originals.items():
        assert (b.path / "data" / key).read_bytes() == data, key
    assert b.run("status", "--porcelain") == ""
    # The bytes came from the originals, each read once.
    for key, data in originals.items():
        assert proxy.object_bytes(source, key) == len(data), key
    assert snapshot(s3, source) == before
    assert proxy.writes(source) == []
    assert set(bucket_objects(s3, bucket)) == {f"{PREFIX}/links/{sha256(d)[0:2]}/{sha256(d)[2:4]}/{sha256(d)}.json"
                                               for d in originals.values()}
    assert leftover_tmp_files(git_common_dir(b) / "lfs") == []


@NEEDS_STORED_CHECKSUMS
def test_genuinely_missing_object_still_blocks_the_push(make_clone: MakeClone, s3: MotoServer, source: str,
                                                        bucket: str, proxy: CountingProxy) -> None:
    """The pre-push step lets linked objects through, never an ordinary object that is missing."""
    tiles(s3, source, count=1)
    a = make_clone("a")
    link(a, f"s3://{source}/tiles/*.laz", "--to", "data", "--no-checkout", "--source-endpoint-url", proxy.endpoint)
    a.run("lfs", "track", "*.bin")
    normal = os.urandom(1500)
    (a.path / "normal.bin").write_bytes(normal)
    commit_all(a, "linked + normal")
    lfs_object(a, sha256(normal)).unlink()  # lost locally: pushing now would lose it for everyone

    push = a.try_("push", "origin", "HEAD:main")
    assert push.returncode != 0
    assert sha256(normal) in push.stdout + push.stderr
    assert a.try_("ls-remote", "--heads", "origin").stdout == ""
    assert expected_key(PREFIX, sha256(normal)) not in bucket_objects(s3, bucket)
    no_incomplete_push_setting(a)


# -- an original changed after linking -------------------------------------------------------------

@NEEDS_STORED_CHECKSUMS
def test_overwritten_or_deleted_original_is_detected(make_clone: MakeClone, s3: MotoServer, source: str,
                                                     proxy: CountingProxy) -> None:
    originals = tiles(s3, source, count=3)
    a = make_clone("a")
    link(a, f"s3://{source}/tiles/*.laz", "--to", "data", "--no-checkout", "--source-endpoint-url", proxy.endpoint)
    commit_all(a, "link")
    a.run("push", "origin", "HEAD:main")

    # Same size, other bytes: only the pinned ETag can tell. And one original deleted.
    changed = os.urandom(len(originals["tiles/t2.laz"]))
    put(s3, source, "tiles/t2.laz", changed)
    s3.client().delete_object(Bucket=source, Key="tiles/t1.laz")

    b = make_clone("b")
    trust_source(b, source, proxy)  # the record's endpoint is a hint: each clone says it trusts it
    pull = b.try_("lfs", "pull")
    assert pull.returncode != 0
    out = pull.stdout + pull.stderr
    assert f"s3://{source}/tiles/t2.laz" in out
    assert f"s3://{source}/tiles/t1.laz" in out
    assert "deleted or overwritten" in out
    for key in ("tiles/t1.laz", "tiles/t2.laz"):
        assert (b.path / "data" / key.split("/")[1]).read_bytes() == pointer(originals[key]), key
        assert not lfs_object(b, sha256(originals[key])).exists()
    assert not lfs_object(b, sha256(changed)).exists()
    assert leftover_tmp_files(git_common_dir(b) / "lfs") == []

    # `lfs-s3-agent checkout` says the same, and leaves the pointer.
    proc = b.agent("checkout", "data/t2.laz", check=False)
    assert proc.returncode == 1
    assert f"s3://{source}/tiles/t2.laz" in proc.stderr and "deleted or overwritten" in proc.stderr
    assert (b.path / "data/t2.laz").read_bytes() == pointer(originals["tiles/t2.laz"])


@NEEDS_STORED_CHECKSUMS
def test_versioned_source_fetches_the_linked_version(make_clone: MakeClone, s3: MotoServer, source: str,
                                                     bucket: str, proxy: CountingProxy) -> None:
    s3.client().put_bucket_versioning(Bucket=source, VersioningConfiguration={"Status": "Enabled"})
    v1 = {"tiles/t0.laz": os.urandom(2500), "tiles/t1.laz": os.urandom(2600)}
    versions = {key: put(s3, source, key, data)["VersionId"] for key, data in v1.items()}
    assert all(versions.values())
    a = make_clone("a")
    # Source settings from git config this time (the record keeps the endpoint as a hint for clones).
    a.run("config", f"lfs-s3-source.{source}.endpoint-url", proxy.endpoint)
    link(a, f"s3://{source}/tiles/*.laz", "--to", "data", "--no-checkout")
    for key, data in v1.items():
        assert local_record(a, sha256(data))["version_id"] == versions[key]
    commit_all(a, "link")
    a.run("push", "origin", "HEAD:main")
    for key, data in v1.items():
        assert store_record(s3, bucket, sha256(data))["version_id"] == versions[key]

    # Overwrite one original (a new version, same size) and delete the other (a delete marker).
    put(s3, source, "tiles/t0.laz", os.urandom(len(v1["tiles/t0.laz"])))
    s3.client().delete_object(Bucket=source, Key="tiles/t1.laz")

    b = make_clone("b")
    trust_source(b, source, proxy)  # the record's endpoint is a hint: each clone says it trusts it
    proxy.clear()
    b.run("lfs", "pull")
    for key, data in v1.items():
        assert (b.path / "data" / key.split("/")[1]).read_bytes() == data, key
        gets = proxy.object_gets(source, key)
        assert gets and all(g.query.get("versionId") == versions[key] for g in gets), gets


# -- linked and normal objects in one push ---------------------------------------------------------

@NEEDS_STORED_CHECKSUMS
def test_linked_and_normal_objects_in_one_push(make_clone: MakeClone, s3: MotoServer, source: str, bucket: str,
                                               proxy: CountingProxy) -> None:
    originals = tiles(s3, source, count=2)
    a = make_clone("a")
    # One linked file checked out (its bytes are local), one linked without bytes, one ordinary LFS file.
    link(a, f"s3://{source}/tiles/t0.laz", "--to", "full", "--source-endpoint-url", proxy.endpoint)
    link(a, f"s3://{source}/tiles/t1.laz", "--to", "lazy", "--no-checkout", "--source-endpoint-url", proxy.endpoint)
    a.run("lfs", "track", "*.bin")
    normal = os.urandom(4321)
    (a.path / "normal.bin").write_bytes(normal)
    commit_all(a, "mixed")
    assert lfs_object(a, sha256(originals["tiles/t0.laz"])).exists()
    a.run("push", "origin", "HEAD:main")
    no_incomplete_push_setting(a)

    linked = [sha256(originals["tiles/t0.laz"]), sha256(originals["tiles/t1.laz"])]
    stored = bucket_objects(s3, bucket)
    assert set(stored) == {expected_key(PREFIX, sha256(normal))} | {
        f"{PREFIX}/links/{oid[0:2]}/{oid[2:4]}/{oid}.json" for oid in linked}
    # The normal object's bytes are in the LFS bucket; the linked ones are not, anywhere in it.
    body = s3.client().get_object(Bucket=bucket, Key=expected_key(PREFIX, sha256(normal)))["Body"].read()
    assert body == normal
    for key in stored:
        assert stored[key]["Size"] < 1000 or key == expected_key(PREFIX, sha256(normal)), key
    for oid, key in zip(linked, ("tiles/t0.laz", "tiles/t1.laz"), strict=True):
        assert (store_record(s3, bucket, oid)["key"], store_record(s3, bucket, oid)["bucket"]) == (key, source)

    b = make_clone("b")
    trust_source(b, source, proxy)  # the record's endpoint is a hint: each clone says it trusts it
    b.run("lfs", "pull")
    assert (b.path / "full/t0.laz").read_bytes() == originals["tiles/t0.laz"]
    assert (b.path / "lazy/t1.laz").read_bytes() == originals["tiles/t1.laz"]
    assert (b.path / "normal.bin").read_bytes() == normal
    assert b.run("status", "--porcelain") == ""


# -- public sources: unsigned requests -------------------------------------------------------------

@pytest.fixture
def public_source(s3: MotoServer) -> str:
    """A public-read bucket: moto serves its objects to anonymous (unsigned) requests, not private ones."""
    name = f"pub-{uuid.uuid4().hex[:12]}"
    s3.client().create_bucket(Bucket=name, ACL="public-read")
    return name


@NEEDS_STORED_CHECKSUMS
def test_unsigned_public_source_with_flag(make_clone: MakeClone, s3: MotoServer, public_source: str,
                                          proxy: CountingProxy) -> None:
    originals = tiles(s3, public_source, count=2, ACL="public-read")
    a = make_clone("a")
    # No AWS credentials at all: a signed request could not even be built.
    report = link(without_aws_credentials(a), f"s3://{public_source}/tiles/*.laz", "--to", "data",
                  "--no-sign-request", "--source-endpoint-url", proxy.endpoint)
    assert report["linked"] == 2
    for key, data in originals.items():
        assert (a.path / "data" / key.split("/")[1]).read_bytes() == data
        assert local_record(a, sha256(data))["unsigned"] is True
    seen = proxy.requests(public_source)
    assert seen and not any(s.signed for s in seen), seen
    assert proxy.object_gets(public_source)  # the bytes were fetched, unsigned

    commit_all(a, "link public")
    a.run("push", "origin", "HEAD:main")
    b = make_clone("b")  # has credentials, for the LFS bucket; the source must still get unsigned requests
    trust_source(b, public_source, proxy)  # the record's endpoint is a hint: each clone says it trusts it
    proxy.clear()
    b.run("lfs", "pull")
    for key, data in originals.items():
        assert (b.path / "data" / key.split("/")[1]).read_bytes() == data
    gets = proxy.object_gets(public_source)
    assert len(gets) == 2 and not any(s.signed for s in proxy.requests(public_source)), gets


@NEEDS_STORED_CHECKSUMS
@pytest.mark.parametrize("value", ["1", "true"])
def test_aws_no_sign_request_env_turns_unsigned_on(make_clone: MakeClone, s3: MotoServer, public_source: str,
                                                   proxy: CountingProxy, value: str) -> None:
    originals = tiles(s3, public_source, count=1, ACL="public-read")
    a = make_clone("a")
    report = link(without_aws_credentials(a), f"s3://{public_source}/tiles/", "--to", "data", "--no-checkout",
                  "--source-endpoint-url", proxy.endpoint, env={"AWS_NO_SIGN_REQUEST": value})
    assert report["linked"] == 1
    data = originals["tiles/t0.laz"]
    assert local_record(a, sha256(data))["unsigned"] is True
    seen = proxy.requests(public_source)
    assert seen and not any(s.signed for s in seen), seen


@pytest.mark.parametrize("value", ["0", ""])
def test_aws_no_sign_request_falsy_values_keep_signing(make_clone: MakeClone, s3: MotoServer, public_source: str,
                                                       proxy: CountingProxy, value: str) -> None:
    """Mere presence is not "on": with no credentials, a signed request fails and says what to do."""
    tiles(s3, public_source, count=1, ACL="public-read")
    a = make_clone("a")
    proc = link(without_aws_credentials(a), f"s3://{public_source}/tiles/", "--to", "data", "--no-checkout",
                "--source-endpoint-url", proxy.endpoint, env={"AWS_NO_SIGN_REQUEST": value}, check=False)
    assert proc.returncode == 1
    assert "--no-sign-request" in proc.stderr
    assert not (a.path / "data").exists()


# -- lfs-s3-agent checkout -------------------------------------------------------------------------

@NEEDS_STORED_CHECKSUMS
def test_checkout_after_no_checkout(make_clone: MakeClone, s3: MotoServer, source: str, proxy: CountingProxy) -> None:
    originals = tiles(s3, source, count=3)
    a = make_clone("a")
    link(a, f"s3://{source}/tiles/", "--to", "data", "--no-checkout", "--source-endpoint-url", proxy.endpoint)
    commit_all(a, "link")
    assert proxy.object_gets(source) == []

    # One file: only its bytes are fetched.
    a.agent("checkout", "data/t1.laz")
    assert (a.path / "data/t1.laz").read_bytes() == originals["tiles/t1.laz"]
    assert (a.path / "data/t0.laz").read_bytes() == pointer(originals["tiles/t0.laz"])
    assert proxy.object_bytes(source) == len(originals["tiles/t1.laz"])
    assert lfs_object(a, sha256(originals["tiles/t1.laz"])).exists()

    # A directory, from a subdirectory: the rest.
    a.agent("checkout", ".", cwd=a.path / "data")
    for key, data in originals.items():
        assert (a.path / "data" / key.split("/")[1]).read_bytes() == data, key
    assert proxy.object_bytes(source) == sum(len(d) for d in originals.values())
    assert a.run("diff", "--stat") == ""  # content checked out == the committed pointers
    status_a = a.run("status", "--porcelain")

    # In a fresh clone, the link is found through the record the push stored.
    a.run("push", "origin", "HEAD:main")
    b = make_clone("b")
    trust_source(b, source, proxy)  # the record's endpoint is a hint: each clone says it trusts it
    b.agent("checkout", "data")
    for key, data in originals.items():
        assert (b.path / "data" / key.split("/")[1]).read_bytes() == data, key
    # Like `git lfs checkout`, the index is refreshed: git status must not call the files modified.
    assert (status_a, b.run("status", "--porcelain")) == ("", "")


@NEEDS_STORED_CHECKSUMS
def test_written_files_follow_the_umask_like_git(make_clone: MakeClone, s3: MotoServer, source: str,
                                                 proxy: CountingProxy) -> None:
    """Pointers and checked-out files get the same permissions git gives the files it writes."""
    tiles(s3, source, count=2)
    a = make_clone("a")
    (a.path / "by-git.txt").write_text("x")
    a.run("add", "by-git.txt")
    a.run("commit", "-qm", "x")
    (a.path / "by-git.txt").unlink()
    a.run("checkout", "--", "by-git.txt")  # a file git itself wrote
    expected = stat.S_IMODE((a.path / "by-git.txt").stat().st_mode)
    umask = os.umask(0)
    os.umask(umask)
    assert expected == 0o666 & ~umask

    def mode(path: str) -> str:
        return oct(stat.S_IMODE((a.path / path).stat().st_mode))

    link(a, f"s3://{source}/tiles/t0.laz", "--to", "lazy", "--no-checkout", "--source-endpoint-url", proxy.endpoint)
    link(a, f"s3://{source}/tiles/t1.laz", "--to", "full", "--source-endpoint-url", proxy.endpoint)
    modes = {"pointer from link --no-checkout": mode("lazy/t0.laz"), "content from link": mode("full/t1.laz")}
    a.agent("checkout", "lazy")
    modes["content from checkout"] = mode("lazy/t0.laz")
    assert modes == dict.fromkeys(modes, oct(expected))


# -- errors before anything is written -------------------------------------------------------------

def test_pattern_matching_nothing_is_an_error(make_clone: MakeClone, s3: MotoServer, source: str,
                                              proxy: CountingProxy) -> None:
    tiles(s3, source, count=1)
    a = make_clone("a")
    endpoint = ("--source-endpoint-url", proxy.endpoint)
    for patterns in ([f"s3://{source}/nothing/*.laz"], [f"s3://{source}/tiles/*.tif"],
                     [f"s3://{source}/tiles/t9.laz"], [f"s3://{source}/tiles/*.laz", f"s3://{source}/none/**"]):
        proc = link(a, *patterns, "--to", "data", *endpoint, check=False)
        assert proc.returncode == 1, patterns
        assert "no objects match" in proc.stderr, proc.stderr
        assert repr(patterns[-1]) in proc.stderr, proc.stderr
        if len(patterns) > 1:
            assert repr(patterns[0]) not in proc.stderr  # only the empty pattern is named
        assert not (a.path / "data").exists(), patterns
        assert not (a.path / ".gitattributes").exists(), patterns
    proc = link(a, "https://example.com/tiles/*.laz", "--to", "data", *endpoint, check=False)
    assert proc.returncode == 1 and "s3://" in proc.stderr


@NEEDS_STORED_CHECKSUMS
def test_existing_file_blocks_link_without_force(make_clone: MakeClone, s3: MotoServer, source: str,
                                                 proxy: CountingProxy) -> None:
    originals = tiles(s3, source, count=2)
    a = make_clone("a")
    mine = a.path / "data" / "t0.laz"
    mine.parent.mkdir()
    mine.write_bytes(b"my own notes, not a pointer\n")
    args = (f"s3://{source}/tiles/*.laz", "--to", "data", "--no-checkout", "--source-endpoint-url", proxy.endpoint)

    proc = link(a, *args, check=False)
    assert proc.returncode == 1
    assert str(mine) in proc.stderr and "--force" in proc.stderr
    assert mine.read_bytes() == b"my own notes, not a pointer\n"
    assert not (a.path / "data/t1.laz").exists()  # all or nothing
    assert not (a.path / ".gitattributes").exists()

    link(a, *args, "--force")
    assert mine.read_bytes() == pointer(originals["tiles/t0.laz"])
    assert (a.path / "data/t1.laz").read_bytes() == pointer(originals["tiles/t1.laz"])
    # Existing pointers do not block: linking again needs no --force.
    link(a, *args)
    assert mine.read_bytes() == pointer(originals["tiles/t0.laz"])
    assert pointer_oid(mine.read_bytes()) == sha256(originals["tiles/t0.laz"])


@NEEDS_STORED_CHECKSUMS
def test_no_checkout_push_in_a_clone_configured_only_by_install_global(
        make_clone: MakeClone, s3: MotoServer, source: str, bucket: str, remote: Path, tmp_path: Path) -> None:
    originals = tiles(s3, source, count=2)
    seed = make_clone("seed", install=False)
    seed.agent("install", "--bucket", bucket, "--prefix", PREFIX, "--endpoint-url", s3.endpoint, "--save")
    seed.run("lfs", "track", "*.bin")
    commit_all(seed, "settings")
    seed.run("push", "-q", "origin", "HEAD:main")
    home = Git(tmp_path)
    home.agent("install", "--global", "--url", str(remote))
    home.run("clone", "-q", str(remote), str(tmp_path / "plain"))
    a = Git(tmp_path / "plain")
    report = link(a, f"s3://{source}/tiles/*.laz", "--to", "data/tiles", "--no-checkout",
                  "--source-endpoint-url", s3.endpoint)
    assert report["linked"] == 2
    commit_all(a, "link tiles")
    push = a.try_("push", "origin", "HEAD:main")
    assert push.returncode == 0, push.stderr
    no_incomplete_push_setting(a)
    assert {f"{PREFIX}/links/{sha256(d)[0:2]}/{sha256(d)[2:4]}/{sha256(d)}.json"
            for d in originals.values()} <= set(bucket_objects(s3, bucket))
