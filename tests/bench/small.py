"""One small object (issue 15): `git push` and `git lfs pull` of one new 10 KiB file, cold and warm.

Beside the agent, git-lfs's own standalone ``file://`` transfer to a bare git repository runs in the
same loop (its push and pull are git-lfs's fixed cost). Each sample commits a new file and measures:

- agent cold: this repository's shared workers stopped first (the push's or pull's agents start one);
- agent warm: right after, the worker from the cold run still up;
- file://: the same commands against a ``file://`` remote.

``git push`` runs the real pre-push hook (ours for the agent, git-lfs's for file://). Wall time and
the whole command's CPU (git, hook, git-lfs, agents; a shared worker runs detached and is not in it)
come from ``procs.run_measured``; the worker's CPU during a warm command is read from /proc and added.
"""

from __future__ import annotations

import os
import statistics
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from tests.bench.procs import process_cpu_s, run, run_measured
from tests.bench.workloads import BUCKET

SIZE = 10 * 1024
KINDS = ("push cold", "push warm", "pull cold", "pull warm", "file push", "file pull")


@dataclass
class Small:
    wall: dict[str, list[float]] = field(default_factory=lambda: {k: [] for k in KINDS})
    cpu: dict[str, list[float]] = field(default_factory=lambda: {k: [] for k in KINDS})
    errors: list[str] = field(default_factory=list)

    def median(self, kind: str, what: str = "wall") -> float | None:
        values = (self.wall if what == "wall" else self.cpu)[kind]
        return statistics.median(values) if values else None


def _git(*args: str, cwd: Path, env: dict[str, str]) -> str:
    return run(["git", *args], cwd=cwd, env=env)


def _agent(*args: str, cwd: Path, env: dict[str, str]) -> str:
    return run([sys.executable, "-m", "lfs_s3_agent", *args], cwd=cwd, env=env)


def _workers(cwd: Path, env: dict[str, str]) -> list[int]:
    import json

    out = json.loads(_agent("worker", "status", "--json", cwd=cwd, env=env))
    return [int(w["pid"]) for w in out["workers"]]


def one_object(root: Path, env: dict[str, str], endpoint: str, server_env: dict[str, str], samples: int) -> Small:
    root.mkdir(parents=True, exist_ok=True)
    env = {**env, **server_env, "LFS_S3_RUNTIME_DIR": str(root / "run")}
    skip = {**env, "GIT_LFS_SKIP_SMUDGE": "1"}
    repos: dict[str, tuple[Path, Path]] = {}
    for name in ("agent", "file"):
        remote = root / f"{name}-remote.git"
        _git("init", "-q", "--bare", "-b", "main", str(remote), cwd=root, env=env)
        src, dst = root / f"{name}-src", root / f"{name}-dst"
        _git("init", "-q", "-b", "main", str(src), cwd=root, env=env)
        _git("remote", "add", "origin", remote.as_uri() if name == "file" else str(remote), cwd=src, env=env)
        if name == "agent":
            _agent("install", "--bucket", BUCKET, "--prefix", "small", "--endpoint-url", endpoint, cwd=src, env=env)
        else:
            _git("lfs", "install", "--local", cwd=src, env=env)
        _git("lfs", "track", "*.bin", cwd=src, env=env)
        _git("add", ".gitattributes", cwd=src, env=env)
        _git("commit", "-qm", "attributes", cwd=src, env=env)
        _git("push", "-q", "origin", "main", cwd=src, env=env)
        _git("clone", "-q", remote.as_uri() if name == "file" else str(remote), str(dst), cwd=root, env=skip)
        if name == "agent":
            _agent("install", "--bucket", BUCKET, "--prefix", "small", "--endpoint-url", endpoint, cwd=dst, env=env)
        repos[name] = (src, dst)
    time.sleep(2.5)  # config written just now is newer than any stamp: let it age, as in real use
    result = Small()

    def step(kind: str, argv: list[str], cwd: Path, workers_of: Path | None) -> None:
        before = {pid: process_cpu_s(pid) for pid in (_workers(workers_of, env) if workers_of else [])}
        measured = run_measured(argv, cwd=cwd, env=env)
        if measured.returncode != 0:
            result.errors.append(f"{kind}: {' '.join(argv)} failed: {measured.stderr[-500:]}")
            return
        worker_cpu = sum(max(0.0, process_cpu_s(pid) - cpu) for pid, cpu in before.items())
        result.wall[kind].append(measured.wall_s)
        result.cpu[kind].append(measured.cpu_s + worker_cpu)

    for i in range(samples):
        for name in ("agent", "file"):
            src, dst = repos[name]
            for mode in (("cold", "warm") if name == "agent" else ("",)):
                if mode == "cold":
                    for repo in (src, dst):
                        _agent("worker", "stop", cwd=repo, env=env)
                file = f"s{i}{mode}.bin"
                (src / file).write_bytes(os.urandom(SIZE))
                _git("add", file, cwd=src, env=env)
                _git("commit", "-qm", file, cwd=src, env=env)
                push, pull = (f"push {mode}", f"pull {mode}") if mode else ("file push", "file pull")
                step(push, ["git", "push", "-q", "origin", "main"], src, src if mode == "warm" else None)
                _git("pull", "-q", "origin", "main", cwd=dst, env=skip)
                step(pull, ["git", "lfs", "pull", "-I", file], dst, dst if mode == "warm" else None)
                if (dst / file).read_bytes() != (src / file).read_bytes():
                    result.errors.append(f"{name} {mode}: {file} pulled with other bytes")
    for repo in repos["agent"]:
        _agent("worker", "stop", cwd=repo, env=env)
    return result
