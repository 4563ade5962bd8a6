"""Linked mode as a store: ``LinkedStore`` wraps a content-addressed ``S3Store``.

A linked object's bytes stay in their original; the LFS store keeps a link record instead
(``links.LinkRecord``). The wrapper implements the same ``ObjectStore`` contract:

- upload of an oid this clone has a link record for: the record goes to the store instead of
  the bytes;
- download: the store's own object first; when it has none, the link record (this clone's,
  else the store's) and the original, fetched pinned to the linked version (version id, else
  ETag) with the store's transfer settings. A record read from the store is kept in this clone
  only once the original's bytes hashed to the oid.

One pass through the layers: the inner store never calls back here. ``LocalLinks`` are this
clone's records, ``StoreRecords`` the store's; ``SourceClients`` makes one client per source
bucket configuration, through the S3 layer's one factory. pydantic (``links.LinkRecord``) is
imported only when a record is read or written.
"""

from __future__ import annotations

import logging
import os
import tempfile
from pathlib import Path
from typing import IO, TYPE_CHECKING

from lfs_s3_agent import settings as settings_mod
from lfs_s3_agent.errors import AgentError, Code, StoreError
from lfs_s3_agent.progress import ProgressReporter
from lfs_s3_agent.s3.keys import b64sha256, link_key

if TYPE_CHECKING:
    from lfs_s3_agent.links import LinkRecord
    from lfs_s3_agent.s3.client import S3Client
    from lfs_s3_agent.settings import Settings, SourceSettings
    from lfs_s3_agent.store import S3Store

log = logging.getLogger(__name__)


def local_links_dir(common_dir: Path) -> Path:
    return common_dir / "lfs-s3-agent" / "links"


