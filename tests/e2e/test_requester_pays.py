"""Requester-pays sources end to end: real git, real git-lfs, the agent as `install` wires it.

moto accepts a bucket's request-payment setting but does not enforce it, so the source is reached through
the fault proxy (tests/faultproxy.py) with its requester-pays rule: as S3 does, it answers 403 AccessDenied
to every request for (or copy from) the bucket that does not carry ``x-amz-request-payer: requester``, and
counts the requests that did. The originals have no checksums (linked and imported with --hash-missing), so
the link and import tests run on stores that keep none too.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
from collections.abc import Iterator

import pytest

from tests.e2e.conftest import NEEDS_STORED_CHECKSUMS, Git, commit_all, expected_key, new_bucket, sha256
from tests.e2e.test_linked import MakeClone, local_record, pointer, put, store_record
from tests.faultproxy import FaultProxy
from tests.s3server import MotoServer


@pytest.fixture
def source(s3: MotoServer) -> str:
    return new_bucket(s3, "open")


@pytest.fixture
def paid(s3: MotoServer, source: str) -> Iterator[FaultProxy]:
    """The server behind a proxy on which ``source`` is a requester-pays bucket."""
    with FaultProxy(s3.endpoint, ca_bundle=getattr(s3, "ca_bundle", None), requester_pays={source}) as proxy:
        yield proxy


def test_link_a_requester_pays_source_then_clones_pay_only_after_opting_in(
        make_clone: MakeClone, s3: MotoServer, bucket: str, source: str, paid: FaultProxy) -> None:
    data = os.urandom(5000)
    put(s3, source, "dem/a.tif", data, checksum=False)
    a = make_clone("a")
    args = (f"s3://{source}/dem/a.tif", "--to", "data", "--hash-missing", "--source-endpoint-url", paid.endpoint)

    refused = a.agent("link", *args, check=False)
    assert refused.returncode == 1
    assert "access denied" in refused.stderr and "requester-pays" in refused.stderr  # said, not just blamed on IAM
    assert "--request-payer" in refused.stderr
    assert f"git config lfs-s3-source.{source}.request-payer true" in refused.stderr
    assert paid.refused_unpaid >= 1 and paid.paid == 0

    report = json.loads(a.agent("link", *args, "--request-payer", "--no-checkout", "--json").stdout)
    assert report["linked"] == 1 and report["hashed"] == 1
    oid = sha256(data)
    assert local_record(a, oid)["request_payer"] is True  # remembered in the record
    assert a.run("config", f"lfs-s3-source.{source}.request-payer").strip() == "true"  # this clone agreed to pay
    before = paid.refused_unpaid
    a.agent("checkout", "data")  # this clone pays: its own checkout works
    assert (a.path / "data/a.tif").read_bytes() == data
    assert paid.refused_unpaid == before
    commit_all(a, "link dem")
    a.run("push", "-q", "origin", "HEAD:main")
    assert store_record(s3, bucket, oid)["request_payer"] is True

    b = make_clone("b")
    b.run("config", f"lfs-s3-source.{source}.endpoint-url", paid.endpoint)  # the source's endpoint, trusted once
    requests = paid.requests
    failed = b.try_("lfs", "pull")
    assert failed.returncode != 0
    out = failed.stdout + failed.stderr
    assert "[51]" in out and f"git config lfs-s3-source.{source}.request-payer true" in out
    assert (b.path / "data/a.tif").read_bytes() == pointer(data)
    assert paid.refused_unpaid == before  # nothing was asked of the source before b agreed to pay

    b.run("config", f"lfs-s3-source.{source}.request-payer", "true")
    b.run("lfs", "pull")
    assert (b.path / "data/a.tif").read_bytes() == data
    assert paid.requests > requests and paid.refused_unpaid == before


def test_import_from_a_requester_pays_source_copies_server_side_saying_who_pays(
        make_clone: MakeClone, s3: MotoServer, bucket: str, source: str, paid: FaultProxy) -> None:
    data = os.urandom(4000)
    put(s3, source, "dem/b.tif", data, checksum=False)
    a: Git = make_clone("a", endpoint_url=paid.endpoint)  # the store on the same endpoint: server-side copies

    refused = a.agent("import", f"s3://{source}/dem/", "--to", "dem", "--hash-missing", check=False)
    assert refused.returncode == 1 and "--request-payer" in refused.stderr

    paid_before = paid.paid
    report = json.loads(a.agent("import", f"s3://{source}/dem/", "--to", "dem", "--hash-missing", "--no-checkout",
                                "--request-payer", "--json").stdout)
    assert report["imported"] == 1 and report["objects"][0]["how"] == "server-side"
    assert paid.paid > paid_before  # the copy itself said the requester pays (the proxy refuses it otherwise)
    got = s3.client().get_object(Bucket=bucket, Key=expected_key("repo", sha256(data)))["Body"].read()
    assert got == data
    assert (a.path / "dem/b.tif").read_bytes() == pointer(data)


@NEEDS_STORED_CHECKSUMS
def test_add_checksum_on_a_requester_pays_bucket_pays_for_its_copies(
        make_clone: MakeClone, s3: MotoServer, source: str, paid: FaultProxy) -> None:
    data = os.urandom(3000)
    put(s3, source, "dem/c.tif", data, checksum=False)
    a = make_clone("a")
    args = (f"s3://{source}/dem/", "--source-endpoint-url", paid.endpoint)
    refused = a.agent("add-checksum", *args, check=False)
    assert refused.returncode == 1 and "--request-payer" in refused.stderr
    assert s3.client().head_object(Bucket=source, Key="dem/c.tif", ChecksumMode="ENABLED").get("ChecksumSHA256") is None

    done = a.agent("add-checksum", *args, "--request-payer")
    assert f"added SHA-256: s3://{source}/dem/c.tif" in done.stdout
    head = s3.client().head_object(Bucket=source, Key="dem/c.tif", ChecksumMode="ENABLED")
    assert head["ChecksumSHA256"] == base64.b64encode(hashlib.sha256(data).digest()).decode()
