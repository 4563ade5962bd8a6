"""``gc``: delete the stored objects and link records that no ref references, after a grace period.

Refuses when it cannot see every reference (shallow or partial clone, unfetched remote refs,
no LFS object referenced at all); deletes with ``DeleteObjects`` (1,000 keys a request);
counts every request against ``--max-requests``; never touches a foreign key.
"""

from __future__ import annotations

import re
import shlex
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from lfs_s3_agent import reachable, settings
from lfs_s3_agent.commands.common import Context, Cwd, iso, open_store, plural, when
from lfs_s3_agent.console import Progress, human_bytes
from lfs_s3_agent.errors import AgentError, Code, ConfigError
from lfs_s3_agent.pointer import is_oid
from lfs_s3_agent.s3.keys import classify, keep_prefix
from lfs_s3_agent.s3.listing import Budget, BudgetReached, Entry, Foreign, Upload, list_uploads
from lfs_s3_agent.store import MIN_GRACE

DELETE_BATCH = 1000  #: keys per DeleteObjects request (S3's maximum)
BUDGET_EXIT = 3  #: exit status of a gc stopped by --max-requests (run again to continue)


_DURATION = re.compile(r"\s*(\d+(?:\.\d+)?)\s*([smhdw]?)\s*")
_SECONDS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


def parse_duration(text: str) -> float:
    """Seconds from ``7d``, ``12h``, ``30m``, ``2w``, ``90s`` or ``0``."""
    match = _DURATION.fullmatch(text.lower())
    if not match:
        raise ConfigError(f"{text!r} is not a duration: use e.g. 7d, 12h, 30m, 2w or 0")
    return float(match[1]) * _SECONDS[match[2]]


def read_keep_from(path: str) -> set[str]:
    """Oids to keep, one per line (first word; ``sha256:`` allowed); ``#`` comments; ``-`` is stdin.

    ``git lfs ls-files --all --long`` output works as it is.
    """
    try:
        text = sys.stdin.read() if path == "-" else Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"--keep-from {path}: {exc.strerror or exc}") from None
    oids = set()
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        word = line.split()[0].removeprefix("sha256:").lower()
        if not is_oid(word):
            raise ConfigError(f"--keep-from {path}, line {number}: {raw.strip()!r} does not start with an oid "
                              "(64 hex digits)")
        oids.add(word)
    return oids


