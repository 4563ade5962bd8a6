"""Reads through a public URL (a CDN, a bucket's public endpoint, a static mirror of the store's keys).

``PublicClient`` answers the two requests the byte movers make of a store, ``get_object`` and
``head_object``, with plain HTTP GETs/HEADs of ``<public_url>/<key>``: no signing, no
``Authorization`` header, no credentials of any kind (it is another host), connections kept alive
in a urllib3 pool sized for the parallel ranges. So ``transfer.fetch`` moves bytes from it exactly
as from S3: streamed or in parallel ranges, every byte SHA-256 checked, the same ``retry.Attempts``
budget per object, and errors with the same codes as ``errors.translate`` (404 is ``NOT_FOUND``,
S3's ``InvalidObjectState`` behind a CDN is ``ARCHIVED``). urllib3 is imported on first use.
"""

from __future__ import annotations

import logging
import re
from typing import Any
from urllib.parse import quote

from lfs_s3_agent import __version__
from lfs_s3_agent.errors import AgentError, Code, StoreError
from lfs_s3_agent.s3 import retry
from lfs_s3_agent.s3.retry import Attempts

log = logging.getLogger(__name__)

_S3_CODE = re.compile(rb"<Code>([A-Za-z0-9.]{1,64})</Code>")


class PublicBody:
    """A response body with the reads the byte movers use (``iter_chunks``, ``read``, ``readinto``)."""

    def __init__(self, response: Any) -> None:
        self._response = response

    def iter_chunks(self, size: int) -> Any:
        while True:
            data = self._response.read(size, decode_content=False)
            if not data:
                self._response.release_conn()
                return
            yield data

    def read(self, size: int = -1) -> bytes:
        data: bytes = self._response.read(None if size < 0 else size, decode_content=False)
        return data

    def readinto(self, view: memoryview) -> int:
        data = self._response.read(len(view), decode_content=False)
        view[:len(data)] = data
        if not data:
            self._response.release_conn()
        return len(data)


class PublicClient:
    """GETs of ``<base>/<key>`` shaped like ``S3Client``'s answers; ``bucket`` arguments are ignored."""

    def __init__(self, base: str, *, max_attempts: int = 5, timeout: int = 60, pool: int = 10,
                 ca_bundle: str | None = None) -> None:
        self.base = base.rstrip("/")
        self.ca_bundle = ca_bundle  #: CA certificates to check the URL's TLS certificate with (else the system's)
        self.max_attempts = max_attempts
        self.timeout = timeout
        self.pool_size = max(10, pool)
        self._pool: Any = None

    @property
    def endpoint(self) -> str:
        return self.base

    def url(self, key: str) -> str:
        return f"{self.base}/{quote(key, safe='/-_.~')}"

    def _http(self) -> Any:
        if self._pool is None:
            import urllib3

            # No retries of urllib3's own (Attempts is the one budget); redirects are followed, as a
            # mirror may send one, and nothing secret travels with a request anyway.
            self._pool = urllib3.PoolManager(
                num_pools=4, maxsize=self.pool_size, block=False,
                retries=urllib3.Retry(total=None, connect=0, read=0, status=0, other=0, redirect=5,
                                      raise_on_status=False),
                timeout=urllib3.Timeout(connect=self.timeout, read=self.timeout),
                ca_certs=self.ca_bundle)  # None: the system's CAs
        return self._pool

    # -- what the byte movers call ----------------------------------------------------------------

    def get_object(self, *, attempts: Attempts | None = None, Key: str,  # noqa: N803 - S3's argument names
                   Range: str | None = None, IfMatch: str | None = None,  # noqa: N803
                   **_: Any) -> dict[str, Any]:
        headers = {"Accept-Encoding": "identity", "User-Agent": f"lfs-s3-agent/{__version__}"}
        if Range:
            headers["Range"] = Range
        if IfMatch and not IfMatch.startswith("W/"):
            headers["If-Match"] = IfMatch
        resp = self._request("GET", Key, headers, attempts)
        if Range and resp.status != 206:
            resp.release_conn()
            raise StoreError(f"{self.url(Key)}: the public URL ignored a byte range (HTTP {resp.status}); serve "
                             "the keys from a server that supports Range requests (S3, CloudFront and most CDNs do)",
                             code=Code.S3_ERROR, status=resp.status)
        return {"Body": PublicBody(resp), "ETag": resp.headers.get("ETag"),
                "ContentRange": resp.headers.get("Content-Range", ""),
                "ContentLength": int(resp.headers.get("Content-Length") or 0)}

    def head_object(self, *, attempts: Attempts | None = None, Key: str, **_: Any) -> dict[str, Any]:  # noqa: N803
        resp = self._request("HEAD", Key, {"User-Agent": f"lfs-s3-agent/{__version__}"}, attempts)
        resp.release_conn()
        return {"ContentLength": int(resp.headers.get("Content-Length") or 0), "ETag": resp.headers.get("ETag"),
                "Metadata": {}}

    def error(self, exc: BaseException, bucket: str = "", key: str | None = None) -> AgentError:
        return translate_http(exc, self.url(key) if key else self.base)

    # -- one request, retried within the budget ---------------------------------------------------

    def _request(self, method: str, key: str, headers: dict[str, str], attempts: Attempts | None) -> Any:
        url = self.url(key)

        def request() -> Any:
            try:
                resp = self._http().request(method, url, headers=headers, preload_content=False,
                                            decode_content=False)
            except Exception as exc:
                raise translate_http(exc, url) from None
            if resp.status < 300:
                return resp
            raise status_error(resp, url)

        return retry.attempt(request, attempts or Attempts(self.max_attempts), what=f"{method} {url}")


