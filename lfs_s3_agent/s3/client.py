"""The one factory for S3 clients, and ``S3Client``, the wrapper every S3 call goes through.

Every client of the product (the LFS store's, a linked source's, a copy destination's,
doctor's probes) is built here from a ``ClientSpec``, so a setting reaches every client it
concerns: the CA bundle and TLS verification go to every client of the store's endpoint (and
only there: a private CA bundle replaces the system's, which would break AWS), checksum mode,
timeouts, attempts and addressing style to all of them.

botocore's own retries are switched off (``total_max_attempts = 1``): ``S3Client.call`` is
the one retry owner (``retry.Attempts``), and the one place that translates botocore errors
(``errors.translate``). botocore is imported only when a client is built.

It is also where request-level store differences are handled, once for every caller:

- ``checksums = none`` (or a store found to reject them: ``S3Client.call`` switches the client over
  after one rejected request and makes it again) sends no ``x-amz-checksum-*`` header at all
  (Backblaze B2's S3 API refuses them: "Unsupported header 'x-amz-checksum-sha256'"), and
  ``Content-MD5`` where the API requires a checksum (DeleteObjects);
- DeleteObjects always carries ``Content-MD5``: boto3 1.36+ sends only a CRC32, which older MinIO
  and Ceph answer with ``MissingContentMD5``; S3 accepts both. (boto3 1.36 changelog: "default
  integrity protections"; S3 API reference, DeleteObjects: "Content-MD5 or x-amz-sdk-checksum-algorithm
  header is required".)
"""

from __future__ import annotations

import base64
import hashlib
import logging
import os
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from lfs_s3_agent import __version__
from lfs_s3_agent.errors import AgentError
from lfs_s3_agent.s3 import retry
from lfs_s3_agent.s3.errors import translate
from lfs_s3_agent.s3.retry import Attempts

if TYPE_CHECKING:
    from lfs_s3_agent.settings import Settings, SourceSettings

log = logging.getLogger(__name__)

#: botocore Config arguments for stores that reject boto3's default CRC32 checksums.
WHEN_REQUIRED: dict[str, Any] = {"request_checksum_calculation": "when_required",
                                 "response_checksum_validation": "when_required"}


def is_aws_endpoint(url: str | None) -> bool:
    """Is this AWS's own S3 (no custom endpoint, or an ``*.amazonaws.com`` host)?"""
    if not url:
        return True
    host = (urlsplit(url).hostname or "").lower().rstrip(".")
    return host == "amazonaws.com" or host.endswith((".amazonaws.com", ".amazonaws.com.cn"))


def env_endpoint() -> str | None:
    """The endpoint boto3 takes from the environment when none is configured."""
    return os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL") or None


@dataclass(frozen=True)
class ClientSpec:
    """Everything that decides how an S3 client behaves (never credentials themselves)."""

    endpoint_url: str | None = None
    region: str | None = None
    profile: str | None = None
    unsigned: bool = False
    addressing_style: str = "auto"
    checksums: str = "when_supported"  #: when_supported, when_required or none (no x-amz-checksum-* header)
    ca_bundle: str | None = None
    tls_verify: bool = True
    max_attempts: int = 5
    timeout: int = 60
    pool: int = 10
    request_payer: bool = False  #: every request carries RequestPayer=requester (requester-pays buckets)

    @classmethod
    def for_store(cls, s: Settings, *, pool: int | None = None) -> ClientSpec:
        """The LFS store's client."""
        unsigned = getattr(s, "no_sign_request", "false") == "true"
        return cls(endpoint_url=s.endpoint_url, region=s.region, profile=None if unsigned else s.profile,
                   unsigned=unsigned, addressing_style=s.addressing_style, checksums=s.checksums, ca_bundle=s.ca_bundle,
                   tls_verify=s.tls_verify != "false", max_attempts=s.max_attempts, timeout=s.timeout,
                   pool=max(10, s.concurrency, pool or 0))

    @classmethod
    def for_source(cls, source: SourceSettings, store: Settings, *, pool: int = 32) -> ClientSpec:
        """A linked source's client: its own place, the store's transfer settings; the store's TLS
        settings when it is on the store's endpoint."""
        same_endpoint = (source.endpoint_url or None) == (store.endpoint_url or None)
        return cls(endpoint_url=source.endpoint_url, region=source.region,
                   profile=None if source.unsigned else source.profile, unsigned=source.unsigned,
                   checksums=store.checksums, ca_bundle=store.ca_bundle if same_endpoint else None,
                   tls_verify=store.tls_verify != "false" if same_endpoint else True,
                   max_attempts=store.max_attempts, timeout=store.timeout, pool=pool,
                   request_payer=source.request_payer)

    def with_(self, **changes: Any) -> ClientSpec:
        return replace(self, **changes)

    @property
    def custom_endpoint(self) -> str | None:
        return self.endpoint_url or env_endpoint()

    def verify(self) -> bool | str | None:
        """botocore's ``verify``: None (its default, honouring AWS_CA_BUNDLE), a CA bundle, or False.

        Certificate checks are never off for AWS's own endpoints, whatever the settings say.
        """
        if not self.tls_verify and self.endpoint_url and not is_aws_endpoint(self.endpoint_url):
            log.warning("TLS certificate checks are off for %s (tls_verify=false)", self.endpoint_url)
            return False
        if self.ca_bundle:
            return self.ca_bundle
        return None


