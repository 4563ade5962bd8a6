"""Requester-pays sources: who pays is said on every request, remembered in the record, and opted in to
per clone; the messages name the fix. Against in-process moto (which does not enforce requester-pays:
the e2e tier does, through the fault proxy)."""

from __future__ import annotations

import io
import json
import subprocess
from pathlib import Path
from typing import Any

import pytest
from botocore.awsrequest import AWSResponse

from lfs_s3_agent.commands.link import Sources
from lfs_s3_agent.errors import AgentError, Code, StoreError
from lfs_s3_agent.linked import LinkedStore, LocalLinks
from lfs_s3_agent.links import LinkRecord
from lfs_s3_agent.progress import ProgressReporter
from lfs_s3_agent.s3.client import ClientSpec, make_client
from lfs_s3_agent.settings import Settings, SourceSettings
from lfs_s3_agent.store import S3Store
from tests.functional.lfsrepo import BUCKET, oid_of

SOURCE = "open-data"
DATA = b"bytes of a public dataset"


def payer_headers(client: Any) -> list[tuple[str, str | None]]:
    """(operation, its x-amz-request-payer header) for each request this client sends."""
    seen: list[tuple[str, str | None]] = []

    def record(request: Any, operation_name: str, **_: Any) -> None:
        seen.append((operation_name, request.headers.get("x-amz-request-payer")))

    client.raw.meta.events.register("before-sign.s3.*", record)
    return seen


@pytest.fixture
def source(s3: Any) -> str:
    s3.create_bucket(Bucket=SOURCE)
    s3.put_object(Bucket=SOURCE, Key="dem/a.tif", Body=DATA)
    return SOURCE


def test_a_requester_pays_source_client_says_so_on_every_request(source: str) -> None:
    store = Settings(bucket=BUCKET)
    paying = make_client(ClientSpec.for_source(SourceSettings(request_payer=True), store))
    seen = payer_headers(paying)
    paying.list_objects_v2(Bucket=source, Prefix="dem/")
    head = paying.head_object(Bucket=source, Key="dem/a.tif")
    paying.get_object(Bucket=source, Key="dem/a.tif", IfMatch=head["ETag"])["Body"].read()
    assert [op for op, _ in seen] == ["ListObjectsV2", "HeadObject", "GetObject"]
    assert {value for _, value in seen} == {"requester"}

    plain = make_client(ClientSpec.for_source(SourceSettings(), store))
    seen = payer_headers(plain)
    plain.head_object(Bucket=source, Key="dem/a.tif")
    assert seen == [("HeadObject", None)]  # nobody else is made to pay


def record(**extra: Any) -> LinkRecord:
    return LinkRecord(oid=oid_of(DATA), size=len(DATA), bucket=SOURCE, key="dem/a.tif", **extra)


def test_records_remember_requester_pays_and_stay_readable_by_older_agents() -> None:
    paid = record(request_payer=True)
    assert LinkRecord.from_json(paid.to_json(), where="x") == paid
    plain = json.loads(record().to_json())
    assert "request_payer" not in plain  # exactly what older agents wrote, and all that they accept
    old = json.dumps({"version": 1, "oid": oid_of(DATA), "size": len(DATA), "bucket": SOURCE, "key": "dem/a.tif",
                      "version_id": None, "etag": None, "region": None, "endpoint_url": None, "unsigned": False})
    assert LinkRecord.from_json(old.encode(), where="old").request_payer is False
    assert "request_payer" not in record(request_payer=True).hints()  # opted in per clone, never by a record


def linked_store(tmp_path: Path) -> tuple[LinkedStore, Path]:
    repo = tmp_path / "clone"
    subprocess.run(["git", "init", "-q", str(repo)], check=True)
    store = S3Store(Settings(bucket=BUCKET, prefix="repo"))
    return LinkedStore(store, LocalLinks(repo / ".git" / "lfs-s3-agent" / "links")), repo


def test_a_clone_fetches_a_requester_pays_original_only_after_opting_in(tmp_path: Path, source: str) -> None:
    linked, repo = linked_store(tmp_path)
    paid = record(request_payer=True)
    sink = io.BytesIO()
    with pytest.raises(StoreError) as caught:
        linked.fetch_original(paid, len(DATA), sink, ProgressReporter(len(DATA), lambda a, b: None), cwd=str(repo))
    assert caught.value.code == Code.LINK_BROKEN
    assert f"git config lfs-s3-source.{SOURCE}.request-payer true" in caught.value.message
    assert "requester-pays" in caught.value.message and "charges your AWS account" in caught.value.message
    assert linked.requests == {}  # nothing was requested before the user agreed to pay

    subprocess.run(["git", "config", f"lfs-s3-source.{SOURCE}.request-payer", "true"], cwd=repo, check=True)
    _, client = linked.sources.for_record(paid, str(repo))
    seen = payer_headers(client)
    digest = linked.fetch_original(paid, len(DATA), sink, ProgressReporter(len(DATA), lambda a, b: None),
                                   cwd=str(repo))
    assert digest == oid_of(DATA) and sink.getvalue() == DATA
    assert seen and {value for _, value in seen} == {"requester"}


def refuse_gets(client: Any) -> None:
    def handler(**_: Any) -> tuple[AWSResponse, dict[str, Any]]:
        return (AWSResponse("https://x", 403, {}, None),
                {"Error": {"Code": "AccessDenied", "Message": "Access Denied"},
                 "ResponseMetadata": {"HTTPStatusCode": 403}})

    client.raw.meta.events.register("before-call.s3.GetObject", handler)


def test_a_403_from_an_original_not_set_as_requester_pays_says_it_may_be(tmp_path: Path, source: str) -> None:
    linked, repo = linked_store(tmp_path)
    plain = record()
    _, client = linked.sources.for_record(plain, str(repo))
    refuse_gets(client)
    with pytest.raises(AgentError) as caught:
        linked.fetch_original(plain, len(DATA), io.BytesIO(), ProgressReporter(len(DATA), lambda a, b: None),
                              cwd=str(repo))
    assert caught.value.code == Code.ACCESS_DENIED
    message = caught.value.message
    assert "if s3://open-data is a requester-pays bucket" in message  # a possibility, not a diagnosis
    assert f"git config lfs-s3-source.{SOURCE}.request-payer true" in message
    assert "--request-payer" not in message  # git-lfs's pull takes no such flag


def test_a_403_from_a_source_names_request_payer_unless_it_was_set(tmp_path: Path, source: str) -> None:
    denied = AgentError("s3://open-data/dem/a.tif: access denied (AccessDenied)", code=Code.ACCESS_DENIED,
                        s3_code="AccessDenied", status=403)
    sources = Sources({}, Settings(bucket=BUCKET), tmp_path)
    message = sources.translate(SOURCE, "dem/a.tif")(denied).message
    assert "pass --request-payer" in message and f"lfs-s3-source.{SOURCE}.request-payer true" in message
    assert "--source-profile" in message  # the other ways to reach a source are still named

    paying = Sources({"request_payer": True}, Settings(bucket=BUCKET), tmp_path)
    message = paying.translate(SOURCE, "dem/a.tif")(denied).message
    assert "if s3://open-data is a requester-pays bucket" not in message and "as requester-pays" in message
    assert paying.flag_words() == ["--request-payer"]  # the commands we print carry it
