"""TLS with a private CA: only against an https endpoint (``make interop`` runs the tier on RGW over https)."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from tests.e2e.conftest import EXTERNAL_HTTPS, ExternalS3, Git, bucket_objects, commit_all, remote_heads

pytestmark = pytest.mark.skipif(not EXTERNAL_HTTPS, reason="needs an https endpoint with a private CA "
                                "(LFS_S3_TEST_ENDPOINT=https://... and LFS_S3_TEST_CA_BUNDLE; make interop)")


def test_ca_bundle_setting_is_what_trusts_a_private_ca(make_clone: Callable[..., Git], s3: ExternalS3,
                                                       bucket: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("LFS_S3_CA_BUNDLE")  # only what each clone's install was given
    monkeypatch.delenv("AWS_CA_BUNDLE", raising=False)
    assert s3.ca_bundle
    without = make_clone("without", install=False)
    without.agent("install", "--bucket", bucket, "--prefix", "repo", "--endpoint-url", s3.endpoint)  # no --ca-bundle
    without.run("lfs", "track", "*.bin")
    (without.path / "x.bin").write_bytes(b"private CA " * 1000)
    commit_all(without, "x")
    proc = without.try_("push", "origin", "HEAD:main")
    assert proc.returncode != 0
    text = proc.stdout + proc.stderr
    assert "TLS failed" in text and "certificate" in text, text
    assert "Traceback" not in text
    assert remote_heads(without.path.parent / "remote.git") == {}
    assert bucket_objects(s3, bucket) == {}

    with_ca = make_clone("with")  # make_clone passes --ca-bundle
    assert with_ca.run("config", "lfs-s3-agent.ca-bundle").strip() == s3.ca_bundle
    without.run("config", "lfs-s3-agent.ca-bundle", s3.ca_bundle)  # the same setting, afterwards
    without.run("push", "-q", "origin", "HEAD:main")
    assert len(bucket_objects(s3, bucket)) == 1
    with_ca.run("pull", "-q", "origin", "main")
    assert (with_ca.path / "x.bin").read_bytes() == b"private CA " * 1000