@dataclass
class GcReport:
    store: str
    dry_run: bool
    grace: str
    max_requests: int | None
    referenced: int = 0  #: oids reachable from the repository's refs
    kept_from_file: int = 0
    kept_referenced: int = 0  #: keys kept because an oid is referenced
    kept_young: int = 0  #: keys kept because they are newer than the grace period
    candidates: list[Entry] = field(default_factory=list)
    deleted: list[Entry] = field(default_factory=list)
    failed: list[tuple[str, str]] = field(default_factory=list)
    foreign: list[Foreign] = field(default_factory=list)
    stale_uploads: list[Upload] = field(default_factory=list)
    aborted: list[Upload] = field(default_factory=list)
    requests: int = 0
    stopped: str = ""  #: why gc stopped before finishing (the request budget)
    warnings: list[str] = field(default_factory=list)
    rerun: str = "lfs-s3-agent gc --force"  #: the command that deletes what this dry run listed (the user's flags)

    @property
    def notes(self) -> list[str]:
        return [f"lfs-s3-agent: {self.stopped}"] if self.stopped else []

    @property
    def complete(self) -> bool:
        return not self.stopped and not self.failed

    @property
    def exit_status(self) -> int:
        return BUDGET_EXIT if self.stopped else (1 if self.failed else 0)

    def to_json(self) -> dict[str, Any]:
        def entry(e: Entry) -> dict[str, Any]:
            return {"key": e.key, "oid": e.oid, "kind": e.kind, "bytes": e.stored_bytes,
                    "last_modified": iso(e.last_modified)}

        def upload(u: Upload) -> dict[str, Any]:
            return {"key": u.key, "upload_id": u.upload_id, "initiated": iso(u.initiated)}

        return {
            "store": self.store, "dry_run": self.dry_run, "grace": self.grace, "max_requests": self.max_requests,
            "referenced_oids": self.referenced, "kept_from_file": self.kept_from_file,
            "kept": {"referenced": self.kept_referenced, "young": self.kept_young},
            "candidates": [entry(e) for e in self.candidates],
            "candidate_bytes": sum(e.stored_bytes for e in self.candidates),
            "deleted": [entry(e) for e in self.deleted], "deleted_bytes": sum(e.stored_bytes for e in self.deleted),
            "failed": [{"key": k, "error": m} for k, m in self.failed],
            "foreign_keys": [{"key": f.key, "bytes": f.size} for f in self.foreign],
            "stale_uploads": [upload(u) for u in self.stale_uploads], "aborted": [upload(u) for u in self.aborted],
            "requests": self.requests, "complete": self.complete, "stopped": self.stopped,
            "warnings": self.warnings,
        }

    def render(self) -> list[str]:
        lines = [f"warning: {w}" for w in self.warnings]
        kept = f" + {self.kept_from_file} from --keep-from" if self.kept_from_file else ""
        lines.append(f"{self.store}: {self.referenced} oids referenced by this repository's refs{kept}")
        objects = [e for e in self.candidates if e.kind == "stored"]
        records = [e for e in self.candidates if e.kind == "linked"]
        markers = [e for e in self.candidates if e.kind == "keep"]
        what = (f"{plural(len(objects), 'object')} ({human_bytes(sum(e.stored_bytes for e in objects))}) and "
                f"{plural(len(records), 'link record')} unreferenced for longer than {self.grace}"
                + (f", and {plural(len(markers), 'expired keep marker')}" if markers else ""))
        if self.dry_run:
            lines.append(f"would delete {what}:" if self.candidates else f"nothing to delete: {what}")
            lines.extend(f"  {e.key}  {human_bytes(e.stored_bytes)}  {when(e.last_modified)}"
                         for e in self.candidates)
        lines.append(f"kept: {self.kept_referenced} referenced, {self.kept_young} newer than {self.grace}")
        if self.foreign:
            lines.append(f"foreign keys, left alone: {len(self.foreign)}")
            lines.extend(f"  {f.key}" for f in self.foreign[:20])
            if len(self.foreign) > 20:
                lines.append(f"  ... and {len(self.foreign) - 20} more")
        if self.stale_uploads:
            verb = "would abort" if self.dry_run else "stale"
            lines.append(f"{verb} {plural(len(self.stale_uploads), 'unfinished multipart upload')} older than "
                         f"{self.grace}:")
            lines.extend(f"  {u.key}  (started {when(u.initiated)})" for u in self.stale_uploads)
        if not self.dry_run:
            d_obj = [e for e in self.deleted if e.kind == "stored"]
            lines.append(f"deleted {plural(len(d_obj), 'object')} and "
                         f"{plural(len(self.deleted) - len(d_obj), 'link record')}: "
                         f"{human_bytes(sum(e.stored_bytes for e in self.deleted))} reclaimed; aborted "
                         f"{plural(len(self.aborted), 'multipart upload')}")
            lines.extend(f"failed to delete {k}: {m}" for k, m in self.failed)
        lines.append(f"S3 requests: {self.requests}" + (f" (of at most {self.max_requests})"
                                                        if self.max_requests is not None else ""))
        if self.stopped:
            lines.append(self.stopped)
        elif self.dry_run and (self.candidates or self.stale_uploads):
            lines.append(f"dry run: nothing was deleted; run `{self.rerun}` to delete")
        return lines


