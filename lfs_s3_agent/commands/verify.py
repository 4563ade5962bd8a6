"""``verify``: is every LFS object some revisions need in the store, intact?

A HEAD per object (a stored object's size, recorded oid and SHA-256 checksum; a linked
object's original, by version or ETag); ``--deep`` streams and re-hashes every byte.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from lfs_s3_agent import reachable
from lfs_s3_agent.commands.common import WORKERS, Context, Cwd, fix_for, noop, open_store, plural
from lfs_s3_agent.console import Progress, human_bytes
from lfs_s3_agent.errors import AgentError, Code, ConfigError
from lfs_s3_agent.linked import changed_original
from lfs_s3_agent.links import LinkRecord, broken_link, full_object_sha256
from lfs_s3_agent.pointer import Pointer
from lfs_s3_agent.progress import ProgressReporter
from lfs_s3_agent.reachable import Reached
from lfs_s3_agent.s3.restore import ArchiveState
from lfs_s3_agent.s3.transfer import Knobs, fetch


@dataclass
class Problem:
    status: str  #: "missing", "corrupt", "broken-link", "error" (could not be checked), or "archived" (not a problem)
    pointer: Pointer
    where: str
    detail: str
    fix: str = ""
    path: str = ""
    linked: bool = False
    commits: list[tuple[str, str]] = field(default_factory=list)  #: (commit, path) that added the pointer

    def to_json(self) -> dict[str, Any]:
        return {"status": self.status, "oid": self.pointer.oid, "size": self.pointer.size, "where": self.where,
                "linked": self.linked, "path": self.path, "detail": self.detail, "fix": self.fix,
                "commits": [{"commit": c, "path": p} for c, p in self.commits]}


@dataclass
class VerifyReport:
    revs: list[str]
    store: str
    deep: bool
    checked: int = 0
    stored: int = 0
    linked: int = 0
    bytes: int = 0
    problems: list[Problem] = field(default_factory=list)
    archived: list[Problem] = field(default_factory=list)  #: present, in an archive class, not readable yet
    note: str = ""

    @property
    def ok(self) -> bool:
        return not self.problems

    @property
    def exit_status(self) -> int:
        return 0 if self.ok else 1

    def to_json(self) -> dict[str, Any]:
        return {"revs": self.revs, "store": self.store, "deep": self.deep, "checked": self.checked,
                "stored": self.stored, "linked": self.linked, "bytes": self.bytes, "ok": self.ok,
                "problems": [p.to_json() for p in self.problems],
                "archived": [p.to_json() for p in self.archived], "note": self.note}

    def render(self) -> list[str]:
        lines = []
        if self.note:
            lines.append(self.note)
        for p in self.archived:
            lines.append(f"ARCHIVED: {p.path or '(path unknown)'}  {p.pointer.oid} ({human_bytes(p.pointer.size)}): "
                         f"{p.detail}")
        for p in self.problems:
            lines.append(f"{p.status.upper()}: {p.path or '(path unknown)'}  {p.pointer.oid} "
                         f"({human_bytes(p.pointer.size)})")
            lines.append(f"    {p.detail}")
            if p.commits:
                lines.append("    added in " + ", ".join(f"{c[:10]} ({path})" if path != p.path else c[:10]
                                                        for c, path in p.commits))
            if p.fix:
                lines.append(f"    fix: {p.fix}")
        counts: dict[str, int] = {}
        for p in self.problems:
            counts[p.status] = counts.get(p.status, 0) + 1
        how = "re-hashed" if self.deep else "checked"
        summary = (f"{how} {plural(self.checked, 'object')} ({self.stored} stored, {self.linked} linked, "
                   f"{human_bytes(self.bytes)}) reachable from {' '.join(self.revs)} in {self.store}: ")
        if self.ok:
            summary += "all present and intact"
        else:
            summary += ", ".join(f"{n} {status}" for status, n in sorted(counts.items()))
        if self.archived:
            summary += (f"; {len(self.archived)} archived (present, not readable until restored: "
                        "`lfs-s3-agent restore`)")
        lines.append(summary)
        return lines


class _Verifier:
    def __init__(self, ctx: Context, deep: bool, cwd: Cwd) -> None:
        self.ctx = ctx
        self.store = ctx.store
        self.linked = ctx.wired.linked_store()
        self.deep = deep
        self.cwd = cwd

    def check(self, pointer: Pointer) -> tuple[str, Problem | None]:
        """("stored" | "linked", the problem found or None)."""
        store = self.store
        s = store.settings
        oid = pointer.oid
        local = self.linked.local_record(oid)
        if local is not None:
            # Other clones use the store's record: that is the one to check when there is one.
            try:
                shared = self.linked.records.get(oid)
            except AgentError:
                shared = None
            problem = self.check_linked(pointer, shared or local)
            if problem is None and not self.in_store(oid):
                problem = Problem("missing", pointer, self.linked.describe(oid), "linked in this clone, but the store "
                                  "has neither the object nor its link record, so other clones cannot get it",
                                  fix="push the commit that links it (`git push`); its pre-push hook records the link",
                                  linked=True)
            return "linked", problem
        key = store.key(oid)
        url = f"s3://{s.bucket}/{key}"
        try:
            head = store.client.head_object(Bucket=s.bucket, Key=key, ChecksumMode="ENABLED")
        except AgentError as err:
            if err.code != Code.NOT_FOUND:
                return "stored", Problem("error", pointer, url, err.message, fix=fix_for(err))
            try:
                record = self.linked.records.get(oid)
            except AgentError as rec_err:
                return "linked", Problem("error", pointer, self.linked.records.url(oid), rec_err.message,
                                         linked=True)
            if record is None:
                return "stored", Problem("missing", pointer, url, "not in the store (no object, no link record)",
                                         fix=self.push_fix(oid))
            return "linked", self.check_linked(pointer, record)
        size = int(head["ContentLength"])
        recorded = head.get("Metadata", {}).get("sha256")
        checksum, _ = full_object_sha256(head)
        corrupt = ""
        if size != pointer.size:
            corrupt = f"the stored object has {size} bytes, the pointer says {pointer.size}"
        elif recorded and recorded != oid:
            corrupt = f"the stored object is recorded as another oid ({recorded})"
        elif checksum and checksum != oid:
            corrupt = f"the stored object's SHA-256 checksum is {checksum}, not the oid"
        elif not ArchiveState.of(head).readable:
            return "stored", archived(pointer, url, ArchiveState.of(head))
        elif self.deep:
            try:
                with open(os.devnull, "wb") as sink:  # hashing is done by the downloader
                    digest = fetch(store.client, bucket=s.bucket, key=key, size=size, sink=sink,
                                   progress=ProgressReporter(size, noop), knobs=Knobs.of(s), etag=head.get("ETag"))
            except AgentError as err:
                if err.code != Code.INTEGRITY:
                    return "stored", Problem("error", pointer, url, err.message, fix=fix_for(err))
                corrupt = err.message
            else:
                if digest != oid:
                    corrupt = f"the stored bytes hash to {digest}, not the oid"
        if corrupt:
            return "stored", Problem("corrupt", pointer, url, corrupt,
                                     fix=f"delete {url} and push the object again: {self.push_fix(oid)}")
        return "stored", None

    def in_store(self, oid: str) -> bool:
        return self.linked.records.exists(oid) or self.store.stat(oid) is not None

    def push_fix(self, oid: str) -> str:
        if self.ctx.lfs_object(oid) is not None:
            return f"this clone has it: `git lfs push --object-id origin {oid}`"
        return "push it from a clone that has it: `git lfs push --all origin`"

    def check_linked(self, pointer: Pointer, record: LinkRecord) -> Problem | None:
        where = f"linked original {record.describe()}"
        fix = ("restore the original (or its version), or link the current one with `lfs-s3-agent link` and "
               "commit the new pointer")
        if record.size != pointer.size:
            return Problem("corrupt", pointer, where, f"the link record says {record.size} bytes, the pointer "
                           f"{pointer.size}", fix="relink the file with `lfs-s3-agent link`", linked=True)
        try:
            _, client = self.linked.sources.for_record(record, cwd=str(self.cwd) if self.cwd else None)
            head = client.head_object(Bucket=record.bucket, Key=record.key, ChecksumMode="ENABLED",
                                      **({"VersionId": record.version_id} if record.version_id else {}))
        except AgentError as exc:
            if not (record.version_id and changed_original(record, exc)):
                err = broken_link(record, exc)
                if err.code == Code.LINK_BROKEN and exc.code == Code.NOT_FOUND:
                    return Problem("broken-link", pointer, where, "the original is gone (deleted, or the linked "
                                   "version no longer exists)", fix=fix, linked=True)
                return Problem("error", pointer, where, err.message, fix=fix_for(err), linked=True)
            try:  # the linked version is gone: what is at the key now?
                head = client.head_object(Bucket=record.bucket, Key=record.key, ChecksumMode="ENABLED")
            except AgentError as now:
                if now.code == Code.NOT_FOUND:
                    return Problem("broken-link", pointer, where, "the original is gone (deleted, and the linked "
                                   "version no longer exists)", fix=fix, linked=True)
                return Problem("error", pointer, where, now.message, fix=fix_for(now), linked=True)
            head = {**head, "ETag": None}  # not the pinned version: changed in place at best
        if int(head["ContentLength"]) != record.size:
            return Problem("broken-link", pointer, where, f"the original now has {head['ContentLength']} bytes, "
                           f"{record.size} when linked", fix=fix, linked=True)
        now_oid, _ = full_object_sha256(head)
        if now_oid is not None and now_oid != record.oid:
            return Problem("broken-link", pointer, where, f"the original was overwritten with other content (its "
                           f"SHA-256 checksum is {now_oid})", fix=fix, linked=True)
        changed = (record.version_id is not None and head.get("ETag") is None) or (
            not record.version_id and record.etag is not None and head.get("ETag") != record.etag)
        if changed and not self.deep:
            return Problem("changed-in-place", pointer, where, "the original changed in place (same size, another "
                           "ETag or version); content not checked", fix="`lfs-s3-agent verify --deep` checks its "
                           "bytes; `lfs-s3-agent link update` refreshes the record when they match", linked=True)
        if not ArchiveState.of(head).readable:
            problem = archived(pointer, where, ArchiveState.of(head))
            problem.linked = True
            return problem
        if self.deep:
            try:
                with open(os.devnull, "wb") as sink:  # hashing is done by the downloader
                    digest = self.linked.fetch_original(record, pointer.size, sink,
                                                        ProgressReporter(pointer.size, noop), refresh=False)
            except AgentError as err:
                status = "broken-link" if err.code in (Code.LINK_BROKEN, Code.INTEGRITY) else "error"
                return Problem(status, pointer, where, err.message, fix=fix if status != "error" else "",
                               linked=True)
            if digest != pointer.oid:
                return Problem("broken-link", pointer, where, f"the original's bytes hash to {digest}, not the oid",
                               fix=fix, linked=True)
        return None


def archived(pointer: Pointer, where: str, state: ArchiveState) -> Problem:
    """Present in an archive class, not readable yet: reported as such, not as a problem."""
    how = "a restore is in progress" if state.ongoing else "no restore requested"
    return Problem("archived", pointer, where, f"present ({state.tier_name}), not readable until restored; {how}",
                   fix="`lfs-s3-agent restore` (then pull when it is done)")


def verify(revs: list[str] | None = None, *, all_refs: bool = False, deep: bool = False,
           flags: Mapping[str, Any] | None = None, cwd: Cwd = None, quiet: bool = False) -> VerifyReport:
    """Check that every LFS object reachable from ``revs`` (default HEAD) is in the store, intact."""
    if all_refs and revs:
        raise ConfigError("give revisions or --all, not both")
    ctx = open_store(flags, cwd, need_repo=True)
    rev_args: list[str] = ["--all"] if all_refs else list(revs or ["HEAD"])
    report = VerifyReport(revs=["--all"] if all_refs else rev_args, store=ctx.where, deep=deep)
    if not all_refs and not revs and not reachable.has_commits("HEAD", cwd):
        report.note = "HEAD has no commits yet: nothing to verify"
        return report
    found = reachable.scan(rev_args, cwd)
    verifier = _Verifier(ctx, deep, cwd)
    pointers = sorted(found.values(), key=lambda r: r.path)
    report.checked = len(pointers)
    report.bytes = sum(r.pointer.size for r in pointers)

    def one(item: Reached) -> tuple[str, Problem | None]:
        try:
            result = verifier.check(item.pointer)
        except AgentError as err:
            result = ("stored", Problem("error", item.pointer, verifier.linked.describe(item.oid), err.message,
                                        fix=fix_for(err)))
        bar.advance(1, item.pointer.size)
        return result

    with Progress("verifying", len(pointers), quiet=quiet) as bar, ThreadPoolExecutor(WORKERS) as pool:
        results = list(pool.map(one, pointers))
    for item, (kind, problem) in zip(pointers, results, strict=True):
        if kind == "linked":
            report.linked += 1
        else:
            report.stored += 1
        if problem is not None:
            problem.path = item.path
            (report.archived if problem.status == "archived" else report.problems).append(problem)
    if report.problems:
        by_blob = {blob: p for p, item in ((p, found[p.pointer]) for p in report.problems) for blob in item.blobs}
        for blob, hits in reachable.introducing_commits(set(by_blob), rev_args, cwd).items():
            by_blob[blob].commits.extend(h for h in hits if h not in by_blob[blob].commits)
    return report

