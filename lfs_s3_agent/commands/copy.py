"""``copy``: mirror or migrate the store to another bucket, prefix, region, endpoint or account.

Every stored object and link record under the source prefix is copied to the same
relative key under the destination prefix; foreign keys are not. Per object, the
cheapest way that works is used:

- server-side ``CopyObject`` (objects up to 5 GB) or ``UploadPartCopy`` (larger ones), with
  the destination's credentials, when both sides are on the same endpoint (``s3.copy``). S3
  computes a SHA-256 of the copy, which is checked against the oid; a copy without one (a
  store that keeps no checksums, a multipart copy) is read back and hashed, or, with
  ``verify=False``, reported as unverified. An ``AccessDenied`` (the destination's credentials
  cannot read the source) switches the rest of the run to:
- a streamed copy through this machine: read with the source's credentials, written with
  the destination's, never more than one part per object in memory; the bytes are hashed on
  the way and must match the oid before the object is completed at the destination.

Copies keep the ``sha256`` metadata and send ``ChecksumSHA256`` so the destination checks
the bytes. A run is restartable: objects already at the destination with the same size and
the same checksum or ``sha256`` metadata are skipped, so a second run copies only the rest.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import shlex
import threading
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from lfs_s3_agent import settings
from lfs_s3_agent.commands.common import Context, Cwd, open_store, plural
from lfs_s3_agent.console import Progress, human_bytes
from lfs_s3_agent.errors import AgentError, Code, ConfigError, IntegrityError
from lfs_s3_agent.links import full_object_sha256
from lfs_s3_agent.progress import ProgressReporter
from lfs_s3_agent.s3 import copy as s3copy
from lfs_s3_agent.s3.client import ClientSpec, S3Client, make_client
from lfs_s3_agent.s3.keys import b64sha256, checksum_of
from lfs_s3_agent.s3.listing import Entry, Foreign, list_store
from lfs_s3_agent.s3.retry import Attempts
from lfs_s3_agent.s3.transfer import PartPlan, stream_download
from lfs_s3_agent.s3glob import parse_s3_url
from lfs_s3_agent.settings import Settings
from lfs_s3_agent.store import S3Store

_FATAL = (Code.CREDENTIALS, Code.NO_SUCH_BUCKET)


def parse_destination(url: str) -> tuple[str, str]:
    """``s3://bucket/prefix`` -> (bucket, prefix), both checked like the settings."""
    try:
        bucket, key = parse_s3_url(url)
        return (settings.FIELDS_BY_NAME["bucket"].normalize(bucket),
                settings.FIELDS_BY_NAME["prefix"].normalize(key))
    except ValueError as exc:
        raise ConfigError(f"destination: {exc}") from None


def pooled_client(values: Settings, pool: int) -> S3Client:
    """The store's client (every setting of it) with room for ``pool`` parallel connections."""
    return make_client(ClientSpec.for_store(values, pool=pool))


@dataclass
class Item:
    entry: Entry
    dest_key: str
    how: str = ""  #: "server-side", "server-side multipart", "streamed", "skipped" or "" (not done)
    error: str = ""
    verified: str = ""  #: how the copy was checked (``s3.copy.VERIFIED_BY``) or "unverified"


