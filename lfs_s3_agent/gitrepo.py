"""Git subprocess helpers: where the repository is, where git-lfs keeps its files, config I/O.

Everything is derived from git itself (``rev-parse --path-format=absolute``), never
from a relative ``.git``: the agent inherits the user's cwd, which may be a
subdirectory, and ``.git`` may be a file (worktrees, submodules). Standard library only.
"""

from __future__ import annotations

import os
import subprocess
from dataclasses import dataclass
from pathlib import Path

from lfs_s3_agent.errors import GitError

NOT_A_REPO = (
    "not inside a git repository: run this from a clone (cd into it), "
    "or create one with `git init`"
)


def git(*args: str, cwd: str | os.PathLike[str] | None = None, check: bool = True,
        env: dict[str, str] | None = None, errors: str = "strict") -> subprocess.CompletedProcess[str]:
    """Run git with captured text output; raise GitError with git's message on failure.

    ``errors``: how bytes that are not UTF-8 decode (``surrogateescape`` for file names, which ``os`` takes back).
    """
    try:
        proc = subprocess.run(
            ["git", *args], cwd=cwd, capture_output=True, text=True, env=env, check=False, errors=errors
        )
    except FileNotFoundError:
        raise GitError("git is not installed or not on PATH: install git (e.g. `apt-get install git`)") from None
    if check and proc.returncode != 0:
        detail = proc.stderr.strip() or f"exit status {proc.returncode}"
        raise GitError(f"`git {' '.join(args)}` failed: {detail}")
    return proc


@dataclass(frozen=True)
class RepoPaths:
    git_dir: Path  #: this worktree's git dir (``.git`` or ``.git/worktrees/<name>``)
    common_dir: Path  #: the repository's shared git dir, where ``lfs/`` lives
    toplevel: Path | None  #: the worktree root; None in a bare repository


def repo_paths(cwd: str | os.PathLike[str] | None = None) -> RepoPaths:
    """Locate the repository containing ``cwd``; GitError if there is none."""
    # --show-toplevel comes last: in a bare repository it fails after printing the others.
    proc = git("rev-parse", "--path-format=absolute", "--absolute-git-dir", "--git-common-dir",
               "--show-toplevel", cwd=cwd, check=False)
    lines = proc.stdout.splitlines()
    if proc.returncode != 0 and len(lines) < 2:
        if "not a git repository" in proc.stderr:
            raise GitError(NOT_A_REPO)
        raise GitError(f"`git rev-parse` failed: {proc.stderr.strip()}")
    toplevel = Path(lines[2]) if proc.returncode == 0 and len(lines) > 2 else None
    return RepoPaths(git_dir=Path(lines[0]), common_dir=Path(lines[1]), toplevel=toplevel)


def committed_file(rev: str, path: str, cwd: str | os.PathLike[str] | None = None) -> bytes | None:
    """The bytes of ``path`` as committed at ``rev`` (``git show REV:PATH``); None when it is not there."""
    try:
        proc = subprocess.run(["git", "show", f"{rev}:{path}"], cwd=cwd, capture_output=True, check=False)
    except FileNotFoundError:
        raise GitError("git is not installed or not on PATH: install git (e.g. `apt-get install git`)") from None
    return proc.stdout if proc.returncode == 0 else None


