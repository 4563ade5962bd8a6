"""The object store: where LFS objects live in S3, and S3 errors translated into ours.

``ObjectStore`` is the contract the agent loop needs; ``S3Store`` implements it with
boto3. Keys are content-addressed: ``<prefix>/<oid[0:2]>/<oid[2:4]>/<oid>``. boto3
and pydantic are imported on first use, not at import time, so building an
``S3Store`` costs nothing before git-lfs's init is answered.

Every botocore exception is translated here, at the boundary, into a
``StoreError`` whose code names the cause. A HEAD answered 403 is never read as
"absent": it is diagnosed with a request whose error has a body.
"""

from __future__ import annotations

import base64
import hashlib
import logging
import os
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, Protocol

from lfs_s3_agent import __version__
from lfs_s3_agent.errors import AgentError, Code, IntegrityError, StoreError
from lfs_s3_agent.links import (
    _WHEN_REQUIRED,
    LinkRecord,
    LocalLinks,
    SourceSettings,
    broken_link,
    link_key,
    make_source_client,
    source_settings,
)
from lfs_s3_agent.progress import ProgressReporter

if TYPE_CHECKING:
    from lfs_s3_agent.config import Settings

# lfs_s3_agent.transfer (threads, hashing) is imported by the methods that move bytes, after
# init has been answered.

log = logging.getLogger(__name__)


class ObjectStore(Protocol):
    """What the agent loop needs from a store of LFS objects."""

    def describe(self, oid: str) -> str:
        """Where an object lives, for messages (e.g. ``s3://bucket/key``)."""

    def upload(self, oid: str, size: int, path: Path, progress: ProgressReporter) -> bool:
        """Store the file's bytes under ``oid``; False when it was already there (skipped)."""

    def download(self, oid: str, size: int, sink: IO[bytes], progress: ProgressReporter) -> str:
        """Write the object's bytes to ``sink``; return their SHA-256 hex digest."""


def object_key(prefix: str, oid: str) -> str:
    """The content-addressed key of an oid under a prefix."""
    tail = f"{oid[0:2]}/{oid[2:4]}/{oid}"
    return f"{prefix}/{tail}" if prefix else tail


def checksum_of(oid: str) -> str:
    """The ``x-amz-checksum-sha256`` value (base64 of the digest) for an oid."""
    return base64.b64encode(bytes.fromhex(oid)).decode("ascii")


_CREDENTIAL_CODES = {
    "InvalidAccessKeyId", "SignatureDoesNotMatch", "ExpiredToken", "TokenRefreshRequired",
    "InvalidToken", "ExpiredTokenException", "InvalidClientTokenId", "UnrecognizedClientException",
}
_DENIED_CODES = {"AccessDenied", "AllAccessDisabled", "AccountProblem", "403", "Forbidden"}
_MISSING_CODES = {"NoSuchKey", "404", "NotFound"}
_INTEGRITY_CODES = {"BadDigest", "InvalidDigest", "XAmzContentSHA256Mismatch", "InvalidChecksum"}
_TRANSIENT_CODES = {"SlowDown", "ServiceUnavailable", "InternalError", "RequestTimeout", "500", "503",
                    "RequestTimeTooSkewed"}


