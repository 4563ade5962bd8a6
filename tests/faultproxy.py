"""A fault-injecting HTTP proxy for tests: sits between the agent and the local S3 server.

Each ``Fault`` matches requests by method and a regex on the path (query included) and,
for its first ``times`` matches, does one thing wrong: answers with an S3 error status
(500, 503 SlowDown, 403), resets the connection while the request or the response body
is in flight, truncates or corrupts the response body, or stalls past the client's
read timeout, or (``strip-checksums``) forwards the request and removes every ``x-amz-checksum-*``
header and ``<Checksum...>`` element from the answer, as a store that keeps no checksums (Ceph
RGW 16) answers. Everything else is forwarded unchanged. Only 127.0.0.1 is used.

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

KINDS = ("status", "reset-request", "reset-response", "truncate", "corrupt", "stall", "strip-checksums")
_CHECKSUM_ELEMENT = re.compile(rb"<Checksum(?:SHA256|SHA1|CRC32C?|CRC64NVME|Type)>[^<]*</Checksum[A-Za-z0-9]*>")


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
    requester_pays: set[str] = field(default_factory=set)  #: buckets that refuse requests not paid by the requester
    paid: int = 0  #: requests to requester-pays buckets that said the requester pays
    refused_unpaid: int = 0  #: requests to requester-pays buckets refused (no x-amz-request-payer)

    def __post_init__(self) -> None:
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
        if fault is not None and fault.kind == "status":
            xml = (f"<?xml version=\"1.0\" encoding=\"UTF-8\"?><Error><Code>{fault.code}</Code>"
                   f"<Message>injected fault</Message></Error>").encode()
            h.send_response(fault.status)
            h.send_header("Content-Type", "application/xml")
            h.send_header("Content-Length", str(len(xml)))
            h.end_headers()
            if h.command != "HEAD":
                h.wfile.write(xml)
            return
        if fault is not None and fault.kind == "stall":
            self._stop.wait(fault.stall_seconds)  # past the client's read timeout
            _reset(h.connection)
            h.close_connection = True
            return
        conn = (http.client.HTTPSConnection(self._host, self._port, timeout=60, context=self._tls) if self._tls
                else http.client.HTTPConnection(self._host, self._port, timeout=60))
        try:
            headers = {k: v for k, v in h.headers.items() if k.lower() not in ("connection", "proxy-connection")}
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
                    strip and key.lower().startswith("x-amz-checksum-")):
                h.send_header(key, value)
        # A HEAD's Content-Length is the object's size, not the (empty) body's.
        length_sent = resp.getheader("Content-Length", "0") if h.command == "HEAD" else str(len(data))
        h.send_header("Content-Length", length_sent)
        h.end_headers()
        if h.command == "HEAD":
            return
        if fault is not None and fault.kind in ("truncate", "reset-response") and len(data) > 1:
            h.wfile.write(data[: len(data) // 2])
            h.wfile.flush()
            if fault.kind == "reset-response":
                _reset(h.connection)
            else:
                h.connection.shutdown(socket.SHUT_RDWR)
            h.close_connection = True
            return
        h.wfile.write(data)


def _reset(sock: socket.socket) -> None:
    """Close with RST (SO_LINGER 0), as a dropped connection looks to the client."""
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        sock.close()
    except OSError:
        pass
