"""Regression tests for issue "one owner for each concern": each fault that came from a concern decided twice.

- every S3 client (store, linked source, copy pool, doctor probe) gets every setting of its endpoint;
- local failures (a corrupt object being uploaded, a full disk) have their own codes and are not retried;
- a broken AWS config file is a credentials/config error, not an internal one;
- a relayed download whose ``complete`` never reached git-lfs leaves no temporary file.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
from pathlib import Path
from typing import Any

import pytest

from lfs_s3_agent.agent import serve
from lfs_s3_agent.errors import Code
from lfs_s3_agent.s3.client import ClientSpec
from lfs_s3_agent.settings import Settings, SourceSettings
from lfs_s3_agent.store import S3Store
from tests.functional.conftest import BUCKET, INIT_DOWN, INIT_UP, Harness, oid_of

ENDPOINT = "https://minio.internal:9000"
TERMINATE = {"event": "terminate"}


def describe(client: Any) -> dict[str, Any]:
    raw = client.raw
    config = raw.meta.config
    return {"verify": raw._endpoint.http_session._verify, "attempts": config.retries.get("total_max_attempts"),
            "connect": config.connect_timeout, "read": config.read_timeout,
            "style": config.s3.get("addressing_style"), "checksums": config.request_checksum_calculation}


def test_every_client_of_the_store_endpoint_gets_every_setting() -> None:
    from lfs_s3_agent.commands.copy import pooled_client
    from lfs_s3_agent.commands.doctor import checksum_client
    from lfs_s3_agent.linked import SourceClients

    s = Settings(bucket="abc", endpoint_url=ENDPOINT, ca_bundle="/etc/ssl/private-ca.pem", timeout=7,
                 max_attempts=3, checksums="when_required", addressing_style="path")
    expected = {"verify": "/etc/ssl/private-ca.pem", "attempts": 1, "connect": 7, "read": 7, "style": "path",
                "checksums": "when_required"}
    clients = {
        "store": S3Store(s).client,
        "copy --jobs 16": pooled_client(s, 16),
        "doctor's checksum probe": checksum_client(s, "when_required"),
        "a linked source on the same endpoint": SourceClients(s).get(SourceSettings(endpoint_url=ENDPOINT)),
    }
    for name, client in clients.items():
        assert describe(client) == expected, name
        assert client.spec.max_attempts == 3, name  # our retry owner's budget (botocore's own is off)


def test_a_private_ca_bundle_is_not_used_for_another_endpoint() -> None:
    from lfs_s3_agent.linked import SourceClients

    s = Settings(bucket="abc", endpoint_url=ENDPOINT, ca_bundle="/etc/ssl/private-ca.pem", tls_verify="true")
    aws_source = SourceClients(s).get(SourceSettings(region="us-west-2"))
    assert describe(aws_source)["verify"] not in ("/etc/ssl/private-ca.pem", False)  # the system's bundle


def test_tls_verify_false_never_applies_to_aws() -> None:
    spec = ClientSpec(endpoint_url="https://s3.eu-west-1.amazonaws.com", tls_verify=False)
    assert spec.verify() is None
    assert ClientSpec(endpoint_url=ENDPOINT, tls_verify=False).verify() is False


def test_a_corrupt_local_object_is_42_after_one_put(harness: Harness) -> None:
    data = os.urandom(4000)
    oid = oid_of(b"the bytes git-lfs recorded")
    path = harness.file("corrupt", data)
    s = harness.run(INIT_UP, {"event": "upload", "oid": oid, "size": len(data), "path": str(path)}, TERMINATE)
    (complete,) = s.completes()
    assert complete["error"]["code"] == Code.INTEGRITY
    assert s.calls.count("PutObject") == 1
    assert "HeadObject" not in s.calls or s.calls.count("PutObject") == 1


def test_a_full_disk_during_a_download_is_41_and_not_retried(harness: Harness, tmp_path: Path) -> None:
    data = os.urandom(70_000)
    oid = harness.put(data)
    lines = b"".join(json.dumps(m).encode() + b"\n" for m in
                     (INIT_DOWN, {"event": "download", "oid": oid, "size": len(data)}, TERMINATE))
    opened: list[str] = []

    def full_disk(oid: str) -> tuple[int, str, bool]:
        opened.append(oid)
        return os.open("/dev/full", os.O_WRONLY), str(tmp_path / "never"), False

    out = io.BytesIO()
    harness.calls.clear()
    serve(io.BytesIO(lines), out, harness.store, tmp_dir=harness.tmp_dir, tmp_opener=full_disk, progress_interval=0)
    (complete,) = [m for m in map(json.loads, out.getvalue().splitlines()) if m.get("event") == "complete"]
    assert complete["error"]["code"] == Code.LOCAL_FILE
    assert "free space" in complete["error"]["message"]
    assert harness.calls.count("GetObject") == 1 and len(opened) == 1


def test_a_broken_aws_config_file_is_a_credentials_error(harness: Harness, tmp_path: Path,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    config = tmp_path / "aws-config"
    config.write_text("[default\nregion = us-east-1\n")
    monkeypatch.setenv("AWS_CONFIG_FILE", str(config))
    store = S3Store(Settings(bucket=BUCKET, prefix="repo"))
    data = b"x" * 10
    s = harness.run(INIT_UP, {"event": "upload", "oid": oid_of(data), "size": 10,
                              "path": str(harness.file("a", data))}, TERMINATE, store=store)
    (complete,) = s.completes()
    assert complete["error"]["code"] == Code.CREDENTIALS
    assert "config" in complete["error"]["message"]


def test_errors_are_data_not_message_text() -> None:
    from botocore.exceptions import ClientError

    from lfs_s3_agent.s3.errors import translate

    err = translate(ClientError({"Error": {"Code": "NoSuchUpload", "Message": "gone"},
                                 "ResponseMetadata": {"HTTPStatusCode": 404}}, "AbortMultipartUpload"), bucket="b")
    assert (err.s3_code, err.status, err.transient) == ("NoSuchUpload", 404, False)
    slow = translate(ClientError({"Error": {"Code": "SlowDown", "Message": ""},
                                  "ResponseMetadata": {"HTTPStatusCode": 503}}, "PutObject"), bucket="b")
    assert (slow.code, slow.s3_code, slow.status, slow.transient) == (Code.S3_ERROR, "SlowDown", 503, True)


def test_a_relayed_download_never_handed_over_leaves_no_temp_file(tmp_path: Path) -> None:
    """git-lfs killed mid-pull: writing the ``complete`` fails, so the file is still ours to remove."""
    import socket
    import threading

    from lfs_s3_agent.protocol import worker as frames
    from lfs_s3_agent.protocol.framing import LineWriter
    from lfs_s3_agent.relay import WorkerRelay

    agent_end, worker_end = socket.socketpair()
    oid = hashlib.sha256(b"ab").hexdigest()
    tmp_dir = tmp_path / "lfs" / "tmp"

    def fake_worker() -> None:
        stream = worker_end.makefile("rb")
        stream.readline()  # hello
        worker_end.sendall(frames.encode(frames.HelloReply(ok=True, pid=1)))
        stream.readline()  # init
        worker_end.sendall(frames.encode(frames.Event({})))
        tmp = frames.decode_to_worker(stream.readline())
        assert isinstance(tmp, frames.TmpFile)
        Path(tmp.path).write_bytes(b"ab")
        stream.readline()  # the request
        worker_end.sendall(frames.encode(frames.Event({"event": "complete", "oid": oid, "path": tmp.path})))

    thread = threading.Thread(target=fake_worker, daemon=True)
    thread.start()

    class GoneGitLfs(io.RawIOBase):
        def writable(self) -> bool:
            return True

        def write(self, _: Any) -> int:
            raise BrokenPipeError("git-lfs has gone")

    relay = WorkerRelay(lambda: (agent_end, "k"), max_size=100, tmp_dir=tmp_dir)
    request = {"event": "download", "oid": oid, "size": 2}
    init = json.dumps(INIT_DOWN).encode()
    handled = relay.transfer(json.dumps(request).encode(), request, init, LineWriter(GoneGitLfs()))  # type: ignore[arg-type]
    thread.join(timeout=30)
    assert handled is False
    assert list(tmp_dir.iterdir()) == []


def test_a_local_link_record_whose_fetch_fails_gives_way_to_the_stores(harness: Harness, tmp_path: Path) -> None:
    """No stale trust: the store's current record wins over a local one that no longer works."""
    from lfs_s3_agent.linked import LinkedStore, LocalLinks
    from lfs_s3_agent.links import LinkRecord
    from lfs_s3_agent.progress import ProgressReporter

    data = os.urandom(5000)
    oid = oid_of(data)
    harness.s3.put_object(Bucket=BUCKET, Key="originals/new.bin", Body=data)
    local = LocalLinks(tmp_path / "links")
    stale = LinkRecord(oid=oid, size=len(data), bucket=BUCKET, key="originals/gone.bin")
    current = LinkRecord(oid=oid, size=len(data), bucket=BUCKET, key="originals/new.bin")
    local.put(stale)
    store = LinkedStore(harness.store, local)
    store.records.put(current)
    with open(tmp_path / "out", "wb") as sink:
        digest = store.download(oid, len(data), sink, ProgressReporter(len(data), lambda a, b: None))
    assert digest == oid and (tmp_path / "out").read_bytes() == data
    assert local.get(oid) == current  # replaced only because the store's record gave the right bytes
