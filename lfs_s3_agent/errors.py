"""Error hierarchy shared by every layer, each cause with its own documented code.

Codes travel to git-lfs in ``complete``/init error messages and are listed in the
README. ``AgentError`` subclasses are either per-object (the request loop reports
them and goes on) or fatal (only configuration and init problems). Standard
library only: the agent imports this before it answers init.
"""

from __future__ import annotations

from enum import IntEnum


class Code(IntEnum):
    """Error codes the agent reports to git-lfs (documented in README.md)."""

    CONFIG = 32  #: settings missing or invalid; git-lfs's conventional init error code
    BAD_REQUEST = 40  #: a protocol line that is not a valid request
    LOCAL_FILE = 41  #: the upload file or the download directory cannot be used
    INTEGRITY = 42  #: bytes do not match the oid or size (either direction)
    NOT_FOUND = 43  #: the object is not in the store
    NO_SUCH_BUCKET = 44  #: the configured bucket does not exist
    ACCESS_DENIED = 45  #: credentials are valid but not allowed to do this
    CREDENTIALS = 46  #: credentials missing, unknown, expired or with a wrong secret
    NETWORK = 47  #: the endpoint cannot be reached
    TIMEOUT = 48  #: the endpoint stopped answering in time
    ARCHIVED = 49  #: the object is in an archive storage class and must be restored
    S3_ERROR = 50  #: any other error reported by the S3 service
    LINK_BROKEN = 51  #: a linked original was deleted or overwritten, or its link record is unusable
    INTERNAL = 59  #: a bug in lfs-s3-agent; please report it


#: Store differences an error can name (``AgentError.incompatible``), set by ``s3.errors.translate``:
#: the store rejects ``x-amz-checksum-*`` headers (Backblaze B2's S3 API), or it requires ``Content-MD5``
#: where S3 takes any checksum (DeleteObjects on older MinIO and Ceph).
CHECKSUM_HEADERS_REJECTED = "checksum-headers-rejected"
CONTENT_MD5_REQUIRED = "content-md5-required"
INCOMPATIBLE = (CHECKSUM_HEADERS_REJECTED, CONTENT_MD5_REQUIRED)


class AgentError(Exception):
    """Base class: an error with a code and a message that tells the user what to do.

    Errors are data: callers decide by ``code``, ``s3_code`` (the service's error code, e.g.
    ``NoSuchUpload``), ``status`` (the HTTP status), ``transient`` (worth another attempt) and
    ``incompatible`` (the store feature the request tripped on, one of ``INCOMPATIBLE``), never by
    matching message text.
    """

    code: Code = Code.INTERNAL

    def __init__(self, message: str, *, code: Code | None = None, s3_code: str | None = None,
                 status: int | None = None, transient: bool = False, bucket_region: str | None = None,
                 incompatible: str | None = None) -> None:
        super().__init__(message)
        if code is not None:
            self.code = code
        self.s3_code = s3_code
        self.status = status
        self.transient = transient
        self.bucket_region = bucket_region  #: the region S3 says the bucket is in (x-amz-bucket-region)
        self.incompatible = incompatible  #: a store difference the S3 layer can adapt to (``INCOMPATIBLE``)

    @property
    def message(self) -> str:
        return str(self.args[0])


class ConfigError(AgentError):
    """Settings are missing or invalid: fatal, reported on init."""

    code = Code.CONFIG


class BadRequest(AgentError):
    """A request line that is not valid; ``oid`` is set when one could be read."""

    code = Code.BAD_REQUEST

    def __init__(self, message: str, *, oid: str | None = None) -> None:
        super().__init__(message)
        self.oid = oid


class LocalFileError(AgentError):
    code = Code.LOCAL_FILE


class IntegrityError(AgentError):
    code = Code.INTEGRITY


class StoreError(AgentError):
    """An S3 failure translated by ``s3.errors.translate``; the code names the cause."""

    code = Code.S3_ERROR


class GitError(AgentError):
    """A git command failed or we are not inside a repository."""

    code = Code.CONFIG


class Cancelled(BaseException):
    """The agent that asked for this transfer has gone: stop moving bytes and clean up.

    A BaseException, like KeyboardInterrupt, so that no retry loop or per-object error
    handler mistakes it for a failure worth reporting or retrying.
    """


_CONTROL = {c: f"\\x{c:02x}" for c in (*range(0, 9), *range(11, 32), 127)}
_CONTROL.update({c: f"\\u{c:04x}" for c in range(0x80, 0xA0)})  # C1 controls (CSI is 0x9b)


def printable(text: str, *, keep_newlines: bool = True) -> str:
    """``text`` with control characters escaped (``\\x1b``), safe for a terminal, git-lfs's output or a log.

    Strings the store controls (keys, link records, S3 error messages) end up in messages; an escape
    sequence in one must not reach the user's terminal as it is.
    """
    table = _CONTROL if keep_newlines else {**_CONTROL, 10: "\\n"}
    return text.translate(table)
