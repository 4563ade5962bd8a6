"""Round trips through real git and git-lfs, the agent started by git-lfs as `install` configures it.

Covers: a large mixed push/pull (byte-identical, exact bucket keys), a repeated push that uploads
nothing, `git lfs fetch --all`, running from a subdirectory, and a `git worktree`.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.e2e.conftest import (
    Git,
    bucket_objects,
    commit_all,
    expected_key,
    git_common_dir,
    leftover_tmp_files,
    lfs_oids,
    log_env,
    pointer_oid,
    read_upload_log,
    sha256,
    sha256_file,
    tree_digests,
    write_files,
)
from tests.s3server import MotoServer

MakeClone = Callable[..., Git]
MIB = 1 << 20


def big_file(path: Path, size: int) -> str:
    """Write ``size`` pseudo-random bytes quickly (1 MiB of urandom, each MiB stamped with a counter)."""
    block = bytearray(os.urandom(MIB))
    with path.open("wb") as fh:
        written = 0
        counter = 0
        while written < size:
            block[:8] = counter.to_bytes(8, "big")
            chunk = bytes(block[: min(MIB, size - written)])
            fh.write(chunk)
            written += len(chunk)
            counter += 1
    return sha256_file(path)


def mixed_files() -> dict[str, bytes]:
    """>= 50 small *.bin files: empty, 1 byte, spaces, non-ASCII, deep nesting, a duplicate."""
    rnd = os.urandom
    files: dict[str, bytes] = {
        "empty.bin": b"",
        "one byte.bin": b"\x01",
        "with space/file name with spaces.bin": rnd(3000),
        "café/naïve résumé.bin": rnd(5000),
        "日本語/データ ファイル.bin": rnd(7000),
        "emoji-🎉/ünï cødé 🎉.bin": rnd(1234),
        "deep/a/b/c/d/e/f/nested.bin": rnd(4096),
    }
    for i in range(48):
        files[f"data/dir{i % 6}/sub {i % 4}/file{i:02d}.bin"] = rnd(1 + (i * 7919) % 200_000)
    files["dup/copy of file00.bin"] = files["data/dir0/sub 0/file00.bin"]
    return files


def test_many_files_round_trip_then_second_push_uploads_nothing(
        make_clone: MakeClone, s3: MotoServer, bucket: str, tmp_path: Path) -> None:
    client = s3.client()
    # Versioning makes any re-upload visible as a second version, whatever the clock resolution.
    client.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
    prefix = "team/game"
    a = make_clone("a", prefix=prefix)
    a.run("lfs", "track", "*.bin")
    files = mixed_files()
    write_files(a.path, files)
    write_files(a.path, {"README.txt": b"a plain git file next to the LFS ones\n"})
    (a.path / "big").mkdir()
    big_size = 64 * MIB + 4321
    big_oid = big_file(a.path / "big" / "huge asset.bin", big_size)
    assert big_oid != sha256(b"\0" * big_size)
    commit_all(a, "assets")
    assert len(a.run("ls-files").splitlines()) >= 50

    oids = lfs_oids(files) | {big_oid}
    sizes = {sha256(data): len(data) for data in files.values() if data} | {big_oid: big_size}
    listed = {line.split()[0] for line in a.run("lfs", "ls-files", "--long").splitlines()}
    assert listed == oids, "git-lfs did not turn exactly the non-empty *.bin files into pointers"

    first_log = tmp_path / "push1.log"
    a.run("push", "-q", "origin", "HEAD:main", env=log_env(first_log))
    first = read_upload_log(first_log)
    assert {oid for action, oid, _ in first if action == "uploaded"} == oids
    assert all(size == sizes[oid] for _, oid, size in first)

    stored = bucket_objects(s3, bucket)
    assert set(stored) == {expected_key(prefix, oid) for oid in oids}
    assert {key: obj["Size"] for key, obj in stored.items()} == {
        expected_key(prefix, oid): sizes[oid] for oid in oids}

    # A second push of everything must not upload a byte.
    second_log = tmp_path / "push2.log"
    a.run("lfs", "push", "--all", "origin", env=log_env(second_log))
    second = read_upload_log(second_log)
    assert [line for line in second if line[0] == "uploaded"] == []
    assert {oid for action, oid, _ in second if action == "already stored"} == oids
    assert bucket_objects(s3, bucket) == stored  # same keys, sizes, ETags and LastModified
    versions = client.list_object_versions(Bucket=bucket).get("Versions", [])
    assert sorted(v["Key"] for v in versions) == sorted(stored), "an object was written twice"

    b = make_clone("b", prefix=prefix)
    b.run("lfs", "pull")
    assert tree_digests(b.path) == tree_digests(a.path)
    assert (b.path / "empty.bin").stat().st_size == 0
    assert b.run("status", "--porcelain", "--untracked-files=all") == ""
    assert leftover_tmp_files(b.path / ".git" / "lfs") == []


def test_fetch_all_gets_every_object_of_every_ref(make_clone: MakeClone, s3: MotoServer, bucket: str) -> None:
    a = make_clone("a")
    a.run("lfs", "track", "*.bin")
    v1 = {"asset.bin": os.urandom(20_000), "keep.bin": os.urandom(10_000)}
    write_files(a.path, v1)
    commit_all(a, "v1")
    v2 = {"asset.bin": os.urandom(30_000)}  # v1's asset survives only in history
    write_files(a.path, v2)
    commit_all(a, "v2")
    a.run("checkout", "-qb", "side")
    side = {"side/only on a branch.bin": os.urandom(15_000)}
    write_files(a.path, side)
    commit_all(a, "side")
    a.run("push", "-q", "origin", "main", "side")
    oids = lfs_oids(v1) | lfs_oids(v2) | lfs_oids(side)
    assert len(bucket_objects(s3, bucket)) == len(oids) == 4

    b = make_clone("b")
    b.run("lfs", "fetch", "--all")
    objects = b.path / ".git" / "lfs" / "objects"
    for oid in oids:
        path = objects / oid[0:2] / oid[2:4] / oid
        assert path.is_file(), f"git lfs fetch --all did not fetch {oid}"
        assert sha256_file(path) == oid
    fetched = {p.name for p in objects.rglob("*") if p.is_file()}
    assert fetched == oids
    # fetch downloads, it does not check out
    assert pointer_oid((b.path / "keep.bin").read_bytes()) == sha256(v1["keep.bin"])
    assert leftover_tmp_files(b.path / ".git" / "lfs") == []


def test_install_push_and_pull_from_a_subdirectory(make_clone: MakeClone, s3: MotoServer, bucket: str) -> None:
    a = make_clone("a", install=False)
    sub = a.path / "src" / "deep"
    sub.mkdir(parents=True)
    a.agent("install", "--bucket", bucket, "--prefix", "subdir", "--endpoint-url", s3.endpoint, cwd=sub)
    assert a.run("config", "--local", "--get", "lfs.standalonetransferagent").strip() == "lfs-s3-agent"
    a.run("lfs", "track", "*.bin")  # from a subdirectory git-lfs would anchor the pattern there
    files = {"src/deep/here.bin": os.urandom(50_000), "top.bin": os.urandom(40_000),
             "src/other/there.bin": os.urandom(30_000)}
    write_files(a.path, files)
    commit_all(a, "files", cwd=sub)
    a.run("push", "-q", "origin", "HEAD:main", cwd=sub)
    assert set(bucket_objects(s3, bucket)) == {expected_key("subdir", oid) for oid in lfs_oids(files)}
    assert sorted(p.name for p in sub.iterdir()) == ["here.bin"], "the agent wrote into the cwd"

    b = make_clone("b", install=False)
    b_sub = b.path / "src" / "deep"
    b.agent("install", "--bucket", bucket, "--prefix", "subdir", "--endpoint-url", s3.endpoint, cwd=b_sub)
    b.run("lfs", "pull", cwd=b_sub)
    assert tree_digests(b.path) == tree_digests(a.path)
    assert b.run("status", "--porcelain", "--untracked-files=all") == ""
    assert not (b_sub / ".git").exists()
    assert leftover_tmp_files(b.path / ".git" / "lfs") == []


def test_pull_and_push_from_a_worktree(make_clone: MakeClone, s3: MotoServer, bucket: str,
                                       tmp_path: Path) -> None:
    a = make_clone("a")
    a.run("lfs", "track", "*.bin")
    files = {"one.bin": os.urandom(25_000), "dir/two.bin": os.urandom(35_000)}
    write_files(a.path, files)
    commit_all(a, "base")
    a.run("push", "-q", "origin", "HEAD:main")

    b = make_clone("b")
    wt = tmp_path / "b-worktree"
    b.run("worktree", "add", "-q", "-b", "feature", str(wt), "origin/main", env={"GIT_LFS_SKIP_SMUDGE": "1"})
    assert pointer_oid((wt / "one.bin").read_bytes()) == sha256(files["one.bin"])
    b.run("lfs", "pull", cwd=wt)
    assert (wt / "one.bin").read_bytes() == files["one.bin"]
    assert (wt / "dir" / "two.bin").read_bytes() == files["dir/two.bin"]
    common = git_common_dir(b, cwd=wt)
    assert common == (b.path / ".git").resolve()
    assert leftover_tmp_files(common / "lfs") == []
    # Downloads belong in the shared LFS store, not in the worktree's private git dir.
    assert list((common / "worktrees").glob("*/lfs")) == []

    new = {"dir/three from worktree.bin": os.urandom(45_000)}
    write_files(wt, new)
    commit_all(b, "from the worktree", cwd=wt)
    log = tmp_path / "push.log"
    b.run("push", "-q", "origin", "feature", cwd=wt, env=log_env(log))
    (new_oid,) = lfs_oids(new)
    assert [(action, oid) for action, oid, _ in read_upload_log(log) if action == "uploaded"] == [
        ("uploaded", new_oid)]
    assert expected_key("repo", new_oid) in bucket_objects(s3, bucket)

    # A fresh clone: a worktree checked out with the smudge filter on downloads through the agent,
    # and so does `git lfs pull` in the main worktree.
    c = make_clone("c")
    wt_c = tmp_path / "c-worktree"
    c.run("worktree", "add", "-q", "--detach", str(wt_c), "origin/feature")
    assert tree_digests(wt_c) == tree_digests(wt)
    c.run("checkout", "-q", "feature", env={"GIT_LFS_SKIP_SMUDGE": "1"})
    c.run("lfs", "pull")
    assert tree_digests(c.path) == tree_digests(wt)
    assert leftover_tmp_files(c.path / ".git" / "lfs") == []
    assert list((c.path / ".git" / "worktrees").glob("*/lfs")) == []


@pytest.mark.moto_only("SSE-S3 applied: RGW 16 refuses it over http and, with no encryption key configured, does not "
                       "apply it over https (test_store_differences checks that such a push fails and stores nothing)")
def test_sse_aes256_push_and_pull(make_clone: MakeClone, s3: MotoServer, bucket: str) -> None:
    files = {"a.bin": os.urandom(70_000), "b.bin": os.urandom(1_000)}
    a = make_clone("a", sse="AES256")
    a.run("lfs", "track", "*.bin")
    write_files(a.path, files)
    commit_all(a, "encrypted assets")
    a.run("push", "-q", "origin", "HEAD:main")
    assert set(bucket_objects(s3, bucket)) == {expected_key("repo", sha256(d)) for d in files.values()}
    b = make_clone("b", sse="AES256")
    b.run("lfs", "pull")
    assert tree_digests(b.path) == tree_digests(a.path)
