"""A fault-injecting HTTP proxy for tests: sits between the agent and the local S3 server.

Each ``Fault`` matches requests by method and a regex on the path (query included) and,
for its first ``times`` matches, does one thing wrong: answers with an S3 error status
(500, 503 SlowDown, 403), resets the connection while the request or the response body
is in flight, truncates or corrupts the response body, or stalls past the client's
read timeout (``stall``: before answering; ``stall-body``: after half the body), or
(``strip-checksums``) forwards the request and removes every ``x-amz-checksum-*`` header and
``<Checksum...>`` element from the answer, as a store that keeps no checksums (Ceph RGW 16) answers.
Everything else is forwarded unchanged. Only 127.0.0.1 is used.

``behaviours`` make the proxy act, for every request, as other stores are reported to (issue 13):

- ``reject-checksum-headers``: any ``x-amz-checksum-*`` / ``x-amz-sdk-checksum-*`` header is answered
  ``400 InvalidArgument "Unsupported header '<name>' received for this API call."`` (Backblaze B2's
  S3 API as its users report it; a HEAD's 400 has no body);
- ``require-delete-md5``: DeleteObjects without ``Content-MD5`` is ``400 MissingContentMD5`` (older
  MinIO and Ceph);
- ``strip-sse``: ``x-amz-server-side-encryption`` is removed from answers (SSE silently not applied);
- ``ignore-if-none-match``: ``If-None-Match`` is dropped from PUTs (Ceph RGW on a versioned bucket);
- ``early-precondition``: a PUT with ``If-None-Match: *`` and ``Expect: 100-continue`` to a key that
  exists is answered 412 before the body is sent, as S3 does (moto and this proxy otherwise say ``100
  Continue`` first); upstream must not check signatures (moto).

``received`` records (method, path, body bytes) of every request that reached the proxy's handler.

Rules that make the server behave like AWS where moto does not: ``requester_pays`` buckets answer
403 AccessDenied to any request (or copy from them) that does not carry ``x-amz-request-payer:
requester``, as S3 does for a requester-pays bucket (moto accepts the bucket setting and ignores
it); ``paid`` and ``refused_unpaid`` count the requests to them that said so and those refused.
"""

from __future__ import annotations

import http.client
import re
import socket
import ssl
import struct
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import unquote, urlsplit

KINDS = ("status", "reset-request", "reset-response", "truncate", "corrupt", "stall", "stall-body",
         "strip-checksums")
_CHECKSUM_ELEMENT = re.compile(rb"<Checksum(?:SHA256|SHA1|CRC32C?|CRC64NVME|Type)>[^<]*</Checksum[A-Za-z0-9]*>")
BEHAVIOURS = ("reject-checksum-headers", "require-delete-md5", "strip-sse", "ignore-if-none-match",
              "early-precondition")


@dataclass
class Fault:
    kind: str
    method: str = "GET"
    path: str = ".*"
    times: int = 1
    status: int = 503
    code: str = "SlowDown"
    stall_seconds: float = 5.0
    injected: int = 0
    seen: int = 0  #: matching requests, faulted or not

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"unknown fault kind {self.kind!r}")
        self._re = re.compile(self.path)

    def matches(self, method: str, path: str) -> bool:
        return method == self.method and bool(self._re.search(path))


