"""copy: server-side, multipart, streamed fallback, integrity, restart — against in-process moto."""

from __future__ import annotations

import base64
import hashlib
import json
import os
from pathlib import Path
from typing import Any

import pytest
from botocore.awsrequest import AWSResponse

from lfs_s3_agent.cli import main
from lfs_s3_agent.commands import copy as copying
from lfs_s3_agent.errors import ConfigError
from lfs_s3_agent.s3 import copy as s3copy
from lfs_s3_agent.s3.keys import link_key
from tests.functional.lfsrepo import BUCKET, LfsRepo, object_key, oid_of

DEST = "lfs-dest"
MiB = 1 << 20


@pytest.fixture
def repo(tmp_path: Path, s3: Any) -> LfsRepo:
    s3.create_bucket(Bucket=DEST)
    s3.create_bucket(Bucket="source-data")
    return LfsRepo(tmp_path / "repo", s3)


def fill(repo: LfsRepo, n: int = 4) -> dict[str, bytes]:
    """n stored objects, one link record and one foreign key."""
    blobs = {}
    for i in range(n):
        data = os.urandom(1000 + i)
        blobs[repo.store(data)] = data
    record = repo.link("l.bin", b"linked bytes", "source-data", "l.bin")
    blobs[f"link:{record.oid}"] = record.to_json()
    repo.s3.put_object(Bucket=BUCKET, Key="repo/notes.txt", Body=b"not ours")
    return blobs


def dest_keys(s3: Any, prefix: str = "mirror") -> set[str]:
    return {o["Key"] for o in s3.list_objects_v2(Bucket=DEST, Prefix=prefix + "/").get("Contents", [])}


def expected_dest(blobs: dict[str, bytes], prefix: str = "mirror") -> set[str]:
    return {link_key(prefix, k[5:]) if k.startswith("link:") else object_key(prefix, k) for k in blobs}


def calls_of(client: Any, name: str) -> list[dict[str, Any]]:
    seen: list[dict[str, Any]] = []
    client.raw.meta.events.register(f"before-parameter-build.s3.{name}", lambda params, **_: seen.append(dict(params)))
    return seen


def refuse(client: Any, operation: str, code: str = "AccessDenied", status: int = 403) -> None:
    """Make every ``operation`` of this client fail as S3 would (before the request leaves)."""
    def handler(**_: Any) -> tuple[AWSResponse, dict[str, Any]]:
        return (AWSResponse("https://x", status, {}, None),
                {"Error": {"Code": code, "Message": "refused by the test"},
                 "ResponseMetadata": {"HTTPStatusCode": status}})

    client.raw.meta.events.register(f"before-call.s3.{operation}", handler)


