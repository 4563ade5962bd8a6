"""Keeping the store healthy: ``verify``, ``gc``, ``ls`` and ``du``.

The store holds two kinds of keys under the prefix, both content-addressed:
``<prefix>/<oid[0:2]>/<oid[2:4]>/<oid>`` (a stored object) and
``<prefix>/links/<oid[0:2]>/<oid[2:4]>/<oid>.json`` (a link record: the bytes stay in
their original). Anything else under the prefix is a *foreign key*: listed, counted,
never deleted.

Each command returns a report object with ``to_json()`` and ``render()`` so the CLI
only parses, calls and prints. Progress goes to stderr (a redrawn line on a terminal).
"""

from __future__ import annotations

import os
import re
import sys
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from lfs_s3_agent import gitrepo, reachable, settings
from lfs_s3_agent.console import Progress, human_bytes
from lfs_s3_agent.errors import AgentError, Code, ConfigError, GitError, StoreError
from lfs_s3_agent.links import (
    LinkRecord,
    LocalLinks,
    broken_link,
    full_object_sha256,
    local_links_dir,
    source_settings,
)
from lfs_s3_agent.pointer import Pointer, is_oid
from lfs_s3_agent.progress import ProgressReporter
from lfs_s3_agent.reachable import Reached
from lfs_s3_agent.store import S3Store, translate

Cwd = str | os.PathLike[str] | None

WORKERS = 10  #: parallel requests (botocore's default connection pool holds 10)
DELETE_BATCH = 1000  #: keys per DeleteObjects request (S3's maximum)
BUDGET_EXIT = 3  #: exit status of a gc stopped by --max-requests (run again to continue)

_OBJECT_KEY = re.compile(r"([0-9a-f]{2})/([0-9a-f]{2})/([0-9a-f]{64})")
_LINK_KEY = re.compile(r"links/([0-9a-f]{2})/([0-9a-f]{2})/([0-9a-f]{64})\.json")


# -- the store's layout and listing -----------------------------------------------------------

def list_prefix(prefix: str) -> str:
    """What to list for a prefix: ``prefix/`` (never a sibling like ``prefix-other/``), or the bucket."""
    return f"{prefix}/" if prefix else ""


def classify(prefix: str, key: str) -> tuple[str, str] | None:
    """``("stored", oid)`` or ``("linked", oid)`` for a key in our layout under the prefix, else None."""
    base = list_prefix(prefix)
    if not key.startswith(base):
        return None
    rel = key[len(base):]
    for kind, pattern in (("stored", _OBJECT_KEY), ("linked", _LINK_KEY)):
        match = pattern.fullmatch(rel)
        if match and match[3][0:2] == match[1] and match[3][2:4] == match[2]:
            return kind, match[3]
    return None


@dataclass
class Entry:
    """One key of ours in the store."""

    kind: str  #: "stored" (the object's bytes) or "linked" (a link record)
    oid: str
    key: str
    stored_bytes: int  #: what the key itself occupies
    last_modified: datetime
    etag: str = ""
    linked_size: int | None = None  #: a linked object's size (from its record or a pointer)
    source: str | None = None  #: a linked object's original

    @property
    def size(self) -> int | None:
        """The LFS object's size."""
        return self.stored_bytes if self.kind == "stored" else self.linked_size


@dataclass
class Foreign:
    key: str
    size: int


@dataclass
class Listing:
    entries: list[Entry] = field(default_factory=list)
    foreign: list[Foreign] = field(default_factory=list)


class BudgetReached(Exception):
    pass


class Budget:
    """Counts S3 requests against ``--max-requests``; refuses the one that would exceed it."""

    def __init__(self, limit: int | None) -> None:
        self.limit = limit
        self.used = 0

    def spend(self, n: int = 1) -> None:
        if self.limit is not None and self.used + n > self.limit:
            raise BudgetReached
        self.used += n

    def left(self) -> int | None:
        return None if self.limit is None else self.limit - self.used


