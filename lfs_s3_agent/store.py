"""The object store: content-addressed LFS objects, and the contract every store implements.

``ObjectStore`` is what the agent loop needs (describe / upload / download / stat);
``S3Store`` implements it for one bucket and prefix, with keys
``<prefix>/<oid[0:2]>/<oid[2:4]>/<oid>``. It knows nothing of linked objects (``linked``
wraps it) and never speaks the protocol. Before its first upload it knows what the store does with
If-None-Match, checksum headers and SSE (``s3.capabilities``: a probe, kept for a day in the
repository) and uploads accordingly: a HEAD first where a 412 would come only after the body or
never, no checksum headers where they are refused, no upload at all where SSE would not be applied.
Every S3 call goes through the S3 layer's client
(translation and retries there); the client is built on first use, so building an
``S3Store`` costs nothing before git-lfs's init is answered. A HEAD answered 403 is never
read as "absent": it is diagnosed with a request whose error has a body.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, Protocol

from lfs_s3_agent.errors import AgentError, Code, ConfigError, StoreError
from lfs_s3_agent.progress import ProgressReporter
from lfs_s3_agent.s3.keys import checksum_of, keep_key, object_key

if TYPE_CHECKING:
    from lfs_s3_agent.s3.capabilities import Capabilities
    from lfs_s3_agent.s3.client import S3Client
    from lfs_s3_agent.s3.public import PublicClient
    from lfs_s3_agent.settings import Settings

# lfs_s3_agent.s3.transfer (threads, hashing) and botocore are imported by the methods that move
# bytes, after init has been answered.

log = logging.getLogger(__name__)

#: gc's shortest grace period without --allow-short-grace (seconds): objects younger than this need
#: no keep marker when a push skips them, as gc keeps them anyway.
MIN_GRACE = 3600.0


class ObjectStore(Protocol):
    """What the agent loop needs from a store of LFS objects (see tests/contract for the contract)."""

    @property
    def requests(self) -> dict[str, int]:
        """S3 calls made, by operation name (for stats)."""

    def describe(self, oid: str) -> str:
        """Where an object lives, for messages (e.g. ``s3://bucket/key``)."""

    def upload(self, oid: str, size: int, path: Path, progress: ProgressReporter) -> bool:
        """Store the file's bytes under ``oid``; False when it was already there (skipped).

        Raises ``IntegrityError`` (nothing stored) when the file does not hash to ``oid``.
        """

    def download(self, oid: str, size: int, sink: IO[bytes], progress: ProgressReporter) -> str:
        """Write the object's bytes to ``sink``; return their SHA-256 hex digest.

        Raises ``AgentError`` with ``Code.NOT_FOUND`` when the store does not have it. The caller
        checks the digest and size (``lfsdirs.download_verified``).
        """

    def stat(self, oid: str) -> int | None:
        """The stored object's size, or None when it is absent (or recorded as another oid)."""


class S3Store:
    """LFS objects in one bucket under one prefix."""

    def __init__(self, settings: Settings, *, client: S3Client | None = None,
                 capabilities_file: Path | None = None) -> None:
        """``capabilities_file``: where probe answers are kept (``<lfs dir>/lfs-s3-agent/capabilities.json``;
        None: probed once per process)."""
        self.settings = settings
        self._client = client
        self._public: PublicClient | None = None
        self.requests: dict[str, int] = {}  #: S3 calls made, by operation name
        self.capabilities_file = capabilities_file
        self._caps: Capabilities | None = None
        self._caps_lock = threading.Lock()

    @property
    def client(self) -> S3Client:
        if self._client is None:
            from lfs_s3_agent.s3.client import ClientSpec, make_client

            spec = ClientSpec.for_store(self.settings)
            cached = self._cached_capabilities()
            if cached is not None and not cached.checksum_headers:
                spec = spec.with_(checksums="none")  # found refused before: not one rejected request more
            self._client = make_client(spec, counter=self.requests)
        return self._client

    # -- what the store does -------------------------------------------------------------------

    def _capabilities_key(self) -> str:
        from lfs_s3_agent.s3.capabilities import fingerprint
        from lfs_s3_agent.s3.client import ClientSpec

        s = self.settings
        return fingerprint(endpoint=ClientSpec.for_store(s).custom_endpoint, region=s.region, bucket=s.bucket,
                           prefix=s.prefix, sse=s.sse, sse_kms_key_id=s.sse_kms_key_id, checksums=s.checksums)

    def _cached_capabilities(self) -> Capabilities | None:
        if self._caps is not None:
            return self._caps
        if self.capabilities_file is None:
            return None
        from lfs_s3_agent.s3.capabilities import CapabilityCache

        return CapabilityCache(self.capabilities_file).get(self._capabilities_key())

    def capabilities(self, *, fresh: bool = False, full: bool = False) -> Capabilities:
        """What this store does (``s3.capabilities``): from memory, the repository's cache, or a probe.

        ``fresh`` probes whatever is cached (``doctor``). A probe that fails (no permission to write under
        the prefix, the network) is not fatal here: the upload that follows reports the real error, and
        this process goes on with S3's documented behaviour.
        """
        from lfs_s3_agent.s3.capabilities import Capabilities, CapabilityCache, probe

        with self._caps_lock:
            if self._caps is not None and not fresh:
                return self._caps
            cached = None if fresh else self._cached_capabilities()
            if cached is not None:
                self._caps = cached
                return cached
            s = self.settings
            try:
                caps = probe(self.client, bucket=s.bucket, prefix=s.prefix, sse_args=self.sse_args(), full=full)
            except AgentError as err:
                if fresh:
                    raise
                log.warning("cannot find out what %s does with conditional writes, checksums and SSE (%s); "
                            "going by S3's documented behaviour", self.url(s.prefix), err.message)
                self._caps = Capabilities()
                return self._caps
            log.info("store capabilities: %s", "; ".join(caps.lines(s.sse)))
            if self.capabilities_file is not None:
                CapabilityCache(self.capabilities_file).put(self._capabilities_key(), caps)
            self._caps = caps
            return caps

    def writes_as_configured(self) -> Capabilities:
        """The store's capabilities, once it is known that writes get the configured SSE; the ``sse_problem``
        ``ConfigError`` otherwise. Every write path calls it first: uploads, and server-side copies into the
        store (``import``, ``copy``), which S3 would otherwise leave unencrypted just as quietly."""
        caps = self.capabilities()
        problem = self.sse_problem(caps)
        if problem is not None:
            raise problem
        return caps

    def sse_problem(self, caps: Capabilities) -> ConfigError | None:
        """The configured SSE is not what the store does: the error that stops every upload (none is made)."""
        from lfs_s3_agent.s3.capabilities import NOT_APPLIED, REFUSED

        s = self.settings
        if caps.sse not in (NOT_APPLIED, REFUSED):
            return None
        fix = ("configure encryption on the store, or accept unencrypted objects with `lfs-s3-agent install --sse "
               "none`; nothing was uploaded")
        if caps.sse == NOT_APPLIED:
            return ConfigError(f"the store accepts --sse {s.sse} but does not apply it (its answer carries no "
                               f"x-amz-server-side-encryption: {s.sse}): {fix}")
        endpoint = (self.client.endpoint or "")
        why = (" over plain http: Ceph RGW applies server-side encryption only over https (use an https "
               "--endpoint-url)" if endpoint.startswith("http://") else "")
        return ConfigError(f"the store refuses uploads with --sse {s.sse} and takes them without it{why}: {fix}")

    @property
    def public(self) -> PublicClient | None:
        """The public URL's reader when ``public_url`` is set: downloads go there, unsigned."""
        if self._public is None and getattr(self.settings, "public_url", None):
            from urllib.parse import urlsplit

            from lfs_s3_agent.s3.client import ClientSpec
            from lfs_s3_agent.s3.public import PublicClient

            s = self.settings
            # A private CA bundle is for the store's own endpoint: it serves the public URL only when that is
            # the same host (a bucket's public path), never a CDN, whose certificate the system's CAs check.
            endpoint = ClientSpec.for_store(s).custom_endpoint
            same_host = endpoint is not None and urlsplit(endpoint).netloc == urlsplit(str(s.public_url)).netloc
            self._public = PublicClient(str(s.public_url), max_attempts=s.max_attempts, timeout=s.timeout,
                                        pool=s.concurrency, ca_bundle=s.ca_bundle if same_host else None)
        return self._public

    def reader(self) -> S3Client | PublicClient:
        """Where downloads come from: the public URL when one is set, else S3."""
        return self.public or self.client

    def needs_credentials(self, what: str) -> None:
        """Refuse ``what`` (a push, gc) plainly on a store read without signing (``no_sign_request``)."""
        if getattr(self.settings, "no_sign_request", "false") == "true":
            raise StoreError(f"{what} needs AWS credentials, but this clone reads the store unsigned "
                             "(no_sign_request=true): set AWS credentials (or --profile) and run it with "
                             "--no-sign-request false (LFS_S3_NO_SIGN_REQUEST=false)", code=Code.CREDENTIALS)

    def key(self, oid: str) -> str:
        return object_key(self.settings.prefix, oid)

    def url(self, key: str) -> str:
        return f"s3://{self.settings.bucket}/{key}"

    def describe(self, oid: str) -> str:
        return self.url(self.key(oid))

    # -- queries ---------------------------------------------------------------------------

    def stat(self, oid: str) -> int | None:
        """Size of the stored object, or None when it is absent or recorded as another oid.

        Our uploads record the oid as ``x-amz-meta-sha256``; an object at this key whose
        metadata names another oid was written by something else and is treated as absent,
        so that the next push replaces it.
        """
        found = self._existing(oid)
        if found is None:
            return None
        size, recorded, _ = found
        if recorded and recorded != oid:
            log.warning("%s: stored object is recorded as %s; replacing it", self.key(oid), recorded)
            return None
        return size

    def _existing(self, oid: str) -> tuple[int, str | None, float] | None:
        """(size, recorded oid, last modified as a timestamp) of what is stored at the oid's key, or None."""
        key = self.key(oid)
        try:
            head = self.client.head_object(Bucket=self.settings.bucket, Key=key)
        except AgentError as err:
            if err.code == Code.NOT_FOUND:
                return None
            if err.code == Code.ACCESS_DENIED:
                raise self._diagnose_forbidden(key, err) from None
            raise
        modified = head.get("LastModified")
        return (int(head["ContentLength"]), head.get("Metadata", {}).get("sha256"),
                modified.timestamp() if modified is not None else time.time())

    def _diagnose_forbidden(self, key: str, fallback: AgentError) -> AgentError:
        """A HEAD 403 has no body, so bad keys and missing permissions look alike: ask again."""
        try:
            self.client.list_objects_v2(Bucket=self.settings.bucket, Prefix=key, MaxKeys=1)
        except AgentError as err:
            if err.code in (Code.CREDENTIALS, Code.NO_SUCH_BUCKET, Code.ACCESS_DENIED):
                return err
        return fallback

    # -- transfers -------------------------------------------------------------------------

    def upload(self, oid: str, size: int, path: Path, progress: ProgressReporter) -> bool:
        self.needs_credentials("a push")
        s = self.settings
        key = self.key(oid)
        caps = self.writes_as_configured()
        head_first = s.head_before_put == "true" or (s.head_before_put == "auto" and caps.head_first(size))
        if size <= s.multipart_threshold and not head_first:
            # One request in the common case, a new object: PUT only if nothing is there yet
            # (If-None-Match). Whatever is stored already answers 412 and is only then inspected.
            if self._put(oid, size, path, progress, only_if_absent=True) != "exists":
                return True
            found = self._existing(oid)
            if self._stored_as(oid, size, found) and self.protect(oid, size, found):
                progress.finish()
                return False
            return self._put(oid, size, path, progress, only_if_absent=False) == "stored"
        found = self._existing(oid)
        if self._stored_as(oid, size, found):
            if self.protect(oid, size, found):
                progress.finish()
                return False
            found = None  # gone while it was being protected (a gc): it is uploaded again
        if size <= s.multipart_threshold:
            return self._put(oid, size, path, progress, only_if_absent=found is None) == "stored"
        from lfs_s3_agent.s3.transfer import PartPlan, multipart_upload

        stats = multipart_upload(
            self.client, bucket=s.bucket, key=key, oid=oid, path=path,
            plan=PartPlan.make(size, s.part_size, s.concurrency), progress=progress,
            create_args=self.put_args(oid), stale_after=s.stale_upload_days * 86400.0,
            only_if_absent=found is None, checksums=self.client.checksum_headers,
        )
        log.info("%s: %d parts sent, %d reused from an unfinished upload%s", key, stats.parts_sent,
                 stats.parts_reused, "; another push stored it first" if stats.raced else "")
        progress.finish()
        return not stats.raced

    def protect(self, oid: str, size: int, found: tuple[int, str | None, float] | None = None) -> bool:
        """Keep a stored object this push relies on from a concurrent ``gc``; False if it has gone meanwhile.

        An object younger than ``MIN_GRACE`` needs nothing (gc keeps it). An older one gets a keep marker
        first, then is looked at again: gc re-reads the markers just before each delete, so either it sees
        the marker and keeps the object, or it deleted it before the marker was written and this second
        look finds it gone (then the push uploads it again). What is left is the time between gc's last
        look at the markers and its delete request, one round trip.
        """
        found = found or self._existing(oid)
        if found is None:
            return False
        if time.time() - found[2] < MIN_GRACE:
            return True
        self.client.put_object(Bucket=self.settings.bucket, Key=keep_key(self.settings.prefix, oid), Body=b"",
                               ContentType="application/octet-stream")
        return self._stored_as(oid, size, self._existing(oid))

    def _stored_as(self, oid: str, size: int, found: tuple[int, str | None, float] | None) -> bool:
        """Is what ``_existing`` found this oid's object, whole? Anything else there is to be replaced."""
        if found is None:
            return False
        if found[0] == size and found[1] in (None, oid):
            return True
        log.warning("%s: stored object (%d bytes, recorded as %s) is not this oid's; replacing it", self.key(oid),
                    found[0], found[1])
        return False

    def _put(self, oid: str, size: int, path: Path, progress: ProgressReporter, *, only_if_absent: bool) -> str:
        """One streamed PUT: "stored", "raced" (another push stored it meanwhile) or "exists" (412)."""
        from lfs_s3_agent.s3.transfer import HashingReader, completed_elsewhere, precondition_failed

        s = self.settings
        key = self.key(oid)
        conditional = {"IfNoneMatch": "*"} if only_if_absent else {}
        try:
            fh = open(path, "rb")  # noqa: SIM115 - closed below
        except OSError as exc:
            from lfs_s3_agent.errors import LocalFileError

            raise LocalFileError(f"cannot read the object to upload at {path}: {exc.strerror}") from None
        with fh:
            body = HashingReader(fh, size, oid, progress, label=str(path))
            # The algorithm as well as the value: S3 keeps the checksum either way, moto only with both.
            checksum = ({"ChecksumSHA256": checksum_of(oid), "ChecksumAlgorithm": "SHA256"}
                        if self.client.checksum_headers else {})
            try:
                resp = self.client.put_object(Bucket=s.bucket, Key=key, Body=body, ContentLength=size, **checksum,
                                              **self.put_args(oid), **conditional)
            except AgentError as err:
                if err.code not in (Code.INTEGRITY, Code.LOCAL_FILE) or err.s3_code:
                    if only_if_absent and precondition_failed(err):
                        return "exists"
                    if completed_elsewhere(self.client, s.bucket, key, size, oid):
                        progress.finish()
                        return "raced"
                raise
        if s.sse != "none" and resp.get("ServerSideEncryption") != s.sse:
            # The probe said the store applies it; this answer says otherwise (its setup changed): the object
            # just written is not what was asked for, so it goes, and so does what was learnt.
            self._caps = None
            with contextlib.suppress(AgentError):
                self.client.delete_object(Bucket=s.bucket, Key=key)
            raise ConfigError(f"{self.url(key)}: the store did not apply --sse {s.sse} (no "
                              "x-amz-server-side-encryption in its answer); the object was removed again. Configure "
                              "encryption on the store, or `lfs-s3-agent install --sse none`")
        progress.finish()
        return "stored"

    def put_args(self, oid: str) -> dict[str, Any]:
        """Arguments shared by PutObject, CreateMultipartUpload and copies of an object.

        The oid is also kept as metadata: a multipart object's own checksum is a composite of
        part checksums, so this is where its full SHA-256 can be read back.
        """
        s = self.settings
        extra: dict[str, Any] = {"ContentType": "application/octet-stream", "Metadata": {"sha256": oid},
                                 **self.sse_args()}
        if s.storage_class:
            extra["StorageClass"] = s.storage_class
        return extra

    def sse_args(self) -> dict[str, Any]:
        """The server-side encryption arguments of every upload ({} for none)."""
        s = self.settings
        extra: dict[str, Any] = {}
        if s.sse != "none":
            extra["ServerSideEncryption"] = s.sse
        if s.sse_kms_key_id:
            extra["SSEKMSKeyId"] = s.sse_kms_key_id
        return extra

    def download(self, oid: str, size: int, sink: IO[bytes], progress: ProgressReporter) -> str:
        from lfs_s3_agent.s3.transfer import Knobs, fetch

        try:
            return fetch(self.reader(), bucket=self.settings.bucket, key=self.key(oid), size=size, sink=sink,
                         progress=progress, knobs=Knobs.of(self.settings), expect=oid)
        except AgentError as err:
            if err.code != Code.ARCHIVED:
                raise
            raise self.restore_on_read(oid) from None

    def restore_on_read(self, oid: str) -> AgentError:
        """A read met an archived object: its restore is requested once (never twice); the ``[49]`` to report."""
        from lfs_s3_agent.s3.restore import restore_on_read

        s = self.settings
        return restore_on_read(self.client, s.bucket, self.key(oid), self.describe(oid), days=s.restore_days,
                               tier=s.restore_tier)
