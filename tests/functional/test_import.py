"""import: S3 objects copied into the LFS store (server-side, streamed, checked) — against in-process moto."""

from __future__ import annotations

import base64
import hashlib
import json
import os
from pathlib import Path
from typing import Any

import pytest

from lfs_s3_agent.cli import main
from lfs_s3_agent.commands import imports
from lfs_s3_agent.commands.link import LinkError
from lfs_s3_agent.pointer import Pointer
from tests.functional.lfsrepo import BUCKET, LfsRepo, object_key, oid_of

SOURCE = "survey-data"


@pytest.fixture
def repo(tmp_path: Path, s3: Any) -> LfsRepo:
    s3.create_bucket(Bucket=SOURCE)
    return LfsRepo(tmp_path / "repo", s3)


def b64(data: bytes) -> str:
    return base64.b64encode(hashlib.sha256(data).digest()).decode()


def original(s3: Any, key: str, data: bytes, *, checksum: str | None = None) -> None:
    """An original with a full-object SHA-256 (``checksum``: the value to claim instead, a lie)."""
    s3.put_object(Bucket=SOURCE, Key=key, Body=data, ChecksumAlgorithm="SHA256", ChecksumSHA256=checksum or b64(data))


def gets(report: imports.ImportReport) -> int:
    return report.requests.get("GetObject", 0)


def test_server_side_import_with_no_checkout_moves_no_bytes_and_keeps_no_link(repo: LfsRepo, s3: Any) -> None:
    data = {f"tiles/t{i}.laz": os.urandom(1000 + i) for i in range(3)}
    for key, blob in data.items():
        original(s3, key, blob)
    report = imports.import_objects([f"s3://{SOURCE}/tiles/*.laz"], "data", checkout=False, cwd=repo.path,
                                    quiet=True)
    assert report.exit_status == 0, report.render()
    assert {o.how for o in report.objects} == {"server-side"}
    assert {o.verified for o in report.objects} == {"checksum"}  # S3's SHA-256 of each copy was the oid
    assert gets(report) == 0 and report.bytes_downloaded == 0  # no object bytes through this machine
    assert report.requests.get("CopyObject") == 3
    for key, blob in data.items():
        oid = oid_of(blob)
        got = s3.get_object(Bucket=BUCKET, Key=object_key("repo", oid))
        assert got["Body"].read() == blob and got["Metadata"] == {"sha256": oid}
        assert (repo.path / "data" / key.split("/")[1]).read_bytes() == Pointer(oid, len(blob)).encode()
    links = Path(repo.git("rev-parse", "--absolute-git-dir").strip()) / "lfs-s3-agent" / "links"
    assert not links.exists() or not any(links.iterdir())
    assert not any(k.startswith("repo/links/") for k in repo.all_keys())
    assert "imported 3 objects" in "\n".join(report.render()) and "0 failed" in "\n".join(report.render())

    again = imports.import_objects([f"s3://{SOURCE}/tiles/*.laz"], "data", checkout=False, cwd=repo.path, quiet=True)
    assert {o.how for o in again.objects} == {"already stored"} and again.requests.get("CopyObject", 0) == 0


def test_import_with_checkout_gets_the_bytes_from_the_store(repo: LfsRepo, s3: Any) -> None:
    blob = os.urandom(5000)
    original(s3, "a.bin", blob)
    report = imports.import_objects([f"s3://{SOURCE}/a.bin"], "data", cwd=repo.path, quiet=True)
    assert report.exit_status == 0 and (repo.path / "data/a.bin").read_bytes() == blob
    assert report.paths == ["data/a.bin"] and report.gitattributes is not None


