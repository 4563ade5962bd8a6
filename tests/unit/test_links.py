"""Linked mode building blocks (lfs_s3_agent.links): oids from HEAD, link records, source settings."""

from __future__ import annotations

import base64
import hashlib
import json
import subprocess
from pathlib import Path
from typing import Any

import pytest

from lfs_s3_agent.errors import AgentError, Code, StoreError
from lfs_s3_agent.linked import LocalLinks
from lfs_s3_agent.links import LinkRecord, broken_link, full_object_sha256
from lfs_s3_agent.s3.client import ClientSpec, make_client
from lfs_s3_agent.s3.keys import link_key
from lfs_s3_agent.settings import Settings, SourceSettings, source_settings, truthy


def make_source_client(source: SourceSettings) -> Any:
    """The botocore client the one factory makes for a source (as the linked store does)."""
    return make_client(ClientSpec.for_source(source, Settings(bucket="store"))).raw

DATA = b"a tile of a point cloud"
OID = hashlib.sha256(DATA).hexdigest()
B64 = base64.b64encode(hashlib.sha256(DATA).digest()).decode()
MD5_ETAG = '"' + hashlib.md5(DATA).hexdigest() + '"'


# -- full_object_sha256 ---------------------------------------------------------------------------

def test_full_object_checksum_is_the_oid() -> None:
    assert full_object_sha256({"ChecksumSHA256": B64, "ETag": MD5_ETAG, "ContentLength": len(DATA)}) == (OID, "")


def test_full_object_checksum_type_is_trusted_even_with_a_multipart_etag() -> None:
    head = {"ChecksumSHA256": B64, "ChecksumType": "FULL_OBJECT", "ETag": '"0123456789abcdef0123456789abcdef-3"'}
    assert full_object_sha256(head) == (OID, "")


@pytest.mark.parametrize("head", [{}, {"ETag": MD5_ETAG}, {"ChecksumSHA256": ""}, {"ChecksumSHA256": None},
                                  {"ChecksumCRC32": "NSRBwg==", "ETag": MD5_ETAG}])
def test_missing_checksum(head: dict[str, Any]) -> None:
    oid, why = full_object_sha256(head)
    assert oid is None
    assert "no SHA-256" in why


@pytest.mark.parametrize(
    "head",
    [
        # what S3 reports for a multipart upload made with ChecksumAlgorithm=SHA256
        {"ChecksumSHA256": B64 + "-3", "ChecksumType": "COMPOSITE", "ETag": '"0123456789abcdef0123456789abcdef-3"'},
        # ChecksumType alone, even when the value looks like a plain digest
        {"ChecksumSHA256": B64, "ChecksumType": "COMPOSITE", "ETag": MD5_ETAG},
        # the `-N` suffix alone (b64decode without validate would silently drop it)
        {"ChecksumSHA256": B64 + "-12", "ETag": MD5_ETAG},
        {"ChecksumSHA256": B64 + "-1"},
        # a multipart ETag without ChecksumType (moto's head_object omits it)
        {"ChecksumSHA256": B64, "ETag": '"0123456789abcdef0123456789abcdef-2"'},
        {"ChecksumSHA256": B64, "ETag": "0123456789abcdef0123456789abcdef-10000"},
    ],
)
def test_composite_checksums_are_refused(head: dict[str, Any]) -> None:
    oid, why = full_object_sha256(head)
    assert oid is None
    assert "composite" in why


@pytest.mark.parametrize(
    "value",
    [
        "not base64!",
        B64[:-1],  # bad padding
        B64.replace("=", ""),
        base64.b64encode(hashlib.md5(DATA).digest()).decode(),  # valid base64, 16 bytes
        base64.b64encode(hashlib.sha512(DATA).digest()).decode(),  # valid base64, 64 bytes
        B64 + " ",
        OID,  # hex, not base64 of 32 bytes
    ],
)
def test_unreadable_checksums_are_refused(value: str) -> None:
    oid, why = full_object_sha256({"ChecksumSHA256": value, "ETag": MD5_ETAG})
    assert oid is None
    assert "unreadable" in why and value.strip() in why


