"""``prune``: git-lfs's prune, refusing while it would delete the only copy of an object.

``git lfs prune --verify-remote`` cannot verify anything in standalone mode: git-lfs starts
the agents but never asks them, and counts every object as "verified with remote".

So: every local object is checked against the store (a HEAD each for a few, one listing
of the prefix for many; a link record counts, as the original keeps the bytes). The ones
the store lacks are the only copies. git-lfs's own rules (recent refs, unpushed commits,
worktrees, stash) then decide whether it would delete any of them: ``git lfs prune
--dry-run`` runs with ``lfs.storage`` pointed at a scratch directory holding hard links
to just those objects, and its summary, always printed, says how many it would delete
(``N files would be pruned``). (Its per-object ``--verbose`` list goes through a throttled
progress meter and loses lines without a terminal: it cannot be trusted for this.) When
any would go, nothing is deleted and the missing objects are listed with the command that
pushes them; otherwise ``git lfs prune`` runs with the user's options.
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lfs_s3_agent import gitrepo
from lfs_s3_agent.commands.common import Context, Cwd, open_store, plural
from lfs_s3_agent.errors import GitError

#: git-lfs's summary lines, printed even without a terminal: ``prune: 3 local objects, 4 retained, done.``
#: (retained counts the whole retain set, not only local objects) and, unless it is 0,
#: ``prune: 1 file would be pruned (100 B), done.``
SUMMARY = re.compile(r"prune: (\d+) local objects?, \d+ retained")
WOULD_PRUNE = re.compile(r"prune: (\d+) files? would be pruned")
OID = re.compile(r"[0-9a-f]{64}")
#: at most this many objects are checked with one HEAD each; more take one listing of the prefix
HEAD_LIMIT = 16
#: options that cannot help here: the store is checked by this command itself
DROPPED = ("--verify-remote", "-c")


@dataclass
class PruneReport:
    where: str
    checked: int = 0
    checked_by: str = ""
    missing: list[str] = field(default_factory=list)  #: local objects the store lacks
    would_lose: int = 0  #: how many of those git-lfs would delete
    dry_run: bool = False
    remote: str = "origin"
    dropped: list[str] = field(default_factory=list)
    git_lfs_output: list[str] = field(default_factory=list)

    @property
    def exit_status(self) -> int:
        return 1 if self.would_lose else 0

    def to_json(self) -> dict[str, Any]:
        return {"store": self.where, "checked": self.checked, "checked_by": self.checked_by,
                "missing": self.missing, "would_lose": self.would_lose, "pruned": not self.would_lose
                and not self.dry_run, "dry_run": self.dry_run, "git_lfs": self.git_lfs_output}

    def render(self) -> list[str]:
        lines = [f"checked {plural(self.checked, 'local object')} against {self.where}"
                 + (f" ({self.checked_by})" if self.checked_by else "")]
        if self.would_lose:
            lines.append(f"deleted nothing: git lfs prune would delete {self.would_lose} of these "
                         f"{plural(len(self.missing), 'object')} that the store lacks (their only copy):")
            lines.extend(f"  {oid}" for oid in self.missing)
            lines.append(f"push them first: git lfs push --object-id {self.remote} {' '.join(self.missing)}")
            return lines
        if self.missing:
            lines.append(f"{plural(len(self.missing), 'object')} not in the store, kept by git-lfs's own rules "
                         "(recent or unpushed)")
        lines.extend(self.git_lfs_output)
        return lines

    @property
    def notes(self) -> list[str]:
        if not self.dropped:
            return []
        return [f"ignored {' '.join(self.dropped)}: it cannot verify anything with a standalone agent; this "
                "command checks the store itself"]


def prune(git_lfs_args: Sequence[str] = (), *, dry_run: bool = False, flags: Mapping[str, Any] | None = None,
          remote: str | None = None, cwd: Cwd = None) -> PruneReport:
    ctx = open_store(flags, cwd, need_repo=True)
    dirs = ctx.wired.dirs
    assert dirs is not None  # need_repo
    passed = [a for a in git_lfs_args if a not in DROPPED and a not in ("--dry-run", "-d")]
    dry_run = dry_run or any(a in ("--dry-run", "-d") for a in git_lfs_args)
    report = PruneReport(where=ctx.where, dry_run=dry_run, remote=remote or _default_remote(cwd),
                         dropped=[a for a in git_lfs_args if a in DROPPED])
    local = {p.name: p for p in (dirs.root / "objects").glob("??/??/*") if OID.fullmatch(p.name) and p.is_file()}
    report.checked = len(local)
    report.missing = sorted(_not_in_store(ctx, {oid: p.stat().st_size for oid, p in local.items()}, report))
    if report.missing:
        report.would_lose = _would_prune(report.missing, local, dirs.root, passed, cwd)
        if report.would_lose:
            return report
    proc = gitrepo.git("lfs", "prune", *(["--dry-run"] if dry_run else []), *passed, cwd=cwd, check=False)
    if proc.returncode != 0:
        raise GitError(f"`git lfs prune {' '.join(passed)}` failed: {proc.stderr.strip() or proc.stdout.strip()}")
    report.git_lfs_output = _last_lines(proc.stdout + "\n" + proc.stderr)
    return report


def _not_in_store(ctx: Context, sizes: dict[str, int], report: PruneReport) -> list[str]:
    """The oids the store lacks, or holds with another size."""
    if not sizes:
        return []
    if len(sizes) <= HEAD_LIMIT:
        report.checked_by = plural(len(sizes), "HEAD request")
        records = ctx.wired.linked_store().records
        return [oid for oid, size in sizes.items() if ctx.store.stat(oid) != size and not records.exists(oid)]
    report.checked_by = "one listing of the prefix"
    listing = ctx.list()
    stored = {e.oid: e.stored_bytes for e in listing.entries if e.kind == "stored"}
    linked = {e.oid for e in listing.entries if e.kind == "linked"}
    return [oid for oid, size in sizes.items() if stored.get(oid) != size and oid not in linked]


def _would_prune(oids: list[str], local: dict[str, Path], lfs_root: Path, args: list[str], cwd: Cwd) -> int:
    """How many of ``oids`` git lfs prune would delete: a dry run over a scratch store of just those."""
    scratch = Path(tempfile.mkdtemp(prefix="prune-check-", dir=lfs_root))
    try:
        for oid in oids:
            target = scratch / "objects" / oid[0:2] / oid[2:4] / oid
            target.parent.mkdir(parents=True, exist_ok=True)
            try:
                os.link(local[oid], target)
            except OSError:
                shutil.copyfile(local[oid], target)
        proc = gitrepo.git("-c", f"lfs.storage={scratch}", "lfs", "prune", "--dry-run", *args, cwd=cwd, check=False)
        found = SUMMARY.findall(proc.stdout + proc.stderr)
        if proc.returncode != 0 or not found:
            raise GitError("cannot tell which objects git lfs prune would delete (`git lfs prune --dry-run` said: "
                           f"{(proc.stderr or proc.stdout).strip()[-300:]}); deleted nothing")
        if int(found[-1]) != len(oids):
            raise GitError(f"git lfs prune saw {found[-1]} objects in the check's scratch store, not {len(oids)}; "
                           "deleted nothing (please report this with your git-lfs version)")
        would = WOULD_PRUNE.findall(proc.stdout + proc.stderr)
        return int(would[-1]) if would else 0
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def _last_lines(output: str) -> list[str]:
    """git-lfs's summary lines, without the progress meter's redraws."""
    lines = [line.strip() for line in output.replace("\r", "\n").splitlines() if line.strip()]
    return [line for i, line in enumerate(lines) if not (line.startswith("prune:") and "done" not in line
                                                          and i + 1 < len(lines) and lines[i + 1].startswith("prune:"))]


def _default_remote(cwd: Cwd) -> str:
    pairs = dict(gitrepo.read_config(r"^(lfs\.remote\.default|remote\.pushdefault)$", cwd=cwd))
    return pairs.get("lfs.remote.default") or pairs.get("remote.pushdefault") or "origin"