@dataclass
class CopyReport:
    source: str
    destination: str
    dry_run: bool
    copied: list[Item] = field(default_factory=list)
    skipped: list[Item] = field(default_factory=list)  #: already at the destination
    failed: list[Item] = field(default_factory=list)
    not_attempted: list[Item] = field(default_factory=list)  #: left after a fatal error
    archived: list[Item] = field(default_factory=list)  #: in an archive class, not restored: skipped
    foreign: list[Foreign] = field(default_factory=list)
    fallback: str = ""  #: why copies went through this machine
    install_command: str = ""

    @property
    def ok(self) -> bool:
        return not self.failed and not self.not_attempted

    @property
    def unverified(self) -> list[Item]:
        """Copies whose bytes nothing checked (a server-side copy without a SHA-256, with ``--no-verify``)."""
        return [i for i in self.copied if i.verified == s3copy.UNVERIFIED]

    @property
    def exit_status(self) -> int:
        return 0 if self.ok else 1

    def to_json(self) -> dict[str, Any]:
        def item(i: Item) -> dict[str, Any]:
            out: dict[str, Any] = {"key": i.entry.key, "dest_key": i.dest_key, "kind": i.entry.kind,
                                   "bytes": i.entry.stored_bytes, "how": i.how}
            if i.verified:
                out["verified"] = i.verified
            if i.error:
                out["error"] = i.error
            return out

        return {"source": self.source, "destination": self.destination, "dry_run": self.dry_run,
                "copied": [item(i) for i in self.copied], "skipped": [item(i) for i in self.skipped],
                "failed": [item(i) for i in self.failed], "not_attempted": [item(i) for i in self.not_attempted],
                "archived": [item(i) for i in self.archived],
                "copied_bytes": sum(i.entry.stored_bytes for i in self.copied),
                "unverified": [i.dest_key for i in self.unverified],
                "foreign_keys": [f.key for f in self.foreign], "fallback": self.fallback, "ok": self.ok,
                "install_command": self.install_command}

    def render(self) -> list[str]:
        lines: list[str] = []
        if self.dry_run:
            lines.extend(f"would copy {i.entry.key} -> {i.dest_key} ({human_bytes(i.entry.stored_bytes)})"
                         for i in self.copied)
        if self.fallback:
            lines.append(f"note: {self.fallback}")
        for i in self.failed:
            lines.append(f"FAILED {i.entry.key}: {i.error}")
        for i in self.archived:
            lines.append(f"ARCHIVED {i.entry.key}: skipped (not readable until restored)")
        verb = "would copy" if self.dry_run else "copied"
        server = sum(1 for i in self.copied if i.how.startswith("server-side"))
        how = "" if self.dry_run else (f" ({server} server-side, {len(self.copied) - server} streamed; "
                                       f"{verification(self.copied)})")
        lines.append(f"{self.source} -> {self.destination}: {verb} {len(self.copied)} keys "
                     f"({human_bytes(sum(i.entry.stored_bytes for i in self.copied))}){how}, "
                     f"{len(self.skipped)} already there, {len(self.failed)} failed"
                     + (f", {len(self.not_attempted)} not attempted" if self.not_attempted else "")
                     + (f", {len(self.archived)} archived skipped" if self.archived else ""))
        if self.archived:
            lines.append(f"{len(self.archived)} archived objects (Glacier/Deep Archive) were skipped: run "
                         "`lfs-s3-agent restore --all`, then this command again when they are restored")
        if self.foreign:
            lines.append(f"foreign keys under the source prefix, not copied: {len(self.foreign)}")
        if self.unverified:
            lines.append(f"{plural(len(self.unverified), 'copy')} could not be checked: the store returned no SHA-256 "
                         "for them and --no-verify skipped reading them back; run the copy again without --no-verify, "
                         "or `lfs-s3-agent verify --all --deep` against the destination")
        if not self.ok:
            lines.append("run the same command again to copy the rest (what is there is skipped)")
        elif not self.dry_run:
            lines.append(f"to use the copy from this repository:\n  {self.install_command}")
        return lines


