"""End-to-end fixtures: a moto S3 server process on 127.0.0.1 and git repositories wired to it.

The agent is started by git-lfs itself, exactly as `lfs-s3-agent install` configures it.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
import sys
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.s3server import MotoServer

pytestmark = pytest.mark.e2e

if shutil.which("git-lfs") is None:
    # Not a skip: CI installs git-lfs (see .ci/run and `make test`); its absence is a failure.
    raise RuntimeError("git-lfs is not installed: `apt-get install git-lfs` (make test does this as root)")


@pytest.fixture(scope="session")
def s3() -> Iterator[MotoServer]:
    with MotoServer() as server:
        yield server


def new_bucket(s3: MotoServer, stem: str) -> str:
    """A fresh, uniquely named bucket on the server."""
    name = f"{stem}-{uuid.uuid4().hex[:12]}"
    s3.client().create_bucket(Bucket=name)
    return name


@pytest.fixture
def bucket(s3: MotoServer) -> str:
    return new_bucket(s3, "lfs")


class Git:
    """Runs git in one directory; ``run`` checks, ``try_`` returns the CompletedProcess."""

    def __init__(self, path: Path, env: dict[str, str] | None = None) -> None:
        self.path = path
        self.env = {**os.environ, **(env or {})}

    def try_(self, *args: str, cwd: Path | None = None, env: dict[str, str] | None = None,
             input: str | None = None) -> subprocess.CompletedProcess[str]:
        return subprocess.run(["git", *args], cwd=cwd or self.path, capture_output=True, text=True,
                              env={**self.env, **(env or {})}, input=input, timeout=600)

    def run(self, *args: str, **kwargs: Any) -> str:
        proc = self.try_(*args, **kwargs)
        assert proc.returncode == 0, f"git {' '.join(args)} failed:\n{proc.stdout}\n{proc.stderr}"
        return proc.stdout

    def popen(self, *args: str) -> subprocess.Popen[str]:
        """Start git in the background (stdout and stderr piped): for tests that act mid-command."""
        return subprocess.Popen(["git", *args], cwd=self.path, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                text=True, env=self.env)

    def agent(self, *args: str, cwd: Path | None = None, check: bool = True) -> subprocess.CompletedProcess[str]:
        proc = subprocess.run([sys.executable, "-m", "lfs_s3_agent", *args], cwd=cwd or self.path,
                              capture_output=True, text=True, env=self.env, timeout=600)
        if check:
            assert proc.returncode == 0, f"lfs-s3-agent {' '.join(args)} failed:\n{proc.stdout}\n{proc.stderr}"
        return proc


@pytest.fixture
def remote(tmp_path: Path) -> Path:
    """A bare git remote on disk."""
    path = tmp_path / "remote.git"
    subprocess.run(["git", "init", "-q", "--bare", str(path)], check=True)
    return path


@pytest.fixture
def make_clone(tmp_path: Path, remote: Path, s3: MotoServer, bucket: str) -> Any:
    """Factory: a fresh clone of ``remote`` with the agent installed against ``bucket``."""

    def factory(name: str, *, prefix: str = "repo", install: bool = True, **flags: str) -> Git:
        path = tmp_path / name
        env = {"GIT_LFS_SKIP_SMUDGE": "1"}
        subprocess.run(["git", "clone", "-q", str(remote), str(path)], check=True, env={**os.environ, **env},
                       capture_output=True)
        git = Git(path)
        if install:
            args = ["install", "--bucket", flags.pop("bucket", bucket), "--prefix", prefix,
                    "--endpoint-url", flags.pop("endpoint_url", s3.endpoint)]
            for key, value in flags.items():
                args += [f"--{key.replace('_', '-')}", value]
            git.agent(*args)
        return git

    return factory


# -- helpers shared by the e2e tests ---------------------------------------------------------------

#: What the agent logs per upload request at level info (LFS_S3_LOG_LEVEL=info, LFS_S3_LOG_FILE=...).
UPLOAD_LOG = re.compile(r"\b(uploaded|already stored) ([0-9a-f]{64}) \((\d+) bytes\)")
POINTER = re.compile(rb"version https://git-lfs\.github\.com/spec/v1\noid sha256:([0-9a-f]{64})\nsize (\d+)\n")


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def expected_key(prefix: str, oid: str) -> str:
    """The documented layout, written out independently of the agent's code."""
    return f"{prefix}/{oid[0:2]}/{oid[2:4]}/{oid}"


