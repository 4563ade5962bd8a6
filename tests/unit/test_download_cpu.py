"""Ranged downloads read each body straight into a reused buffer, and still keep every guarantee.

A small threaded HTTP server on 127.0.0.1 plays S3's GetObject (ranges, ETag) so that botocore
reads real sockets through urllib3 and http.client, the layers ``transfer._reader`` reaches
into; it can break a chosen range in the ways a network or a store does. The checks count
calls, buffers, connections and bytes, never time.
"""

from __future__ import annotations

import gzip
import hashlib
import os
import re
import socket
import struct
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from botocore.response import StreamingBody

from lfs_s3_agent.errors import Code, IntegrityError, StoreError
from lfs_s3_agent.progress import ProgressReporter
from lfs_s3_agent.s3 import retry, transfer
from lfs_s3_agent.s3.client import ClientSpec, make_client
from lfs_s3_agent.s3.errors import translate
from lfs_s3_agent.s3.transfer import Knobs, PartPlan, fetch, ranged_download, stream_download
from lfs_s3_agent.settings import Settings

KiB = 1 << 10
PART = 1 << 20  # PartPlan rounds parts up to whole MiB
DATA = os.urandom(5 * PART + 12345)  # six ranges, the last one short
ETAG = '"0123456789abcdef0123456789abcdef"'