def _error(store: S3Store, exc: BaseException, key: str | None = None) -> AgentError:
    s = store.settings
    return translate(exc, bucket=s.bucket, key=key, endpoint=s.endpoint_url, region=s.region)


class ListingProgress:
    """Keys listed so far: a redrawn line on a terminal, a plain line every 100 pages otherwise."""

    def __init__(self, label: str, quiet: bool = False) -> None:
        self.label = label
        self.quiet = quiet
        self.stream = sys.stderr
        self.tty = self.stream.isatty()
        self.pages = 0
        self.keys = 0

    def page(self, keys: int) -> None:
        self.pages += 1
        self.keys += keys
        if self.quiet:
            return
        if self.tty:
            self.stream.write(f"\r{self.label}: {self.keys} keys")
            self.stream.flush()
        elif self.pages % 100 == 0:
            print(f"{self.label}: {self.keys} keys so far", file=self.stream, flush=True)

    def done(self) -> None:
        if self.quiet or (not self.tty and self.pages < 100):
            return
        if self.tty:
            self.stream.write("\n")
        else:
            print(f"{self.label}: {self.keys} keys", file=self.stream, flush=True)


def list_store(client: Any, bucket: str, prefix: str, tr: Callable[[BaseException], AgentError],
               budget: Budget | None = None, quiet: bool = True) -> Listing:
    """Every key under the prefix, sorted into ours and foreign ones (one request per 1,000 keys)."""
    listing = Listing()
    token = None
    progress = ListingProgress(f"listing s3://{bucket}/{list_prefix(prefix)}", quiet=quiet)
    while True:
        if budget is not None:
            budget.spend()
        args: dict[str, Any] = {"Bucket": bucket, "Prefix": list_prefix(prefix)}
        if token:
            args["ContinuationToken"] = token
        try:
            page = client.list_objects_v2(**args)
        except Exception as exc:
            raise tr(exc) from None
        progress.page(len(page.get("Contents", [])))
        for obj in page.get("Contents", []):
            key = obj["Key"]
            found = classify(prefix, key)
            if found is None:
                listing.foreign.append(Foreign(key, int(obj["Size"])))
            else:
                listing.entries.append(Entry(kind=found[0], oid=found[1], key=key, stored_bytes=int(obj["Size"]),
                                             last_modified=obj["LastModified"], etag=str(obj.get("ETag", ""))))
        token = page.get("NextContinuationToken")
        if not page.get("IsTruncated") or not token:
            progress.done()
            return listing


@dataclass
class Upload:
    key: str
    upload_id: str
    initiated: datetime


def list_uploads(client: Any, bucket: str, prefix: str, tr: Callable[[BaseException], AgentError],
                 budget: Budget | None = None) -> list[Upload]:
    """Unfinished multipart uploads of object keys in our layout under the prefix."""
    found = []
    markers: dict[str, str] = {}
    while True:
        if budget is not None:
            budget.spend()
        try:
            page = client.list_multipart_uploads(Bucket=bucket, Prefix=list_prefix(prefix), **markers)
        except Exception as exc:
            raise tr(exc) from None
        for upload in page.get("Uploads", []):
            if (classify(prefix, upload["Key"]) or ("", ""))[0] == "stored":
                found.append(Upload(upload["Key"], upload["UploadId"], upload["Initiated"]))
        if not page.get("IsTruncated"):
            return found
        markers = {"KeyMarker": page.get("NextKeyMarker", ""), "UploadIdMarker": page.get("NextUploadIdMarker", "")}


# -- shared set-up -------------------------------------------------------------------------------

@dataclass
class Context:
    resolved: settings.Resolved
    store: S3Store
    repo: gitrepo.RepoPaths | None

    @property
    def where(self) -> str:
        return self.store.settings.describe()

    def tr(self, key: str | None = None) -> Callable[[BaseException], AgentError]:
        return lambda exc: _error(self.store, exc, key)

    def lfs_object(self, oid: str) -> Path | None:
        """This clone's copy of an object, if it has one."""
        if self.repo is None:
            return None
        path = gitrepo.lfs_storage_dir(self.repo, self.resolved.lfs_storage) / "objects" / oid[0:2] / oid[2:4] / oid
        return path if path.is_file() else None