def translate(exc: BaseException, *, bucket: str, key: str | None = None,
              endpoint: str | None = None, region: str | None = None) -> AgentError:
    """Turn a botocore/boto3 exception into an AgentError a user can act on."""
    if isinstance(exc, AgentError):
        return exc
    from botocore import exceptions as bce

    where = f"s3://{bucket}/{key}" if key else f"s3://{bucket}"
    at = f" at {endpoint}" if endpoint else ""
    if isinstance(exc, bce.ClientError):
        err = exc.response.get("Error", {})
        code = str(err.get("Code", ""))
        detail = err.get("Message") or ""
        status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
        if code == "NoSuchBucket":
            return StoreError(f"bucket {bucket!r} does not exist{at}: check the bucket name "
                              "(`lfs-s3-agent config` shows where it is set) and the endpoint/region",
                              code=Code.NO_SUCH_BUCKET)
        if code in _CREDENTIAL_CODES:
            return StoreError(f"{where}: S3 rejected the credentials ({code}: {detail}); check "
                              "AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, the profile, or log in again "
                              "(`aws sso login`)", code=Code.CREDENTIALS)
        if code in _DENIED_CODES:
            return StoreError(f"{where}: access denied{at} ({code}{': ' + detail if detail else ''}); "
                              "the credentials are not allowed to do this: check the IAM policy for "
                              "s3:GetObject/PutObject/ListBucket on this bucket and prefix",
                              code=Code.ACCESS_DENIED)
        if code in _MISSING_CODES:
            return StoreError(f"{where}: object not found in the store; it was never pushed here, "
                              "or the settings point at another bucket/prefix", code=Code.NOT_FOUND)
        if code == "InvalidObjectState":
            return StoreError(f"{where}: the object is archived (Glacier/Deep Archive); restore it "
                              "first (`aws s3api restore-object`)", code=Code.ARCHIVED)
        if code in ("PreconditionFailed", "412"):
            return StoreError(f"{where}: the object changed while it was being read; try again",
                              code=Code.INTEGRITY)
        if code in _INTEGRITY_CODES:
            return StoreError(f"{where}: S3 rejected the bytes as corrupt ({code}: {detail})",
                              code=Code.INTEGRITY)
        if code in ("PermanentRedirect", "AuthorizationHeaderMalformed", "IllegalLocationConstraintException"):
            actual = err.get("Region") or exc.response.get("ResponseMetadata", {}).get(
                "HTTPHeaders", {}).get("x-amz-bucket-region")
            hint = f"set --region {actual}" if actual else "set --region to the bucket's region"
            return StoreError(f"bucket {bucket!r} is in another region ({code}): {hint}", code=Code.S3_ERROR)
        transient = code in _TRANSIENT_CODES or (isinstance(status, int) and status >= 500)
        return StoreError(f"{where}: S3 error {code or status}{': ' + detail if detail else ''}",
                          code=Code.S3_ERROR, transient=transient)
    if isinstance(exc, bce.FlexibleChecksumError):
        # Bytes damaged on the way: everything read so far is suspect, so no resume; the agent
        # downloads the object afresh once.
        return StoreError(f"{where}: the response failed its checksum ({exc})", code=Code.INTEGRITY)
    if isinstance(exc, (bce.NoCredentialsError, bce.PartialCredentialsError)):
        return StoreError("no AWS credentials found: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, "
                          "or --profile, or run on a host with an instance role", code=Code.CREDENTIALS)
    if isinstance(exc, bce.ProfileNotFound):
        return StoreError(f"{exc}: check --profile against ~/.aws/config", code=Code.CREDENTIALS)
    if isinstance(exc, (bce.SSOError, bce.TokenRetrievalError, bce.UnauthorizedSSOTokenError)):
        return StoreError(f"SSO credentials failed ({exc}): run `aws sso login`", code=Code.CREDENTIALS)
    if isinstance(exc, (bce.ConnectTimeoutError, bce.ReadTimeoutError)):
        return StoreError(f"{where}: the endpoint{at} did not answer in time ({exc}); check the network "
                          "or raise --timeout", code=Code.TIMEOUT, transient=True)
    if isinstance(exc, bce.SSLError):
        return StoreError(f"{where}: TLS failed{at} ({exc}); check the endpoint URL and its certificate",
                          code=Code.NETWORK)
    if isinstance(exc, (bce.EndpointConnectionError, bce.ConnectionClosedError, bce.ProxyConnectionError,
                        bce.ResponseStreamingError, bce.HTTPClientError, bce.IncompleteReadError)):
        return StoreError(f"{where}: cannot reach the S3 endpoint{at} ({exc}); check --endpoint-url, "
                          "--region and the network", code=Code.NETWORK, transient=True)
    if isinstance(exc, bce.NoRegionError):
        return StoreError("no region configured: set --region", code=Code.CONFIG)
    if isinstance(exc, (ConnectionError, TimeoutError)):
        return StoreError(f"{where}: connection failed{at} ({exc})", code=Code.NETWORK, transient=True)
    if isinstance(exc, OSError):
        return StoreError(f"{where}: I/O error ({exc})", code=Code.NETWORK, transient=True)
    return AgentError(f"{where}: unexpected {type(exc).__name__}: {exc}", code=Code.INTERNAL)


