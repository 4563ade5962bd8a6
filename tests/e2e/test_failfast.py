"""Fail fast: once the endpoint cannot be reached, the git command's other objects fail at once."""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from pathlib import Path

from tests.e2e.conftest import Git, commit_all, log_env, write_files
from tests.s3server import MotoServer, free_port

MakeClone = Callable[..., Git]
RETRY_LOG = re.compile(r"\(attempt \d+ of \d+\)")


def test_a_dead_endpoint_fails_the_rest_of_the_pull_at_once(make_clone: MakeClone, s3: MotoServer,
                                                            tmp_path: Path) -> None:
    a = make_clone("a")
    a.run("lfs", "track", "*.bin")
    files = {f"f{i:02}.bin": os.urandom(500 + i) for i in range(50)}
    write_files(a.path, files)
    commit_all(a, "fifty")
    a.run("push", "-q", "origin", "HEAD:main")

    dead = f"http://127.0.0.1:{free_port()}"  # nothing listens there: connection refused
    b = make_clone("b", endpoint_url=dead, max_attempts="3")
    log = tmp_path / "agents.log"
    b.env.update(log_env(log))
    proc = b.try_("lfs", "pull")
    assert proc.returncode != 0
    failed = set(re.findall(r"\[47\][^\n]*", proc.stdout + proc.stderr))
    assert failed and all("cannot reach the S3 endpoint" in line for line in failed), proc.stderr[-2000:]
    text = log.read_text(encoding="utf-8")
    retries = len(RETRY_LOG.findall(text))
    # Without the mark every object spends its attempts: 50 x 2 retries. With it, only the objects in
    # flight when the first one gave up (one per agent, 8, plus the shared worker's) retry at all.
    assert 0 < retries <= 2 * 12, f"{retries} retries for 50 objects:\n{text[-3000:]}"
    assert "not attempted" in proc.stdout + proc.stderr

    # The next git command tries the endpoint again: with the server back, it works.
    b.run("config", "lfs-s3-agent.endpoint-url", s3.endpoint)
    b.run("lfs", "pull")
    assert all((b.path / name).read_bytes() == data for name, data in files.items())
