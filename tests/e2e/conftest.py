"""End-to-end fixtures: a moto S3 server process on 127.0.0.1 and git repositories wired to it.

The agent is started by git-lfs itself, exactly as `lfs-s3-agent install` configures it.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import uuid
from collections.abc import Iterator
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


@pytest.fixture
def bucket(s3: MotoServer) -> str:
    name = f"lfs-{uuid.uuid4().hex[:12]}"
    s3.client().create_bucket(Bucket=name)
    return name


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