class _Copier:
    def __init__(self, ctx: Context, dest: S3Store, src_client: S3Client, dest_client: S3Client, server_side: bool,
                 echo: Callable[[str], None] | None, verify: bool = True) -> None:
        self.ctx = ctx
        self.src = ctx.store.settings
        self.dest = dest
        self.d = dest.settings
        self.src_client = src_client
        self.dest_client = dest_client
        self.server_side = server_side
        self.verify = verify
        self.fallback = ""
        self.echo = echo
        self.lock = threading.Lock()
        self.stop = threading.Event()

    def dest_url(self, key: str) -> str:
        return f"s3://{self.d.bucket}/{key}"

    # -- already there? ------------------------------------------------------------------------

    def already_there(self, item: Item, listed: Mapping[str, tuple[int, str]]) -> bool:
        e = item.entry
        there = listed.get(item.dest_key)
        if there is None or there[0] != e.stored_bytes:
            return False
        if e.kind == "linked":
            return bool(e.etag) and there[1] == e.etag  # a small JSON record: same MD5 ETag, same bytes
        try:
            head = self.dest_client.head_object(Bucket=self.d.bucket, Key=item.dest_key, ChecksumMode="ENABLED")
        except AgentError as err:
            if err.code == Code.NOT_FOUND:
                return False
            raise
        return head.get("Metadata", {}).get("sha256") == e.oid or full_object_sha256(head)[0] == e.oid

    # -- copying ---------------------------------------------------------------------------------

    def copy(self, item: Item) -> None:
        if self.server_side:
            try:
                item.how = self.server_copy(item)
                return
            except AgentError as err:
                if err.code != Code.ACCESS_DENIED and err.s3_code not in s3copy.NO_SERVER_COPY:
                    raise
                with self.lock:
                    if self.server_side:
                        self.server_side = False
                        self.fallback = (f"server-side copy was refused ({err.message}); copying through this "
                                         "machine instead (read with the source's credentials)")
        item.how = self.streamed_copy(item)
        item.verified = "hashed"  # every byte hashed on the way, and sent with its SHA-256

    def _args(self, e: Entry) -> dict[str, Any]:
        if e.kind == "linked":
            return {"ContentType": "application/json"}
        return self.dest.put_args(e.oid)

    def server_copy(self, item: Item) -> str:
        e = item.entry
        if e.kind == "stored" and e.stored_bytes > s3copy.SERVER_COPY_LIMIT:
            head = self.src_client.head_object(Bucket=self.src.bucket, Key=e.key)
            recorded = head.get("Metadata", {}).get("sha256")
            if recorded and recorded != e.oid:
                raise IntegrityError(f"s3://{self.src.bucket}/{e.key} is recorded as another oid ({recorded}); not "
                                     "copied: run `lfs-s3-agent verify --all` on the source")
        source = s3copy.CopySource(self.src.bucket, e.key, etag=e.etag or None)
        result = s3copy.server_copy(self.dest_client, source, bucket=self.d.bucket, key=item.dest_key,
                                    size=e.stored_bytes, args=self._args(e), part_size=self.d.part_size,
                                    concurrency=self.d.concurrency)
        item.verified = self.check(item, result)
        return result.how

    def check(self, item: Item, result: s3copy.CopyResult) -> str:
        """How the copy is known to be right (see ``s3.copy.checked``); a bad copy is removed and raises."""
        e = item.entry
        discard = s3copy.discarder(self.dest_client, self.d.bucket, item.dest_key)
        if e.kind == "linked":  # a small JSON record: the same MD5 ETag, else both read and compared
            if e.etag and result.etag == e.etag:
                return "etag"
            if not self.verify:
                return s3copy.UNVERIFIED
            mine = self.src_client.get_object(Bucket=self.src.bucket, Key=e.key)["Body"].read()
            theirs = self.dest_client.get_object(Bucket=self.d.bucket, Key=item.dest_key)["Body"].read()
            if mine != theirs:
                discard()
                raise IntegrityError(f"s3://{self.src.bucket}/{e.key}: the copied link record differs from the "
                                     "original; the copy was removed")
            return "read"
        read = s3copy.read_back(self.dest_client, bucket=self.d.bucket, key=item.dest_key, size=e.stored_bytes,
                                max_attempts=self.d.max_attempts) if self.verify else None
        return s3copy.checked(result, e.oid, read=read, discard=discard,
                              where=f"s3://{self.src.bucket}/{e.key} (copied to {self.dest_url(item.dest_key)})",
                              fix="run `lfs-s3-agent verify --all --deep` on the source")

    def streamed_copy(self, item: Item) -> str:
        e = item.entry
        size = e.stored_bytes
        if size > self.d.multipart_threshold and e.kind == "stored":
            self.streamed_multipart(item)
            return "streamed"
        buf = io.BytesIO()
        digest = stream_download(self.src_client, bucket=self.src.bucket, key=e.key, size=size, sink=buf,
                                 progress=ProgressReporter(size, _noop), attempts=Attempts(self.src.max_attempts),
                                 extra={}, etag=e.etag or None, checked=e.kind == "stored")
        data = buf.getvalue()
        if len(data) != size or (e.kind == "stored" and digest != e.oid):
            raise IntegrityError(f"s3://{self.src.bucket}/{e.key}: read {len(data)} bytes hashing to {digest}; "
                                 f"expected {size} bytes{' and the oid' if e.kind == 'stored' else ''}: not copied")
        checksum = checksum_of(e.oid) if e.kind == "stored" else b64sha256(data)
        self.dest_client.put_object(Bucket=self.d.bucket, Key=item.dest_key, Body=data, ContentLength=size,
                                    ChecksumSHA256=checksum, **self._args(e))
        return "streamed"

    def streamed_multipart(self, item: Item) -> None:
        """Part by part (one part in memory): ranged GET pinned to the ETag, UploadPart with its SHA-256."""
        e = item.entry
        plan = PartPlan.make(e.stored_bytes, self.d.part_size, 1)
        upload_id = self.dest_client.create_multipart_upload(
            Bucket=self.d.bucket, Key=item.dest_key, ChecksumAlgorithm="SHA256", **self._args(e))["UploadId"]
        whole = hashlib.sha256()
        parts = []
        try:
            for number, offset, length in plan.parts():
                data = self._read_range(e, offset, length)
                whole.update(data)
                checksum = b64sha256(data)
                resp = self.dest_client.upload_part(Bucket=self.d.bucket, Key=item.dest_key, UploadId=upload_id,
                                                    PartNumber=number, Body=data, ContentLength=length,
                                                    ChecksumSHA256=checksum, ChecksumAlgorithm="SHA256")
                parts.append({"PartNumber": number, "ETag": resp["ETag"], "ChecksumSHA256": checksum})
            if whole.hexdigest() != e.oid:
                raise IntegrityError(f"s3://{self.src.bucket}/{e.key}: its bytes hash to {whole.hexdigest()}, not "
                                     "the oid: not copied; run `lfs-s3-agent verify --all --deep` on the source")
            self.dest_client.complete_multipart_upload(Bucket=self.d.bucket, Key=item.dest_key,
                                                       UploadId=upload_id, MultipartUpload={"Parts": parts})
        except BaseException:
            self._abort(item.dest_key, upload_id)
            raise

    def _read_range(self, e: Entry, offset: int, length: int) -> bytes:
        attempts = Attempts(self.src.max_attempts)
        while True:
            pin = {"IfMatch": e.etag} if e.etag else {}
            resp = self.src_client.get_object(Bucket=self.src.bucket, Key=e.key, **pin, attempts=attempts,
                                              Range=f"bytes={offset}-{offset + length - 1}")
            try:
                data: bytes = resp["Body"].read()
            except Exception as exc:
                err = self.src_client.error(exc, self.src.bucket, e.key)
                if not err.transient or attempts.left <= 0:
                    raise err from None
                attempts.wait()
                continue
            if len(data) != length:
                raise IntegrityError(f"s3://{self.src.bucket}/{e.key}: range at {offset} returned {len(data)} bytes, "
                                     f"expected {length}")
            return data

    def _abort(self, key: str, upload_id: str) -> None:
        with contextlib.suppress(Exception):  # best effort: gc at the destination aborts stale uploads
            self.dest_client.abort_multipart_upload(Bucket=self.d.bucket, Key=key, UploadId=upload_id)


