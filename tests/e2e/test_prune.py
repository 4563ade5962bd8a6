"""`prune`: git-lfs's prune that never deletes the only copy of an object the store lacks."""

from __future__ import annotations

import os
from collections.abc import Callable

import pytest

from tests.e2e.conftest import Git, commit_all, git_common_dir, sha256, write_files

MakeClone = Callable[..., Git]


def local_object(git: Git, oid: str) -> bool:
    return (git_common_dir(git) / "lfs" / "objects" / oid[0:2] / oid[2:4] / oid).is_file()


@pytest.mark.parametrize("count", [1, 20], ids=["few-head-requests", "many-one-listing"])
def test_prune_deletes_nothing_while_the_store_lacks_an_object(make_clone: MakeClone, count: int) -> None:
    a = make_clone("a")
    for key in ("lfs.fetchrecentcommitsdays", "lfs.fetchrecentrefsdays", "lfs.pruneoffsetdays"):
        a.run("config", key, "0")  # nothing is "recent": every old version may be pruned
    a.run("lfs", "track", "*.bin")
    old = {f"f{i}.bin": os.urandom(2000 + i) for i in range(count)}
    write_files(a.path, old)
    commit_all(a, "v1")
    a.run("push", "-q", "--no-verify", "origin", "HEAD:main")  # the store never receives v1
    write_files(a.path, {name: os.urandom(1000) for name in old})
    commit_all(a, "v2")
    a.run("push", "-q", "origin", "HEAD:main")
    oids = sorted(sha256(d) for d in old.values())

    proc = a.agent("prune", check=False)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert f"git lfs prune would delete {count} of these" in proc.stdout
    assert ("one listing" if count > 16 else "HEAD request") in proc.stdout
    assert all(oid in proc.stdout for oid in oids)
    assert all(local_object(a, oid) for oid in oids), "prune deleted an object the store lacks"
    push = next(line for line in proc.stdout.splitlines() if line.startswith("push them first: "))
    command = push.removeprefix("push them first: ").split()
    assert command[:4] == ["git", "lfs", "push", "--object-id"]
    a.run(*command[1:])

    dry = a.agent("prune", "--dry-run", "--verify-remote")
    assert f"{count} file" in dry.stdout and "ignored --verify-remote" in dry.stderr, dry.stdout
    assert all(local_object(a, oid) for oid in oids)
    a.agent("prune")
    assert not any(local_object(a, oid) for oid in oids)
    assert all(local_object(a, sha256((a.path / name).read_bytes())) for name in old)  # HEAD's are kept


def test_prune_keeps_unpushed_objects_git_lfs_retains(make_clone: MakeClone) -> None:
    """An object the store lacks but git-lfs keeps anyway (unpushed) does not block pruning the rest."""
    a = make_clone("a")
    a.run("lfs", "track", "*.bin")
    (a.path / "x.bin").write_bytes(os.urandom(3000))
    commit_all(a, "x")  # never pushed: git-lfs retains it
    proc = a.agent("prune")
    assert "1 object not in the store, kept by git-lfs's own rules" in proc.stdout, proc.stdout
    assert local_object(a, sha256((a.path / "x.bin").read_bytes()))
