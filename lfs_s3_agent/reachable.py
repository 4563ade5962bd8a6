"""Which LFS pointers a set of revisions reaches, where they are, and which commits added them.

``scan`` walks ``git rev-list --objects <revs>`` and reads every blob small enough to be
a pointer with one ``git cat-file --batch``; nothing is checked out and no LFS content
is read. ``introducing_commits`` finds, in one ``git log --raw`` pass, the commits that
added given blobs (for reports about missing objects). ``all_refs`` is what "every ref"
means for ``gc``: branches, tags, remote-tracking refs, the stash, other worktrees' HEADs
and, when they are readable, the reflogs. Standard library only.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from lfs_s3_agent import gitrepo
from lfs_s3_agent.errors import GitError
from lfs_s3_agent.pointer import MAX_POINTER_SIZE, Pointer

Cwd = str | os.PathLike[str] | None

#: rev-list arguments for "every ref of the repository"; ``--reflog`` is dropped when git cannot read it.
ALL_REFS = ("--all", "--reflog")


@dataclass
class Reached:
    """One LFS pointer reachable from the revisions: the first path git listed it under, and its blobs."""

    pointer: Pointer
    path: str
    blobs: set[str] = field(default_factory=set)

    @property
    def oid(self) -> str:
        return self.pointer.oid


def _run(args: Sequence[str], data: bytes, cwd: Cwd) -> bytes:
    try:
        proc = subprocess.run(["git", *args], input=data, capture_output=True, cwd=cwd, check=False)
    except FileNotFoundError:
        raise GitError("git is not installed or not on PATH") from None
    if proc.returncode != 0:
        detail = proc.stderr.decode("utf-8", "replace").strip() or f"exit status {proc.returncode}"
        raise GitError(f"`git {' '.join(args)}` failed: {detail}")
    return proc.stdout


def read_pointers(blobs: Iterable[str], cwd: Cwd = None) -> dict[str, Pointer]:
    """The blobs (by sha) that are valid LFS pointers, read in two ``cat-file`` batches."""
    shas = list(blobs)
    if not shas:
        return {}
    checked = _run(["cat-file", "--batch-check=%(objectname) %(objecttype) %(objectsize)"],
                   ("\n".join(shas) + "\n").encode(), cwd).decode("utf-8", "replace")
    small = [f[0] for f in (line.split() for line in checked.splitlines())
             if len(f) == 3 and f[1] == "blob" and int(f[2]) <= MAX_POINTER_SIZE]
    if not small:
        return {}
    out = _run(["cat-file", "--batch"], ("\n".join(small) + "\n").encode(), cwd)
    found: dict[str, Pointer] = {}
    pos = 0
    while pos < len(out):
        header_end = out.index(b"\n", pos)
        sha, _, size = out[pos:header_end].split(b" ")
        body = out[header_end + 1: header_end + 1 + int(size)]
        pos = header_end + 1 + int(size) + 1
        pointer = Pointer.decode(body)
        if pointer is not None:
            found[sha.decode()] = pointer
    return found


def scan(rev_args: Sequence[str], cwd: Cwd = None) -> dict[Pointer, Reached]:
    """Every LFS pointer in the objects ``git rev-list --objects <rev_args>`` lists."""
    listed = _run(["rev-list", "--objects", *rev_args], b"", cwd).decode("utf-8", "surrogateescape")
    paths: dict[str, str] = {}
    for line in listed.splitlines():
        sha, sep, path = line.partition(" ")
        if sep and path:  # commits have no name and the root tree an empty one: neither is a blob
            paths.setdefault(sha, path)
    found: dict[Pointer, Reached] = {}
    for sha, pointer in read_pointers(paths, cwd).items():
        entry = found.setdefault(pointer, Reached(pointer, paths[sha]))
        entry.blobs.add(sha)
    return found


def all_refs(cwd: Cwd = None) -> dict[Pointer, Reached]:
    """Pointers reachable from every ref (and the reflogs when git can walk them)."""
    try:
        return scan(ALL_REFS, cwd)
    except GitError:
        # A reflog entry can name an object that was pruned long ago: refs alone are what counts.
        return scan(("--all",), cwd)


def has_commits(rev: str = "HEAD", cwd: Cwd = None) -> bool:
    return gitrepo.git("rev-parse", "--verify", "--quiet", f"{rev}^{{commit}}", cwd=cwd, check=False).returncode == 0


def introducing_commits(blobs: set[str], rev_args: Sequence[str], cwd: Cwd = None,
                        limit: int = 10) -> dict[str, list[tuple[str, str]]]:
    """For each blob, up to ``limit`` (commit, path) pairs whose change added it, newest first.

    One ``git log --raw`` pass over the same revisions finds them all (like ``--find-object``
    for many objects at once). Merge commits are not diffed, so a blob that only a merge
    resolution introduced has no commit listed.
    """
    if not blobs:
        return {}
    text = _run(["-c", "core.quotepath=off", "log", "--format=%x00%H", "--raw", "--no-abbrev", "--no-renames",
                 *rev_args, "--"], b"", cwd).decode("utf-8", "surrogateescape")
    found: dict[str, list[tuple[str, str]]] = {}
    commit = ""
    for line in text.splitlines():
        if line.startswith("\0"):
            commit = line[1:]
        elif line.startswith(":"):
            meta, _, path = line.partition("\t")
            fields = meta.split()
            if len(fields) >= 2 and fields[-2] in blobs:
                hits = found.setdefault(fields[-2], [])
                if len(hits) < limit and all(c != commit for c, _ in hits):
                    hits.append((commit, path))
    return found


def is_shallow(cwd: Cwd = None) -> bool:
    return gitrepo.git("rev-parse", "--is-shallow-repository", cwd=cwd).stdout.strip() == "true"


def is_partial(cwd: Cwd = None) -> bool:
    """A partial clone (``--filter``) may lack blobs, so its pointers cannot all be read locally."""
    return bool(gitrepo.read_config(r"^(extensions\.partialclone|remote\..*\.promisor)$", cwd=cwd))


@dataclass
class RemoteGap:
    remote: str
    missing: list[str] = field(default_factory=list)  #: refs whose commit this clone does not have
    error: str = ""  #: why the remote could not be asked


def unfetched_remote_refs(cwd: Cwd = None) -> list[RemoteGap]:
    """Branches and tags of each remote that point at commits this clone has not fetched.

    A clone knows only the refs it has fetched: an object referenced only by a branch pushed
    from elsewhere looks unreferenced here. ``gc`` asks every remote (``git ls-remote``) first.
    """
    gaps = []
    env = {**os.environ, "GIT_TERMINAL_PROMPT": "0"}
    for remote in gitrepo.git("remote", cwd=cwd).stdout.split():
        proc = gitrepo.git("ls-remote", "--heads", "--tags", remote, cwd=cwd, check=False, env=env)
        if proc.returncode != 0:
            gaps.append(RemoteGap(remote, error=proc.stderr.strip() or f"exit status {proc.returncode}"))
            continue
        refs: dict[str, str] = {}
        for line in proc.stdout.splitlines():
            sha, _, ref = line.partition("\t")
            if ref and not ref.endswith("^{}"):
                refs[ref] = sha
        if not refs:
            continue
        checked = _run(["cat-file", "--batch-check=%(objectname) %(objecttype)"],
                       ("\n".join(sorted(set(refs.values()))) + "\n").encode(), cwd).decode()
        absent = {line.split()[0] for line in checked.splitlines() if line.endswith(" missing")}
        missing = sorted(ref for ref, sha in refs.items() if sha in absent)
        if missing:
            gaps.append(RemoteGap(remote, missing=missing))
    return gaps
