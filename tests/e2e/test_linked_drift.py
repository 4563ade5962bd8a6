"""Linked datasets that stay linked: originals that change in place, checksums added later, sources reached
like the store. Real git, real git-lfs, a moto server."""

from __future__ import annotations

import json
import os
from typing import Any

from tests.e2e.conftest import NEEDS_STORED_CHECKSUMS, commit_all, new_bucket, sha256
from tests.e2e.test_linked import MakeClone, link, local_record, put, store_record
from tests.s3server import MotoServer


@NEEDS_STORED_CHECKSUMS
def test_a_linked_version_that_is_gone_is_served_from_the_key_when_its_bytes_still_match(
        make_clone: MakeClone, s3: MotoServer, bucket: str) -> None:
    source = new_bucket(s3, "src")
    s3.client().put_bucket_versioning(Bucket=source, VersioningConfiguration={"Status": "Enabled"})
    data = os.urandom(4000)
    first = put(s3, source, "tiles/a.laz", data)
    a = make_clone("a")
    link(a, f"s3://{source}/tiles/a.laz", "--to", "data", "--no-checkout")
    commit_all(a, "link")
    a.run("push", "-q", "origin", "HEAD:main")
    oid = sha256(data)
    assert store_record(s3, bucket, oid)["version_id"] == first["VersionId"]
    # A sync tool uploads the same bytes again and the old version is removed.
    again = put(s3, source, "tiles/a.laz", data)
    s3.client().delete_object(Bucket=source, Key="tiles/a.laz", VersionId=first["VersionId"])

    shallow = json.loads(a.agent("verify", "--json", check=False).stdout)
    assert [p["status"] for p in shallow["problems"]] == ["changed-in-place"]
    assert "content not checked" in shallow["problems"][0]["detail"]
    deep = json.loads(a.agent("verify", "--deep", "--json").stdout)
    assert deep["ok"]  # the bytes still hash to the oid: intact

    b = make_clone("b")
    b.run("lfs", "pull")
    assert (b.path / "data" / "a.laz").read_bytes() == data
    # The clone that fetched it refreshed the record, here and in the store, for every other clone.
    assert store_record(s3, bucket, oid)["version_id"] == again["VersionId"]
    assert local_record(b, oid)["version_id"] == again["VersionId"]
    assert json.loads(a.agent("verify", "--json").stdout)["ok"]


@NEEDS_STORED_CHECKSUMS
def test_an_original_with_new_content_is_still_refused(make_clone: MakeClone, s3: MotoServer, bucket: str) -> None:
    source = new_bucket(s3, "src")
    data = os.urandom(4000)
    put(s3, source, "tiles/a.laz", data)
    a = make_clone("a")
    link(a, f"s3://{source}/tiles/a.laz", "--to", "data", "--no-checkout")
    commit_all(a, "link")
    a.run("push", "-q", "origin", "HEAD:main")
    put(s3, source, "tiles/a.laz", os.urandom(4000))  # same size, other bytes
    b = make_clone("b")
    proc = b.try_("lfs", "pull")
    assert proc.returncode != 0 and "[51]" in proc.stdout + proc.stderr
    deep = json.loads(a.agent("verify", "--deep", "--json", check=False).stdout)
    assert [p["status"] for p in deep["problems"]] == ["broken-link"]


@NEEDS_STORED_CHECKSUMS
def test_add_checksum_after_a_hashed_link_refreshes_the_records(make_clone: MakeClone, s3: MotoServer,
                                                                 bucket: str) -> None:
    source = new_bucket(s3, "src")
    data = os.urandom(5000)
    put(s3, source, "raw/a.bin", data, checksum=False)
    a = make_clone("a")
    link(a, f"s3://{source}/raw/a.bin", "--to", "data", "--hash-missing")
    commit_all(a, "link")
    a.run("push", "-q", "origin", "HEAD:main")
    oid = sha256(data)
    out = a.agent("add-checksum", f"s3://{source}/raw/a.bin", "--json")
    report: dict[str, Any] = json.loads(out.stdout)
    assert report["added"] == [f"s3://{source}/raw/a.bin"] and report["not_kept"] == []
    assert report["refreshed_records"] == 1
    etag = s3.client().head_object(Bucket=source, Key="raw/a.bin")["ETag"]
    assert store_record(s3, bucket, oid)["etag"] == etag == local_record(a, oid)["etag"]
    b = make_clone("b")
    b.run("lfs", "pull")
    assert (b.path / "data" / "a.bin").read_bytes() == data


