"""Workloads (random files generated once per run) and the git repositories the git-lfs tools push from.

For each workload:
- ``data/``: the files themselves (what s5cmd and boto3 upload);
- ``agent-src/``: a repository with the same files (hard links) committed as LFS objects, with this
  agent installed; its ``origin`` is ``agent-remote.git``, a bare repository that holds the commit
  (pushed without LFS objects) so that fresh clones can ``git lfs pull``;
- ``floor-src/``: a clone of it that shares its LFS store (``lfs.storage``) and pushes to a fresh bare
  repository by ``file://`` URL: git-lfs's own standalone file transfer, the overhead floor.

Neither source repository has a remote-tracking ref for the remote it pushes LFS objects to, so
``git lfs push REMOTE main`` sends every object each time (git-lfs skips objects reachable from
``refs/remotes/REMOTE/*``).
"""

from __future__ import annotations

import hashlib
import os
import shutil
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.bench.procs import run

MiB = 1 << 20
GiB = 1 << 30
BUCKET = "bench"


@dataclass(frozen=True)
class Workload:
    name: str
    count: int
    size: int
    server: str  # which server's name ("s3rver" or "moto")
    runs: int

    @property
    def total(self) -> int:
        return self.count * self.size


def human_size(size: int) -> str:
    for unit, scale in (("GiB", GiB), ("MiB", MiB), ("KiB", 1024)):
        if size >= scale and size % scale == 0:
            return f"{size // scale} {unit}"
    return f"{size} B"


def workload_name(count: int, size: int) -> str:
    return f"{count:,} x {human_size(size)}"


@dataclass
class Prepared:
    workload: Workload
    root: Path
    data: Path
    expected: dict[str, str]  # file name -> sha256 hex
    agent_src: Path
    agent_remote: Path
    floor_src: Path
    endpoint: str
    env: dict[str, str] = field(default_factory=dict)

    @property
    def slug(self) -> str:
        return f"{self.workload.count}x{self.workload.size}"


def generate(data: Path, count: int, size: int) -> dict[str, str]:
    """``count`` files of ``size`` random bytes; returns name -> SHA-256."""
    data.mkdir(parents=True)
    expected = {}
    chunk = 8 * MiB
    width = len(str(count))
    for i in range(count):
        name = f"f{i:0{width}d}.bin"
        digest = hashlib.sha256()
        with (data / name).open("wb") as fh:
            left = size
            while left:
                block = os.urandom(min(chunk, left))
                digest.update(block)
                fh.write(block)
                left -= len(block)
        expected[name] = digest.hexdigest()
    return expected


def git(*args: str, cwd: Path, env: dict[str, str]) -> str:
    return run(["git", *args], cwd=cwd, env=env)


def agent_install(repo: Path, env: dict[str, str], *, prefix: str, endpoint: str) -> None:
    run([sys.executable, "-m", "lfs_s3_agent", "install", "--bucket", BUCKET, "--prefix", prefix,
         "--endpoint-url", endpoint], cwd=repo, env=env)


def prepare(workload: Workload, root: Path, env: dict[str, str], endpoint: str) -> Prepared:
    wdir = root / f"w-{workload.count}x{workload.size}"
    data = wdir / "data"
    expected = generate(data, workload.count, workload.size)

    remote = wdir / "agent-remote.git"
    git("init", "-q", "--bare", "-b", "main", str(remote), cwd=wdir, env=env)
    src = wdir / "agent-src"
    git("init", "-q", "-b", "main", str(src), cwd=wdir, env=env)
    git("lfs", "track", "*.bin", cwd=src, env=env)
    for name in expected:
        os.link(data / name, src / name)
    git("add", "-A", cwd=src, env=env)
    git("commit", "-qm", f"{workload.name} of random bytes", cwd=src, env=env)
    git("remote", "add", "origin", str(remote), cwd=src, env=env)
    # The commit goes to the bare remote by path (no remote-tracking ref), without LFS objects.
    git("push", "-q", str(remote), "main", cwd=src, env={**env, "GIT_LFS_SKIP_PUSH": "1"})
    agent_install(src, env, prefix="unset", endpoint=endpoint)

    floor = wdir / "floor-src"
    git("clone", "-q", "--no-checkout", str(src), str(floor), cwd=wdir, env={**env, "GIT_LFS_SKIP_SMUDGE": "1"})
    git("config", "lfs.storage", str(src / ".git" / "lfs"), cwd=floor, env=env)
    git("remote", "add", "floor", "file:///nonexistent", cwd=floor, env=env)
    return Prepared(workload=workload, root=wdir, data=data, expected=expected, agent_src=src,
                    agent_remote=remote, floor_src=floor, endpoint=endpoint, env=env)


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        while block := fh.read(8 * MiB):
            digest.update(block)
    return digest.hexdigest()


def check_tree(directory: Path, expected: dict[str, str]) -> str | None:
    """None when ``directory`` holds exactly the expected files with the expected bytes, else why not."""
    for name, digest in expected.items():
        path = directory / name
        if not path.is_file():
            return f"{path} is missing"
        actual = sha256_file(path)
        if actual != digest:
            return f"{path}: SHA-256 {actual}, expected {digest} (size {path.stat().st_size})"
    return None


def sample(names: list[str]) -> list[str]:
    """First, middle and last: which objects to fetch back after an upload."""
    return sorted({names[0], names[len(names) // 2], names[-1]})


def check_uploaded(client: Any, keys: dict[str, str], expected: dict[str, str], size: int,
                   listed: dict[str, int]) -> str | None:
    """After an upload: every object is listed with the right size, and sampled ones read back byte-exact.

    ``keys``: file name -> key; ``listed``: key -> size as listed in the bucket.
    """
    for key in keys.values():
        if key not in listed:
            return f"s3://{BUCKET}/{key} is missing after the upload"
        if listed[key] != size:
            return f"s3://{BUCKET}/{key} is stored with {listed[key]} bytes, expected {size}"
    for name in sample(sorted(keys)):
        key = keys[name]
        digest = hashlib.sha256()
        body = client.get_object(Bucket=BUCKET, Key=key)["Body"]
        for block in body.iter_chunks(8 * MiB):
            digest.update(block)
        if digest.hexdigest() != expected[name]:
            return (f"s3://{BUCKET}/{key} read back with SHA-256 {digest.hexdigest()}, expected {expected[name]} "
                    f"(stored size {listed[key]}): the tool or the server corrupted it")
    return None


def list_sizes(client: Any, prefix: str) -> dict[str, int]:
    out: dict[str, int] = {}
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=BUCKET, Prefix=prefix.rstrip("/") + "/"):
        for obj in page.get("Contents", []):
            out[obj["Key"]] = int(obj["Size"])
    return out


def delete_prefix(client: Any, prefix: str) -> None:
    keys = list(list_sizes(client, prefix))
    for start in range(0, len(keys), 1000):
        batch = [{"Key": key} for key in keys[start:start + 1000]]
        client.delete_objects(Bucket=BUCKET, Delete={"Objects": batch, "Quiet": True})


def remove(path: Path) -> None:
    shutil.rmtree(path, ignore_errors=True)