def open_store(flags: Mapping[str, Any] | None, cwd: Cwd, *, need_repo: bool) -> Context:
    resolved = settings.load(flags, cwd=cwd)
    repo = resolved.repo
    if repo is None and need_repo:
        raise GitError(gitrepo.NOT_A_REPO)
    links = LocalLinks(local_links_dir(repo.common_dir)) if repo is not None else None
    return Context(resolved, S3Store(resolved.values, links=links), repo)


def _when(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M")


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def _plural(n: int, word: str) -> str:
    return f"{n} {word}" + ("" if n == 1 else "s")


# -- verify ---------------------------------------------------------------------------------------

@dataclass
class Problem:
    status: str  #: "missing", "corrupt", "broken-link" or "error" (could not be checked)
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
    note: str = ""

    @property
    def ok(self) -> bool:
        return not self.problems

    def to_json(self) -> dict[str, Any]:
        return {"revs": self.revs, "store": self.store, "deep": self.deep, "checked": self.checked,
                "stored": self.stored, "linked": self.linked, "bytes": self.bytes, "ok": self.ok,
                "problems": [p.to_json() for p in self.problems], "note": self.note}

    def render(self) -> list[str]:
        lines = []
        if self.note:
            lines.append(self.note)
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
        summary = (f"{how} {_plural(self.checked, 'object')} ({self.stored} stored, {self.linked} linked, "
                   f"{human_bytes(self.bytes)}) reachable from {' '.join(self.revs)} in {self.store}: ")
        if self.ok:
            summary += "all present and intact"
        else:
            summary += ", ".join(f"{n} {status}" for status, n in sorted(counts.items()))
        lines.append(summary)
        return lines


def _noop(_a: int, _b: int) -> None:
    pass


class _Verifier:
    def __init__(self, ctx: Context, deep: bool, cwd: Cwd) -> None:
        self.ctx = ctx
        self.store = ctx.store
        self.deep = deep
        self.cwd = cwd

    def check(self, pointer: Pointer) -> tuple[str, Problem | None]:
        """("stored" | "linked", the problem found or None)."""
        store = self.store
        s = store.settings
        oid = pointer.oid
        local = store.links.get(oid) if store.links else None
        if local is not None:
            problem = self.check_linked(pointer, local)
            if problem is None and not self.in_store(oid):
                problem = Problem("missing", pointer, store.describe(oid), "linked in this clone, but the store has "
                                  "neither the object nor its link record, so other clones cannot get it",
                                  fix="push the commit that links it (`git push`); its pre-push hook records the link",
                                  linked=True)
            return "linked", problem
        key = store.key(oid)
        url = f"s3://{s.bucket}/{key}"
        try:
            head = store.client.head_object(Bucket=s.bucket, Key=key, ChecksumMode="ENABLED")
        except Exception as exc:
            err = _error(store, exc, key)
            if err.code != Code.NOT_FOUND:
                return "stored", Problem("error", pointer, url, err.message, fix=_fix_for(err))
            try:
                record = store.read_link_record(oid)
            except AgentError as rec_err:
                return "linked", Problem("error", pointer, store.link_record_key(oid), rec_err.message, linked=True)
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
        elif self.deep:
            try:
                with open(os.devnull, "wb") as sink:  # hashing is done by the downloader
                    digest = store.fetch(store.client, s.bucket, key, size, sink, ProgressReporter(size, _noop),
                                         translate=self.ctx.tr(key), etag=head.get("ETag"))
            except AgentError as err:
                if err.code != Code.INTEGRITY:
                    return "stored", Problem("error", pointer, url, err.message, fix=_fix_for(err))
                corrupt = err.message
            else:
                if digest != oid:
                    corrupt = f"the stored bytes hash to {digest}, not the oid"
        if corrupt:
            return "stored", Problem("corrupt", pointer, url, corrupt,
                                     fix=f"delete {url} and push the object again: {self.push_fix(oid)}")
        return "stored", None

    def in_store(self, oid: str) -> bool:
        s = self.store.settings
        for key in (self.store.link_record_key(oid), self.store.key(oid)):
            try:
                self.store.client.head_object(Bucket=s.bucket, Key=key)
                return True
            except Exception as exc:
                err = _error(self.store, exc, key)
                if err.code != Code.NOT_FOUND:
                    raise err from None
        return False

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
        source = source_settings(record.bucket, record=record, cwd=self.cwd)
        client = self.store.source_client(source)
        args: dict[str, Any] = {"Bucket": record.bucket, "Key": record.key}
        if record.version_id:
            args["VersionId"] = record.version_id

        def tr(exc: BaseException) -> AgentError:
            err = translate(exc, bucket=record.bucket, key=record.key, endpoint=source.endpoint_url)
            if "NoSuchVersion" in err.message or (record.version_id and "S3 error 400" in err.message):
                err = StoreError(err.message, code=Code.NOT_FOUND)
            return broken_link(record, err)

        try:
            head = client.head_object(**args)
        except Exception as exc:
            err = tr(exc)
            if err.code == Code.LINK_BROKEN:
                return Problem("broken-link", pointer, where, "the original is gone (deleted, or the linked version "
                               "no longer exists)", fix=fix, linked=True)
            return Problem("error", pointer, where, err.message, fix=_fix_for(err), linked=True)
        if int(head["ContentLength"]) != record.size:
            return Problem("broken-link", pointer, where, f"the original now has {head['ContentLength']} bytes, "
                           f"{record.size} when linked", fix=fix, linked=True)
        if not record.version_id and record.etag and head.get("ETag") != record.etag:
            return Problem("broken-link", pointer, where, f"the original was overwritten (ETag {head.get('ETag')}, "
                           f"{record.etag} when linked)", fix=fix, linked=True)
        if self.deep:
            try:
                with open(os.devnull, "wb") as sink:  # hashing is done by the downloader
                    digest = self.store.fetch_linked(record, pointer.size, sink,
                                                     ProgressReporter(pointer.size, _noop))
            except AgentError as err:
                status = "broken-link" if err.code in (Code.LINK_BROKEN, Code.INTEGRITY) else "error"
                return Problem(status, pointer, where, err.message, fix=fix if status != "error" else "",
                               linked=True)
            if digest != pointer.oid:
                return Problem("broken-link", pointer, where, f"the original's bytes hash to {digest}, not the oid",
                               fix=fix, linked=True)
        return None


def _fix_for(err: AgentError) -> str:
    if err.code == Code.ACCESS_DENIED:
        return "the credentials need s3:GetObject (and s3:ListBucket) here"
    if err.code == Code.CREDENTIALS:
        return "check the AWS credentials (`lfs-s3-agent doctor`)"
    return ""


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
            result = ("stored", Problem("error", item.pointer, ctx.store.describe(item.oid), err.message,
                                        fix=_fix_for(err)))
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
            report.problems.append(problem)
    if report.problems:
        by_blob = {blob: p for p, item in ((p, found[p.pointer]) for p in report.problems) for blob in item.blobs}
        for blob, hits in reachable.introducing_commits(set(by_blob), rev_args, cwd).items():
            by_blob[blob].commits.extend(h for h in hits if h not in by_blob[blob].commits)
    return report


# -- gc -------------------------------------------------------------------------------------------

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

    @property
    def complete(self) -> bool:
        return not self.stopped and not self.failed

    @property
    def exit_status(self) -> int:
        return BUDGET_EXIT if self.stopped else (1 if self.failed else 0)

    def to_json(self) -> dict[str, Any]:
        def entry(e: Entry) -> dict[str, Any]:
            return {"key": e.key, "oid": e.oid, "kind": e.kind, "bytes": e.stored_bytes,
                    "last_modified": _iso(e.last_modified)}

        def upload(u: Upload) -> dict[str, Any]:
            return {"key": u.key, "upload_id": u.upload_id, "initiated": _iso(u.initiated)}

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
        what = (f"{_plural(len(objects), 'object')} ({human_bytes(sum(e.stored_bytes for e in objects))}) and "
                f"{_plural(len(records), 'link record')} unreferenced for longer than {self.grace}")
        if self.dry_run:
            lines.append(f"would delete {what}:" if self.candidates else f"nothing to delete: {what}")
            lines.extend(f"  {e.key}  {human_bytes(e.stored_bytes)}  {_when(e.last_modified)}"
                         for e in self.candidates)
        lines.append(f"kept: {self.kept_referenced} referenced, {self.kept_young} newer than {self.grace}")
        if self.foreign:
            lines.append(f"foreign keys, left alone: {len(self.foreign)}")
            lines.extend(f"  {f.key}" for f in self.foreign[:20])
            if len(self.foreign) > 20:
                lines.append(f"  ... and {len(self.foreign) - 20} more")
        if self.stale_uploads:
            verb = "would abort" if self.dry_run else "stale"
            lines.append(f"{verb} {_plural(len(self.stale_uploads), 'unfinished multipart upload')} older than "
                         f"{self.grace}:")
            lines.extend(f"  {u.key}  (started {_when(u.initiated)})" for u in self.stale_uploads)
        if not self.dry_run:
            d_obj = [e for e in self.deleted if e.kind == "stored"]
            lines.append(f"deleted {_plural(len(d_obj), 'object')} and "
                         f"{_plural(len(self.deleted) - len(d_obj), 'link record')}: "
                         f"{human_bytes(sum(e.stored_bytes for e in self.deleted))} reclaimed; aborted "
                         f"{_plural(len(self.aborted), 'multipart upload')}")
            lines.extend(f"failed to delete {k}: {m}" for k, m in self.failed)
        lines.append(f"S3 requests: {self.requests}" + (f" (of at most {self.max_requests})"
                                                        if self.max_requests is not None else ""))
        if self.stopped:
            lines.append(self.stopped)
        elif self.dry_run and (self.candidates or self.stale_uploads):
            lines.append("dry run: nothing was deleted; run `lfs-s3-agent gc --force` to delete")
        return lines


def gc(flags: Mapping[str, Any] | None = None, *, force: bool = False, grace: str = "7d",
       max_requests: int | None = None, keep_from: str | None = None, cwd: Cwd = None, quiet: bool = False,
       now: datetime | None = None) -> GcReport:
    """Delete (with ``force``) stored objects and link records no ref references, older than ``grace``."""
    grace_seconds = parse_duration(grace)
    if max_requests is not None and max_requests < 1:
        raise ConfigError("--max-requests must be at least 1")
    ctx = open_store(flags, cwd, need_repo=True)
    report = GcReport(store=ctx.where, dry_run=not force, grace=grace, max_requests=max_requests)
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

    s = ctx.store.settings
    client = ctx.store.client
    budget = Budget(max_requests)
    try:
        listing = list_store(client, s.bucket, s.prefix, ctx.tr(), budget, quiet=quiet)
        uploads = list_uploads(client, s.bucket, s.prefix, ctx.tr(), budget)
    except BudgetReached:
        report.requests = budget.used
        report.stopped = (f"budget reached while listing the store ({budget.used} requests): nothing deleted; "
                          "listing needs one request per 1,000 keys: raise --max-requests")
        return report
    cutoff = (now or datetime.now(UTC)).timestamp() - grace_seconds
    report.foreign = listing.foreign
    for e in listing.entries:
        if e.oid in referenced:
            report.kept_referenced += 1
        elif e.last_modified.timestamp() > cutoff:
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
                budget.spend()
                _delete_batch(ctx, batch, report)
                bar.advance(len(batch), sum(e.stored_bytes for e in batch))
            for upload in report.stale_uploads:
                budget.spend()
                try:
                    client.abort_multipart_upload(Bucket=s.bucket, Key=upload.key, UploadId=upload.upload_id)
                except Exception as exc:
                    err = _error(ctx.store, exc, upload.key)
                    if "NoSuchUpload" not in err.message:  # finished or aborted meanwhile: fine
                        report.failed.append((upload.key, err.message))
                        continue
                report.aborted.append(upload)
        except BudgetReached:
            report.stopped = (f"budget reached: deleted {len(report.deleted)} of {total} "
                              f"(aborted {len(report.aborted)} of {len(report.stale_uploads)} stale uploads) within "
                              f"--max-requests {max_requests}; run again to continue")
    report.requests = budget.used
    return report


def _delete_batch(ctx: Context, batch: list[Entry], report: GcReport) -> None:
    s = ctx.store.settings
    for e in batch:  # never anything outside our layout, whatever the listing said
        if classify(s.prefix, e.key) != (e.kind, e.oid):
            raise AgentError(f"refusing to delete {e.key}: not a key of ours", code=Code.INTERNAL)
    try:
        resp = ctx.store.client.delete_objects(Bucket=s.bucket, Delete={"Objects": [{"Key": e.key} for e in batch],
                                                                         "Quiet": True})
    except Exception as exc:
        raise _error(ctx.store, exc) from None
    errors = {err["Key"]: f"{err.get('Code')}: {err.get('Message', '')}" for err in resp.get("Errors", [])}
    for e in batch:
        if e.key in errors:
            report.failed.append((e.key, errors[e.key]))
        else:
            report.deleted.append(e)


# -- ls / du --------------------------------------------------------------------------------------

@dataclass
class Inventory:
    store: str
    entries: list[Entry]
    foreign: list[Foreign]
    head: dict[str, Reached] | None  #: oid -> pointer in HEAD; None outside a repository

    def in_head(self, oid: str) -> bool | None:
        return None if self.head is None else oid in self.head


def inventory(flags: Mapping[str, Any] | None = None, *, cwd: Cwd = None, read_links: bool = True,
              quiet: bool = False) -> Inventory:
    ctx = open_store(flags, cwd, need_repo=False)
    s = ctx.store.settings
    head: dict[str, Reached] | None = None
    if ctx.repo is not None:
        head = {}
        if reachable.has_commits("HEAD", cwd):
            head = {r.oid: r for r in reachable.scan(["HEAD^{tree}"], cwd).values()}
    listing = list_store(ctx.store.client, s.bucket, s.prefix, ctx.tr(), quiet=quiet)
    linked = [e for e in listing.entries if e.kind == "linked"]
    for e in linked:
        if head and e.oid in head:
            e.linked_size = head[e.oid].pointer.size
    if read_links and linked:
        def one(e: Entry) -> None:
            try:
                record = ctx.store.read_link_record(e.oid)
            except AgentError as err:
                e.source = f"(unreadable: {err.message})"
            else:
                if record is not None:
                    e.linked_size, e.source = record.size, record.describe()
            bar.advance(1)

        with Progress("reading link records", len(linked), quiet=quiet) as bar, ThreadPoolExecutor(WORKERS) as pool:
            list(pool.map(one, linked))
    entries = sorted(listing.entries, key=lambda e: (e.oid, e.kind))
    return Inventory(ctx.where, entries, listing.foreign, head)


def ls_json(inv: Inventory) -> dict[str, Any]:
    rows = []
    for e in inv.entries:
        ref = inv.head.get(e.oid) if inv.head else None
        rows.append({"oid": e.oid, "key": e.key, "kind": e.kind, "size": e.size, "stored_bytes": e.stored_bytes,
                     "last_modified": _iso(e.last_modified), "in_head": inv.in_head(e.oid),
                     "path": ref.path if ref else None, "source": e.source})
    return {"store": inv.store, "objects": rows, "foreign_keys": [{"key": f.key, "bytes": f.size}
                                                                   for f in inv.foreign]}


def ls_render(inv: Inventory) -> list[str]:
    lines = [f"{inv.store}: {_plural(len(inv.entries), 'object')}"
             + (" (HEAD column: referenced by HEAD)" if inv.head is not None else " (not in a repository)")]
    for e in inv.entries:
        ref = inv.head.get(e.oid) if inv.head else None
        size = human_bytes(e.size) if e.size is not None else "?"
        mark = {True: "HEAD", False: "-", None: "?"}[inv.in_head(e.oid)]
        tail = f"  {ref.path}" if ref else ""
        if e.kind == "linked" and e.source:
            tail += f"  -> {e.source}"
        lines.append(f"{_when(e.last_modified)}  {size:>10}  {e.kind:<6}  {mark:<4}  {e.oid}{tail}")
    if inv.foreign:
        lines.append(f"foreign keys (not ours, left alone): {len(inv.foreign)}")
        lines.extend(f"  {f.key}  {human_bytes(f.size)}" for f in inv.foreign[:20])
    return lines


@dataclass
class Usage:
    store: str
    stored: dict[str, int]
    linked: dict[str, int]
    foreign: dict[str, int]
    head_objects: int | None
    head_missing: int | None

    def to_json(self) -> dict[str, Any]:
        return {"store": self.store, "stored": self.stored, "linked": self.linked, "foreign": self.foreign,
                "head_objects": self.head_objects, "head_missing": self.head_missing}

    def render(self) -> list[str]:
        st, ln, fo = self.stored, self.linked, self.foreign

        def row(label: str, count: int, size: int, note: str = "") -> str:
            return f"  {label:<22}{count:>8}  {human_bytes(size):>10}" + (f"  ({note})" if note else "")

        lines = [f"{self.store}:", row("stored objects", st["count"], st["bytes"])]
        if self.head_objects is not None:
            lines.append(row("  referenced by HEAD", st["head_count"], st["head_bytes"]))
            lines.append(row("  not in HEAD", st["count"] - st["head_count"], st["bytes"] - st["head_bytes"]))
        lines.append(row("linked objects", ln["count"], ln["record_bytes"], "their link records"))
        if self.head_objects is not None:
            lines.append(row("  referenced by HEAD", ln["head_count"], ln["head_bytes"], "in their originals"))
        if fo["count"]:
            lines.append(row("foreign keys", fo["count"], fo["bytes"], "not ours, left alone"))
        if self.head_objects is not None:
            lines.append(f"HEAD references {_plural(self.head_objects, 'LFS object')}"
                         + (f"; {self.head_missing} of them not in the store (run `lfs-s3-agent verify`)"
                            if self.head_missing else ""))
        return lines


def du(flags: Mapping[str, Any] | None = None, *, cwd: Cwd = None, quiet: bool = False) -> Usage:
    inv = inventory(flags, cwd=cwd, read_links=False, quiet=quiet)
    stored = [e for e in inv.entries if e.kind == "stored"]
    linked = [e for e in inv.entries if e.kind == "linked"]
    head = inv.head
    in_head = head or {}
    usage = Usage(
        store=inv.store,
        stored={"count": len(stored), "bytes": sum(e.stored_bytes for e in stored),
                "head_count": sum(1 for e in stored if e.oid in in_head),
                "head_bytes": sum(e.stored_bytes for e in stored if e.oid in in_head)},
        linked={"count": len(linked), "record_bytes": sum(e.stored_bytes for e in linked),
                "head_count": sum(1 for e in linked if e.oid in in_head),
                "head_bytes": sum(in_head[e.oid].pointer.size for e in linked if e.oid in in_head)},
        foreign={"count": len(inv.foreign), "bytes": sum(f.size for f in inv.foreign)},
        head_objects=None if head is None else len(head),
        head_missing=None if head is None else len(set(head) - {e.oid for e in inv.entries}),
    )
    return usage
