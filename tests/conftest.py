"""Shared fixtures: fake AWS credentials everywhere, and no ambient AWS/git config leaking in."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.s3server import TEST_ENV


@pytest.fixture(autouse=True)
def _isolated_env(monkeypatch: pytest.MonkeyPatch, tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """Tests never see the developer's AWS profile, endpoints or git identity."""
    for name in list(os.environ):
        if name.startswith(("AWS_", "LFS_S3_", "GIT_")):
            monkeypatch.delenv(name, raising=False)
    for name, value in TEST_ENV.items():  # includes AWS_EC2_METADATA_DISABLED=true
        monkeypatch.setenv(name, value)
    assert os.environ["AWS_EC2_METADATA_DISABLED"] == "true"
    home = tmp_path_factory.mktemp("home")
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(home / "aws-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(home / "aws-credentials"))
    monkeypatch.setenv("GIT_CONFIG_NOSYSTEM", "1")
    (home / ".gitconfig").write_text(
        "[user]\n\tname = Test\n\temail = test@example.com\n[init]\n\tdefaultBranch = main\n"
        "[protocol \"file\"]\n\tallow = always\n"
    )
    # Each test gets its own shared-worker directory, and its workers are stopped after it.
    runtime = tmp_path_factory.mktemp("run")
    monkeypatch.setenv("LFS_S3_RUNTIME_DIR", str(runtime))
    yield
    stop_workers(runtime)


def stop_workers(runtime: Path) -> list[dict[str, object]]:
    """Stop every shared worker whose socket is in ``runtime``; their status replies.

    Workers a launcher is still starting in the background (a ``*.starting`` marker) are waited for
    first, so that none outlives the test.
    """
    import time

    from lfs_s3_agent import rendezvous

    deadline = time.monotonic() + rendezvous.START_TIMEOUT
    while list(runtime.glob("*.starting")) and time.monotonic() < deadline:  # not a timing assertion
        time.sleep(0.05)
    return rendezvous.workers(runtime, stop=True)


@pytest.fixture
def repo_dir(tmp_path: Path) -> Path:
    """An empty git repository (no LFS objects yet)."""
    import subprocess

    path = tmp_path / "repo"
    subprocess.run(["git", "init", "-q", str(path)], check=True)
    return path