class S3Store:
    """LFS objects in one bucket under one prefix, through boto3."""

    def __init__(self, values: Mapping[str, Any] | Settings, *, links: LocalLinks | None = None) -> None:
        # Plain values are accepted so that the agent can build a store before pydantic is imported.
        self._values = values
        self._settings: Settings | None = None
        self._client: Any = None
        self.links = links  #: this clone's link records (None outside a repository)
        self._source_clients: dict[SourceSettings, Any] = {}
        self.requests: dict[str, int] = {}  #: S3 calls made, by operation name

    def _count(self, model: Any, **_: Any) -> None:
        self.requests[model.name] = self.requests.get(model.name, 0) + 1

    @property
    def settings(self) -> Settings:
        if self._settings is None:
            from lfs_s3_agent.config import Settings

            values = self._values
            self._settings = values if isinstance(values, Settings) else Settings(**values)
        return self._settings

    @property
    def client(self) -> Any:
        if self._client is None:
            self._client = make_client(self.settings)
            self._client.meta.events.register("before-call.s3.*", self._count)
        return self._client

    def key(self, oid: str) -> str:
        return object_key(self.settings.prefix, oid)

    def describe(self, oid: str) -> str:
        record = self.links.get(oid) if self.links else None
        if record is not None:
            return f"linked original {record.describe()}"
        return f"s3://{self.settings.bucket}/{self.key(oid)}"

    def _error(self, exc: BaseException, key: str | None) -> AgentError:
        s = self.settings
        return translate(exc, bucket=s.bucket, key=key, endpoint=s.endpoint_url, region=s.region)

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
        size, recorded = found
        if recorded and recorded != oid:
            log.warning("%s: stored object is recorded as %s; replacing it", self.key(oid), recorded)
            return None
        return size

    def _existing(self, oid: str) -> tuple[int, str | None] | None:
        """(size, recorded oid) of whatever is stored at the oid's key, or None when nothing is."""
        key = self.key(oid)
        try:
            head = self.client.head_object(Bucket=self.settings.bucket, Key=key)
        except Exception as exc:
            err = self._error(exc, key)
            if err.code == Code.NOT_FOUND:
                return None
            if err.code == Code.ACCESS_DENIED:
                raise self._diagnose_forbidden(key, err) from None
            raise err from None
        return int(head["ContentLength"]), head.get("Metadata", {}).get("sha256")

    def _diagnose_forbidden(self, key: str, fallback: AgentError) -> AgentError:
        """A HEAD 403 has no body, so bad keys and missing permissions look alike: ask again."""
        try:
            self.client.list_objects_v2(Bucket=self.settings.bucket, Prefix=key, MaxKeys=1)
        except Exception as exc:
            err = self._error(exc, key)
            if err.code in (Code.CREDENTIALS, Code.NO_SUCH_BUCKET, Code.ACCESS_DENIED):
                return err
        return fallback

    # -- transfers -------------------------------------------------------------------------

    def upload(self, oid: str, size: int, path: Path, progress: ProgressReporter) -> bool:
        record = self.links.get(oid) if self.links else None
        if record is not None:
            # A linked object's bytes stay in the original: the push records the link instead.
            self.put_link_record(record)
            progress.finish()
            return False
        s = self.settings
        key = self.key(oid)
        if size <= s.multipart_threshold and s.head_before_put == "false":
            # One request in the common case, a new object: PUT only if nothing is there yet
            # (If-None-Match). Whatever is stored already answers 412 and is only then inspected.
            if self._put(oid, size, path, progress, only_if_absent=True) != "exists":
                return True
            if self._stored_as(oid, size, self._existing(oid)):
                progress.finish()
                return False
            return self._put(oid, size, path, progress, only_if_absent=False) == "stored"
        found = self._existing(oid)
        if self._stored_as(oid, size, found):
            progress.finish()
            return False
        if size <= s.multipart_threshold:
            return self._put(oid, size, path, progress, only_if_absent=found is None) == "stored"
        from lfs_s3_agent.transfer import PartPlan, multipart_upload

        stats = multipart_upload(
            self.client, bucket=s.bucket, key=key, oid=oid, path=path,
            plan=PartPlan.make(size, s.part_size, s.concurrency), progress=progress,
            translate=lambda exc: self._error(exc, key), create_args=self._put_args(oid),
            stale_after=s.stale_upload_days * 86400.0, only_if_absent=found is None,
        )
        log.info("%s: %d parts sent, %d reused from an unfinished upload%s", key, stats.parts_sent,
                 stats.parts_reused, "; another push stored it first" if stats.raced else "")
        progress.finish()
        return not stats.raced

    def _stored_as(self, oid: str, size: int, found: tuple[int, str | None] | None) -> bool:
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
        from lfs_s3_agent.transfer import HashingReader, completed_elsewhere, precondition_failed

        s = self.settings
        key = self.key(oid)
        conditional = {"IfNoneMatch": "*"} if only_if_absent else {}
        with open(path, "rb") as fh:
            body = HashingReader(fh, size, oid, progress, label=str(path))
            try:
                self.client.put_object(Bucket=s.bucket, Key=key, Body=body, ContentLength=size,
                                       ChecksumSHA256=checksum_of(oid), **self._put_args(oid), **conditional)
            except IntegrityError:
                raise
            except Exception as exc:
                if only_if_absent and precondition_failed(exc):
                    return "exists"
                if completed_elsewhere(self.client, s.bucket, key, size, oid):
                    progress.finish()
                    return "raced"
                raise self._error(exc, key) from None
        progress.finish()
        return "stored"

    def _put_args(self, oid: str) -> dict[str, Any]:
        """Arguments shared by PutObject and CreateMultipartUpload.

        The oid is also kept as metadata: a multipart object's own checksum is a composite of
        part checksums, so this is where its full SHA-256 can be read back.
        """
        s = self.settings
        extra: dict[str, Any] = {"ContentType": "application/octet-stream", "Metadata": {"sha256": oid}}
        if s.sse != "none":
            extra["ServerSideEncryption"] = s.sse
        if s.sse_kms_key_id:
            extra["SSEKMSKeyId"] = s.sse_kms_key_id
        if s.storage_class:
            extra["StorageClass"] = s.storage_class
        return extra

    def download(self, oid: str, size: int, sink: IO[bytes], progress: ProgressReporter) -> str:
        s = self.settings
        key = self.key(oid)
        record = self.links.get(oid) if self.links else None
        if record is None:
            try:
                return self.fetch(self.client, s.bucket, key, size, sink, progress,
                                  translate=lambda exc: self._error(exc, key))
            except AgentError as err:
                if err.code != Code.NOT_FOUND:
                    raise
                record = self.read_link_record(oid)
                if record is None:
                    raise
            if self.links is not None:
                self.links.put(record)  # later pushes from this clone need not ask the store
        return self.fetch_linked(record, size, sink, progress)

    # -- linked objects --------------------------------------------------------------------

    def link_record_key(self, oid: str) -> str:
        return link_key(self.settings.prefix, oid)

    def read_link_record(self, oid: str) -> LinkRecord | None:
        key = self.link_record_key(oid)
        try:
            body = self.client.get_object(Bucket=self.settings.bucket, Key=key)["Body"].read()
        except Exception as exc:
            err = self._error(exc, key)
            if err.code == Code.NOT_FOUND:
                return None
            raise err from None
        record = LinkRecord.from_json(body, where=f"s3://{self.settings.bucket}/{key}")
        if record.oid != oid:
            raise StoreError(f"s3://{self.settings.bucket}/{key}: link record is for another oid",
                             code=Code.LINK_BROKEN)
        return record

    def put_link_record(self, record: LinkRecord) -> None:
        key = self.link_record_key(record.oid)
        body = record.to_json()
        try:
            self.client.put_object(Bucket=self.settings.bucket, Key=key, Body=body, ContentType="application/json",
                                   ChecksumSHA256=base64.b64encode(hashlib.sha256(body).digest()).decode())
        except Exception as exc:
            raise self._error(exc, key) from None

    def source_client(self, source: SourceSettings) -> Any:
        if source not in self._source_clients:
            s = self.settings
            client = make_source_client(source, max_attempts=s.max_attempts, timeout=s.timeout,
                                        checksums_when_required=s.checksums == "when_required")
            client.meta.events.register("before-call.s3.*", self._count)
            self._source_clients[source] = client
        return self._source_clients[source]

    def fetch_linked(self, record: LinkRecord, size: int, sink: IO[bytes], progress: ProgressReporter) -> str:
        """Fetch a linked object's bytes from its original, pinned to the linked version."""
        if record.size != size:
            raise StoreError(f"link record for {record.oid} says {record.size} bytes, the pointer {size}: "
                             "relink the file", code=Code.LINK_BROKEN)
        source = source_settings(record.bucket, record=record)
        client = self.source_client(source)

        def translate_source(exc: BaseException) -> AgentError:
            err = translate(exc, bucket=record.bucket, key=record.key, endpoint=source.endpoint_url)
            return broken_link(record, err)

        return self.fetch(client, record.bucket, record.key, size, sink, progress, translate=translate_source,
                          version_id=record.version_id, etag=None if record.version_id else record.etag)

    def fetch(self, client: Any, bucket: str, key: str, size: int, sink: IO[bytes], progress: ProgressReporter,
              *, translate: Callable[[BaseException], AgentError], version_id: str | None = None,
              etag: str | None = None) -> str:
        """Fetch any object with this store's transfer settings: one stream, or parallel ranges."""
        from lfs_s3_agent.transfer import Knobs, fetch

        return fetch(client, bucket=bucket, key=key, size=size, sink=sink, progress=progress, translate=translate,
                     knobs=Knobs.of(self.settings), version_id=version_id, etag=etag)