def _noop(_a: int, _b: int) -> None:
    pass


def verification(items: list[Any]) -> str:
    """``3 verified by S3's SHA-256, 1 by reading it back, 2 hashed on the way, 1 unverified`` (counts that apply)."""
    counts: dict[str, int] = {}
    for item in items:
        counts[item.verified] = counts.get(item.verified, 0) + 1
    words = {"checksum": "verified by S3's SHA-256", "read": "by reading the copy back", "hashed": "hashed on the way",
             "etag": "by ETag", s3copy.UNVERIFIED: "UNVERIFIED"}
    parts = [f"{counts[k]} {words[k]}" for k in (*s3copy.VERIFIED_BY, s3copy.UNVERIFIED) if counts.get(k)]
    return ", ".join(parts) or "none to check"


def _same_place(a: Settings, b: Settings) -> bool:
    """Do the two stores overlap (same bucket on the same endpoint, one prefix inside the other)?"""
    if a.bucket != b.bucket or (a.endpoint_url or "") != (b.endpoint_url or ""):
        return False
    pa, pb = a.prefix, b.prefix
    return not pa or not pb or pa == pb or pa.startswith(pb + "/") or pb.startswith(pa + "/")


def destination_settings(src: Settings, bucket: str, prefix: str, *, profile: str | None, region: str | None,
                         endpoint_url: str | None) -> Settings:
    values = src.as_dict()
    values.update(bucket=bucket, prefix=prefix)
    try:
        if profile:
            values["profile"] = settings.FIELDS_BY_NAME["profile"].normalize(profile)
        if region:
            values["region"] = settings.FIELDS_BY_NAME["region"].normalize(region)
        if endpoint_url:
            values["endpoint_url"] = (None if endpoint_url.lower() == "aws"
                                      else settings.FIELDS_BY_NAME["endpoint_url"].normalize(endpoint_url))
    except ValueError as exc:
        raise ConfigError(f"destination: {exc}") from None
    return Settings(**values)


