"""doctor: each check's verdict, the order, skips after a failure, and the checksum diagnosis (in-process moto)."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest
from botocore.awsrequest import AWSResponse

from lfs_s3_agent.cli import main
from lfs_s3_agent.commands import doctor as doctor_mod
from lfs_s3_agent.commands.doctor import check_identity, doctor
from lfs_s3_agent.commands.install import install
from lfs_s3_agent.settings import Settings
from tests.functional.lfsrepo import BUCKET

ORDER = ["git", "git-lfs", "install", "settings", "credentials", "bucket", "read/write", "store", "checksums"]


@pytest.fixture
def installed(repo_dir: Path, s3: Any) -> Path:
    install({"bucket": BUCKET, "prefix": "team/repo"}, cwd=repo_dir)
    return repo_dir


def statuses(report: Any) -> dict[str, str]:
    return {c.name: c.status for c in report.checks}


@pytest.mark.probe
def test_everything_passes_in_an_installed_repository(installed: Path, s3: Any, capsys: pytest.CaptureFixture[str],
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    report = doctor(cwd=installed)
    assert [c.name for c in report.checks] == ORDER
    assert set(statuses(report).values()) == {"ok"}, report.render()
    checks = {c.name: c for c in report.checks}
    assert "git-lfs/3" in checks["git-lfs"].detail
    assert "bucket = lfs-test  (git config lfs-s3-agent.bucket)" in checks["settings"].lines
    assert "prefix = team/repo  (git config lfs-s3-agent.prefix)" in checks["settings"].lines
    identity = checks["credentials"].detail
    key, secret = os.environ["AWS_ACCESS_KEY_ID"], os.environ["AWS_SECRET_ACCESS_KEY"]
    assert "arn:aws:" in identity and "credentials from env" in identity
    assert f"access key …{key[-4:]}" in identity and key not in identity and secret not in identity
    assert "s3://lfs-test/team/repo/.lfs-s3-agent-doctor-" in checks["read/write"].detail
    store = checks["store"].lines
    assert any(line.startswith("If-None-Match: honoured only after the body") for line in store), store
    assert "keeps checksums: yes" in store and "checksum headers: accepted" in store
    assert "DeleteObjects: takes boto3's checksum (the agent always sends Content-MD5)" in store
    assert "bucket versioning: off" in store
    assert (installed / ".git" / "lfs-s3-agent" / "capabilities.json").is_file(), "the answer is kept for the agent"
    assert s3.list_objects_v2(Bucket=BUCKET).get("KeyCount", 0) == 0, "a probe object was left behind"

    monkeypatch.chdir(installed)
    assert main(["doctor"]) == 0
    out = capsys.readouterr().out
    assert out.splitlines()[0].startswith("✓") and "all checks passed" in out
    assert main(["doctor", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["ok"] and [c["name"] for c in data["checks"]] == ORDER


def test_not_installed_and_no_bucket_fail_with_fixes_and_skip_the_rest(repo_dir: Path, s3: Any,
                                                                       capsys: pytest.CaptureFixture[str],
                                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    report = doctor(cwd=repo_dir)
    assert [c.name for c in report.checks] == ORDER
    got = statuses(report)
    assert got["install"] == "fail" and got["settings"] == "fail"
    assert all(got[name] == "skip" for name in ORDER[4:])
    checks = {c.name: c for c in report.checks}
    assert "lfs-s3-agent install" in checks["install"].fix
    assert "--bucket NAME" in checks["settings"].fix
    monkeypatch.chdir(repo_dir)
    assert main(["doctor"]) == 1
    out = capsys.readouterr().out
    assert "✗" in out and "fix: " in out and "2 check(s) failed" in out


def test_a_moved_python_environment_is_caught(installed: Path, s3: Any) -> None:
    import subprocess

    subprocess.run(["git", "config", "lfs.customtransfer.lfs-s3-agent.path", "/nonexistent/python"], cwd=installed,
                   check=True)
    check = next(c for c in doctor(cwd=installed).checks if c.name == "install")
    assert check.status == "fail" and "/nonexistent/python" in check.detail and "moved" in check.detail


def test_missing_bucket_fails_and_skips_the_probe(installed: Path, s3: Any) -> None:
    report = doctor({"bucket": "no-such-bucket-here"}, cwd=installed)
    got = statuses(report)
    assert got["bucket"] == "fail" and got["read/write"] == "skip" and got["checksums"] == "skip"
    assert "does not exist" in next(c.detail for c in report.checks if c.name == "bucket")


def _rejects_default_checksums(monkeypatch: pytest.MonkeyPatch) -> None:
    """An endpoint that, like R2 or old MinIO, refuses boto3's default CRC32 checksum on PutObject."""
    real = doctor_mod.checksum_client

    def client(values: Settings, mode: Any) -> Any:
        made = real(values, mode)
        if mode == "when_supported":
            def refuse(**_: Any) -> tuple[AWSResponse, dict[str, Any]]:
                return (AWSResponse("https://x", 501, {}, None),
                        {"Error": {"Code": "NotImplemented", "Message": "x-amz-checksum-crc32 is not supported"},
                         "ResponseMetadata": {"HTTPStatusCode": 501}})

            made.raw.meta.events.register("before-call.s3.PutObject", refuse)
        return made

    monkeypatch.setattr(doctor_mod, "checksum_client", client)


@pytest.mark.probe
def test_endpoint_rejecting_default_checksums_is_a_warning_for_other_tools(installed: Path, s3: Any,
                                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    # The agent's own requests carry their SHA-256 in a header, so boto3's default CRC32 does not concern it:
    # doctor says so (issue 13: "a check that fails only for other tools is a warning that says so").
    _rejects_default_checksums(monkeypatch)
    report = doctor(cwd=installed)
    check = report.checks[-1]
    assert (check.name, check.status) == ("checksums", "warn")
    assert "NotImplemented" in check.detail and "The agent is not affected" in check.detail
    assert "AWS_REQUEST_CHECKSUM_CALCULATION=when_required" in check.fix
    assert report.ok, report.render()
    assert s3.list_objects_v2(Bucket=BUCKET).get("KeyCount", 0) == 0


def test_identity_not_available_on_an_endpoint_without_sts() -> None:
    # Nothing listens on port 9 of 127.0.0.1: STS at that endpoint is "not available", not a failure.
    check = check_identity(Settings(bucket="b", endpoint_url="http://127.0.0.1:9", max_attempts=1, timeout=2))
    assert check.status == "ok" and "not available" in check.detail and "env" in check.detail


def test_no_credentials_fail(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("AWS_ACCESS_KEY_ID")
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")
    check = check_identity(Settings(bucket="b"))
    assert check.status == "fail" and "no AWS credentials" in check.detail and "AWS_ACCESS_KEY_ID" in check.fix


def test_an_empty_ca_setting_is_a_failed_check_naming_it_never_a_crash(installed: Path, s3: Any,
                                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    # AWS_CA_BUNDLE='' made doctor crash with a traceback (issue 13).
    monkeypatch.setenv("AWS_CA_BUNDLE", "")
    report = doctor({"endpoint_url": "https://127.0.0.1:9"}, cwd=installed)  # nothing listens: never reached
    failed = [c for c in report.checks if c.status == "fail"]
    assert failed and "AWS_CA_BUNDLE" in failed[0].detail, report.render()
    assert "unexpected" not in failed[0].detail and "lfs-s3-agent config" in failed[0].fix
