"""Per-remote scope, settings precedence, `clone -- GIT_CLONE_OPTIONS` and install's advice, with real git-lfs."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Callable
from pathlib import Path

from tests.e2e.conftest import (
    Git,
    bucket_objects,
    commit_all,
    expected_key,
    local_config,
    pointer_oid,
    sha256,
    write_files,
)
from tests.s3server import MotoServer

MakeClone = Callable[..., Git]


def lfs_file_store_has(remote: Path, oid: str) -> bool:
    """Whether git-lfs's own transfer for a remote on disk put the object there."""
    return (remote / "lfs" / "objects" / oid[0:2] / oid[2:4] / oid).is_file()


def test_install_remote_migrates_one_remote_without_switching_the_clone(
        make_clone: MakeClone, s3: MotoServer, bucket: str, remote: Path, tmp_path: Path) -> None:
    # origin keeps its LFS objects "at the host": git-lfs's own transfer for a remote on disk
    host = make_clone("host", install=False)
    host.run("lfs", "install", "--local")
    host.run("lfs", "track", "*.bin")
    files = {"old.bin": os.urandom(20_000), "art/new.bin": os.urandom(10_000)}
    write_files(host.path, files)
    commit_all(host, "assets")
    host.run("push", "-q", "origin", "HEAD:main")
    assert all(lfs_file_store_has(remote, sha256(d)) for d in files.values())

    s3remote = tmp_path / "s3remote.git"
    subprocess.run(["git", "init", "-q", "--bare", str(s3remote)], check=True)
    b = make_clone("b", install=False)
    b.run("remote", "add", "s3remote", str(s3remote))
    out = b.agent("install", "--remote", "s3remote", "--bucket", bucket, "--prefix", "migrated",
                  "--endpoint-url", s3.endpoint).stdout
    assert "for remote s3remote" in out and f"file://{s3remote}" in out
    config = dict(line.split("=", 1) for line in local_config(b))
    assert "lfs.standalonetransferagent" not in config
    assert config[f"lfs.file://{s3remote}.standalonetransferagent"] == "lfs-s3-agent"

    b.run("lfs", "fetch", "--all", "origin")  # from the host, through git-lfs's own transfer
    b.run("push", "-q", "s3remote", "HEAD:main")
    b.run("lfs", "push", "--all", "s3remote")
    stored = bucket_objects(s3, bucket)
    assert {expected_key("migrated", sha256(d)) for d in files.values()} <= set(stored)

    # origin still uses the host's LFS: a new object goes there, not to the bucket
    extra = os.urandom(3000)
    (b.path / "extra.bin").write_bytes(extra)
    commit_all(b, "extra")
    b.run("push", "-q", "origin", "HEAD:main")
    assert lfs_file_store_has(remote, sha256(extra))
    assert expected_key("migrated", sha256(extra)) not in bucket_objects(s3, bucket)

    # a clone of the migrated remote, with a git clone option passed through
    target = tmp_path / "from-s3"
    Git(tmp_path).agent("clone", str(s3remote), str(target), "--bucket", bucket, "--prefix", "migrated",
                        "--endpoint-url", s3.endpoint, "--", "--branch", "main", "--single-branch")
    assert (target / "old.bin").read_bytes() == files["old.bin"]
    assert Git(target).run("rev-parse", "--abbrev-ref", "HEAD").strip() == "main"

    b.agent("uninstall")
    assert not [line for line in local_config(b) if "standalonetransferagent" in line]


def test_clone_passes_git_clone_options_and_explains_misplaced_ones(
        make_clone: MakeClone, s3: MotoServer, bucket: str, remote: Path, tmp_path: Path) -> None:
    a = make_clone("a")
    a.run("lfs", "track", "*.bin")
    (a.path / "x.bin").write_bytes(os.urandom(5000))
    commit_all(a, "x")
    a.run("push", "-q", "origin", "HEAD:main")
    a.run("checkout", "-qb", "dev")
    dev = os.urandom(6000)
    (a.path / "dev.bin").write_bytes(dev)
    commit_all(a, "dev")
    a.run("push", "-q", "origin", "dev")
    runner = Git(tmp_path)
    flags = ["--bucket", bucket, "--prefix", "repo", "--endpoint-url", s3.endpoint]
    proc = runner.agent("clone", "-b", "dev", str(remote), str(tmp_path / "bad"), *flags, check=False)
    assert proc.returncode == 2 and "-- -b" in proc.stderr, proc.stderr
    target = tmp_path / "dev"
    runner.agent("clone", f"file://{remote}", str(target), *flags, "--", "-b", "dev", "--depth", "1")
    assert (target / "dev.bin").read_bytes() == dev
    clone = Git(target)
    assert clone.run("rev-parse", "--abbrev-ref", "HEAD").strip() == "dev"
    assert clone.run("rev-list", "--count", "HEAD").strip() == "1"  # shallow

    # a partial clone: the pointer blobs arrive on demand, and the LFS files still check out
    subprocess.run(["git", "-C", str(remote), "config", "uploadpack.allowFilter", "true"], check=True)
    partial = tmp_path / "partial"
    runner.agent("clone", f"file://{remote}", str(partial), *flags, "--", "--filter=blob:none", "--branch", "dev")
    assert (partial / "dev.bin").read_bytes() == dev
    assert Git(partial).run("config", "remote.origin.partialclonefilter").strip() == "blob:none"


def test_install_save_removes_the_local_keys_that_would_shadow_the_file(
        make_clone: MakeClone, s3: MotoServer, bucket: str) -> None:
    a = make_clone("a", prefix="old")
    out = a.agent("install", "--prefix", "new", "--save").stdout
    assert "removed local git config lfs-s3-agent.prefix=old" in out, out
    assert f"objects go to s3://{bucket}/new at {s3.endpoint}" in out
    assert "prefix from .lfs-s3-agent.toml" in out and "bucket from git config lfs-s3-agent.bucket" in out
    assert "lfs-s3-agent.prefix=old" not in local_config(a)
    a.run("lfs", "track", "*.bin")
    data = os.urandom(4000)
    (a.path / "x.bin").write_bytes(data)
    commit_all(a, "x")
    a.run("push", "-q", "origin", "HEAD:main")
    assert expected_key("new", sha256(data)) in bucket_objects(s3, bucket)


def test_install_after_a_failed_plain_clone_advises_what_works(
        make_clone: MakeClone, s3: MotoServer, bucket: str, remote: Path, tmp_path: Path) -> None:
    a = make_clone("a", install=False)
    a.agent("install", "--bucket", bucket, "--prefix", "p", "--endpoint-url", s3.endpoint, "--save")
    a.run("lfs", "track", "*.bin")
    data = os.urandom(7000)
    (a.path / "x.bin").write_bytes(data)
    commit_all(a, "x")
    a.run("push", "-q", "origin", "HEAD:main")
    subprocess.run(["git", "lfs", "install", "--skip-repo"], check=True, capture_output=True)
    target = tmp_path / "plain"
    proc = Git(tmp_path).try_("clone", "-q", str(remote), str(target))
    assert proc.returncode != 0  # the host (here: the remote on disk) has no LFS objects
    b = Git(target)
    advice = b.agent("install").stdout.splitlines()[-1]
    assert advice.startswith("next: git reset --hard HEAD"), advice
    b.run("reset", "-q", "--hard", "HEAD")
    assert (target / "x.bin").read_bytes() == data
    assert pointer_oid((target / "x.bin").read_bytes()) is None
