"""``import``: make ordinary LFS objects from S3 objects (Kart's import by copy, beside ``link``).

The same patterns, source settings, oids and files as ``link`` (``link.plan`` and ``link.place``),
but the bytes are copied into the LFS store under their oid keys, so the dataset no longer
depends on its originals: no link record is kept. Per object, the cheapest way that works:

- already in the store (same oid, same size): nothing to do;
- server-side (``s3.copy.server_copy``: CopyObject, UploadPartCopy above 5 GB) when the source is
  on the store's endpoint: no object bytes pass through this machine. The copy is checked by the
  SHA-256 S3 computes of it, else read back (with ``checkout``, that read is the checkout's own
  download), else (``verify=False``) reported as unverified. ``AccessDenied`` or a store that
  cannot copy switches the rest of the run to:
- streamed: downloaded (checked against the oid) and uploaded through the store's own upload.

An object that fails is reported and gets no file; the others go on.
"""

from __future__ import annotations

import os
import shlex
import threading
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lfs_s3_agent.commands.common import plural
from lfs_s3_agent.commands.copy import verification
from lfs_s3_agent.commands.link import (
    Plan,
    Source,
    _download_to_storage,
    _hash_missing,
    object_path,
    place,
    plan,
)
from lfs_s3_agent.console import Progress, human_bytes
from lfs_s3_agent.errors import AgentError, Code
from lfs_s3_agent.lfsdirs import LfsDirs, download_into_objects, download_verified, remove
from lfs_s3_agent.linked import LocalLinks, local_links_dir
from lfs_s3_agent.progress import ProgressReporter
from lfs_s3_agent.s3 import copy as s3copy
from lfs_s3_agent.s3.client import ClientSpec, S3Client, make_client
from lfs_s3_agent.s3.transfer import fetch
from lfs_s3_agent.store import S3Store


@dataclass
class Imported:
    """One object's outcome."""

    url: str
    oid: str
    size: int
    how: str = ""  #: "server-side", "server-side multipart", "streamed", "already stored"
    verified: str = ""  #: how the stored copy was checked (``s3.copy.VERIFIED_BY``) or "unverified"
    error: str = ""

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"original": self.url, "oid": self.oid, "size": self.size, "how": self.how,
                               "verified": self.verified}
        if self.error:
            out["error"] = self.error
        return out


@dataclass
class ImportReport:
    to: str = ""
    objects: list[Imported] = field(default_factory=list)
    paths: list[str] = field(default_factory=list)
    gitattributes: str | None = None
    hashed: int = 0
    bytes_downloaded: int = 0  #: object bytes that passed through this machine (hashing, streaming, checking)
    fallback: str = ""  #: why copies went through this machine
    hook_note: str | None = None
    requests: dict[str, int] = field(default_factory=dict)  #: S3 requests made, by operation

    @property
    def failed(self) -> list[Imported]:
        return [o for o in self.objects if o.error]

    @property
    def done(self) -> list[Imported]:
        return [o for o in self.objects if not o.error]

    @property
    def unverified(self) -> list[Imported]:
        return [o for o in self.done if o.verified == s3copy.UNVERIFIED]

    @property
    def exit_status(self) -> int:
        return 1 if self.failed else 0

    @property
    def notes(self) -> list[str]:
        return [self.hook_note] if self.hook_note else []

    def to_json(self) -> dict[str, Any]:
        return {"imported": len(self.done), "failed": len(self.failed), "objects": [o.to_json() for o in self.objects],
                "bytes_imported": sum(o.size for o in self.done), "bytes_downloaded": self.bytes_downloaded,
                "hashed": self.hashed, "paths": self.paths, "gitattributes": self.gitattributes,
                "fallback": self.fallback, "unverified": [o.url for o in self.unverified], "requests": self.requests}

    def render(self) -> list[str]:
        lines = [f"added to .gitattributes: {self.gitattributes}"] if self.gitattributes else []
        if self.fallback:
            lines.append(f"note: {self.fallback}")
        lines.extend(f"FAILED {o.url}: {o.error}" for o in self.failed)
        done = self.done
        server = sum(1 for o in done if o.how.startswith("server-side"))
        streamed = sum(1 for o in done if o.how == "streamed")
        there = sum(1 for o in done if o.how == "already stored")
        lines.append(f"imported {plural(len(done), 'object')} ({human_bytes(sum(o.size for o in done))}): {server} "
                     f"copied server-side, {streamed} streamed, {there} already in the store; "
                     f"{verification([o for o in done if o.how != 'already stored'])}; "
                     f"{human_bytes(self.bytes_downloaded)} downloaded"
                     + (f" ({self.hashed} hashed by reading them)" if self.hashed else "")
                     + f"; {len(self.failed)} failed")
        if self.unverified:
            lines.append(f"{plural(len(self.unverified), 'copy')} could not be checked: the store returned no SHA-256 "
                         "for them and --no-verify skipped reading them back; `lfs-s3-agent verify --deep` checks "
                         "them")
        if self.failed:
            lines.append("the failed objects got no file; run the same command again for them (what is in the store "
                         "is not copied again)")
        if self.paths:
            lines.append("next: git add .gitattributes " + shlex.quote(self.to) + " && git commit -m 'import data' && "
                         "git push")
        return lines