def status_error(resp: Any, url: str) -> AgentError:
    """An HTTP error answer as our error (S3's XML error code read from the body when there is one)."""
    status = int(resp.status)
    try:
        body = resp.read(64 << 10, decode_content=True) or b""
    except Exception:
        body = b""
    finally:
        resp.release_conn()
    found = _S3_CODE.search(body)
    s3_code = found.group(1).decode() if found else None
    if s3_code == "InvalidObjectState":
        return StoreError(f"{url}: the object is archived (Glacier/Deep Archive) and not restored",
                          code=Code.ARCHIVED, s3_code=s3_code, status=status)
    if status == 404 or s3_code in ("NoSuchKey", "NotFound"):
        return StoreError(f"{url}: object not found at the public URL; it was never pushed, or the public URL does "
                          "not serve this store's keys (check public_url and prefix with `lfs-s3-agent config`)",
                          code=Code.NOT_FOUND, s3_code=s3_code, status=status)
    if status == 403:
        return StoreError(f"{url}: the public URL refused the read (HTTP 403{', ' + s3_code if s3_code else ''}); "
                          "a CDN or a bucket without public list access also answers 403 for a key it does not have",
                          code=Code.ACCESS_DENIED, s3_code=s3_code, status=status)
    if status == 412:
        return StoreError(f"{url}: the object changed while it was being read; try again", code=Code.INTEGRITY,
                          s3_code=s3_code, status=status)
    return StoreError(f"{url}: HTTP {status}{' ' + s3_code if s3_code else ''} from the public URL",
                      code=Code.S3_ERROR, s3_code=s3_code, status=status,
                      transient=retry.transient_status(status))


def translate_http(exc: BaseException, url: str) -> AgentError:
    """A urllib3 / socket failure as our error (timeouts and broken connections are transient)."""
    if isinstance(exc, AgentError):
        return exc
    import urllib3.exceptions as ue

    if isinstance(exc, (ue.ReadTimeoutError, ue.ConnectTimeoutError, TimeoutError)):
        return StoreError(f"{url}: the public URL did not answer in time ({exc}); check the network or raise "
                          "--timeout", code=Code.TIMEOUT, transient=True)
    if isinstance(exc, ue.SSLError):
        return StoreError(f"{url}: TLS failed ({exc}); check public_url and its certificate", code=Code.NETWORK)
    if isinstance(exc, ue.MaxRetryError) and isinstance(exc.reason, ue.SSLError):
        return StoreError(f"{url}: TLS failed ({exc.reason}); check public_url and its certificate",
                          code=Code.NETWORK)
    if isinstance(exc, ue.MaxRetryError) and isinstance(exc.reason, ue.ResponseError):
        return StoreError(f"{url}: too many redirects from the public URL ({exc.reason})", code=Code.S3_ERROR)
    if isinstance(exc, (ue.HTTPError, ConnectionError, OSError)):
        return StoreError(f"{url}: cannot read from the public URL ({exc}); check public_url and the network",
                          code=Code.NETWORK, transient=True)
    return AgentError(f"{url}: unexpected {type(exc).__name__}: {exc}", code=Code.INTERNAL)