def make_client(spec: ClientSpec, *, counter: dict[str, int] | None = None) -> S3Client:
    """An ``S3Client`` for the spec; credentials come from the AWS SDK's own chain (or none: unsigned).

    botocore is used directly: ``import boto3`` would also import s3transfer, about 0.1 s of CPU
    in each of the agent processes git-lfs starts, for nothing we use.
    """
    from botocore import UNSIGNED
    from botocore.config import Config

    from lfs_s3_agent.s3.botosession import new_session

    style = spec.addressing_style
    if style == "auto" and spec.custom_endpoint:
        style = "path"  # most S3-compatible stores are not set up for bucket-named hosts
    config = Config(
        retries={"total_max_attempts": 1, "mode": "standard"},  # S3Client.call retries, nothing else
        connect_timeout=spec.timeout,
        read_timeout=spec.timeout,
        # Every PUT carries x-amz-checksum-sha256, which S3 verifies; signing the payload as
        # well (botocore's default on plain HTTP) would hash every byte once more.
        s3={"addressing_style": style, "payload_signing_enabled": False},  # type: ignore[arg-type]
        # Only an explicit when_required is passed on, so that boto3's own default and its
        # AWS_REQUEST_CHECKSUM_CALCULATION / profile settings apply otherwise.
        **(WHEN_REQUIRED if spec.checksums in ("when_required", "none") else {}),
        **({"signature_version": UNSIGNED} if spec.unsigned else {}),
        user_agent_extra=f"lfs-s3-agent/{__version__}",
        max_pool_connections=max(10, spec.pool),
    )
    try:
        session = new_session(spec.profile)
        raw = session.create_client("s3", region_name=spec.region, endpoint_url=spec.endpoint_url, config=config,
                                    verify=spec.verify())
    except Exception as exc:
        raise translate(exc, bucket="", endpoint=spec.endpoint_url) from None
    client = S3Client(raw, spec)
    raw.meta.events.register("before-sign.s3", client.adjust_headers)
    if counter is not None:
        def count(model: Any, **_: Any) -> None:
            counter[model.name] = counter.get(model.name, 0) + 1

        raw.meta.events.register("before-call.s3.*", count)
    if spec.request_payer:
        raw.meta.events.register("before-parameter-build.s3.*", _requester_pays)
    return client


def _requester_pays(params: dict[str, Any], model: Any, **_: Any) -> None:
    """Say the requester pays on every operation that can say it (a requester-pays bucket answers 403 otherwise)."""
    if "RequestPayer" in model.input_shape.members:
        params.setdefault("RequestPayer", "requester")


