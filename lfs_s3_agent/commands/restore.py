"""``restore``: request restores of archived objects a checkout needs (Glacier, Deep Archive), show progress.

A HEAD per object (the stored object, else its linked original) tells its storage class and
restore state (``s3.restore.ArchiveState``). Archived objects without a restore get one
(``restore_days``, ``restore_tier``), unless ``--status``; a restore under way or done is never
requested again.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from lfs_s3_agent import gitrepo, reachable
from lfs_s3_agent.commands.common import WORKERS, Context, Cwd, fix_for, open_store, plural
from lfs_s3_agent.console import Progress, human_bytes
from lfs_s3_agent.errors import AgentError, Code, ConfigError
from lfs_s3_agent.reachable import Reached
from lfs_s3_agent.s3.restore import ArchiveState, request_restore, typical


@dataclass
class Entry:
    path: str
    oid: str
    size: int
    where: str
    state: str  #: readable, restored, restoring, archived, missing, error
    storage_class: str = ""
    outcome: str = ""  #: requested (now), or "" when nothing was asked
    expiry: str = ""
    detail: str = ""

    def to_json(self) -> dict[str, Any]:
        return {"path": self.path, "oid": self.oid, "size": self.size, "where": self.where, "state": self.state,
                "storage_class": self.storage_class, "outcome": self.outcome, "expiry": self.expiry,
                "detail": self.detail}


@dataclass
class RestoreReport:
    revs: list[str]
    store: str
    status_only: bool
    tier: str
    days: int
    entries: list[Entry] = field(default_factory=list)
    note: str = ""

    def count(self, state: str) -> int:
        return sum(1 for e in self.entries if e.state == state)

    @property
    def requested(self) -> int:
        return sum(1 for e in self.entries if e.outcome == "requested")

    @property
    def exit_status(self) -> int:
        return 1 if self.count("missing") or self.count("error") else 0

    def to_json(self) -> dict[str, Any]:
        return {"revs": self.revs, "store": self.store, "status_only": self.status_only, "tier": self.tier,
                "days": self.days, "objects": len(self.entries), "readable": self.count("readable"),
                "restored": self.count("restored"), "restoring": self.count("restoring"),
                "archived": self.count("archived"), "requested": self.requested, "missing": self.count("missing"),
                "errors": self.count("error"), "ready": self.ready,
                "entries": [e.to_json() for e in self.entries], "note": self.note}

    @property
    def ready(self) -> bool:
        """Can every object be pulled now?"""
        return all(e.state in ("readable", "restored") for e in self.entries)

    def render(self) -> list[str]:
        lines = [self.note] if self.note else []
        for e in self.entries:
            if e.state == "readable":
                continue
            if e.state == "restored":
                what = f"restored, readable until {e.expiry}" if e.expiry else "restored"
            elif e.outcome == "requested":
                what = f"restore requested now ({self.tier}: {e.detail})"
            elif e.state == "restoring":
                what = f"restore in progress ({e.detail})"
            elif e.state == "archived":
                what = "archived, no restore requested (run `lfs-s3-agent restore` without --status)"
            else:
                what = e.detail
            lines.append(f"{e.state.upper()}: {e.path}  {e.oid[:12]} ({human_bytes(e.size)}, "
                         f"{e.storage_class or '-'}): {what}")
        summary = (f"{plural(len(self.entries), 'object')} reachable from {' '.join(self.revs)} in {self.store}: "
                   f"{self.count('readable')} readable, {self.count('restored')} restored, "
                   f"{self.count('restoring')} restoring, {self.count('archived')} archived without a restore")
        if self.requested:
            summary += f" ({self.requested} requested now, {self.days} days, {self.tier} tier)"
        for state in ("missing", "error"):
            if self.count(state):
                summary += f", {self.count(state)} {state}"
        lines.append(summary)
        lines.append("everything can be pulled now" if self.ready else
                     "pull again when the restores are done (`lfs-s3-agent restore --status` shows progress)")
        return lines


def _is_rev(arg: str, cwd: Cwd) -> bool:
    return gitrepo.git("rev-parse", "--verify", "-q", f"{arg}^{{commit}}", cwd=cwd, check=False).returncode == 0


def _matches(path: str, patterns: Sequence[str]) -> bool:
    for pattern in patterns:
        p = pattern.strip("/")
        if path == p or path.startswith(p + "/") or fnmatch.fnmatchcase(path, p):
            return True
    return False


class _Restorer:
    def __init__(self, ctx: Context, status_only: bool, cwd: Cwd) -> None:
        self.ctx = ctx
        self.store = ctx.store
        self.linked = ctx.wired.linked_store()
        self.status_only = status_only
        self.cwd = cwd
        self.days = ctx.settings.restore_days
        self.tier = ctx.settings.restore_tier

    def one(self, item: Reached) -> Entry:
        oid, size = item.oid, item.pointer.size
        s = self.store.settings
        entry = Entry(item.path, oid, size, self.store.describe(oid), "error")
        try:
            record = self.linked.local_record(oid)
            if record is None:
                try:
                    head = self.store.client.head_object(Bucket=s.bucket, Key=self.store.key(oid))
                    return self.finish(entry, head, self.store.client, s.bucket, self.store.key(oid), None)
                except AgentError as err:
                    if err.code != Code.NOT_FOUND:
                        raise
                record = self.linked.records.get(oid)
                if record is None:
                    entry.state, entry.detail = "missing", "not in the store (no object, no link record)"
                    return entry
            entry.where = f"linked original {record.describe()}"
            _, client = self.linked.sources.for_record(record, cwd=str(self.cwd) if self.cwd else None)
            args: dict[str, Any] = {"Bucket": record.bucket, "Key": record.key}
            if record.version_id:
                args["VersionId"] = record.version_id
            head = client.head_object(**args)
            return self.finish(entry, head, client, record.bucket, record.key, record.version_id)
        except AgentError as err:
            entry.state = "missing" if err.code == Code.NOT_FOUND else "error"
            entry.detail = err.message + (f" ({fix_for(err)})" if fix_for(err) else "")
            return entry

    def finish(self, entry: Entry, head: dict[str, Any], client: Any, bucket: str, key: str,
               version_id: str | None) -> Entry:
        state = ArchiveState.of(head)
        entry.storage_class = state.tier_name
        entry.state = state.status
        entry.expiry = f"{state.expiry:%Y-%m-%d %H:%M} UTC" if state.expiry else ""
        if state.status in ("restoring", "archived"):
            entry.detail = f"a {self.tier} restore of {state.tier_name} takes {typical(state, self.tier)}"
        if state.status == "archived" and not self.status_only:
            outcome = request_restore(client, bucket, key, state, days=self.days, tier=self.tier,
                                      version_id=version_id)
            entry.outcome = outcome
            entry.state = "restored" if outcome == "restored" else "restoring"
        return entry


def restore(args: Sequence[str] = (), *, all_refs: bool = False, status_only: bool = False,
            flags: Mapping[str, Any] | None = None, cwd: Cwd = None, quiet: bool = False) -> RestoreReport:
    """Request restores of the archived objects that ``REV...`` (default HEAD) check out, under ``PATH...``."""
    revs: list[str] = []
    paths: list[str] = []
    for arg in args:
        (paths if paths or not _is_rev(arg, cwd) else revs).append(arg)
    if all_refs and revs:
        raise ConfigError("give revisions or --all, not both")
    ctx = open_store(flags, cwd, need_repo=True)
    s = ctx.settings
    shown = ["--all"] if all_refs else (revs or ["HEAD"])
    report = RestoreReport(revs=shown, store=ctx.where, status_only=status_only, tier=s.restore_tier,
                           days=s.restore_days)
    if not all_refs and not revs and not reachable.has_commits("HEAD", cwd):
        report.note = "HEAD has no commits yet: nothing to restore"
        return report
    # What a checkout needs: the trees of the revisions (--all: everything every ref reaches).
    rev_args = ["--all"] if all_refs else [f"{rev}^{{tree}}" for rev in (revs or ["HEAD"])]
    found = reachable.scan(rev_args, cwd)
    items = sorted((r for r in found.values() if not paths or _matches(r.path, paths)), key=lambda r: r.path)
    restorer = _Restorer(ctx, status_only, cwd)

    def one(item: Reached) -> Entry:
        entry = restorer.one(item)
        bar.advance(1, item.pointer.size)
        return entry

    label = "checking restores" if status_only else "requesting restores"
    with Progress(label, len(items), quiet=quiet) as bar, ThreadPoolExecutor(WORKERS) as pool:
        report.entries = list(pool.map(one, items))
    return report