class LocalLinks:
    """The link records this clone knows, one JSON file per oid."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory

    def path(self, oid: str) -> Path:
        return self.directory / f"{oid}.json"

    def get(self, oid: str) -> LinkRecord | None:
        try:
            data = self.path(oid).read_bytes()
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise StoreError(f"cannot read link record {self.path(oid)}: {exc}", code=Code.LOCAL_FILE) from None
        from lfs_s3_agent.links import LinkRecord  # pydantic: paid for only when a record is read

        record = LinkRecord.from_json(data, where=str(self.path(oid)))
        if record.oid != oid:
            raise StoreError(f"{self.path(oid)}: link record is for another oid", code=Code.LINK_BROKEN)
        return record

    def put(self, record: LinkRecord) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=self.directory, prefix=".tmp-")
        try:
            with os.fdopen(fd, "wb") as fh:
                fh.write(record.to_json())
            os.replace(tmp, self.path(record.oid))
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    def remove(self, oid: str) -> None:
        self.path(oid).unlink(missing_ok=True)

    def any(self) -> bool:
        return self.directory.is_dir() and any(self.directory.glob("*.json"))

    def all(self) -> list[LinkRecord]:
        """Every record this clone has (unreadable ones are skipped: they are reported where they are used)."""
        found = []
        for path in sorted(self.directory.glob("*.json")) if self.directory.is_dir() else []:
            try:
                record = self.get(path.stem)
            except AgentError:
                continue
            if record is not None:
                found.append(record)
        return found


class SourceClients:
    """One S3 client per source configuration, made once (from the one client factory)."""

    def __init__(self, store: Settings, counter: dict[str, int] | None = None, *, pool: int = 32) -> None:
        self.store = store
        self.counter = counter
        self.pool = pool
        self._clients: dict[SourceSettings, S3Client] = {}

    def get(self, source: SourceSettings) -> S3Client:
        if source not in self._clients:
            from lfs_s3_agent.s3.client import ClientSpec, make_client

            self._clients[source] = make_client(ClientSpec.for_source(source, self.store, pool=self.pool),
                                                counter=self.counter)
        return self._clients[source]

    def for_record(self, record: LinkRecord, cwd: str | None = None) -> tuple[SourceSettings, S3Client]:
        """The client for a record's original. The record's endpoint is a hint, trusted only when it is the
        store's endpoint, AWS's, or the one the user configured for that bucket; credentials never go to a
        host that only a record named (``StoreError`` code 51 names the command that trusts it).
        """
        configured = settings_mod.source_settings(record.bucket, cwd=cwd)  # flags aside: git config, env
        if record.request_payer and not configured.request_payer:
            key = settings_mod.source_git_key(record.bucket, "request_payer")
            raise StoreError(
                f"the linked original of {record.oid} ({record.url}) is in a requester-pays bucket: fetching it "
                "charges your AWS account for the requests and the data transfer, so nothing was requested. To pay "
                f"for it from this clone, run `git config {key} true`", code=Code.LINK_BROKEN)
        hinted = record.endpoint_url
        if hinted and not configured.endpoint_url and not self.trusts(hinted):
            raise StoreError(
                f"the link record for {record.oid} ({record.url}) names the endpoint {hinted}, which is neither "
                "this store's, AWS's, nor one you configured: nothing was sent there. If you trust it, run "
                f"`git config lfs-s3-source.{record.bucket}.endpoint-url {hinted}`", code=Code.LINK_BROKEN)
        source = settings_mod.source_settings(record.bucket, hints=record.hints(), cwd=cwd)
        return source, self.get(source)

    def trusts(self, endpoint: str) -> bool:
        """Is this endpoint one the user pointed credentials at: the store's, or AWS's own?"""
        from lfs_s3_agent.s3.client import ClientSpec, is_aws_endpoint

        store = ClientSpec.for_store(self.store).custom_endpoint
        return is_aws_endpoint(endpoint) or (store is not None and endpoint.rstrip("/") == store.rstrip("/"))


class StoreRecords:
    """Link records kept in the LFS store, next to its objects."""

    def __init__(self, store: S3Store) -> None:
        self.store = store

    def key(self, oid: str) -> str:
        return link_key(self.store.settings.prefix, oid)

    def url(self, oid: str) -> str:
        return self.store.url(self.key(oid))

    def get(self, oid: str) -> LinkRecord | None:
        from lfs_s3_agent.links import LinkRecord

        key = self.key(oid)
        try:
            resp = self.store.reader().get_object(Bucket=self.store.settings.bucket, Key=key)
            body = resp["Body"].read(1 << 20)
        except AgentError as err:
            if err.code == Code.NOT_FOUND:
                return None
            raise
        except Exception as exc:
            raise self.store.reader().error(exc, self.store.settings.bucket, key) from None
        record = LinkRecord.from_json(body, where=self.url(oid))
        if record.oid != oid:
            raise StoreError(f"{self.url(oid)}: link record is for another oid", code=Code.LINK_BROKEN)
        return record

    def put(self, record: LinkRecord) -> None:
        body = record.to_json()
        self.store.client.put_object(Bucket=self.store.settings.bucket, Key=self.key(record.oid), Body=body,
                                     ContentType="application/json", ChecksumSHA256=b64sha256(body))

    def exists(self, oid: str) -> bool:
        try:
            self.store.client.head_object(Bucket=self.store.settings.bucket, Key=self.key(oid))
            return True
        except AgentError as err:
            if err.code == Code.NOT_FOUND:
                return False
            raise


class LinkedStore:
    """An ``ObjectStore`` that serves linked objects from their originals, around an ``S3Store``."""

    def __init__(self, inner: S3Store, local: LocalLinks | None, *, sources: SourceClients | None = None) -> None:
        self.inner = inner
        self.local = local
        self.records = StoreRecords(inner)
        self.sources = sources or SourceClients(inner.settings, inner.requests)

    def local_record(self, oid: str) -> LinkRecord | None:
        return self.local.get(oid) if self.local is not None else None

    @property
    def requests(self) -> dict[str, int]:
        return self.inner.requests

    @property
    def settings(self) -> Settings:
        return self.inner.settings

    def describe(self, oid: str) -> str:
        record = self.local_record(oid)
        if record is not None:
            return f"linked original {record.describe()}"
        return self.inner.describe(oid)

    def stat(self, oid: str) -> int | None:
        size = self.inner.stat(oid)
        if size is not None:
            return size
        record = self.local_record(oid) or self.records.get(oid)
        return record.size if record is not None and self.records.exists(oid) else None

    def upload(self, oid: str, size: int, path: Path, progress: ProgressReporter) -> bool:
        record = self.local_record(oid)
        if record is None:
            return self.inner.upload(oid, size, path, progress)
        self.inner.needs_credentials("a push")
        # A linked object's bytes stay in the original: the push records the link instead. A different
        # record already there is replaced, never silently (the pre-push step says so in git push's output).
        try:
            there = self.records.get(oid)
        except AgentError:
            there = None  # unreadable: replaced by this clone's, which it fetched and checked
        if there is not None and there != record:
            log.warning("replacing the store's link record for %s (%s) with this clone's (%s)", oid,
                        there.describe(), record.describe())
        self.records.put(record)
        progress.finish()
        return False

    def download(self, oid: str, size: int, sink: IO[bytes], progress: ProgressReporter) -> str:
        record = self.local_record(oid)
        if record is not None:
            try:
                return self.fetch_original(record, size, sink, progress)
            except AgentError as err:
                # No stale trust: a local record whose fetch fails gives way to the store's current one.
                current = self.records.get(oid)
                if current is None or current == record or not rewind(sink):
                    raise
                log.warning("%s; trying the store's current link record (%s)", err.message, current.describe())
                digest = self.fetch_original(current, size, sink, progress)
                if digest == oid and self.local is not None:
                    self.local.put(current)
                return digest
        try:
            return self.inner.download(oid, size, sink, progress)
        except AgentError as err:
            if err.code != Code.NOT_FOUND:
                raise
            record = self.records.get(oid)
            if record is None:
                raise
        digest = self.fetch_original(record, size, sink, progress)
        if digest == oid and self.local is not None and self.local.get(oid) is None:
            self.local.put(record)  # trusted only now: its original gave the right bytes (unless refreshed)
        return digest

    def fetch_original(self, record: LinkRecord, size: int, sink: IO[bytes], progress: ProgressReporter,
                       cwd: str | None = None, *, refresh: bool = True) -> str:
        """Fetch a linked object's bytes from its original, pinned to the linked version.

        When the pinned version is gone or the original changed, the key is read as it is now: if its
        bytes hash to the oid they are served (and, with ``refresh``, the record is refreshed here and in
        the store); otherwise ``StoreError`` code 51.
        """
        from lfs_s3_agent.links import broken_link
        from lfs_s3_agent.s3.transfer import Knobs, fetch

        if record.size != size:
            raise StoreError(f"link record for {record.oid} says {record.size} bytes, the pointer {size}: "
                             "relink the file", code=Code.LINK_BROKEN)
        source, client = self.sources.for_record(record, cwd)
        try:
            return fetch(client, bucket=record.bucket, key=record.key, size=size, sink=sink, progress=progress,
                         knobs=Knobs.of(self.settings), version_id=record.version_id,
                         etag=None if record.version_id else record.etag, expect=record.oid)
        except AgentError as err:
            if err.code == Code.ACCESS_DENIED and not source.request_payer:
                from lfs_s3_agent.s3.errors import requester_pays_hint

                raise requester_pays_hint(err, record.bucket, flag=False) from None
            if err.code == Code.ARCHIVED:  # an original in an archive class: its restore is requested once
                from lfs_s3_agent.s3.restore import restore_on_read

                s = self.settings
                raise restore_on_read(client, record.bucket, record.key, f"linked original {record.describe()}",
                                      days=s.restore_days, tier=s.restore_tier,
                                      version_id=record.version_id) from None
            if not changed_original(record, err):
                raise broken_link(record, err) from None
            pinned = err
        # The pins make a fetch cheap and safe; the oid is the identity. The original changed in place (a
        # copy onto itself for a checksum, the same bytes uploaded again) or its version is gone: look at
        # the key again and serve it if its bytes still hash to the oid, refreshing the record.
        digest = self._refetch(record, client, size, sink, progress, refresh)
        if digest is None:
            raise broken_link(record, pinned) from None
        return digest

    def _refetch(self, record: LinkRecord, client: S3Client, size: int, sink: IO[bytes],
                 progress: ProgressReporter, refresh: bool) -> str | None:
        """The original as it is now, if it still has the record's size and hashes to its oid (else None)."""
        from lfs_s3_agent.s3.transfer import Knobs, fetch

        try:
            head = client.head_object(Bucket=record.bucket, Key=record.key)
        except AgentError as err:
            if err.code == Code.NOT_FOUND:
                return None
            raise
        if int(head["ContentLength"]) != size or not rewind(sink):
            return None
        version = head.get("VersionId") if head.get("VersionId") not in (None, "null") else None
        digest = fetch(client, bucket=record.bucket, key=record.key, size=size, sink=sink, progress=progress,
                       knobs=Knobs.of(self.settings), version_id=version, etag=None if version else head.get("ETag"))
        if digest != record.oid:
            return None
        if refresh:
            self.refresh(record.model_copy(update={"etag": head.get("ETag"), "version_id": version}))
        return digest

    def refresh(self, record: LinkRecord) -> bool:
        """Keep a re-checked record here and, when these credentials may write, in the store; True if stored."""
        log.info("linked original %s changed in place with the same content; its link record is refreshed",
                 record.url)
        if self.local is not None:
            self.local.put(record)
        try:
            self.records.put(record)
            return True
        except AgentError as err:
            log.info("cannot refresh the store's link record for %s (%s); other clones refresh their own",
                     record.oid, err.message)
            return False




def rewind(sink: IO[bytes]) -> bool:
    from lfs_s3_agent.s3.transfer import rewind as rewind_sink  # the byte movers own it

    return rewind_sink(sink)


def changed_original(record: LinkRecord, err: AgentError) -> bool:
    """Does this error of a pinned fetch mean the original changed (rather than, say, access denied)?"""
    return err.code in (Code.INTEGRITY, Code.NOT_FOUND) or (record.version_id is not None and err.status == 400)
