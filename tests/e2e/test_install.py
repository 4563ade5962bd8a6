"""`install`, `uninstall` and `clone` against real git and git-lfs: what they write, from where."""

from __future__ import annotations

import os
import subprocess
import sys
import tomllib
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.e2e.conftest import (
    Git,
    commit_all,
    git_common_dir,
    leftover_tmp_files,
    local_config,
    pointer_oid,
    sha256,
    tree_digests,
    write_files,
)
from tests.s3server import MotoServer

MakeClone = Callable[..., Git]

AGENT_KEYS = ("lfs.customtransfer.lfs-s3-agent.path", "lfs.customtransfer.lfs-s3-agent.args",
              "lfs.customtransfer.lfs-s3-agent.concurrent", "lfs.standalonetransferagent")


def hooks(git: Git) -> dict[str, bytes]:
    hook_dir = git_common_dir(git) / "hooks"
    return {p.name: p.read_bytes() for p in hook_dir.iterdir()} if hook_dir.exists() else {}


def as_dict(lines: list[str]) -> dict[str, str]:
    return dict(line.split("=", 1) for line in lines)


def config_diff(before: list[str], after: list[str]) -> str:
    return (f"uninstall did not restore the pre-install config: left {sorted(set(after) - set(before))}, "
            f"removed {sorted(set(before) - set(after))}")


def seed(make_clone: MakeClone, files: dict[str, bytes], *, name: str = "seed", **flags: str) -> Git:
    """A clone that has committed and pushed ``files`` (tracked as *.bin) through the agent."""
    git = make_clone(name, **flags)
    git.run("lfs", "track", "*.bin")
    write_files(git.path, files)
    commit_all(git, "seed")
    git.run("push", "-q", "origin", "HEAD:main")
    return git


@pytest.mark.parametrize("global_lfs", [False, True], ids=["lfs-not-installed", "lfs-installed-globally"])
def test_install_is_idempotent_and_uninstall_restores_the_config(
        make_clone: MakeClone, s3: MotoServer, bucket: str, global_lfs: bool) -> None:
    if global_lfs:
        subprocess.run(["git", "lfs", "install", "--skip-repo"], check=True, capture_output=True)
    a = make_clone("a", install=False)
    a.run("config", "--local", "lfs.fetchexclude", "docs/*")  # the user's own setting: must survive
    before, hooks_before = local_config(a), hooks(a)
    flags = ["--bucket", bucket, "--prefix", "p", "--endpoint-url", s3.endpoint]

    a.agent("install", *flags)
    first = local_config(a)
    written = as_dict(first)
    assert written["lfs.standalonetransferagent"] == "lfs-s3-agent"
    assert written["lfs.customtransfer.lfs-s3-agent.concurrent"] == "true"
    assert "serve" in written["lfs.customtransfer.lfs-s3-agent.args"]
    assert os.access(written["lfs.customtransfer.lfs-s3-agent.path"], os.X_OK)
    assert written["lfs-s3-agent.bucket"] == bucket
    assert written["lfs.fetchexclude"] == "docs/*"
    assert "pre-push" in hooks(a) or global_lfs

    a.agent("install", *flags)
    assert local_config(a) == first, "a second install changed the config"

    a.agent("uninstall")
    assert hooks(a) == hooks_before, "uninstall left git-lfs hooks that install added (or removed others)"
    assert local_config(a) == before, config_diff(before, local_config(a))
    assert a.agent("uninstall").returncode == 0  # nothing left to remove is not an error


def test_install_from_a_subdirectory_configures_the_repository(make_clone: MakeClone, s3: MotoServer,
                                                                bucket: str) -> None:
    top = make_clone("top", install=False)
    top.agent("install", "--bucket", bucket, "--prefix", "p", "--endpoint-url", s3.endpoint)
    sub = make_clone("sub", install=False)
    cwd = sub.path / "a" / "b"
    cwd.mkdir(parents=True)
    sub.agent("install", "--bucket", bucket, "--prefix", "p", "--endpoint-url", s3.endpoint, cwd=cwd)
    strip = ("remote.origin.url=",)  # the only line that differs between two clones of one remote
    assert [x for x in local_config(sub) if not x.startswith(strip)] == [
        x for x in local_config(top) if not x.startswith(strip)]
    assert list(cwd.iterdir()) == [], "install wrote files into the cwd"
    # --save from a subdirectory writes the settings file at the repository root
    sub.agent("install", "--bucket", bucket, "--prefix", "p", "--save", cwd=cwd)
    assert (sub.path / ".lfs-s3-agent.toml").is_file()
    assert list(cwd.iterdir()) == []