class _Importer:
    """Puts each object into the store: already there, server-side, or streamed (see the module doc)."""

    def __init__(self, store: S3Store, p: Plan, *, checkout: bool, verify: bool, jobs: int) -> None:
        self.store = store
        self.plan = p
        self.dirs = LfsDirs(p.storage)
        self.checkout = checkout
        self.verify = verify
        self.jobs = jobs
        self.lock = threading.Lock()
        self.fallback = ""
        self.refused = False  #: server-side copies were refused once: stream the rest
        self.downloaded = 0
        self._copiers: dict[bool, S3Client] = {}

    def copier(self, request_payer: bool) -> S3Client:
        """The store's client (its credentials write the copy), saying the requester pays when the source needs it."""
        with self.lock:
            if request_payer not in self._copiers:
                spec = ClientSpec.for_store(self.store.settings, pool=self.jobs).with_(request_payer=request_payer)
                self._copiers[request_payer] = make_client(spec, counter=self.store.requests)
            return self._copiers[request_payer]

    def one(self, item: Source, out: Imported) -> None:
        oid = out.oid
        if self.store.stat(oid) == item.size:
            out.how = "already stored"
            self.ensure_local(item)
            return
        source, _ = self.plan.sources.get(item.pattern.bucket)
        same_endpoint = (source.endpoint_url or None) == (self.store.settings.endpoint_url or None)
        if same_endpoint and not self.refused:
            try:
                out.how, out.verified = self.server_side(item, source.request_payer)
                return
            except AgentError as err:
                if err.code != Code.ACCESS_DENIED and err.s3_code not in s3copy.NO_SERVER_COPY:
                    raise
                with self.lock:
                    if not self.refused:
                        self.refused = True
                        self.fallback = (f"server-side copy was refused ({err.message}); copying through this "
                                         "machine instead (read with the source's settings)")
        elif not same_endpoint and not self.fallback:
            with self.lock:
                self.fallback = ("the originals are not on the LFS store's endpoint: their bytes are copied through "
                                 "this machine")
        self.streamed(item)
        out.how, out.verified = "streamed", "hashed"

    def server_side(self, item: Source, request_payer: bool) -> tuple[str, str]:
        s = self.store.settings
        key = self.store.key(item.oid or "")
        oid = item.oid or ""
        client = self.copier(request_payer)
        source = s3copy.CopySource(item.pattern.bucket, item.key, version_id=item.version_id, etag=item.etag)
        result = s3copy.server_copy(client, source, bucket=s.bucket, key=key, size=item.size,
                                    args=self.store.put_args(oid), part_size=s.part_size, concurrency=s.concurrency)
        read = None
        if self.checkout and not self.dirs.has(oid):
            read = self.download_from_store(item)  # the checkout's download is the verification read
        elif self.verify:
            read = s3copy.read_back(client, bucket=s.bucket, key=key, size=item.size, max_attempts=s.max_attempts)
        verified = s3copy.checked(result, oid, read=read, where=f"{item.url} (copied to s3://{s.bucket}/{key})",
                                  discard=s3copy.discarder(client, s.bucket, key),
                                  fix="the original's bytes are not what its checksum (or an earlier read) said")
        if verified == "read":
            self.count(item.size)
        self.ensure_local(item)  # checked by S3's SHA-256: the checkout still needs the bytes
        return result.how, verified

    def download_from_store(self, item: Source) -> Any:
        oid = item.oid or ""

        def read() -> str:
            return download_into_objects(
                lambda sink: self.store.download(oid, item.size, sink, ProgressReporter(item.size, _noop)), self.dirs,
                oid=oid, size=item.size, where=lambda: self.store.describe(oid))

        return read

    def ensure_local(self, item: Source) -> None:
        """With ``checkout``, the object's bytes in lfs/objects (from the store, which has them)."""
        if self.checkout and item.oid and not self.dirs.has(item.oid):
            self.download_from_store(item)()
            self.count(item.size)

    def streamed(self, item: Source) -> None:
        """Download the original (checked against the oid), then upload it with the store's own upload."""
        oid = item.oid or ""
        bucket = item.pattern.bucket
        _, client = self.plan.sources.get(bucket)
        pin = {"version_id": item.version_id, "etag": None if item.version_id else item.etag}
        progress = ProgressReporter(item.size, _noop)
        try:
            if self.dirs.has(oid):
                path = None
            elif self.checkout:
                _download_to_storage(client, bucket, item.key, item.size, self.dirs.root, self.plan.sources.knobs,
                                     expected=oid, **pin)
                self.count(item.size)
                path = None
            else:
                path, _ = download_verified(
                    lambda sink: fetch(client, bucket=bucket, key=item.key, size=item.size, sink=sink,
                                       progress=progress, knobs=self.plan.sources.knobs, expect=oid, **pin),
                    oid=oid, size=item.size, where=lambda: item.url, opener=self.dirs.opener)
                self.count(item.size)
        except AgentError as err:
            raise self.plan.sources.translate(bucket, item.key)(err) from None
        try:
            self.store.upload(oid, item.size, Path(path) if path else self.dirs.object_path(oid), progress)
        finally:
            if path:
                remove(path)

    def count(self, size: int) -> None:
        with self.lock:
            self.downloaded += size