def rerun_command(flags: Mapping[str, Any] | None, *, grace: str, max_requests: int | None,
                  keep_from: str | None, allow_short_grace: bool = False) -> str:
    """``lfs-s3-agent gc --force`` with every flag the user gave, so the hint deletes what the dry run listed."""
    words = ["lfs-s3-agent", "gc", "--force"]
    if grace != "7d":
        words += ["--grace", grace]
    if allow_short_grace:
        words.append("--allow-short-grace")
    if max_requests is not None:
        words += ["--max-requests", str(max_requests)]
    if keep_from is not None:
        words += ["--keep-from", keep_from]
    for name, value in (flags or {}).items():
        if value is not None:
            words += [settings.FIELDS_BY_NAME[name].flag, str(value)]
    return " ".join(shlex.quote(w) for w in words)


def gc(flags: Mapping[str, Any] | None = None, *, force: bool = False, grace: str = "7d",
       max_requests: int | None = None, keep_from: str | None = None, cwd: Cwd = None, quiet: bool = False,
       now: datetime | None = None, allow_short_grace: bool = False) -> GcReport:
    """Delete (with ``force``) stored objects and link records no ref references, older than ``grace``.

    A push uploads objects before its ref moves, and one that skips an object because it is stored
    writes a keep marker first (``S3Store.protect``): objects younger than the grace period, and
    objects with a keep marker younger than it, are kept. Markers are read again just before each
    delete request. A grace shorter than ``MIN_GRACE`` (1 hour) needs ``allow_short_grace``.
    """
    grace_seconds = parse_duration(grace)
    if grace_seconds < MIN_GRACE and not allow_short_grace:
        raise ConfigError(f"--grace {grace} is shorter than 1 hour: a push in flight uploads objects before its "
                          "ref moves, and gc would delete them; use --grace 1h or more, or add "
                          "--allow-short-grace when you know no push is under way")
    if max_requests is not None and max_requests < 1:
        raise ConfigError("--max-requests must be at least 1")
    ctx = open_store(flags, cwd, need_repo=True)
    if force:
        ctx.store.needs_credentials("gc --force")
    report = GcReport(store=ctx.where, dry_run=not force, grace=grace, max_requests=max_requests,
                      rerun=rerun_command(flags, grace=grace, max_requests=max_requests, keep_from=keep_from,
                                          allow_short_grace=allow_short_grace))
    if reachable.is_shallow(cwd):
        raise ConfigError("this is a shallow clone: its history is incomplete, so gc cannot tell what is "
                          "referenced; run `git fetch --unshallow` first")
    if reachable.is_partial(cwd):
        raise ConfigError("this is a partial clone (--filter): some pointer files are not here, so gc cannot "
                          "tell what is referenced; run gc from a full clone")
    for gap in reachable.unfetched_remote_refs(cwd):
        if gap.error:
            message = (f"cannot check that this clone has every branch and tag of remote {gap.remote!r} "
                       f"({gap.error}); fetch it, or remove the remote from this clone if it is gone")
        else:
            shown = ", ".join(gap.missing[:5]) + (f" and {len(gap.missing) - 5} more" if len(gap.missing) > 5 else "")
            message = (f"remote {gap.remote!r} has commits this clone has not fetched ({shown}); objects they "
                       f"reference would look unreferenced: run `git fetch {gap.remote} --tags` first")
        if force:
            raise ConfigError(message)
        report.warnings.append(message)
    found = reachable.all_refs(cwd)
    referenced = {p.oid for p in found}
    report.referenced = len(referenced)
    if keep_from:
        extra = read_keep_from(keep_from)
        report.kept_from_file = len(extra - referenced)
        referenced |= extra
    if force and not found:
        raise ConfigError(f"no ref of this repository references any LFS object: refusing to delete everything "
                          f"under {ctx.where} (wrong repository or prefix?)")

    s = ctx.settings
    client = ctx.store.client
    budget = Budget(max_requests)
    try:
        listing = ctx.list(budget, quiet=quiet)
        uploads = list_uploads(client, s.bucket, s.prefix, budget)
    except BudgetReached:
        report.requests = budget.used
        report.stopped = (f"budget reached while listing the store ({budget.used} requests): nothing deleted; "
                          "listing needs one request per 1,000 keys: raise --max-requests")
        return report
    cutoff = (now or datetime.now(UTC)).timestamp() - grace_seconds
    report.foreign = listing.foreign
    protected = {e.oid for e in listing.entries if e.kind == "keep" and e.last_modified.timestamp() > cutoff}
    for e in listing.entries:
        if e.kind == "keep":
            if e.last_modified.timestamp() <= cutoff:
                report.candidates.append(e)  # a marker older than the grace protects nothing any more
        elif e.oid in referenced:
            report.kept_referenced += 1
        elif e.last_modified.timestamp() > cutoff or e.oid in protected:
            report.kept_young += 1
        else:
            report.candidates.append(e)
    report.stale_uploads = [u for u in uploads if u.initiated.timestamp() <= cutoff]
    report.requests = budget.used
    if not force:
        return report

    todo = list(report.candidates)
    total = len(todo)
    with Progress("deleting", total, quiet=quiet or not todo) as bar:
        try:
            while todo:
                batch, todo = todo[:DELETE_BATCH], todo[DELETE_BATCH:]
                # A push may have started relying on one of these since the listing: read the markers again.
                fresh = _fresh_markers(ctx, cutoff, budget)
                kept = [e for e in batch if e.kind != "keep" and e.oid in fresh]
                report.kept_young += len(kept)
                batch = [e for e in batch if e not in kept]
                budget.spend()
                if batch:
                    _delete_batch(ctx, batch, report)
                bar.advance(len(batch) + len(kept), sum(e.stored_bytes for e in batch))
            for upload in report.stale_uploads:
                budget.spend()
                try:
                    client.abort_multipart_upload(Bucket=s.bucket, Key=upload.key, UploadId=upload.upload_id)
                except AgentError as err:
                    if err.s3_code != "NoSuchUpload":  # finished or aborted meanwhile: fine
                        report.failed.append((upload.key, err.message))
                        continue
                report.aborted.append(upload)
        except BudgetReached:
            report.stopped = (f"budget reached: deleted {len(report.deleted)} of {total} "
                              f"(aborted {len(report.aborted)} of {len(report.stale_uploads)} stale uploads) within "
                              f"--max-requests {max_requests}; run again to continue")
    report.requests = budget.used
    return report