def config_files(cwd: str | os.PathLike[str], git_dir: str | os.PathLike[str]) -> list[str]:
    """Every file git config reads in ``cwd`` (a work tree's top or a git dir: git names files relative
    to it), included ones too (absolute paths, in git's order), every file an ``include.path`` or
    ``includeIf.<condition>.path`` names (one that is missing or empty today may say something tomorrow),
    and ``<git dir>/HEAD`` when an ``includeIf "onbranch:..."`` makes what is read depend on the branch.

    What the launcher's stamp must be newer than for the settings it validated to still hold. A file name
    that is not UTF-8 comes back as ``os.fsdecode`` gives it (surrogate escapes), the stamp keeps its bytes.
    """
    proc = git("config", "--includes", "--list", "--show-origin", "-z", cwd=cwd, check=False,
               errors="surrogateescape")
    if proc.returncode not in (0, 1):
        raise GitError(f"cannot read git config: {proc.stderr.strip()}")
    entries = proc.stdout.split("\0")
    files: list[str] = []
    named: list[str] = []
    # Paths as git opens them, not normalised: ``link/../x`` is where the kernel takes git, through the symlink.
    base = os.path.abspath(cwd)
    for origin, entry in zip(entries[0::2], entries[1::2], strict=False):
        path = os.path.join(base, origin[5:]) if origin.startswith("file:") else None
        if path is not None and path not in files:
            files.append(path)
        key, _, value = entry.partition("\n")
        key = key.lower()
        if key.startswith("includeif.onbranch:"):
            head = os.path.join(os.fspath(git_dir), "HEAD")
            if head not in files:
                files.append(head)
        if (key == "include.path" or (key.startswith("includeif.") and key.endswith(".path"))) and value:
            # git's rules (git-config(1), "Includes"): ~/ and ~user/ are home directories, a relative path is
            # relative to the file that holds the directive (none: an include given with -c cannot be
            # relative). Left out: a name with a newline (a stamp cannot hold it: it would never be written)
            # and ``%(prefix)/`` (where git was installed: a file git itself may not read here).
            if value.startswith("~"):
                target = os.path.expanduser(value)
            elif os.path.isabs(value):
                target = value
            elif path is not None and not value.startswith("%(prefix)/"):
                target = os.path.join(os.path.dirname(path), value)
            else:
                continue
            if "\n" not in target and not target.startswith("~"):  # ~nobody/: git cannot read it either
                named.append(target)
    listed = set(files)
    return files + [f for f in dict.fromkeys(named) if f not in listed]


def head_files(cwd: str | os.PathLike[str], git_dir: str | os.PathLike[str], common_dir: str | os.PathLike[str],
               *, committed: bool) -> list[str]:
    """What settings read from ``HEAD`` (``settings.read_committed_settings``) depend on: ``HEAD`` (a checkout
    moves it), and when the settings file is ``committed`` at ``HEAD``, the files that hold the commit it
    names (its branch's ref, ``packed-refs``), which every commit changes."""
    files = [os.path.join(os.fspath(git_dir), "HEAD")]
    if committed:
        files.append(os.path.join(os.fspath(common_dir), "packed-refs"))
        proc = git("rev-parse", "--symbolic-full-name", "HEAD", cwd=cwd, check=False)
        ref = proc.stdout.strip()
        if proc.returncode == 0 and ref.startswith("refs/"):
            files.append(os.path.join(os.fspath(common_dir), *ref.split("/")))
    return files


def read_config(pattern: str, cwd: str | os.PathLike[str] | None = None,
                scope: str | None = None) -> list[tuple[str, str]]:
    """All (key, value) pairs whose key matches the regex, in git's precedence order (last wins)."""
    args = ["config", "-z"]
    if scope:
        args.append(f"--{scope}")
    proc = git(*args, "--get-regexp", pattern, cwd=cwd, check=False)
    if proc.returncode not in (0, 1):  # 1 means no key matched
        raise GitError(f"cannot read git config: {proc.stderr.strip()}")
    pairs = []
    for entry in proc.stdout.split("\0"):
        if entry:
            key, _, value = entry.partition("\n")
            pairs.append((key, value))
    return pairs


def set_config(key: str, value: str, cwd: str | os.PathLike[str] | None = None, scope: str = "local") -> None:
    git("config", f"--{scope}", key, value, cwd=cwd)


def unset_config(key: str, cwd: str | os.PathLike[str] | None = None, scope: str = "local") -> bool:
    """Remove a key (local unless ``scope``); True when it was there."""
    proc = git("config", f"--{scope}", "--unset-all", key, cwd=cwd, check=False)
    if proc.returncode not in (0, 5):  # 5: the key was not set
        raise GitError(f"cannot unset {key}: {proc.stderr.strip()}")
    return proc.returncode == 0
