"""botocore exceptions translated into ours, once, as data.

``translate`` gives every failure a ``Code`` (documented in the README), the service's own
error code (``s3_code``), the HTTP ``status`` and whether another attempt may succeed
(``transient``). Callers decide by these fields, never by message text. An error that our
own code raised inside botocore (a request body that fails its SHA-256 while it is being sent)
comes back out as itself (``client.S3Client.call`` asks the body): it is not a network error
and is never retried.
A HEAD answered 403 is never "absent" (see ``store.S3Store``). ``requester_pays_hint`` adds to an
access-denied answer from a source bucket read without ``RequestPayer`` that it may be requester-pays.
"""

from __future__ import annotations

import errno
import re
from typing import Any

from lfs_s3_agent.errors import (
    CHECKSUM_HEADERS_REJECTED,
    CONTENT_MD5_REQUIRED,
    AgentError,
    Code,
    LocalFileError,
    StoreError,
)
from lfs_s3_agent.s3 import retry

#: errno values that mean our own disk, not the network
_LOCAL_ERRNOS = {errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EPERM, errno.EFBIG, errno.EIO}

_CREDENTIAL_CODES = {
    "InvalidAccessKeyId", "SignatureDoesNotMatch", "ExpiredToken", "TokenRefreshRequired",
    "InvalidToken", "ExpiredTokenException", "InvalidClientTokenId", "UnrecognizedClientException",
}
_DENIED_CODES = {"AccessDenied", "AllAccessDisabled", "AccountProblem", "403", "Forbidden"}
_MISSING_CODES = {"NoSuchKey", "404", "NotFound", "NoSuchVersion"}
_INTEGRITY_CODES = {"BadDigest", "InvalidDigest", "XAmzContentSHA256Mismatch", "InvalidChecksum"}
#: How stores word "I do not take this checksum header" (B2: "Unsupported header 'x-amz-checksum-sha256'
#: received for this API call."; others: "... checksum ... not implemented/not supported").
_CHECKSUM_UNSUPPORTED = re.compile(r"(unsupported|not supported|not implemented|unknown) header.*"
                                   r"x-amz-(checksum|sdk-checksum)|x-amz-(checksum|sdk-checksum)\S*.*"
                                   r"(unsupported|not supported|not implemented)", re.IGNORECASE)
_REQUEST_ERROR_CODES = {"InvalidArgument", "InvalidRequest", "NotImplemented", "BadRequest", "400", "501"}
_TRANSIENT_CODES = {"SlowDown", "ServiceUnavailable", "InternalError", "RequestTimeout", "500", "503",
                    "RequestTimeTooSkewed", "Throttling", "ThrottlingException", "RequestLimitExceeded"}


def requester_pays_hint(err: AgentError, bucket: str, *, flag: bool = True) -> AgentError:
    """An access-denied error from a bucket read without ``RequestPayer``, saying it may be requester-pays.

    S3 answers a request to a requester-pays bucket that does not say the requester pays with 403
    AccessDenied, like a missing permission: the two cannot be told apart from the answer, so this is a
    possibility named with its fix, not a diagnosis. ``flag``: the command takes ``--request-payer``.
    """
    if err.code != Code.ACCESS_DENIED:
        return err
    how = "pass --request-payer, or run" if flag else "opt in to pay with"
    return StoreError(f"{err.message}; or, if s3://{bucket} is a requester-pays bucket (common for public datasets; "
                      "S3 then refuses requests that do not say the requester pays), "
                      f"{how} `git config lfs-s3-source.{bucket}.request-payer true` (your account pays for the "
                      "requests and the data transfer)", code=err.code, s3_code=err.s3_code, status=err.status,
                      transient=err.transient, bucket_region=err.bucket_region)