class FakeS3(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.data = DATA
        self.encoding = ""
        self.checksum = ""  # x-amz-checksum-sha256 of a whole-object GET that asks for it (as S3 sends it)
        self.faults: dict[int, str] = {}  # range start -> what goes wrong, once
        self.requests: list[dict[str, str]] = []
        self.connections = 0
        self.lock = threading.Lock()
        self.stop = threading.Event()

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # the faults below break connections on purpose


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, so connection reuse can be counted
    server: FakeS3

    def setup(self) -> None:
        super().setup()
        with self.server.lock:
            self.server.connections += 1

    def log_message(self, *args: Any) -> None:
        pass

    def do_GET(self) -> None:
        s = self.server
        with s.lock:
            s.requests.append(dict(self.headers.items()))
        first, last = 0, len(s.data) - 1
        match = re.fullmatch(r"bytes=(\d+)-(\d*)", self.headers.get("Range", ""))
        if match:
            first, last = int(match[1]), min(last, int(match[2] or last))
        body = s.data[first:last + 1]
        with s.lock:
            fault = s.faults.pop(first, "")
        declared = len(body) + {"extra": 1, "short": -1}.get(fault, 0)
        if fault == "extra":
            body += b"x"
        elif fault == "short":
            body = body[:-1]
        self.send_response(206 if match else 200)
        self.send_header("Content-Length", str(declared))
        self.send_header("ETag", ETAG)
        if match:
            self.send_header("Content-Range", f"bytes {first}-{first + declared - 1}/{len(s.data)}")
        if s.encoding:
            self.send_header("Content-Encoding", s.encoding)
        if s.checksum and not match and self.headers.get("x-amz-checksum-mode") == "ENABLED":
            self.send_header("x-amz-checksum-sha256", s.checksum)
        self.end_headers()
        if fault in ("cut", "reset", "stall"):
            self.wfile.write(body[: len(body) // 2])
            self.wfile.flush()
            if fault == "stall":
                s.stop.wait(3)  # past the client's 1 s read timeout
            if fault == "reset":  # RST, as a dropped connection looks to the client
                self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            self.connection.shutdown(socket.SHUT_RDWR)
            self.close_connection = True
            return
        self.wfile.write(body)


@pytest.fixture
def s3() -> Iterator[FakeS3]:
    server = FakeS3()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.stop.set()
    server.shutdown()
    server.server_close()


class Counted:
    """A progress sink that adds up exactly what it is told (ProgressReporter clamps at the size)."""

    def __init__(self) -> None:
        self.total = 0
        self.lock = threading.Lock()

    def add(self, nbytes: int) -> None:
        with self.lock:
            self.total += nbytes


def download(s3: FakeS3, tmp_path: Path, *, concurrency: int = 3, timeout: int = 60) -> tuple[str, bytes, Counted]:
    client = make_client(ClientSpec.for_store(Settings(bucket="b", endpoint_url=f"http://127.0.0.1:{s3.server_address[1]}",
                                  region="us-east-1", max_attempts=3, timeout=timeout)))
    progress = Counted()
    path = tmp_path / "out"
    with open(path, "wb") as fh:
        digest = ranged_download(client, bucket="b", key="k", fd=fh.fileno(),
                                 plan=PartPlan.make(len(s3.data), PART, concurrency, minimum=1),
                                 progress=progress,
                                 max_attempts=3)
    return digest, path.read_bytes(), progress


@pytest.fixture(autouse=True)
def _quick(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(transfer, "CHUNK", 64 * KiB)  # several reads and writes per range
    monkeypatch.setattr(retry, "backoff", lambda attempt: 0.0)


@pytest.fixture
def no_public_reads(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Record any read through botocore's StreamingBody: the direct path makes none."""
    calls: list[str] = []
    for name in ("read", "readinto"):
        real = getattr(StreamingBody, name)

        def spy(self: Any, *args: Any, _real: Any = real, _name: str = name, **kwargs: Any) -> Any:
            calls.append(_name)
            return _real(self, *args, **kwargs)

        monkeypatch.setattr(StreamingBody, name, spy)
    return calls


def test_ranges_go_straight_into_reused_buffers(s3: FakeS3, tmp_path: Path, no_public_reads: list[str],
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    buffers: list[int] = []

    def counting(size: int = 0) -> bytearray:
        if size >= PART:
            buffers.append(size)
        return bytearray(size)

    monkeypatch.setattr(transfer, "bytearray", counting, raising=False)
    digest, data, progress = download(s3, tmp_path, concurrency=3)
    assert data == DATA and digest == hashlib.sha256(DATA).hexdigest()
    assert progress.total == len(DATA)
    assert no_public_reads == []  # every byte came through http.client's readinto
    assert len(buffers) == 3  # one per range in flight, reused for the six ranges
    assert len(s3.requests) == 6 and s3.connections <= 3  # finished bodies hand their connection back
    assert all(r.get("If-Match") == ETAG for r in s3.requests[1:])


def test_writes_to_the_file_are_small_and_take_turns(s3: FakeS3, tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    state = {"active": 0, "peak": 0, "calls": 0, "largest": 0}
    lock = threading.Lock()
    real = os.pwrite

    def pwrite(fd: int, data: Any, offset: int) -> int:
        with lock:
            state["active"] += 1
            state["calls"] += 1
            state["peak"] = max(state["peak"], state["active"])
            state["largest"] = max(state["largest"], len(data))
        try:
            threading.Event().wait(0.002)  # give another writer every chance to overlap
            return real(fd, data, offset)
        finally:
            with lock:
                state["active"] -= 1

    monkeypatch.setattr(os, "pwrite", pwrite)
    _, data, _ = download(s3, tmp_path, concurrency=4)
    assert data == DATA
    assert state["peak"] == 1 and state["largest"] == transfer.WRITE == 32 * KiB
    assert state["calls"] == -(-len(DATA) // transfer.WRITE)  # every write complete: none repeated or split


@pytest.mark.parametrize("fault", ["cut", "reset"])
def test_a_broken_range_is_fetched_again_and_counted_once(s3: FakeS3, tmp_path: Path, fault: str,
                                                          no_public_reads: list[str]) -> None:
    s3.faults = {2 * PART: fault}
    digest, data, progress = download(s3, tmp_path)
    assert data == DATA and digest == hashlib.sha256(DATA).hexdigest()
    assert progress.total == len(DATA)
    assert len(s3.requests) == 7
    assert no_public_reads == []


def test_a_stalled_range_times_out_and_is_fetched_again(s3: FakeS3, tmp_path: Path) -> None:
    s3.faults = {PART: "stall"}
    _, data, progress = download(s3, tmp_path, timeout=1)
    assert data == DATA and progress.total == len(DATA)
    assert len(s3.requests) == 7


def test_errors_raised_while_reading_are_botocores(s3: FakeS3, tmp_path: Path) -> None:
    s3.faults = {0: "cut"}
    client = make_client(ClientSpec.for_store(Settings(bucket="b", endpoint_url=f"http://127.0.0.1:{s3.server_address[1]}",
                                  region="us-east-1")))
    from botocore.exceptions import ResponseStreamingError

    body = client.get_object(Bucket="b", Key="k", Range=f"bytes=0-{PART - 1}")["Body"]
    readinto = transfer._direct_reader(body)
    assert readinto is not None
    view = memoryview(bytearray(PART))
    assert readinto(view) == PART // 2
    with pytest.raises(ResponseStreamingError):
        readinto(view)
    err = translate(ResponseStreamingError(error="x"), bucket="b")
    assert isinstance(err, StoreError) and err.code == Code.NETWORK and err.transient


@pytest.mark.parametrize("fault", ["extra", "short"])
def test_oversized_or_short_ranges_are_integrity_errors(s3: FakeS3, tmp_path: Path, fault: str) -> None:
    s3.faults = {3 * PART: fault}
    with pytest.raises(IntegrityError, match="range at"):
        download(s3, tmp_path)


def test_content_encoding_is_not_decoded(s3: FakeS3, tmp_path: Path, no_public_reads: list[str]) -> None:
    s3.data = gzip.compress(DATA + bytes(len(DATA)), compresslevel=1)
    s3.encoding = "gzip"
    digest, data, _ = download(s3, tmp_path)
    assert data == s3.data and digest == hashlib.sha256(s3.data).hexdigest()
    assert no_public_reads == []


@pytest.mark.parametrize("public", ["readinto", "read"])
def test_without_the_private_path_the_public_one_gives_the_same(s3: FakeS3, tmp_path: Path, public: str,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(transfer, "_direct_reader", lambda body, **_: None)
    if public == "read":  # older botocore has no StreamingBody.readinto
        monkeypatch.delattr(StreamingBody, "readinto")
    s3.faults = {PART: "cut", 3 * PART: "reset"}
    digest, data, progress = download(s3, tmp_path)
    assert data == DATA and digest == hashlib.sha256(DATA).hexdigest()
    assert progress.total == len(DATA)
    s3.faults = {4 * PART: "extra"}
    with pytest.raises(IntegrityError, match="range at"):
        download(s3, tmp_path)


# -- a body botocore would check against S3's checksum -------------------------------------------------


def whole(s3: FakeS3, *, checked: bool) -> tuple[str, bytes]:
    """One streamed GET of the whole object, through stream_download as the store's download makes it."""
    from io import BytesIO

    client = make_client(ClientSpec.for_store(Settings(bucket="b", endpoint_url=f"http://127.0.0.1:{s3.server_address[1]}",
                                                       region="us-east-1", max_attempts=2)))
    sink = BytesIO()
    digest = stream_download(client, bucket="b", key="k", size=len(s3.data), sink=sink,
                             progress=ProgressReporter(len(s3.data), lambda a, b: None),
                             attempts=retry.Attempts(2), extra={}, etag=None, checked=checked)
    return digest, sink.getvalue()


def test_a_checksummed_body_is_not_hashed_twice_when_the_oid_is_checked(
        s3: FakeS3, tmp_path: Path, no_public_reads: list[str], monkeypatch: pytest.MonkeyPatch) -> None:
    import base64

    s3.checksum = base64.b64encode(hashlib.sha256(DATA).digest()).decode()
    digest, data = whole(s3, checked=True)
    assert s3.requests[-1].get("x-amz-checksum-mode") == "ENABLED"  # boto3's default: S3 sends its checksum
    assert data == DATA and digest == hashlib.sha256(DATA).hexdigest()
    assert no_public_reads == []  # straight from the socket: botocore did not hash the bytes as well
    # The store's download is such a caller: fetch with the oid to check.
    sink = tmp_path / "fetched"
    with open(sink, "wb") as fh:
        client = make_client(ClientSpec.for_store(Settings(bucket="b", endpoint_url=f"http://127.0.0.1:{s3.server_address[1]}",
                                                           region="us-east-1")))
        assert fetch(client, bucket="b", key="k", size=len(DATA), sink=fh,
                     progress=ProgressReporter(len(DATA), lambda a, b: None),
                     knobs=Knobs(multipart_threshold=len(DATA)), expect=digest) == digest
    assert sink.read_bytes() == DATA and no_public_reads == []
    # Without an oid to check it against (an oid being learnt), botocore reads and checks the body.
    assert whole(s3, checked=False) == (digest, DATA)
    assert no_public_reads != []


def test_without_an_oid_to_check_botocores_check_of_the_checksum_stays(s3: FakeS3) -> None:
    import base64

    s3.checksum = base64.b64encode(hashlib.sha256(b"other bytes").digest()).decode()
    with pytest.raises(StoreError) as failed:
        whole(s3, checked=False)
    assert failed.value.code == Code.INTEGRITY and "checksum" in failed.value.message
    # With an oid to check, the caller's own check decides (here the bytes are the stored ones).
    assert whole(s3, checked=True)[0] == hashlib.sha256(DATA).hexdigest()


def test_a_botocore_without_streamingchecksumbody_still_downloads(s3: FakeS3, tmp_path: Path,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    """Review of 23b3637: ``_direct_reader`` imports ``botocore.httpchecksum.StreamingChecksumBody``, a private
    name, unconditionally. Private internals that are not as expected must mean the public read (slower,
    not wrong); a botocore that renames or moves it failed every download, a plain one too."""
    import botocore.httpchecksum

    monkeypatch.delattr(botocore.httpchecksum, "StreamingChecksumBody")
    digest, data, _ = download(s3, tmp_path)
    assert data == DATA and digest == hashlib.sha256(DATA).hexdigest()
    assert whole(s3, checked=True) == (digest, DATA)