def test_import_without_a_checksum_from_the_store_reads_the_copy_back(
        repo: LfsRepo, s3: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    blob = os.urandom(3000)
    original(s3, "a.bin", blob)
    strip_copy_checksums(monkeypatch)
    report = imports.import_objects([f"s3://{SOURCE}/a.bin"], "data", checkout=False, cwd=repo.path, quiet=True)
    assert [(o.how, o.verified) for o in report.objects] == [("server-side", "read")]
    assert gets(report) == 1 and report.bytes_downloaded == len(blob)  # the verification read, said honestly
    assert "1 by reading the copy back" in "\n".join(report.render())

    blob2 = os.urandom(3000)
    original(s3, "b.bin", blob2)
    report = imports.import_objects([f"s3://{SOURCE}/b.bin"], "more", checkout=False, verify=False, cwd=repo.path,
                                    quiet=True)
    assert [(o.how, o.verified) for o in report.objects] == [("server-side", "unverified")]
    assert gets(report) == 0 and "could not be checked" in "\n".join(report.render())


def strip_copy_checksums(monkeypatch: pytest.MonkeyPatch) -> None:
    """The store's CopyObject results carry no SHA-256, as Ceph RGW 16 answers."""
    real = imports.make_client

    def plain(spec: Any, **kwargs: Any) -> Any:
        client = real(spec, **kwargs)

        def strip(parsed: dict[str, Any], **_: Any) -> None:
            parsed.get("CopyObjectResult", {}).pop("ChecksumSHA256", None)

        client.raw.meta.events.register("after-call.s3.CopyObject", strip)
        return client

    monkeypatch.setattr(imports, "make_client", plain)


@pytest.mark.parametrize("store_checksums", [True, False], ids=["store-checksum", "read-back"])
def test_an_original_whose_checksum_lies_fails_alone_and_leaves_nothing(
        repo: LfsRepo, s3: Any, monkeypatch: pytest.MonkeyPatch, store_checksums: bool) -> None:
    good = os.urandom(2000)
    original(s3, "d/good.bin", good)
    claimed = os.urandom(2000)
    original(s3, "d/bad.bin", os.urandom(2000), checksum=b64(claimed))  # its checksum is another file's
    if not store_checksums:
        strip_copy_checksums(monkeypatch)
    report = imports.import_objects([f"s3://{SOURCE}/d/"], "data", checkout=False, cwd=repo.path, quiet=True)
    assert report.exit_status == 1
    assert [o.url for o in report.failed] == [f"s3://{SOURCE}/d/bad.bin"]
    assert "do not hash to the oid" in report.failed[0].error and "removed" in report.failed[0].error
    assert repo.all_keys() == {object_key("repo", oid_of(good))}  # the bad copy was removed
    assert not (repo.path / "data/bad.bin").exists() and (repo.path / "data/good.bin").exists()
    text = "\n".join(report.render())
    assert "1 failed" in text and f"FAILED s3://{SOURCE}/d/bad.bin" in text


def test_import_streams_when_the_store_cannot_read_the_source(repo: LfsRepo, s3: Any,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    blob = os.urandom(4000)
    original(s3, "a.bin", blob)
    real = imports.make_client

    def denied(spec: Any, **kwargs: Any) -> Any:
        from botocore.awsrequest import AWSResponse

        client = real(spec, **kwargs)

        def refuse(**_: Any) -> Any:
            return (AWSResponse("https://x", 403, {}, None),
                    {"Error": {"Code": "AccessDenied", "Message": "no"}, "ResponseMetadata": {"HTTPStatusCode": 403}})

        client.raw.meta.events.register("before-call.s3.CopyObject", refuse)
        return client

    monkeypatch.setattr(imports, "make_client", denied)
    report = imports.import_objects([f"s3://{SOURCE}/a.bin"], "data", checkout=False, cwd=repo.path, quiet=True)
    assert [(o.how, o.verified) for o in report.objects] == [("streamed", "hashed")], report.render()
    assert "AccessDenied" in report.fallback
    assert s3.get_object(Bucket=BUCKET, Key=object_key("repo", oid_of(blob)))["Body"].read() == blob
    tmp = Path(repo.git("rev-parse", "--absolute-git-dir").strip()) / "lfs" / "tmp"
    assert not tmp.exists() or list(tmp.iterdir()) == []  # the streamed copy's temporary file is gone


def test_import_without_checksums_needs_hash_missing(repo: LfsRepo, s3: Any,
                                                     capsys: pytest.CaptureFixture[str],
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    blob = os.urandom(1500)
    s3.put_object(Bucket=SOURCE, Key="plain.bin", Body=blob)
    with pytest.raises(LinkError, match="--hash-missing") as caught:
        imports.import_objects([f"s3://{SOURCE}/plain.bin"], "data", cwd=repo.path, quiet=True)
    assert "lfs-s3-agent import" in caught.value.message
    monkeypatch.chdir(repo.path)
    assert main(["import", f"s3://{SOURCE}/plain.bin", "--to", "data", "--hash-missing", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["imported"] == 1 and out["hashed"] == 1 and out["objects"][0]["oid"] == oid_of(blob)
    assert (repo.path / "data/plain.bin").read_bytes() == blob
    assert s3.get_object(Bucket=BUCKET, Key=object_key("repo", oid_of(blob)))["Body"].read() == blob