@dataclass
class FaultProxy:
    upstream: str
    faults: list[Fault] = field(default_factory=list)
    requests: int = 0
    ca_bundle: str | None = None  #: for an https upstream (the proxy itself always serves plain http)
    behaviours: set[str] = field(default_factory=set)
    received: list[tuple[str, str, int]] = field(default_factory=list)
    refused: list[tuple[str, str, str]] = field(default_factory=list)  #: (method, path, code) refused by a behaviour
    requester_pays: set[str] = field(default_factory=set)  #: buckets that refuse requests not paid by the requester
    paid: int = 0  #: requests to requester-pays buckets that said the requester pays
    refused_unpaid: int = 0  #: requests to requester-pays buckets refused (no x-amz-request-payer)

    def __post_init__(self) -> None:
        unknown = set(self.behaviours) - set(BEHAVIOURS)
        if unknown:
            raise ValueError(f"unknown behaviours {sorted(unknown)}")
        target = urlsplit(self.upstream)
        https = target.scheme == "https"
        self._host, self._port = target.hostname or "127.0.0.1", target.port or (443 if https else 80)
        self._tls = ssl.create_default_context(cafile=self.ca_bundle) if https else None
        self._lock = threading.Lock()
        self._stop = threading.Event()
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: object) -> None:
                pass

            def _any(self) -> None:
                proxy._handle(self)

            def handle_expect_100(self) -> bool:
                if proxy._early_412(self):
                    return False
                return bool(super().handle_expect_100())

            do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = _any  # noqa: N815

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.endpoint = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def __enter__(self) -> FaultProxy:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._server.shutdown()
        self._server.server_close()

    def add(self, fault: Fault) -> Fault:
        with self._lock:
            self.faults.append(fault)
        return fault

    def clear(self) -> None:
        with self._lock:
            self.faults.clear()

    def _pick(self, method: str, path: str) -> Fault | None:
        with self._lock:
            self.requests += 1
            for fault in self.faults:
                if fault.matches(method, path):
                    fault.seen += 1
                    if fault.injected < fault.times:
                        fault.injected += 1
                        return fault
        return None

    def _upstream(self) -> http.client.HTTPConnection:
        return (http.client.HTTPSConnection(self._host, self._port, timeout=60, context=self._tls) if self._tls
                else http.client.HTTPConnection(self._host, self._port, timeout=60))

    def _early_412(self, h: BaseHTTPRequestHandler) -> bool:
        """``early-precondition``: answer 412 instead of ``100 Continue`` when the key exists (S3's way)."""
        if ("early-precondition" not in self.behaviours or h.command != "PUT"
                or h.headers.get("If-None-Match") != "*" or "?" in h.path):
            return False
        conn = self._upstream()
        try:
            # The PUT's own headers (moto only checks that a request is signed, not what was signed).
            keep = ("authorization", "x-amz-date", "x-amz-security-token", "host")
            conn.request("HEAD", h.path, headers={k: v for k, v in h.headers.items() if k.lower() in keep})
            exists = conn.getresponse().status == 200
        finally:
            conn.close()
        if exists:
            with self._lock:
                self.received.append((h.command, h.path, 0))
            _error(h, 412, "PreconditionFailed", "At least one of the pre-conditions you specified did not hold")
            h.close_connection = True
        return exists

    def _refusal(self, h: BaseHTTPRequestHandler) -> tuple[int, str, str] | None:
        """What a store with the proxy's behaviours refuses about this request: (status, code, message)."""
        if "reject-checksum-headers" in self.behaviours:
            for name in h.headers:
                if name.lower().startswith(("x-amz-checksum-", "x-amz-sdk-checksum-")):
                    return 400, "InvalidArgument", f"Unsupported header '{name.lower()}' received for this API call."
        if ("require-delete-md5" in self.behaviours and h.command == "POST" and "delete" in h.path.partition("?")[2]
                and "Content-MD5" not in h.headers):
            return 400, "MissingContentMD5", "Missing required header for this request: Content-MD5"
        return None
    def _unpaid(self, h: BaseHTTPRequestHandler) -> bool:
        """Is this a request to (or a copy from) a requester-pays bucket that does not say the requester pays?"""
        buckets = {unquote(urlsplit(h.path).path).lstrip("/").split("/")[0]}
        copy_source = h.headers.get("x-amz-copy-source")
        if copy_source:
            buckets.add(unquote(copy_source).lstrip("/").split("/")[0])
        if not buckets & self.requester_pays:
            return False
        paying = h.headers.get("x-amz-request-payer", "").lower() == "requester"
        with self._lock:
            if paying:
                self.paid += 1
            else:
                self.refused_unpaid += 1
        return not paying

    def _handle(self, h: BaseHTTPRequestHandler) -> None:
        length = int(h.headers.get("Content-Length") or 0)
        if self._unpaid(h):  # answered as S3 does, once the body is read below
            fault: Fault | None = Fault("status", h.command, status=403, code="AccessDenied")
        else:
            fault = self._pick(h.command, h.path)
        if fault is not None and fault.kind == "reset-request":
            h.rfile.read(min(length, max(1, length // 2)))  # take half the body, then cut the line
            _reset(h.connection)
            h.close_connection = True
            return
        body = h.rfile.read(length) if length else b""
        with self._lock:
            self.received.append((h.command, h.path, len(body)))
        refusal = self._refusal(h)
        if refusal is not None:
            with self._lock:
                self.refused.append((h.command, h.path, refusal[1]))
            _error(h, *refusal)
            return
        if fault is not None and fault.kind == "status":
            _error(h, fault.status, fault.code, "injected fault")
            return
        if fault is not None and fault.kind == "stall":
            self._stop.wait(fault.stall_seconds)  # past the client's read timeout
            _reset(h.connection)
            h.close_connection = True
            return
        conn = self._upstream()
        try:
            dropped = ("connection", "proxy-connection") + (
                ("if-none-match",) if "ignore-if-none-match" in self.behaviours and h.command == "PUT" else ())
            headers = {k: v for k, v in h.headers.items() if k.lower() not in dropped}
            conn.request(h.command, h.path, body=body, headers=headers)
            resp = conn.getresponse()
            data = resp.read()
        finally:
            conn.close()
        if fault is not None and fault.kind == "corrupt" and data:
            data = bytearray(data)
            data[len(data) // 2] ^= 0xFF
            data = bytes(data)
        strip = fault is not None and fault.kind == "strip-checksums"
        if strip and resp.getheader("Content-Type", "").endswith("xml"):
            data = _CHECKSUM_ELEMENT.sub(b"", data)
        h.send_response(resp.status, resp.reason)
        for key, value in resp.getheaders():
            if key.lower() not in ("transfer-encoding", "connection", "content-length") and not (
                    strip and key.lower().startswith("x-amz-checksum-")) and not (
                    "strip-sse" in self.behaviours and key.lower() == "x-amz-server-side-encryption"):
                h.send_header(key, value)
        # A HEAD's answer has no body, but its Content-Length is the object's size.
        length_header = resp.getheader("Content-Length", "0") if h.command == "HEAD" else str(len(data))
        h.send_header("Content-Length", length_header)
        h.end_headers()
        if h.command == "HEAD":
            return
        if fault is not None and fault.kind in ("truncate", "reset-response", "stall-body") and len(data) > 1:
            h.wfile.write(data[: len(data) // 2])
            h.wfile.flush()
            if fault.kind == "stall-body":
                self._stop.wait(fault.stall_seconds)  # the client has half the body (and said so)
            if fault.kind in ("reset-response", "stall-body"):
                _reset(h.connection)
            else:
                h.connection.shutdown(socket.SHUT_RDWR)
            h.close_connection = True
            return
        h.wfile.write(data)


def _error(h: BaseHTTPRequestHandler, status: int, code: str, message: str) -> None:
    """An S3 error answer (no body for a HEAD, as S3 does)."""
    xml = (f"<?xml version=\"1.0\" encoding=\"UTF-8\"?><Error><Code>{code}</Code>"
           f"<Message>{message}</Message></Error>").encode()
    h.send_response(status)
    h.send_header("Content-Type", "application/xml")
    h.send_header("Content-Length", str(len(xml)))
    h.end_headers()
    if h.command != "HEAD":
        h.wfile.write(xml)


def _reset(sock: socket.socket) -> None:
    """Close with RST (SO_LINGER 0), as a dropped connection looks to the client."""
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        sock.close()
    except OSError:
        pass