def test_install_inside_a_worktree(make_clone: MakeClone, s3: MotoServer, bucket: str, tmp_path: Path) -> None:
    files = {"w.bin": os.urandom(12_000)}
    seed(make_clone, files)
    a = make_clone("a", install=False)
    before = local_config(a)
    wt = tmp_path / "a-worktree"
    a.run("worktree", "add", "-q", "--detach", str(wt), "origin/main")
    flags = ["--bucket", bucket, "--prefix", "repo", "--endpoint-url", s3.endpoint]
    a.agent("install", *flags, cwd=wt)
    first = local_config(a)
    assert as_dict(first)["lfs.standalonetransferagent"] == "lfs-s3-agent"
    assert local_config(a, cwd=wt) == first  # one shared config, seen from both
    a.agent("install", *flags, cwd=wt)
    assert local_config(a) == first
    assert not (wt / ".git").is_dir()
    assert not (git_common_dir(a) / "worktrees" / wt.name / "config.worktree").exists()
    # Nothing but install and uninstall in between: the config must be as it was.
    a.agent("uninstall", cwd=wt)
    assert local_config(a) == before, config_diff(before, local_config(a))

    a.agent("install", *flags, cwd=wt)
    a.run("lfs", "pull", cwd=wt)
    assert (wt / "w.bin").read_bytes() == files["w.bin"]
    assert leftover_tmp_files(git_common_dir(a) / "lfs") == []


def test_install_outside_a_repository_refuses(tmp_path: Path) -> None:
    empty = tmp_path / "not-a-repo"
    empty.mkdir()
    env = {**os.environ, "GIT_CEILING_DIRECTORIES": str(tmp_path)}
    for args in (["install", "--bucket", "some-bucket"], ["uninstall"]):
        proc = subprocess.run([sys.executable, "-m", "lfs_s3_agent", *args], cwd=empty, capture_output=True,
                              text=True, env=env, timeout=60)
        assert proc.returncode != 0, f"{args[0]} succeeded outside a repository"
        assert "not inside a git repository" in proc.stderr, proc.stderr
        assert "Traceback" not in proc.stderr
        assert list(empty.iterdir()) == []


def test_install_save_lets_a_clone_install_without_flags(make_clone: MakeClone, s3: MotoServer,
                                                         bucket: str) -> None:
    a = make_clone("a", install=False)
    a.agent("install", "--bucket", bucket, "--prefix", "saved/repo", "--endpoint-url", s3.endpoint, "--save")
    saved = tomllib.loads((a.path / ".lfs-s3-agent.toml").read_text(encoding="utf-8"))
    assert saved == {"bucket": bucket, "prefix": "saved/repo", "endpoint_url": s3.endpoint}
    assert not any(line.startswith("lfs-s3-agent.bucket=") for line in local_config(a))
    a.run("lfs", "track", "*.bin")
    files = {"art/a.bin": os.urandom(22_000), "b.bin": os.urandom(11_000)}
    write_files(a.path, files)
    commit_all(a, "saved settings and assets")
    a.run("push", "-q", "origin", "HEAD:main")
    keys = {o["Key"] for o in s3.client().list_objects_v2(Bucket=bucket).get("Contents", [])}
    assert keys and all(k.startswith("saved/repo/") for k in keys)

    b = make_clone("b", install=False)
    b.agent("install")
    b.run("lfs", "pull")
    assert tree_digests(b.path) == tree_digests(a.path)
    assert "lfs-s3-agent.bucket" not in as_dict(local_config(b))


def test_clone_command_clones_installs_and_pulls(make_clone: MakeClone, s3: MotoServer, bucket: str,
                                                 remote: Path, tmp_path: Path) -> None:
    # The committed file names the bucket and prefix; each machine gives its endpoint.
    a = make_clone("a", install=False)
    a.agent("install", "--bucket", bucket, "--prefix", "cloned", "--save")
    a.agent("install", "--endpoint-url", s3.endpoint)
    a.run("lfs", "track", "*.bin")
    files = {"x.bin": os.urandom(33_000), "dir/y z.bin": os.urandom(44_000)}
    write_files(a.path, files)
    commit_all(a, "x")
    a.run("push", "-q", "origin", "HEAD:main")

    target = tmp_path / "via-clone"
    runner = Git(tmp_path)
    runner.agent("clone", str(remote), str(target), "--endpoint-url", s3.endpoint, cwd=tmp_path)
    cloned = Git(target)
    assert tree_digests(target) == tree_digests(a.path)
    assert pointer_oid((target / "x.bin").read_bytes()) is None
    assert (target / "x.bin").read_bytes() == files["x.bin"]
    config = as_dict(local_config(cloned))
    assert config["lfs.standalonetransferagent"] == "lfs-s3-agent"
    assert config["lfs-s3-agent.endpoint-url"] == s3.endpoint
    assert cloned.run("status", "--porcelain", "--untracked-files=all") == ""
    assert sha256(files["x.bin"]) in {p.name for p in (target / ".git" / "lfs" / "objects").rglob("*")}