def write_files(root: Path, files: Mapping[str, bytes]) -> None:
    for name, data in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)


def tree_digests(root: Path) -> dict[str, str]:
    """SHA-256 of every file in a working tree (relative POSIX path -> hex), ``.git`` excluded."""
    out: dict[str, str] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = [d for d in dirnames if d != ".git"]
        for name in filenames:
            if name == ".git":  # a worktree's .git file
                continue
            path = Path(dirpath) / name
            out[path.relative_to(root).as_posix()] = sha256_file(path)
    return out


def lfs_oids(files: Mapping[str, bytes]) -> set[str]:
    """The LFS objects a set of tracked files produces (git-lfs keeps empty files as empty blobs)."""
    return {sha256(data) for data in files.values() if data}


def bucket_objects(server: MotoServer, bucket: str, client: Any = None) -> dict[str, dict[str, Any]]:
    """Every object in the bucket: key -> {"Size", "LastModified", "ETag"}."""
    client = client or server.client()
    out: dict[str, dict[str, Any]] = {}
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket):
        for obj in page.get("Contents", []):
            out[obj["Key"]] = {"Size": obj["Size"], "LastModified": obj["LastModified"], "ETag": obj["ETag"]}
    return out


def read_upload_log(path: Path) -> list[tuple[str, str, int]]:
    """(action, oid, size) for each upload the agents logged; action is "uploaded" or "already stored"."""
    if not path.exists():
        return []
    return [(m[1], m[2], int(m[3])) for m in UPLOAD_LOG.finditer(path.read_text(encoding="utf-8"))]


def log_env(path: Path) -> dict[str, str]:
    return {"LFS_S3_LOG_LEVEL": "info", "LFS_S3_LOG_FILE": str(path)}


def pointer_oid(data: bytes) -> str | None:
    match = POINTER.fullmatch(data)
    return match[1].decode() if match else None


def leftover_tmp_files(lfs_dir: Path) -> list[str]:
    """Files under ``lfs/tmp`` that hold bytes or that the agent created.

    git-lfs 3.3 itself leaves empty, numerically named files there even after a successful pull;
    anything else (a non-empty file, or one of ours) is a leaked download.
    """
    tmp = lfs_dir / "tmp"
    found = []
    for path in tmp.rglob("*") if tmp.exists() else ():
        if path.is_file() and (path.stat().st_size > 0 or not path.name.isdigit()):
            found.append(f"{path.relative_to(lfs_dir)} ({path.stat().st_size} bytes)")
    return found


def git_common_dir(git: Git, cwd: Path | None = None) -> Path:
    return Path(git.run("rev-parse", "--path-format=absolute", "--git-common-dir", cwd=cwd).strip())


def local_config(git: Git, cwd: Path | None = None) -> list[str]:
    """``git config --local --list`` as sorted ``key=value`` lines.

    Sorted because git-lfs writes its four ``filter.lfs.*`` keys in random order (a Go map).
    """
    proc = git.try_("config", "--local", "--list", cwd=cwd)
    assert proc.returncode in (0, 1), proc.stderr
    return sorted(proc.stdout.splitlines())


def remote_heads(remote: Path) -> dict[str, str]:
    out = subprocess.run(["git", "ls-remote", "--heads", str(remote)], capture_output=True, text=True,
                         check=True).stdout
    return {ref: sha for sha, ref in (line.split("\t") for line in out.splitlines())}


def commit_all(git: Git, message: str, cwd: Path | None = None) -> None:
    git.run("add", "-A", cwd=cwd)
    git.run("commit", "-qm", message, cwd=cwd)


# -- a second moto server with authentication switched on --------------------------------------------

@dataclass(frozen=True)
class AuthServer:
    server: MotoServer
    key: str
    secret: str

    @property
    def endpoint(self) -> str:
        return self.server.endpoint

    def client(self) -> Any:
        return self.server.client(key=self.key, secret=self.secret)

    def env(self) -> dict[str, str]:
        return {"AWS_ACCESS_KEY_ID": self.key, "AWS_SECRET_ACCESS_KEY": self.secret}


@pytest.fixture(scope="session")
def auth_s3() -> Iterator[AuthServer]:
    """Its own moto server (auth on the shared one would break every other test)."""
    from tests.s3server import create_iam_access_key, enable_auth

    with MotoServer() as server:
        key, secret = create_iam_access_key(server)
        enable_auth(server)
        yield AuthServer(server, key, secret)