def install_command(src: Settings, dest: Settings, saved_in_file: bool) -> str:
    words = ["lfs-s3-agent", "install", "--bucket", dest.bucket]
    if dest.prefix:
        words += ["--prefix", dest.prefix]
    if dest.region != src.region and dest.region:
        words += ["--region", dest.region]
    if dest.endpoint_url != src.endpoint_url and dest.endpoint_url:
        words += ["--endpoint-url", dest.endpoint_url]
    if dest.profile != src.profile and dest.profile:
        words += ["--profile", dest.profile]
    if saved_in_file:
        words.append("--save")
    command = shlex.join(words)
    if src.endpoint_url and not dest.endpoint_url:
        command += "   # and drop the endpoint: git config --unset lfs-s3-agent.endpoint-url"
    return command


def copy(destination: str, *, flags: Mapping[str, Any] | None = None, dry_run: bool = False, jobs: int = 8,
         verify: bool = True,
         dest_profile: str | None = None, dest_region: str | None = None, dest_endpoint_url: str | None = None,
         cwd: Cwd = None, quiet: bool = False, echo: Callable[[str], None] | None = None) -> CopyReport:
    """Copy every object and link record of the store to ``s3://bucket/prefix``; see the module doc."""
    if jobs < 1:
        raise ConfigError("--jobs must be at least 1")
    bucket, prefix = parse_destination(destination)
    ctx = open_store(flags, cwd, need_repo=False)
    src = ctx.store.settings
    dest_values = destination_settings(src, bucket, prefix, profile=dest_profile, region=dest_region,
                                       endpoint_url=dest_endpoint_url)
    if _same_place(src, dest_values):
        raise ConfigError(f"{dest_values.describe()} overlaps the source {src.describe()}: copy to another bucket "
                          "or to a prefix outside the source's")
    dest = S3Store(dest_values)
    src_client = pooled_client(src, jobs)
    dest_client = pooled_client(dest_values, jobs)
    report = CopyReport(source=src.describe(), destination=dest_values.describe(), dry_run=dry_run,
                        install_command=install_command(src, dest_values,
                                                        ctx.wired.resolved.sources.get("bucket") ==
                                                        settings.SETTINGS_FILE))
    same_endpoint = (src.endpoint_url or "") == (dest_values.endpoint_url or "")
    copier = _Copier(ctx, dest, src_client, dest_client, same_endpoint, echo, verify=verify)
    if not same_endpoint:
        copier.fallback = "the destination is on another endpoint: copying through this machine"

    listing = list_store(src_client, src.bucket, src.prefix)
    report.foreign = listing.foreign
    there = list_store(dest_client, dest_values.bucket, dest_values.prefix)
    listed = {e.key: (e.stored_bytes, e.etag) for e in there.entries}
    base = f"{src.prefix}/" if src.prefix else ""
    items = [Item(e, (f"{prefix}/" if prefix else "") + e.key[len(base):])
             for e in sorted(listing.entries, key=lambda e: e.key)]

    def one(item: Item) -> None:
        if copier.stop.is_set():
            item.how = ""
            return
        try:
            if copier.already_there(item, listed):
                item.how = "skipped"
            elif dry_run:
                item.how = "would copy"
            else:
                copier.copy(item)
                if echo is not None:
                    with copier.lock:  # whole lines, whatever the number of threads
                        echo(f"copied {item.entry.key} -> {copier.dest_url(item.dest_key)} "
                             f"({human_bytes(item.entry.stored_bytes)}, {item.how})")
        except AgentError as err:
            item.error = err.message
            if err.code == Code.ARCHIVED:
                item.how = "archived"
            elif err.code in _FATAL:
                copier.stop.set()
        bar.advance(1, item.entry.stored_bytes if item.how not in ("", "skipped") else 0)

    if not dry_run and items:
        dest.writes_as_configured()  # SSE the destination would not apply: nothing is copied
    label = "checking" if dry_run else "copying"
    with Progress(label, len(items), quiet=quiet) as bar, ThreadPoolExecutor(jobs, thread_name_prefix="copy") as pool:
        list(pool.map(one, items))
    for item in items:
        if item.how == "archived":
            report.archived.append(item)
        elif item.error:
            report.failed.append(item)
        elif item.how == "skipped":
            report.skipped.append(item)
        elif item.how:
            report.copied.append(item)
        else:
            report.not_attempted.append(item)
    report.fallback = copier.fallback
    return report