def _noop(_a: int, _b: int) -> None:
    pass


def import_objects(patterns: list[str], to: str, *, checkout: bool = True, hash_missing: bool = False,
                   force: bool = False, source_flags: Mapping[str, Any] | None = None, jobs: int = 16,
                   verify: bool = True, cwd: str | os.PathLike[str] | None = None, quiet: bool = False) -> ImportReport:
    """Copy the matched S3 objects into the LFS store and write their files under ``to`` (see the module doc)."""
    from lfs_s3_agent import wiring

    store = wiring.build(cwd=cwd, need_repo=True).s3_store()  # where the bytes go: a configured store
    store.needs_credentials("an import")
    p = plan(patterns, to, command="import", hash_missing=hash_missing, force=force, source_flags=source_flags,
             jobs=jobs, cwd=cwd, quiet=quiet)
    report = ImportReport(to=to)
    if p.items:
        store.writes_as_configured()  # SSE the store would not apply: nothing is copied
    if p.missing:
        report.hashed = len(p.missing)
        report.bytes_downloaded += _hash_missing(p.missing, p.sources, p.storage if checkout else None, jobs, quiet)
    importer = _Importer(store, p, checkout=checkout, verify=verify, jobs=jobs)
    outcomes = {id(item): Imported(item.url, item.oid or "", item.size) for item in p.items}

    def one(item: Source) -> None:
        out = outcomes[id(item)]
        try:
            importer.one(item, out)
        except AgentError as err:
            out.error = err.message
        bar.advance(1, item.size)

    with Progress("importing", len(p.items), quiet=quiet) as bar, ThreadPoolExecutor(max(1, min(jobs, 8))) as pool:
        list(pool.map(one, p.items))
    report.objects = [outcomes[id(item)] for item in p.items]
    report.fallback = importer.fallback
    report.bytes_downloaded += importer.downloaded
    failed = {o.oid for o in report.failed}
    links = LocalLinks(local_links_dir(p.repo.common_dir))
    for o in report.done:
        links.remove(o.oid)  # imported: no longer linked here (the store has the bytes)
    if checkout:
        failed |= {i.oid or "" for i in p.items if not object_path(p.storage, i.oid or "").exists()}
    if not checkout:
        from lfs_s3_agent.commands.prepush import mark_imported

        mark_imported(p.repo.common_dir, {o.oid for o in report.done})
    report.paths, report.gitattributes, report.hook_note = place(p, checkout=checkout, cwd=cwd, skip=failed)
    report.requests = {**p.sources.requests}
    for op, n in store.requests.items():
        report.requests[op] = report.requests.get(op, 0) + n
    return report