def test_copy_server_side_keeps_metadata_then_a_second_run_skips_everything(
        repo: LfsRepo, s3: Any, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    blobs = fill(repo)
    monkeypatch.chdir(repo.path)
    assert main(["copy", f"s3://{DEST}/mirror"]) == 0
    out = capsys.readouterr()
    assert dest_keys(s3) == expected_dest(blobs)
    for key, data in blobs.items():
        if key.startswith("link:"):
            got = s3.get_object(Bucket=DEST, Key=link_key("mirror", key[5:]))
        else:
            got = s3.get_object(Bucket=DEST, Key=object_key("mirror", key))
            assert got["Metadata"] == {"sha256": key}
        assert got["Body"].read() == data
    assert "copied 5 keys" in out.out and "5 server-side" in out.out and "1 foreign" not in out.out
    assert "lfs-s3-agent install --bucket lfs-dest --prefix mirror" in out.out
    assert "copied repo/" in out.err  # one plain line per object when stderr is not a terminal

    assert main(["copy", f"s3://{DEST}/mirror", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["copied"] == [] and len(data["skipped"]) == 5 and data["ok"]
    assert data["foreign_keys"] == ["repo/notes.txt"]


def test_copy_resumes_after_a_crash_and_copies_only_the_rest(repo: LfsRepo, s3: Any,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    blobs = fill(repo, n=8)
    real = copying.pooled_client
    made: list[Any] = []

    def crashing(values: Any, pool: int) -> Any:
        client = real(values, pool)
        if values.bucket == DEST:
            made.append(client)
            copies = calls_of(client, "CopyObject")

            def crash(**_: Any) -> None:
                if len(copies) > 3:
                    raise KeyboardInterrupt  # the process dies: nothing reports, nothing cleans up

            client.raw.meta.events.register("before-call.s3.CopyObject", crash)
        return client

    monkeypatch.setattr(copying, "pooled_client", crashing)
    with pytest.raises(KeyboardInterrupt):
        copying.copy(f"s3://{DEST}/mirror", cwd=repo.path, jobs=1, quiet=True)
    present = dest_keys(s3)
    assert len(present) == 3

    monkeypatch.setattr(copying, "pooled_client", real)
    report = copying.copy(f"s3://{DEST}/mirror", cwd=repo.path, jobs=3, quiet=True)
    assert report.ok
    assert len(report.skipped) == 3 and {i.dest_key for i in report.skipped} == present
    assert len(report.copied) == len(blobs) - 3
    assert dest_keys(s3) == expected_dest(blobs)


def test_copy_recopies_an_object_with_the_same_size_but_not_ours(repo: LfsRepo, s3: Any) -> None:
    data = os.urandom(500)
    oid = repo.store(data)
    s3.put_object(Bucket=DEST, Key=object_key("mirror", oid), Body=b"x" * 500)  # same size, no metadata
    report = copying.copy(f"s3://{DEST}/mirror", cwd=repo.path, quiet=True)
    assert [i.entry.oid for i in report.copied] == [oid]
    assert s3.get_object(Bucket=DEST, Key=object_key("mirror", oid))["Body"].read() == data


def test_copy_falls_back_to_streaming_when_the_destination_cannot_read_the_source(
        repo: LfsRepo, s3: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    blobs = fill(repo, n=3)
    big = os.urandom(11 * MiB + 5)
    big_oid = repo.store(big)
    real = copying.pooled_client
    parts: list[list[dict[str, Any]]] = []

    def denied(values: Any, pool: int) -> Any:
        client = real(values, pool)
        if values.bucket == DEST:
            refuse(client, "CopyObject")
            parts.append(calls_of(client, "UploadPart"))
        return client

    monkeypatch.setattr(copying, "pooled_client", denied)
    report = copying.copy(f"s3://{DEST}/mirror", cwd=repo.path, quiet=True,
                          flags={"multipart_threshold": "5MiB", "part_size": "5MiB"})
    assert report.ok, report.render()
    assert "AccessDenied" in report.fallback and "through this machine" in report.fallback
    assert {i.how for i in report.copied} == {"streamed"} and len(report.copied) == len(blobs) + 1
    got = s3.get_object(Bucket=DEST, Key=object_key("mirror", big_oid))
    assert got["Body"].read() == big and got["Metadata"] == {"sha256": big_oid}
    sent = [p for calls in parts for p in calls]
    assert [p["PartNumber"] for p in sent] == [1, 2, 3]
    assert all(p["ChecksumSHA256"] == base64.b64encode(hashlib.sha256(p["Body"]).digest()).decode() for p in sent)
    for key, data in blobs.items():
        if not key.startswith("link:"):
            assert s3.get_object(Bucket=DEST, Key=object_key("mirror", key))["Body"].read() == data


def test_copy_streamed_refuses_a_source_whose_bytes_are_not_its_oid(repo: LfsRepo, s3: Any,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    good = repo.store(b"good bytes")
    bad = oid_of(b"what it should be")
    repo.store(b"something else", oid=bad)
    real = copying.pooled_client

    def denied(values: Any, pool: int) -> Any:
        client = real(values, pool)
        if values.bucket == DEST:
            refuse(client, "CopyObject")
        return client

    monkeypatch.setattr(copying, "pooled_client", denied)
    report = copying.copy(f"s3://{DEST}/mirror", cwd=repo.path, quiet=True)
    assert [i.entry.oid for i in report.failed] == [bad] and "not copied" in report.failed[0].error
    assert [i.entry.oid for i in report.copied] == [good]
    assert dest_keys(s3) == {object_key("mirror", good)}
    assert not report.ok and "again" in "\n".join(report.render())


def test_copy_server_side_removes_a_copy_whose_sha256_is_not_the_oid(repo: LfsRepo, s3: Any) -> None:
    bad = oid_of(b"expected")
    repo.store(b"corrupted", oid=bad)
    report = copying.copy(f"s3://{DEST}/mirror", cwd=repo.path, quiet=True)
    assert [i.entry.oid for i in report.failed] == [bad] and "verify" in report.failed[0].error
    assert dest_keys(s3) == set()


def test_copy_uses_upload_part_copy_above_the_server_copy_limit(repo: LfsRepo, s3: Any,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    big = os.urandom(11 * MiB)
    oid = repo.store(big)
    small = repo.store(b"small")
    monkeypatch.setattr(s3copy, "SERVER_COPY_LIMIT", 6 * MiB)
    monkeypatch.setattr(s3copy, "COPY_PART_SIZE", 5 * MiB)
    real = copying.pooled_client
    part_copies: list[list[dict[str, Any]]] = []

    def watched(values: Any, pool: int) -> Any:
        client = real(values, pool)
        if values.bucket == DEST:
            part_copies.append(calls_of(client, "UploadPartCopy"))
        return client

    monkeypatch.setattr(copying, "pooled_client", watched)
    report = copying.copy(f"s3://{DEST}/mirror", cwd=repo.path, quiet=True, flags={"part_size": "5MiB"})
    assert report.ok
    assert {i.entry.oid: i.how for i in report.copied} == {oid: "server-side multipart", small: "server-side"}
    # a multipart copy has no full-object SHA-256: it was read back and hashed
    assert {i.entry.oid: i.verified for i in report.copied} == {oid: "read", small: "checksum"}
    ranges = sorted(p["CopySourceRange"] for calls in part_copies for p in calls)
    assert ranges == [f"bytes=0-{5 * MiB - 1}", f"bytes={10 * MiB}-{11 * MiB - 1}", f"bytes={5 * MiB}-{10 * MiB - 1}"]
    got = s3.get_object(Bucket=DEST, Key=object_key("mirror", oid))
    assert got["Body"].read() == big and got["Metadata"] == {"sha256": oid}
    assert s3.list_multipart_uploads(Bucket=DEST).get("Uploads", []) == []


def test_copy_dry_run_writes_nothing_and_overlaps_are_refused(repo: LfsRepo, s3: Any) -> None:
    fill(repo, n=2)
    report = copying.copy(f"s3://{DEST}/mirror", cwd=repo.path, dry_run=True, quiet=True)
    assert len(report.copied) == 3 and dest_keys(s3) == set()
    assert "would copy" in "\n".join(report.render())
    for target in (f"s3://{BUCKET}/repo", f"s3://{BUCKET}/repo/inner", f"s3://{BUCKET}"):
        with pytest.raises(ConfigError, match="overlaps"):
            copying.copy(target, cwd=repo.path, quiet=True)
    with pytest.raises(ConfigError, match="destination"):
        copying.copy("https://example.com/x", cwd=repo.path, quiet=True)


def test_install_command_names_what_changed() -> None:
    from lfs_s3_agent.settings import Settings

    src = Settings(bucket="old", prefix="p", endpoint_url="http://minio:9000")
    dest = copying.destination_settings(src, "new-bucket", "team/p", profile="other", region="eu-west-1",
                                        endpoint_url="aws")
    command = copying.install_command(src, dest, saved_in_file=True)
    assert command.startswith("lfs-s3-agent install --bucket new-bucket --prefix team/p --region eu-west-1 "
                              "--profile other --save")
    assert "git config --unset lfs-s3-agent.endpoint-url" in command


def no_copy_checksums(client: Any) -> list[dict[str, Any]]:
    """Make this client's CopyObject results carry no SHA-256, as Ceph RGW 16 answers; the GETs it makes."""
    def strip(parsed: dict[str, Any], **_: Any) -> None:
        parsed.get("CopyObjectResult", {}).pop("ChecksumSHA256", None)

    client.raw.meta.events.register("after-call.s3.CopyObject", strip)
    return calls_of(client, "GetObject")


@pytest.fixture
def plain_dest(monkeypatch: pytest.MonkeyPatch) -> list[list[dict[str, Any]]]:
    """Copies into DEST come back without a SHA-256 (``no_copy_checksums``); the GETs each such client makes."""
    real = copying.pooled_client
    gets: list[list[dict[str, Any]]] = []

    def plain_store(values: Any, pool: int) -> Any:
        client = real(values, pool)
        if values.bucket == DEST:
            gets.append(no_copy_checksums(client))
        return client

    monkeypatch.setattr(copying, "pooled_client", plain_store)
    return gets


def test_copy_without_a_checksum_from_the_store_reads_each_copy_back(
        repo: LfsRepo, s3: Any, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
        plain_dest: list[list[dict[str, Any]]]) -> None:
    blobs = {repo.store(data): data for data in (os.urandom(700), os.urandom(900))}
    monkeypatch.chdir(repo.path)
    assert main(["copy", f"s3://{DEST}/mirror"]) == 0
    out = capsys.readouterr().out
    assert "2 server-side" in out and "2 by reading the copy back" in out and "0 failed" in out
    read = sorted(g["Key"] for calls in plain_dest for g in calls)
    assert read == sorted(object_key("mirror", oid) for oid in blobs)  # one verification read per copy


def test_copy_without_a_checksum_and_a_corrupt_source_fails_and_removes_the_copy(
        repo: LfsRepo, s3: Any, plain_dest: list[list[dict[str, Any]]]) -> None:
    good = repo.store(b"good bytes")
    bad = oid_of(b"what it should be")
    repo.store(b"something else", oid=bad)
    report = copying.copy(f"s3://{DEST}/mirror", cwd=repo.path, quiet=True)
    assert [i.entry.oid for i in report.failed] == [bad]
    assert "do not hash to the oid" in report.failed[0].error and "removed" in report.failed[0].error
    assert [(i.entry.oid, i.verified) for i in report.copied] == [(good, "read")]
    assert dest_keys(s3) == {object_key("mirror", good)}
    assert not report.ok and report.exit_status == 1
    assert "1 failed" in "\n".join(report.render())


def test_copy_no_verify_reports_unchecked_copies_as_unverified(repo: LfsRepo, s3: Any,
                                                               plain_dest: list[list[dict[str, Any]]]) -> None:
    oid = repo.store(b"bytes nobody checks")
    report = copying.copy(f"s3://{DEST}/mirror", cwd=repo.path, quiet=True, verify=False)
    assert [i.entry.oid for i in report.unverified] == [oid]
    assert [g for calls in plain_dest for g in calls] == []  # nothing read back
    text = "\n".join(report.render())
    assert "1 UNVERIFIED" in text and "could not be checked" in text
    assert report.to_json()["unverified"] == [object_key("mirror", oid)]
