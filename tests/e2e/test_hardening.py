"""Hardening, end to end: secrets never leak, signals leave nothing behind, concurrent pushes agree."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.conftest import Git, bucket_objects, commit_all, expected_key, sha256
from tests.faultproxy import Fault, FaultProxy
from tests.polling import wait_until
from tests.s3server import MotoServer

FAKE_KEY_ID = "AKIAFAKEKEYID7777777"
FAKE_SECRET = "fakeSecret/DoNotLeak+9f8e7d6c5b4a3210zyxw"


def test_credentials_never_appear_in_output_logs_config_or_files(make_clone: Any, s3: MotoServer, bucket: str,
                                                                 tmp_path: Path,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    log_file = tmp_path / "agent.log"
    env = {"AWS_ACCESS_KEY_ID": FAKE_KEY_ID, "AWS_SECRET_ACCESS_KEY": FAKE_SECRET, "GIT_TRACE": "1",
           "LFS_S3_LOG_LEVEL": "debug", "LFS_S3_LOG_FILE": str(log_file)}
    for name, value in env.items():  # restored after the test: later tests must not trace or log here
        monkeypatch.setenv(name, value)
    a = make_clone("a", install=False)
    outputs: list[str] = []
    outputs.append(a.agent("install", "--bucket", bucket, "--prefix", "repo", "--endpoint-url", s3.endpoint,
                           "--save").stdout)
    a.run("lfs", "track", "*.bin")
    (a.path / "one.bin").write_bytes(os.urandom(50_000))
    (a.path / "big.bin").write_bytes(os.urandom(17 << 20))  # multipart too
    commit_all(a, "data")
    for args in (["push", "origin", "HEAD:main"], ["lfs", "push", "--all", "origin"]):
        proc = a.try_(*args)
        outputs += [proc.stdout, proc.stderr]
    b = make_clone("b")
    proc = b.try_("lfs", "pull")
    outputs += [proc.stdout, proc.stderr]
    failing = b.try_("lfs", "push", "--all", "origin", env={"LFS_S3_BUCKET": "no-such-bucket-here"})  # errors too
    outputs += [failing.stdout, failing.stderr]
    assert failing.returncode != 0
    for command in (["config"], ["config", "--json"]):
        outputs.append(b.agent(*command, check=False).stdout)
    runtime = Path(os.environ["LFS_S3_RUNTIME_DIR"])  # the shared workers' logs
    files = [p for root in (a.path, b.path, runtime) for p in root.rglob("*") if p.is_file()] + [log_file]
    for secret in (FAKE_SECRET, FAKE_KEY_ID):
        assert not [o for o in outputs if secret in o], f"{secret} printed"
        leaked = [str(p) for p in files if secret.encode() in p.read_bytes()]
        assert not leaked, f"{secret} written to {leaked}"
    metadata = [s3.client().head_object(Bucket=bucket, Key=k)["Metadata"] for k in bucket_objects(s3, bucket)]
    assert FAKE_SECRET not in json.dumps(metadata)
    assert log_file.stat().st_size > 0  # the log was written, and checked


def _spawn_agent(repo: Path, endpoint: str, bucket: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "lfs_s3_agent", "serve", "--bucket", bucket, "--prefix", "sig",
         "--endpoint-url", endpoint, "--timeout", "60"],
        cwd=repo, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def _start_transfer(repo: Path, endpoint: str, bucket: str, operation: str,
                    request: dict[str, Any]) -> subprocess.Popen[bytes]:
    """Spawn an agent, do the init handshake and send one transfer request."""
    agent = _spawn_agent(repo, endpoint, bucket)
    assert agent.stdin is not None and agent.stdout is not None
    init = {"event": "init", "operation": operation, "remote": "origin", "concurrent": True,
            "concurrenttransfers": 1}
    agent.stdin.write(json.dumps(init).encode() + b"\n" + json.dumps(request).encode() + b"\n")
    agent.stdin.flush()
    assert agent.stdout.readline() == b"{}\n"
    return agent


def test_sigterm_mid_download_leaves_no_temp_file(s3: MotoServer, bucket: str, repo_dir: Path) -> None:
    data = os.urandom(200_000)
    oid = sha256(data)
    s3.client().put_object(Bucket=bucket, Key=expected_key("sig", oid), Body=data)
    tmp = repo_dir / ".git" / "lfs" / "tmp"
    with FaultProxy(s3.endpoint, ca_bundle=getattr(s3, "ca_bundle", None)) as proxy:
        stall = proxy.add(Fault("stall", "GET", oid, times=1, stall_seconds=60))
        agent = _start_transfer(repo_dir, proxy.endpoint, bucket, "download",
                                {"event": "download", "oid": oid, "size": len(data)})
        wait_until(lambda: stall.injected == 1, "the download to start")
        assert [p.name for p in tmp.iterdir()], "the agent should have a temp file open by now"
        agent.send_signal(signal.SIGTERM)
        agent.wait(timeout=30)
    assert agent.returncode == 128 + signal.SIGTERM
    assert list(tmp.iterdir()) == []


def test_sigint_mid_upload_stores_nothing(s3: MotoServer, bucket: str, repo_dir: Path) -> None:
    data = os.urandom(300_000)
    oid = sha256(data)
    src = repo_dir / "object"
    src.write_bytes(data)
    with FaultProxy(s3.endpoint, ca_bundle=getattr(s3, "ca_bundle", None)) as proxy:
        stall = proxy.add(Fault("stall", "PUT", oid, times=1, stall_seconds=60))
        agent = _start_transfer(repo_dir, proxy.endpoint, bucket, "upload",
                                {"event": "upload", "oid": oid, "size": len(data), "path": str(src)})
        wait_until(lambda: stall.injected == 1, "the upload to start")
        agent.send_signal(signal.SIGINT)
        agent.wait(timeout=30)
    assert agent.returncode != 0
    assert expected_key("sig", oid) not in bucket_objects(s3, bucket)
    assert src.read_bytes() == data  # git-lfs's own object untouched


def test_two_clones_pushing_the_same_objects_at_once_agree(make_clone: Any, s3: MotoServer, bucket: str,
                                                           tmp_path: Path) -> None:
    # Single-PUT objects only: moto's server is not safe for two clients sharing one multipart upload
    # (it answers 500 where S3 says NoSuchUpload); that race is covered against a stub in
    # tests/functional/test_multipart.py.
    files = {f"f{i}.bin": os.urandom(100_000 + i) for i in range(16)}
    clones: list[Git] = []
    for name in ("a", "b"):
        remote = tmp_path / f"{name}-remote.git"
        subprocess.run(["git", "init", "-q", "--bare", str(remote)], check=True)
        git = make_clone(name)
        git.run("remote", "set-url", "origin", str(remote))
        git.run("lfs", "track", "*.bin")
        for rel, data in files.items():
            (git.path / rel).write_bytes(data)
        commit_all(git, f"from {name}")
        clones.append(git)
    procs = [subprocess.Popen(["git", "push", "-q", "origin", "HEAD:main"], cwd=g.path, env=g.env,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE) for g in clones]
    results = [p.communicate(timeout=600) for p in procs]
    errors = "\n".join(err.decode() for _, err in results)
    assert [p.returncode for p in procs] == [0, 0], errors
    stored = bucket_objects(s3, bucket)
    assert set(stored) == {expected_key("repo", sha256(d)) for d in files.values()}
    client = s3.client()
    for data in files.values():
        body = client.get_object(Bucket=bucket, Key=expected_key("repo", sha256(data)))["Body"].read()
        assert sha256(body) == sha256(data)
    assert "Uploads" not in client.list_multipart_uploads(Bucket=bucket)