@NEEDS_STORED_CHECKSUMS
def test_a_source_without_settings_is_reached_like_the_store(make_clone: MakeClone, s3: MotoServer) -> None:
    """The store is on a custom endpoint (moto here, MinIO or Ceph for users): so is the source by default."""
    source = new_bucket(s3, "src")
    data = os.urandom(2000)
    put(s3, source, "d/x.bin", data)
    a = make_clone("a")
    report = link(a, f"s3://{source}/d/x.bin", "--to", "data")  # no --source-endpoint-url
    assert report["linked"] == 1 and (a.path / "data" / "x.bin").read_bytes() == data
    assert local_record(a, sha256(data))["endpoint_url"] == s3.endpoint


def test_source_endpoint_aws_opts_out_of_the_stores_endpoint(make_clone: MakeClone, s3: MotoServer) -> None:
    """No request is made here (nothing may leave 127.0.0.1): only how the source would be reached."""
    from lfs_s3_agent.commands.link import Sources
    from lfs_s3_agent.settings import Settings

    store = Settings(bucket="lfs", endpoint_url=s3.endpoint, region="eu-west-1")
    a = make_clone("a")
    like_store, _ = Sources({}, store, a.path).get("survey")
    assert (like_store.endpoint_url, like_store.region) == (s3.endpoint, "eu-west-1")
    on_aws = Sources({"endpoint_url": "aws", "region": "us-west-2"}, store, a.path)
    source, _ = on_aws.get("survey")
    assert (source.endpoint_url, source.region) == (None, "us-west-2")
    assert on_aws.flag_words() == ["--source-endpoint-url", "aws", "--source-region", "us-west-2"]


@NEEDS_STORED_CHECKSUMS
def test_link_status_and_update(make_clone: MakeClone, s3: MotoServer, bucket: str) -> None:
    source = new_bucket(s3, "src")
    s3.client().put_bucket_versioning(Bucket=source, VersioningConfiguration={"Status": "Enabled"})
    same, grows, stays = os.urandom(3000), os.urandom(3001), os.urandom(3002)
    for key, data in (("t/same.laz", same), ("t/grows.laz", grows), ("t/stays.laz", stays)):
        put(s3, source, key, data)
    a = make_clone("a")
    link(a, f"s3://{source}/t/*.laz", "--to", "data", "--no-checkout")
    commit_all(a, "link")
    a.run("push", "-q", "origin", "HEAD:main")
    assert a.agent("link", "status").returncode == 0

    put(s3, source, "t/same.laz", same)  # uploaded again, same bytes: a new version
    bigger = grows + b"more"
    put(s3, source, "t/grows.laz", bigger)
    proc = a.agent("link", "status", "--json", check=False)
    assert proc.returncode == 1
    states = {f["path"]: f["state"] for f in json.loads(proc.stdout)["files"]}
    assert states == {"data/same.laz": "changed in place", "data/grows.laz": "changed",
                      "data/stays.laz": "unchanged"}
    deep = json.loads(a.agent("link", "status", "--deep", "--json", check=False).stdout)
    assert {f["path"]: f["detail"] for f in deep["files"]}["data/same.laz"] == "same content"

    updated = a.agent("link", "update")
    assert "re-linked data/grows.laz" in updated.stdout and "refreshed the link record of data/same.laz" in \
        updated.stdout
    assert (a.path / "data" / "grows.laz").read_bytes().startswith(b"version https://git-lfs")
    assert f"oid sha256:{sha256(bigger)}" in (a.path / "data" / "grows.laz").read_text()
    commit_all(a, "relink")
    a.run("push", "-q", "origin", "HEAD:main")
    assert a.agent("link", "status").returncode == 0
    b = make_clone("b")
    b.run("lfs", "pull")
    assert (b.path / "data" / "grows.laz").read_bytes() == bigger
    assert (b.path / "data" / "same.laz").read_bytes() == same
