"""The pre-push hook: let pushes of linked files that were never downloaded through, safely.

git-lfs refuses to push a commit whose LFS objects are not in the local store, before
any transfer agent is asked. A pointer made by ``link --no-checkout`` has no local bytes
on purpose: its bytes stay in the original. So, when every missing object of this push is
a linked object, we record their links in the LFS store first and then run git-lfs's own
pre-push with ``lfs.allowincompletepush`` for this one push. The same holds for objects that
``import --no-checkout`` copied into the store without keeping them here (``imported_dir``
marks them): they are let through once the store is seen to hold them. Any other missing object
makes us run the stock pre-push unchanged, which stops the push as it always did: the
setting is never turned on for the repository.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

from lfs_s3_agent import gitrepo, reachable
from lfs_s3_agent.errors import ConfigError
from lfs_s3_agent.launcher import HOOK_MARK, hook_script
from lfs_s3_agent.linked import LocalLinks, local_links_dir
from lfs_s3_agent.links import LinkRecord
from lfs_s3_agent.pointer import Pointer

ZERO = "0" * 40
__all__ = ["HOOK_MARK", "hook_script", "imported_dir", "install_hook", "mark_imported", "pre_push", "remove_hook"]


def imported_dir(common_dir: Path) -> Path:
    """Where ``import --no-checkout`` marks the objects it put in the store without keeping them here."""
    return common_dir / "lfs-s3-agent" / "imported"


def mark_imported(common_dir: Path, oids: set[str]) -> None:
    """Mark objects the store holds but this clone does not (an empty file per oid): the hook asks Python then."""
    directory = imported_dir(common_dir)
    directory.mkdir(parents=True, exist_ok=True)
    for oid in oids:
        (directory / oid).touch()


def pushed_revisions(stdin: bytes) -> list[str]:
    revs = []
    for line in stdin.decode("utf-8", "replace").splitlines():
        fields = line.split()
        if len(fields) == 4 and fields[1] != ZERO:
            revs.append(fields[1])
    return revs


def referenced_pointers(revs: list[str], remote: str, cwd: str | os.PathLike[str] | None = None) -> set[Pointer]:
    """LFS pointers in the objects these revisions add over what the remote already has."""
    if not revs:
        return set()
    return set(reachable.scan([*revs, "--not", f"--remotes={remote}"], cwd=cwd))


def pre_push(remote: str, url: str, stdin: bytes, cwd: str | os.PathLike[str] | None = None) -> int:
    from lfs_s3_agent import wiring

    try:
        wired: wiring.Wiring | None = wiring.build(cwd=cwd, need_repo=True)
    except ConfigError:
        wired = None  # the agent reports it at init, with the fix
    if wired is not None:
        # git-lfs hides its agents' stderr; this hook's is shown by `git push`.
        for warning in wired.resolved.warnings:
            print(f"lfs-s3-agent: warning: {warning}", file=sys.stderr)
    repo = gitrepo.repo_paths(cwd)
    links = LocalLinks(local_links_dir(repo.common_dir))
    imported = imported_dir(repo.common_dir)
    extra: list[str] = []
    has_imported = imported.is_dir() and any(imported.iterdir())
    if (links.any() or has_imported) and wired is not None:  # only repositories that link or import pay for it
        dirs = wired.dirs
        assert dirs is not None
        pushed = referenced_pointers(pushed_revisions(stdin), remote, cwd)
        store_records = wired.linked_store().records
        linked = {p.oid: record for p in pushed if (record := links.get(p.oid)) is not None}
        for oid, record in linked.items():
            there = store_records.get(oid)
            if there is not None and there != record:
                print(f"lfs-s3-agent: this push replaces the store's link record for {oid} ({there.describe()}) "
                      f"with this clone's ({record.describe()})", file=sys.stderr)
        missing = [p for p in pushed if not dirs.has(p.oid)]
        records: list[LinkRecord] = []
        stored: list[Pointer] = []
        for pointer in missing:
            record = linked.get(pointer.oid)
            if record is not None:
                records.append(record)
            elif (imported / pointer.oid).exists() and wired.s3_store().stat(pointer.oid) == pointer.size:
                stored.append(pointer)
            else:
                records, stored = [], []
                break
        if records or stored:
            for record in records:
                store_records.put(record)
            if records:
                print(f"lfs-s3-agent: {len(records)} linked object(s) in this push were never downloaded here; "
                      "their links are recorded in the LFS store, so git-lfs's notice about missing objects below "
                      "is expected.", file=sys.stderr)
            if stored:
                print(f"lfs-s3-agent: {len(stored)} imported object(s) in this push are in the LFS store but not "
                      "here (import --no-checkout), so git-lfs's notice about missing objects below is expected.",
                      file=sys.stderr)
            extra = ["-c", "lfs.allowincompletepush=true"]
    proc = subprocess.run(["git", *extra, "lfs", "pre-push", remote, url], input=stdin, cwd=cwd, check=False)
    return proc.returncode


def install_hook(cwd: str | os.PathLike[str] | None = None) -> tuple[Path, str]:
    """Write our pre-push hook over git-lfs's stock one; leave a custom hook alone. (path, what happened)"""
    hooks = Path(gitrepo.git("rev-parse", "--path-format=absolute", "--git-path", "hooks", cwd=cwd).stdout.strip())
    path = hooks / "pre-push"
    current = path.read_text(encoding="utf-8", errors="replace") if path.exists() else ""
    if current == hook_script():
        return path, "unchanged"
    if current and HOOK_MARK not in current and not _is_stock_lfs_hook(current):
        return path, "custom"
    hooks.mkdir(parents=True, exist_ok=True)
    if current and HOOK_MARK not in current:
        shutil.copy2(path, _backup(path))  # git-lfs's stock hook (mode kept), restored by uninstall
    path.write_text(hook_script(), encoding="utf-8")
    path.chmod(0o755)
    return path, "written"


def _backup(path: Path) -> Path:
    return path.with_name(path.name + ".before-lfs-s3-agent")


def _is_stock_lfs_hook(text: str) -> bool:
    lines = [ln.strip() for ln in text.splitlines() if ln.strip() and not ln.strip().startswith("#")]
    return any("git lfs pre-push" in ln for ln in lines) and len(lines) <= 3


def remove_hook(cwd: str | os.PathLike[str] | None = None) -> bool:
    """Put back the hook ours replaced (or none); True when something changed."""
    hooks = Path(gitrepo.git("rev-parse", "--path-format=absolute", "--git-path", "hooks", cwd=cwd).stdout.strip())
    path = hooks / "pre-push"
    if not (path.exists() and HOOK_MARK in path.read_text(encoding="utf-8", errors="replace")):
        return False
    backup = _backup(path)
    if backup.exists():
        os.replace(backup, path)
    else:
        path.unlink()
    return True
