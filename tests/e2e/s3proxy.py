"""A recording HTTP proxy on 127.0.0.1 in front of the moto server, for linked-mode tests.

Source buckets are reached through it (``--source-endpoint-url``, or the endpoint a link record
carries), so a test sees every request the ``link`` command and git-lfs's agent processes send to
an original: method, key, query, whether it was signed, and how many body bytes were served.
That is black-box evidence (no hook inside the agent) for "--no-checkout downloads no bytes",
"the linked version is fetched by version id" and "requests to a public source are unsigned";
moto itself keeps no request log and accepts any signature while its auth is off.
"""

from __future__ import annotations

import http.client
import ssl
import threading
import urllib.parse
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

_HOP_BY_HOP = {"connection", "keep-alive", "proxy-authenticate", "proxy-authorization", "te", "trailer",
               "transfer-encoding", "upgrade"}


@dataclass(frozen=True)
class Seen:
    """One request as the proxy forwarded it."""

    method: str
    bucket: str
    key: str  #: "" for bucket-level requests (ListObjectsV2, ...)
    query: dict[str, str]
    signed: bool  #: an Authorization header or a presigned-URL signature was present
    status: int
    body_bytes: int  #: response body bytes sent back (0 for HEAD)

    @property
    def is_object_get(self) -> bool:
        """A GetObject (object bytes), as opposed to a HEAD or a listing."""
        return self.method == "GET" and bool(self.key) and not ({"list-type", "uploads", "acl", "tagging"}
                                                                 & set(self.query))

    @property
    def is_write(self) -> bool:
        return self.method in ("PUT", "POST", "DELETE")


class CountingProxy:
    """``with CountingProxy(upstream) as proxy: proxy.endpoint`` -> ``http://127.0.0.1:PORT``."""

    def __init__(self, upstream: str, ca_bundle: str | None = None) -> None:
        """``ca_bundle``: for an https upstream (the proxy itself always serves plain http)."""
        parsed = urllib.parse.urlsplit(upstream)
        assert parsed.hostname == "127.0.0.1", "tests talk to 127.0.0.1 only"
        https = parsed.scheme == "https"
        self._upstream = (parsed.hostname, parsed.port or (443 if https else 80))
        self._tls = ssl.create_default_context(cafile=ca_bundle) if https else None
        self._lock = threading.Lock()
        self._seen: list[Seen] = []
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler_class())
        self._server.daemon_threads = True
        self.endpoint = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, name="s3proxy", daemon=True)

    # -- what was seen --------------------------------------------------------------------------

    @property
    def seen(self) -> list[Seen]:
        with self._lock:
            return list(self._seen)

    def clear(self) -> None:
        with self._lock:
            self._seen.clear()

    def requests(self, bucket: str) -> list[Seen]:
        return [s for s in self.seen if s.bucket == bucket]

    def object_gets(self, bucket: str, key: str | None = None) -> list[Seen]:
        return [s for s in self.requests(bucket) if s.is_object_get and (key is None or s.key == key)]

    def object_bytes(self, bucket: str, key: str | None = None) -> int:
        """Object bytes served (successful GetObject bodies only; listings and errors excluded)."""
        return sum(s.body_bytes for s in self.object_gets(bucket, key) if 200 <= s.status < 300)

    def writes(self, bucket: str) -> list[Seen]:
        return [s for s in self.requests(bucket) if s.is_write]

    # -- lifecycle --------------------------------------------------------------------------------

    def __enter__(self) -> CountingProxy:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=10)

    def _record(self, seen: Seen) -> None:
        with self._lock:
            self._seen.append(seen)

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:
                pass

            def _body(self) -> bytes:
                if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
                    out = bytearray()
                    while True:
                        size = int(self.rfile.readline().split(b";")[0].strip(), 16)
                        if size == 0:
                            while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                                pass
                            return bytes(out)
                        out += self.rfile.read(size)
                        self.rfile.readline()
                length = int(self.headers.get("Content-Length") or 0)
                return self.rfile.read(length) if length else b""

            def _forward(self) -> None:
                body = self._body()
                conn = (http.client.HTTPSConnection(*proxy._upstream, timeout=120, context=proxy._tls)
                        if proxy._tls else http.client.HTTPConnection(*proxy._upstream, timeout=120))
                try:
                    conn.putrequest(self.command, self.path, skip_host=True, skip_accept_encoding=True)
                    for name, value in self.headers.items():
                        if name.lower() not in _HOP_BY_HOP and name.lower() != "content-length":
                            conn.putheader(name, value)
                    if body or self.command in ("PUT", "POST"):
                        conn.putheader("Content-Length", str(len(body)))
                    conn.endheaders(body or None)
                    resp = conn.getresponse()
                    data = resp.read()
                    headers = resp.getheaders()
                finally:
                    conn.close()
                # Recorded before the reply goes out, so a client that has its answer is always counted.
                split = urllib.parse.urlsplit(self.path)
                path = urllib.parse.unquote(split.path)
                bucket, _, key = path.lstrip("/").partition("/")
                query = dict(urllib.parse.parse_qsl(split.query, keep_blank_values=True))
                signed = "authorization" in {h.lower() for h in self.headers} or "X-Amz-Signature" in query
                proxy._record(Seen(self.command, bucket, key, query, signed, resp.status,
                                   0 if self.command == "HEAD" else len(data)))
                self.send_response_only(resp.status, resp.reason)
                for name, value in headers:
                    lname = name.lower()
                    if lname in _HOP_BY_HOP or (lname == "content-length" and self.command != "HEAD"):
                        continue
                    self.send_header(name, value)
                if self.command != "HEAD":
                    self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(data)
                self.wfile.flush()

            do_GET = do_HEAD = do_PUT = do_POST = do_DELETE = _forward  # noqa: N815 - the stdlib's names

        return Handler