class S3Client:
    """A botocore S3 client whose every call is translated and retried here, and only here.

    ``client.head_object(Bucket=..., Key=...)`` makes the request with up to ``max_attempts``
    attempts for transient errors (or within a shared ``attempts=`` budget) and raises an
    ``AgentError`` with the cause as fields. A request body with ``seek`` is rewound before
    each new attempt (our bodies re-hash from the start when rewound).
    """

    def __init__(self, raw: Any, spec: ClientSpec) -> None:
        self.raw = raw
        self.spec = spec
        #: send no x-amz-checksum-* header: set by ``checksums = none`` or found out by ``call``
        self.checksum_headers = spec.checksums != "none"
        self.delete_md5 = True  #: add Content-MD5 to DeleteObjects (off only for doctor's question)

    def adjust_headers(self, request: Any, operation_name: str = "", **_: Any) -> None:
        """botocore ``before-sign`` hook: the store's header rules, applied to every request."""
        headers = request.headers
        if not self.checksum_headers:
            for name in [h for h in headers if h.lower().startswith(("x-amz-checksum-", "x-amz-sdk-checksum-"))]:
                del headers[name]
        body = request.body
        if operation_name == "DeleteObjects" and self.delete_md5 and "Content-MD5" not in headers and isinstance(
                body, bytes):
            headers["Content-MD5"] = base64.b64encode(hashlib.md5(body).digest()).decode()

    @property
    def endpoint(self) -> str | None:
        return self.spec.custom_endpoint

    @property
    def region(self) -> str | None:
        return str(self.raw.meta.region_name) if self.raw.meta.region_name else None

    def __getattr__(self, op: str) -> Callable[..., Any]:
        if op.startswith("_"):
            raise AttributeError(op)

        def call(*, attempts: Attempts | None = None, **kwargs: Any) -> Any:
            return self.call(op, attempts=attempts, **kwargs)

        return call

    def error(self, exc: BaseException, bucket: str = "", key: str | None = None) -> AgentError:
        return translate(exc, bucket=bucket, key=key, endpoint=self.endpoint)

    def call(self, op: str, *, attempts: Attempts | None = None, **kwargs: Any) -> Any:
        method = getattr(self.raw, op)
        body = kwargs.get("Body")
        if (op in ("put_object", "upload_part") and isinstance(body, bytes) and self.checksum_headers
                and not any(k.startswith(("Checksum", "ContentMD5")) for k in kwargs)):
            # A checksum in a header, made here, for every body in memory (link records, keep markers): else
            # boto3 >= 1.36 sends its CRC32 as an aws-chunked trailer over https, which some stores refuse
            # (Ceph RGW 16: MissingContentLength). Bodies streamed from files carry the oid's SHA-256 already.
            kwargs = {**kwargs, "ChecksumSHA256": base64.b64encode(hashlib.sha256(body).digest()).decode(),
                      "ChecksumAlgorithm": "SHA256"}

        def request() -> Any:
            try:
                return method(**kwargs)
            except Exception as exc:
                # Our own request body may have failed (the local file is corrupt or unreadable); botocore
                # and urllib3 wrap that as a connection error, which it is not.
                failure = getattr(body, "failure", None)
                if isinstance(failure, AgentError):
                    raise failure from None
                raise translate(exc, bucket=str(kwargs.get("Bucket", "")), key=kwargs.get("Key"),
                                endpoint=self.endpoint) from None

        def rewind() -> None:
            if body is not None and hasattr(body, "seek"):
                body.seek(0)

        budget = attempts or Attempts(self.spec.max_attempts)
        try:
            return retry.attempt(request, budget, what=op, before_retry=rewind)
        except AgentError as err:
            if not (self.checksum_headers and _checksum_headers_refused(err, op, kwargs)):
                raise
            # The store refuses S3's checksum headers: from now on this client sends none (and the request
            # is made once more without them). A request that fails the same way again was not that.
            self.checksum_headers = False
            rewind()
            try:
                result = retry.attempt(request, Attempts(self.spec.max_attempts), what=op, before_retry=rewind)
            except AgentError:
                self.checksum_headers = True
                raise err from None
            log.warning("%s rejects S3's checksum headers (%s): sending none from now on; the agent still checks "
                        "every object's SHA-256 itself (`--checksums none` avoids the first rejected request)",
                        self.endpoint or "the store", err.s3_code or err.status)
            return result


def _checksum_headers_refused(err: AgentError, op: str, kwargs: dict[str, Any]) -> bool:
    """Did the store refuse the request for its checksum headers? Said so (``translate``), or a bare 400 to a
    request that asked for checksums (a HEAD's error has no body to say why)."""
    from lfs_s3_agent.errors import CHECKSUM_HEADERS_REJECTED

    if err.incompatible == CHECKSUM_HEADERS_REJECTED:
        return True
    asked = any(k.startswith("Checksum") for k in kwargs)
    return asked and err.status == 400 and err.s3_code in (None, "400", "BadRequest") and op in (
        "head_object", "get_object")


@dataclass(frozen=True)
class Identity:
    """Who the credentials are: where they came from and the access key id (never the secret)."""

    method: str
    access_key: str
    arn: str | None = None
    account: str | None = None
    sts_error: AgentError | None = None  #: why STS could not say (None when it did)


def caller_identity(spec: ClientSpec, timeout: int = 15) -> Identity | None:
    """The credentials of the spec's profile and STS ``GetCallerIdentity`` (same endpoint rules as S3).

    None when there are no credentials at all; ``AgentError`` when they cannot be loaded.
    """
    from botocore.config import Config

    from lfs_s3_agent.s3.botosession import new_session

    try:
        session = new_session(spec.profile)
        creds = session.get_credentials()
        frozen = creds.get_frozen_credentials() if creds is not None else None
    except Exception as exc:
        raise translate(exc, bucket="") from None
    if creds is None or frozen is None or not frozen.access_key:
        return None
    endpoint = None if os.environ.get("AWS_ENDPOINT_URL_STS") else spec.custom_endpoint
    config = Config(retries={"total_max_attempts": 2, "mode": "standard"}, connect_timeout=timeout,
                    read_timeout=timeout)
    try:
        sts = session.create_client("sts", region_name=spec.region or session.get_config_variable("region")
                                    or "us-east-1", endpoint_url=endpoint, config=config, verify=spec.verify())
        ident: dict[str, Any] = sts.get_caller_identity()
    except Exception as exc:
        return Identity(str(creds.method), str(frozen.access_key), sts_error=translate(exc, bucket=""))
    return Identity(str(creds.method), str(frozen.access_key), ident.get("Arn"), ident.get("Account"))