# -- AWS_NO_SIGN_REQUEST truthiness ---------------------------------------------------------------

@pytest.mark.parametrize("value", ["1", "true", "TRUE", "True", "yes", "on", " 1 ", "true\n"])
def test_truthy_values(value: str) -> None:
    assert truthy(value)


@pytest.mark.parametrize("value", [None, "", "0", "false", "False", "no", "off", " "])
def test_falsy_values(value: str | None) -> None:
    assert not truthy(value)


# -- source_settings precedence -------------------------------------------------------------------

def git_config(repo: Path, key: str, value: str) -> None:
    subprocess.run(["git", "config", "--local", key, value], cwd=repo, check=True)


def record(**kwargs: Any) -> LinkRecord:
    values: dict[str, Any] = {"oid": OID, "size": len(DATA), "bucket": "survey", "key": "tiles/a.laz"}
    return LinkRecord(**{**values, **kwargs})


@pytest.mark.parametrize(("value", "unsigned"), [("1", True), ("true", True), ("TRUE", True), ("yes", True),
                                                 ("0", False), ("", False), ("false", False), ("no", False)])
def test_aws_no_sign_request_is_read_as_a_truthy_value(repo_dir: Path, value: str, unsigned: bool) -> None:
    assert source_settings("survey", cwd=repo_dir, env={"AWS_NO_SIGN_REQUEST": value}).unsigned is unsigned


def test_no_settings_at_all(repo_dir: Path) -> None:
    assert source_settings("survey", cwd=repo_dir, env={}) == SourceSettings()


