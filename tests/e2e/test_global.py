"""Configured once: `install --global --url` in a throwaway HOME, then plain git and git-lfs commands.

Each test runs with its own HOME (tests/conftest.py), so ~/.gitconfig here is the test's own.
The remotes are bare repositories on disk, whose LFS URL is ``file:///abs/path/remote.git``.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Callable
from pathlib import Path

from tests.e2e.conftest import Git, bucket_objects, commit_all, expected_key, sha256, write_files
from tests.s3server import MotoServer

MakeClone = Callable[..., Git]


def global_config() -> str:
    return (Path(os.environ["HOME"]) / ".gitconfig").read_text(encoding="utf-8")


def seed_with_settings_file(make_clone: MakeClone, s3: MotoServer, bucket: str, files: dict[str, bytes]) -> Git:
    """A repository that commits .lfs-s3-agent.toml and pushes ``files`` through the agent."""
    a = make_clone("seed", install=False)
    a.agent("install", "--bucket", bucket, "--prefix", "team/repo", "--endpoint-url", s3.endpoint, "--save")
    a.run("lfs", "track", "*.bin")
    write_files(a.path, files)
    commit_all(a, "seed")
    a.run("push", "-q", "origin", "HEAD:main")
    return a


def test_global_install_makes_plain_git_work_with_no_step_in_the_clone(
        make_clone: MakeClone, s3: MotoServer, bucket: str, remote: Path, tmp_path: Path) -> None:
    files = {"a.bin": os.urandom(30_000), "dir/b.bin": os.urandom(20_000)}
    seed_with_settings_file(make_clone, s3, bucket, files)
    before = global_config()
    home = Git(tmp_path)
    out = home.agent("install", "--global", "--url", str(remote.parent)).stdout  # a prefix: the directory
    assert f"file://{remote.parent}" in out
    assert f"[lfs \"file://{remote.parent}\"]" in global_config()

    # a plain clone checks the LFS files out through the agent
    plain = tmp_path / "plain"
    home.run("clone", "-q", str(remote), str(plain))
    assert (plain / "a.bin").read_bytes() == files["a.bin"]
    assert (plain / "dir/b.bin").read_bytes() == files["dir/b.bin"]
    clone = Git(plain)
    local = clone.run("config", "--local", "--list")
    assert "standalonetransferagent" not in local and "customtransfer" not in local  # nothing in the clone

    # plain git push uploads through the agent
    new = os.urandom(25_000)
    (plain / "c.bin").write_bytes(new)
    commit_all(clone, "c")
    clone.run("push", "-q", "origin", "HEAD:main")
    assert expected_key("team/repo", sha256(new)) in bucket_objects(s3, bucket)

    # git pull and git lfs fetch/pull in another clone made with --no-checkout: the settings file is not in
    # the working tree yet, so the agent reads it from HEAD
    other = tmp_path / "other"
    home.run("clone", "-q", "--no-checkout", str(remote), str(other))
    second = Git(other)
    assert not (other / ".lfs-s3-agent.toml").exists()
    second.run("lfs", "fetch", "origin", "main")
    second.run("checkout", "-q", "main")
    assert (other / "c.bin").read_bytes() == new
    more = os.urandom(5_000)
    (plain / "d.bin").write_bytes(more)
    commit_all(clone, "d")
    clone.run("lfs", "push", "origin", "main")
    clone.run("push", "-q", "origin", "HEAD:main")
    second.run("pull", "-q", "origin", "main")
    assert (other / "d.bin").read_bytes() == more
    (other / "d.bin").unlink()
    second.run("lfs", "pull")
    assert (other / "d.bin").read_bytes() == more

    home.agent("uninstall", "--global")
    assert global_config() == before, "uninstall --global did not remove exactly what install --global wrote"


def test_a_repository_without_the_settings_file_fails_with_the_fix(
        make_clone: MakeClone, s3: MotoServer, bucket: str, remote: Path, tmp_path: Path) -> None:
    seed = make_clone("seed")  # installed per clone, no committed settings file
    seed.run("lfs", "track", "*.bin")
    (seed.path / "x.bin").write_bytes(os.urandom(1000))
    commit_all(seed, "x")
    seed.run("push", "-q", "origin", "HEAD:main")
    home = Git(tmp_path)
    home.agent("install", "--global", "--url", str(remote))
    proc = home.try_("clone", "-q", str(remote), str(tmp_path / "c"))
    assert proc.returncode != 0
    assert ".lfs-s3-agent.toml" in proc.stderr and "install --bucket NAME" in proc.stderr, proc.stderr


def test_global_install_is_scoped_to_its_urls(make_clone: MakeClone, tmp_path: Path, remote: Path) -> None:
    home = Git(tmp_path)
    home.agent("install", "--global", "--url", "git@example.com:my-org", "--url", str(tmp_path / "elsewhere"))
    config = global_config()
    assert '[lfs "https://example.com/my-org"]' in config
    # the remote on disk is not under either URL: git-lfs uses its own file transfer there
    a = make_clone("a", install=False)
    a.run("lfs", "track", "*.bin")
    data = os.urandom(4000)
    (a.path / "x.bin").write_bytes(data)
    commit_all(a, "x")
    a.run("push", "-q", "origin", "HEAD:main")
    assert (remote / "lfs" / "objects" / sha256(data)[:2] / sha256(data)[2:4] / sha256(data)).is_file()
    home.agent("uninstall", "--global", "--url", "git@example.com:my-org")
    listed = home.run("config", "--global", "--list")
    assert "my-org" not in listed and "elsewhere.standalonetransferagent" in listed
    assert "lfs.customtransfer.lfs-s3-agent.path" in listed  # still used for the other URL


def test_global_install_without_a_url_refuses_and_names_the_fix(tmp_path: Path) -> None:
    proc = Git(tmp_path).agent("install", "--global", check=False)
    assert proc.returncode != 0 and "--url" in proc.stderr, proc.stderr
    assert subprocess.run(["git", "config", "--global", "--get-regexp", "standalonetransferagent"],
                          capture_output=True).returncode == 1