def translate(exc: BaseException, *, bucket: str, key: str | None = None, endpoint: str | None = None) -> AgentError:
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
        raw_status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
        status = int(raw_status) if isinstance(raw_status, int) else None
        region = exc.response.get("ResponseMetadata", {}).get("HTTPHeaders", {}).get("x-amz-bucket-region")
        fields: dict[str, Any] = {"s3_code": code or None, "status": status, "bucket_region": region or None}
        if code == "MissingContentMD5" or (code in _REQUEST_ERROR_CODES and "content-md5" in detail.lower()
                                           and "missing" in detail.lower()):
            return StoreError(f"{where}: the store requires a Content-MD5 header on this request ({code}: "
                              f"{detail})", code=Code.S3_ERROR, incompatible=CONTENT_MD5_REQUIRED, **fields)
        if code in _REQUEST_ERROR_CODES and _CHECKSUM_UNSUPPORTED.search(detail):
            return StoreError(f"{where}: the store rejects S3's checksum headers ({code}: {detail}); "
                              "set --checksums none", code=Code.S3_ERROR, incompatible=CHECKSUM_HEADERS_REJECTED,
                              **fields)
        if code == "NoSuchBucket":
            return StoreError(f"bucket {bucket!r} does not exist{at}: check the bucket name "
                              "(`lfs-s3-agent config` shows where it is set) and the endpoint/region",
                              code=Code.NO_SUCH_BUCKET, **fields)
        if code in _CREDENTIAL_CODES:
            return StoreError(f"{where}: S3 rejected the credentials ({code}: {detail}); check "
                              "AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, the profile, or log in again "
                              "(`aws sso login`)", code=Code.CREDENTIALS, **fields)
        if code in _DENIED_CODES:
            return StoreError(f"{where}: access denied{at} ({code}{': ' + detail if detail else ''}); "
                              "the credentials are not allowed to do this: check the IAM policy for "
                              "s3:GetObject/PutObject/ListBucket on this bucket and prefix",
                              code=Code.ACCESS_DENIED, **fields)
        if code in _MISSING_CODES:
            return StoreError(f"{where}: object not found in the store; it was never pushed here, "
                              "or the settings point at another bucket/prefix", code=Code.NOT_FOUND, **fields)
        if code in ("InvalidObjectState", "ObjectNotInActiveTierError"):
            return StoreError(f"{where}: the object is archived (Glacier/Deep Archive); restore it "
                              "first (`lfs-s3-agent restore`)", code=Code.ARCHIVED, **fields)
        if code in ("PreconditionFailed", "412") or status == 412:
            return StoreError(f"{where}: the object changed while it was being read; try again",
                              code=Code.INTEGRITY, **fields)
        if code in _INTEGRITY_CODES:
            return StoreError(f"{where}: S3 rejected the bytes as corrupt ({code}: {detail})",
                              code=Code.INTEGRITY, **fields)
        if code in ("PermanentRedirect", "AuthorizationHeaderMalformed", "IllegalLocationConstraintException"):
            actual = err.get("Region") or exc.response.get("ResponseMetadata", {}).get(
                "HTTPHeaders", {}).get("x-amz-bucket-region")
            hint = f"set --region {actual}" if actual else "set --region to the bucket's region"
            return StoreError(f"bucket {bucket!r} is in another region ({code}): {hint}", code=Code.S3_ERROR,
                              **fields)
        transient = code in _TRANSIENT_CODES or (status is not None and retry.transient_status(status))
        return StoreError(f"{where}: S3 error {code or status}{': ' + detail if detail else ''}",
                          code=Code.S3_ERROR, transient=transient, **fields)
    if isinstance(exc, bce.FlexibleChecksumError):
        # Bytes damaged on the way: everything read so far is suspect, so no resume.
        return StoreError(f"{where}: the response failed its checksum ({exc})", code=Code.INTEGRITY)
    if isinstance(exc, (bce.NoCredentialsError, bce.PartialCredentialsError)):
        return StoreError("no AWS credentials found: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, "
                          "or --profile, or run on a host with an instance role", code=Code.CREDENTIALS)
    if isinstance(exc, bce.ProfileNotFound):
        return StoreError(f"{exc}: check --profile against ~/.aws/config", code=Code.CREDENTIALS)
    if isinstance(exc, bce.ConfigParseError):
        return StoreError(f"the AWS config file cannot be read ({exc}): fix its syntax (AWS_CONFIG_FILE, "
                          "AWS_SHARED_CREDENTIALS_FILE or ~/.aws/config)", code=Code.CREDENTIALS)
    if isinstance(exc, (bce.SSOError, bce.TokenRetrievalError, bce.UnauthorizedSSOTokenError)):
        return StoreError(f"SSO credentials failed ({exc}): run `aws sso login`", code=Code.CREDENTIALS)
    if isinstance(exc, (bce.ConnectTimeoutError, bce.ReadTimeoutError)):
        return StoreError(f"{where}: the endpoint{at} did not answer in time ({exc}); check the network "
                          "or raise --timeout", code=Code.TIMEOUT, transient=True)
    if isinstance(exc, bce.InvalidConfigError):
        # e.g. AWS_CA_BUNDLE='' ("Invalid CA bundle: ... resolved to an empty or whitespace-only string")
        return StoreError(f"the AWS SDK's settings are unusable ({exc}): check AWS_CA_BUNDLE, REQUESTS_CA_BUNDLE, "
                          "--ca-bundle and ~/.aws/config", code=Code.CONFIG)
    if isinstance(exc, bce.SSLError) and "No such file or directory" in str(exc):
        return StoreError(f"{where}: the CA bundle file does not exist ({exc}); check --ca-bundle, AWS_CA_BUNDLE "
                          "and REQUESTS_CA_BUNDLE", code=Code.CONFIG)
    if isinstance(exc, bce.SSLError):
        return StoreError(f"{where}: TLS failed{at} ({exc}); check the endpoint URL and its certificate "
                          "(--ca-bundle for a private CA)", code=Code.NETWORK)
    if isinstance(exc, bce.EndpointConnectionError):
        return StoreError(f"{where}: cannot reach the S3 endpoint{at} ({exc}); check --endpoint-url, "
                          "--region and the network", code=Code.NETWORK, transient=True)
    if isinstance(exc, (bce.ConnectionClosedError, bce.ProxyConnectionError, bce.ResponseStreamingError,
                        bce.HTTPClientError, bce.IncompleteReadError)):
        return StoreError(f"{where}: the connection to the S3 endpoint{at} broke ({exc})", code=Code.NETWORK,
                          transient=True)
    if isinstance(exc, bce.NoRegionError):
        return StoreError("no region configured: set --region", code=Code.CONFIG)
    if isinstance(exc, (ConnectionError, TimeoutError)):
        return StoreError(f"{where}: connection failed{at} ({exc})", code=Code.NETWORK, transient=True)
    if isinstance(exc, OSError):
        if exc.errno in _LOCAL_ERRNOS:
            return LocalFileError(f"{where}: local I/O failed ({exc.strerror or exc}); check free space and "
                                  "permissions in .git/lfs")
        return StoreError(f"{where}: I/O error ({exc})", code=Code.NETWORK, transient=True)
    return AgentError(f"{where}: unexpected {type(exc).__name__}: {exc}", code=Code.INTERNAL)