def make_client(settings: Settings) -> Any:
    """An S3 client for the settings; credentials come from the AWS SDK's own chain.

    botocore is used directly: ``import boto3`` would also import s3transfer, about 0.1 s of CPU
    in each of the agent processes git-lfs starts, for nothing we use.
    """
    import botocore.session
    from botocore.config import Config

    style = settings.addressing_style
    custom_endpoint = settings.endpoint_url or os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get(
        "AWS_ENDPOINT_URL")
    if style == "auto" and custom_endpoint:
        style = "path"  # most S3-compatible stores are not set up for bucket-named hosts
    config = Config(
        retries={"max_attempts": settings.max_attempts, "mode": "standard"},
        connect_timeout=settings.timeout,
        read_timeout=settings.timeout,
        # Every PUT carries x-amz-checksum-sha256, which S3 verifies; signing the payload as
        # well (botocore's default on plain HTTP) would hash every byte once more.
        s3={"addressing_style": style, "payload_signing_enabled": False},
        # Only an explicit when_required is passed on, so that boto3's own default and its
        # AWS_REQUEST_CHECKSUM_CALCULATION / profile settings apply otherwise.
        **(_WHEN_REQUIRED if settings.checksums == "when_required" else {}),
        user_agent_extra=f"lfs-s3-agent/{__version__}",
        max_pool_connections=max(10, settings.concurrency),
    )
    verify: bool | str | None = None  # boto3's default: verify, with AWS_CA_BUNDLE if set
    if settings.tls_verify == "false" and settings.endpoint_url:
        log.warning("TLS certificate checks are off for %s (tls_verify=false)", settings.endpoint_url)
        verify = False
    elif settings.ca_bundle:
        verify = settings.ca_bundle
    try:
        session = botocore.session.Session(profile=settings.profile)
        return session.create_client("s3", region_name=settings.region, endpoint_url=settings.endpoint_url,
                                     config=config, verify=verify)
    except Exception as exc:
        raise translate(exc, bucket=settings.bucket, endpoint=settings.endpoint_url) from None