def _fresh_markers(ctx: Context, cutoff: float, budget: Budget) -> set[str]:
    """Oids whose keep marker is younger than the cutoff, listed now (one request per 1,000 markers)."""
    s = ctx.settings
    found: set[str] = set()
    token: dict[str, Any] = {}
    while True:
        budget.spend()
        page = ctx.store.client.list_objects_v2(Bucket=s.bucket, Prefix=keep_prefix(s.prefix), **token)
        for obj in page.get("Contents", []):
            kind = classify(s.prefix, obj["Key"])
            if kind is not None and kind[0] == "keep" and obj["LastModified"].timestamp() > cutoff:
                found.add(kind[1])
        if not page.get("IsTruncated") or not page.get("NextContinuationToken"):
            return found
        token = {"ContinuationToken": page["NextContinuationToken"]}


def _delete_batch(ctx: Context, batch: list[Entry], report: GcReport) -> None:
    s = ctx.settings
    for e in batch:  # never anything outside our layout, whatever the listing said
        if classify(s.prefix, e.key) != (e.kind, e.oid):
            raise AgentError(f"refusing to delete {e.key}: not a key of ours", code=Code.INTERNAL)
    resp = ctx.store.client.delete_objects(Bucket=s.bucket, Delete={"Objects": [{"Key": e.key} for e in batch],
                                                                     "Quiet": True})
    errors = {err["Key"]: f"{err.get('Code')}: {err.get('Message', '')}" for err in resp.get("Errors", [])}
    for e in batch:
        if e.key in errors:
            report.failed.append((e.key, errors[e.key]))
        else:
            report.deleted.append(e)