def test_process_environment_is_the_default(repo_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_NO_SIGN_REQUEST", "0")
    assert not source_settings("survey", cwd=repo_dir).unsigned
    monkeypatch.setenv("AWS_NO_SIGN_REQUEST", "true")
    assert source_settings("survey", cwd=repo_dir).unsigned


def test_record_hints_apply_when_nothing_else_is_set(repo_dir: Path) -> None:
    hinted = record(region="eu-west-3", endpoint_url="http://127.0.0.1:9", unsigned=True)
    got = source_settings("survey", hints=hinted.hints(), cwd=repo_dir, env={})
    assert (got.region, got.endpoint_url, got.profile, got.unsigned) == ("eu-west-3", "http://127.0.0.1:9", None,
                                                                        True)


def test_env_unsigned_adds_to_a_signed_record(repo_dir: Path) -> None:
    got = source_settings("survey", hints=record(unsigned=False).hints(), cwd=repo_dir,
                          env={"AWS_NO_SIGN_REQUEST": "1"})
    assert got.unsigned


def test_git_config_beats_record_hints_and_env(repo_dir: Path) -> None:
    git_config(repo_dir, "lfs-s3-source.survey.region", "ap-south-1")
    git_config(repo_dir, "lfs-s3-source.survey.endpoint-url", "http://127.0.0.1:7")
    git_config(repo_dir, "lfs-s3-source.survey.profile", "survey-reader")
    git_config(repo_dir, "lfs-s3-source.survey.no-sign-request", "false")
    hinted = record(region="eu-west-3", endpoint_url="http://127.0.0.1:9", unsigned=True)
    got = source_settings("survey", hints=hinted.hints(), cwd=repo_dir, env={"AWS_NO_SIGN_REQUEST": "1"})
    assert (got.region, got.endpoint_url, got.profile, got.unsigned) == ("ap-south-1", "http://127.0.0.1:7",
                                                                        "survey-reader", False)


def test_git_config_no_sign_request_is_truthy_too(repo_dir: Path) -> None:
    git_config(repo_dir, "lfs-s3-source.survey.no-sign-request", "true")
    assert source_settings("survey", cwd=repo_dir, env={}).unsigned
    git_config(repo_dir, "lfs-s3-source.survey.no-sign-request", "0")
    assert not source_settings("survey", cwd=repo_dir, env={}).unsigned


def test_flags_beat_everything(repo_dir: Path) -> None:
    git_config(repo_dir, "lfs-s3-source.survey.region", "ap-south-1")
    git_config(repo_dir, "lfs-s3-source.survey.endpoint-url", "http://127.0.0.1:7")
    git_config(repo_dir, "lfs-s3-source.survey.profile", "survey-reader")
    hinted = record(region="eu-west-3", endpoint_url="http://127.0.0.1:9")
    flags = {"region": "us-west-2", "endpoint_url": "http://127.0.0.1:8", "profile": "cli", "unsigned": True}
    got = source_settings("survey", flags=flags, hints=hinted.hints(), cwd=repo_dir, env={})
    assert (got.region, got.endpoint_url, got.profile, got.unsigned) == ("us-west-2", "http://127.0.0.1:8", "cli",
                                                                        True)


def test_unset_flags_do_not_override(repo_dir: Path) -> None:
    """argparse gives None for flags not given and store_true gives False/None: neither is a value."""
    git_config(repo_dir, "lfs-s3-source.survey.region", "ap-south-1")
    git_config(repo_dir, "lfs-s3-source.survey.no-sign-request", "true")
    flags = {"region": None, "endpoint_url": None, "profile": None, "unsigned": None}
    got = source_settings("survey", flags=flags, cwd=repo_dir, env={})
    assert (got.region, got.unsigned) == ("ap-south-1", True)
    assert source_settings("survey", flags={"unsigned": False}, cwd=repo_dir, env={}).unsigned


def test_settings_are_per_source_bucket(repo_dir: Path) -> None:
    git_config(repo_dir, "lfs-s3-source.survey.region", "ap-south-1")
    git_config(repo_dir, "lfs-s3-source.survey-raw.region", "eu-north-1")
    git_config(repo_dir, "lfs-s3-source.survey-raw.no-sign-request", "1")
    assert source_settings("survey", cwd=repo_dir, env={}) == SourceSettings(region="ap-south-1")
    assert source_settings("survey-raw", cwd=repo_dir, env={}) == SourceSettings(region="eu-north-1", unsigned=True)
    assert source_settings("other", cwd=repo_dir, env={}) == SourceSettings()


def test_dotted_bucket_names(repo_dir: Path) -> None:
    git_config(repo_dir, "lfs-s3-source.my.data.bucket.region", "sa-east-1")
    git_config(repo_dir, "lfs-s3-source.my-data-bucket.region", "us-east-2")  # the dots are not wildcards
    assert source_settings("my.data.bucket", cwd=repo_dir, env={}).region == "sa-east-1"
    assert source_settings("my-data-bucket", cwd=repo_dir, env={}).region == "us-east-2"


def test_outside_a_repository_flags_and_env_still_apply(tmp_path: Path) -> None:
    got = source_settings("survey", flags={"region": "us-west-1"}, cwd=tmp_path, env={"AWS_NO_SIGN_REQUEST": "1"})
    assert (got.region, got.unsigned) == ("us-west-1", True)


# -- source clients -------------------------------------------------------------------------------

def test_unsigned_source_client_sends_no_signature_and_ignores_profiles() -> None:
    from botocore import UNSIGNED

    client = make_source_client(SourceSettings(unsigned=True, profile="no-such-profile", region="eu-west-1",
                                               endpoint_url="http://127.0.0.1:9"))
    assert client.meta.config.signature_version is UNSIGNED
    assert client.meta.region_name == "eu-west-1"
    assert client.meta.endpoint_url == "http://127.0.0.1:9"
    assert client.meta.config.s3["addressing_style"] == "path"


def test_signed_source_client_uses_its_own_region_and_endpoint() -> None:
    from botocore import UNSIGNED

    client = make_source_client(SourceSettings(region="ap-south-1", endpoint_url="http://127.0.0.1:9"))
    assert client.meta.config.signature_version is not UNSIGNED
    assert client.meta.region_name == "ap-south-1"
    assert client.meta.endpoint_url == "http://127.0.0.1:9"


def test_source_settings_are_hashable_cache_keys() -> None:
    """S3Store caches one client per SourceSettings: equal settings must be one key."""
    cache = {SourceSettings(region="r", unsigned=True): 1}
    assert cache[SourceSettings(region="r", unsigned=True)] == 1
    assert SourceSettings(region="r") not in cache


# -- link records ---------------------------------------------------------------------------------

def test_link_key_layout() -> None:
    assert link_key("repo", OID) == f"repo/links/{OID[0:2]}/{OID[2:4]}/{OID}.json"
    assert link_key("", OID) == f"links/{OID[0:2]}/{OID[2:4]}/{OID}.json"
    assert link_key("a/b", OID) == f"a/b/links/{OID[0:2]}/{OID[2:4]}/{OID}.json"


def test_record_round_trip_keeps_every_field() -> None:
    original = record(version_id="3HL4kqtJlcpXroDTDmJ+rmSpXd3dIbrHY", etag=MD5_ETAG, region="eu-west-3",
                      endpoint_url="http://127.0.0.1:9", unsigned=True)
    data = original.to_json()
    assert LinkRecord.from_json(data, where="test") == original
    raw = json.loads(data)
    assert raw["version"] == 1
    assert raw["bucket"] == "survey" and raw["key"] == "tiles/a.laz" and raw["unsigned"] is True


def test_record_never_holds_credentials() -> None:
    text = record(region="eu-west-1", endpoint_url="http://127.0.0.1:9").to_json().decode().lower()
    for word in ("secret", "access_key", "token", "password", "profile"):
        assert word not in text


def test_record_url_and_description() -> None:
    assert record().url == "s3://survey/tiles/a.laz"
    assert record().describe() == "s3://survey/tiles/a.laz"
    assert record(version_id="v1").describe() == "s3://survey/tiles/a.laz (version v1)"


@pytest.mark.parametrize(
    "data",
    [
        b"not json",
        b"[]",
        b'{"version": 1}',
        json.dumps({"oid": "abc", "size": 1, "bucket": "b-1", "key": "k"}).encode(),
        json.dumps({"oid": OID, "size": -1, "bucket": "b-1", "key": "k"}).encode(),
        json.dumps({"oid": OID, "size": "12", "bucket": "b-1", "key": "k"}).encode(),
        json.dumps({"oid": OID, "size": 1, "bucket": "b-1", "key": "k", "surprise": True}).encode(),
    ],
)
def test_bad_records_are_link_errors(data: bytes) -> None:
    with pytest.raises(StoreError) as info:
        LinkRecord.from_json(data, where="s3://lfs/repo/links/x.json")
    assert info.value.code == Code.LINK_BROKEN
    assert "s3://lfs/repo/links/x.json" in info.value.message


def test_local_links(tmp_path: Path) -> None:
    links = LocalLinks(tmp_path / "links")
    assert links.get(OID) is None
    assert not links.any()
    links.put(record(etag=MD5_ETAG))
    assert links.any()
    assert links.get(OID) == record(etag=MD5_ETAG)
    links.put(record(etag='"other"'))  # replaced atomically, no temporary file left
    assert links.get(OID) == record(etag='"other"')
    assert sorted(p.name for p in (tmp_path / "links").iterdir()) == [f"{OID}.json"]


@pytest.mark.parametrize(
    "err",
    [
        AgentError("s3://survey/tiles/a.laz: not found", code=Code.NOT_FOUND),
        AgentError("s3://survey/tiles/a.laz: PreconditionFailed", code=Code.INTEGRITY),
        AgentError("An error occurred (NoSuchVersion) when calling GetObject", code=Code.NOT_FOUND,
                   s3_code="NoSuchVersion"),
    ],
)
def test_broken_link_names_the_original(err: AgentError) -> None:
    got = broken_link(record(version_id="v1", etag=MD5_ETAG), err)
    assert got.code == Code.LINK_BROKEN
    assert "s3://survey/tiles/a.laz (version v1)" in got.message
    assert "deleted or overwritten" in got.message


def test_other_errors_pass_through_broken_link() -> None:
    err = AgentError("access denied", code=Code.ACCESS_DENIED)
    assert broken_link(record(), err) is err
