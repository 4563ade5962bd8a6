"""The shared worker and the agent's relay to it, in one process: sessions replayed through ``serve()``.

A ``Worker`` listens on a unix socket in a thread, over the harness's moto-backed store; the agent side
is ``serve(..., delegate=WorkerRelay)`` as ``lfs-s3-agent serve`` runs it. Fake workers (a socket that
answers a scripted conversation) stand in for a worker that dies at a chosen moment.
"""

from __future__ import annotations

import io
import json
import os
import socket
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from lfs_s3_agent import rendezvous
from lfs_s3_agent.agent import serve
from lfs_s3_agent.protocol import worker as frames
from lfs_s3_agent.relay import WorkerRelay
from lfs_s3_agent.worker import Worker
from tests.functional.conftest import BUCKET, INIT_DOWN, INIT_UP, Harness, Session, oid_of
from tests.polling import wait_until

KEY = "ab" * 32
SMALL = os.urandom(3000)
LARGE = os.urandom(9000)  # above the relay's max_size below: moved by the agent itself
MAX_SIZE = 5000


def upload(data: bytes, path: Path) -> dict[str, Any]:
    return {"event": "upload", "oid": oid_of(data), "size": len(data), "path": str(path), "action": None}


def download(data: bytes) -> dict[str, Any]:
    return {"event": "download", "oid": oid_of(data), "size": len(data), "action": None}


@pytest.fixture
def sock_dir() -> Iterator[Path]:
    # Not under tmp_path: unix socket paths must stay short.
    with tempfile.TemporaryDirectory(prefix="w-", dir="/tmp") as d:
        yield Path(d)


class Running:
    def __init__(self, worker: Worker) -> None:
        self.worker = worker
        self.thread = threading.Thread(target=worker.run, daemon=True)

    def __enter__(self) -> Worker:
        self.worker.listen()
        self.thread.start()
        return self.worker

    def __exit__(self, *_: object) -> None:
        self.worker.stop()
        self.thread.join(timeout=60)
        assert not self.thread.is_alive()


@pytest.fixture
def worker(harness: Harness, sock_dir: Path) -> Iterator[Worker]:
    with Running(Worker(KEY, sock_dir / "w.sock", harness.store, harness.tmp_dir, idle=3600, repo="r")) as w:
        yield w


def relay_to(path: Path, tmp_dir: Path, key: str = KEY) -> WorkerRelay:
    def connect() -> tuple[socket.socket, str]:
        sock = rendezvous.try_connect(path)
        if sock is None:
            raise rendezvous.RendezvousError(f"nothing listens on {path}")
        return sock, key

    return WorkerRelay(connect, max_size=MAX_SIZE, tmp_dir=tmp_dir)


def run(harness: Harness, relay: WorkerRelay | None, *requests: dict[str, Any]) -> Session:
    lines = b"".join(json.dumps(r).encode() + b"\n" for r in requests)
    out = io.BytesIO()
    status = serve(io.BytesIO(lines), out, harness.store, tmp_dir=harness.tmp_dir, progress_interval=0,
                   delegate=relay)
    if relay is not None:
        relay.close()  # as `lfs-s3-agent serve` does when it exits
    raw = out.getvalue()
    return Session(status, [json.loads(line) for line in raw.splitlines()], raw)


def assert_progress_monotonic(session: Session, oid: str, size: int) -> None:
    events = session.progress(oid)
    so_far = [e["bytesSoFar"] for e in events]
    assert so_far == sorted(set(so_far)) and so_far[-1] == size
    assert sum(e["bytesSinceLast"] for e in events) == size


def test_small_objects_go_to_the_worker_and_large_ones_stay(harness: Harness, worker: Worker) -> None:
    relay = relay_to(worker.path, harness.tmp_dir)
    s = run(harness, relay, INIT_UP, upload(SMALL, harness.file("s", SMALL)), upload(LARGE, harness.file("l", LARGE)),
            {"event": "terminate"})
    assert s.status == 0 and s.messages[0] == {}
    assert [c.get("error") for c in s.completes()] == [None, None]
    assert relay.relayed == 1 and worker.sessions == 1
    for data in (SMALL, LARGE):
        body = harness.s3.get_object(Bucket=BUCKET, Key=harness.store.key(oid_of(data)))["Body"].read()
        assert body == data
    assert_progress_monotonic(s, oid_of(SMALL), len(SMALL))


def test_download_through_the_worker_lands_in_the_agents_own_temp_file(harness: Harness, worker: Worker) -> None:
    harness.put(SMALL)
    relay = relay_to(worker.path, harness.tmp_dir)
    s = run(harness, relay, INIT_DOWN, download(SMALL), {"event": "terminate"})
    (complete,) = s.completes()
    path = Path(complete["path"])
    assert path.parent == harness.tmp_dir and path.name.startswith("lfs-s3-agent-" + oid_of(SMALL)[:12])
    assert path.read_bytes() == SMALL
    assert sorted(harness.tmp_dir.iterdir()) == [path]  # the worker made no file of its own
    assert relay.relayed == 1


def test_a_failed_download_through_the_worker_leaves_no_temp_file(harness: Harness, worker: Worker) -> None:
    relay = relay_to(worker.path, harness.tmp_dir)
    s = run(harness, relay, INIT_DOWN, download(SMALL), {"event": "terminate"})
    (complete,) = s.completes()
    assert complete["error"]["code"] == 43  # not found, reported by the worker
    assert relay.relayed == 1
    assert list(harness.tmp_dir.iterdir()) == []


def test_no_worker_means_the_agent_does_it_all(harness: Harness, sock_dir: Path) -> None:
    relay = relay_to(sock_dir / "nobody.sock", harness.tmp_dir)
    s = run(harness, relay, INIT_UP, upload(SMALL, harness.file("s", SMALL)), {"event": "terminate"})
    assert [c.get("error") for c in s.completes()] == [None]
    assert relay.disabled and relay.relayed == 0
    assert harness.s3.head_object(Bucket=BUCKET, Key=harness.store.key(oid_of(SMALL)))["ContentLength"] == len(SMALL)


def test_a_worker_for_another_configuration_is_refused(harness: Harness, worker: Worker) -> None:
    relay = relay_to(worker.path, harness.tmp_dir, key="cd" * 32)
    s = run(harness, relay, INIT_UP, upload(SMALL, harness.file("s", SMALL)), {"event": "terminate"})
    assert [c.get("error") for c in s.completes()] == [None]
    assert relay.disabled and relay.relayed == 0 and worker.sessions == 0


class FakeWorker:
    """Accepts one agent, answers hello and init, sends ``events`` for its first request, then closes."""

    def __init__(self, path: Path, events: list[dict[str, Any]]) -> None:
        self.listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.listener.bind(os.fspath(path))
        self.listener.listen(1)
        self.events = events
        self.received: list[dict[str, Any]] = []
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        conn, _ = self.listener.accept()
        with conn, conn.makefile("rb") as stream:
            self.received.append(json.loads(stream.readline()))  # hello
            conn.sendall(frames.encode(frames.HelloReply(ok=True, pid=1)))
            self.received.append(json.loads(frames.decode_to_worker(stream.readline()).line))  # type: ignore[union-attr]
            conn.sendall(frames.encode(frames.Event({})))
            while True:
                frame = frames.decode_to_worker(stream.readline())
                line = json.loads(frame.line) if isinstance(frame, frames.Request) else {"tmp": frame._asdict()}
                self.received.append(line)
                if line.get("event") in ("upload", "download"):
                    break
            for event in self.events:
                frame = frames.Log(**event["log"]) if "log" in event else frames.Event(event)
                conn.sendall(frames.encode(frame))
        self.listener.close()


def test_a_worker_dying_mid_object_is_finished_by_the_agent_with_monotonic_progress(
        harness: Harness, sock_dir: Path) -> None:
    oid = oid_of(SMALL)
    fake = FakeWorker(sock_dir / "w.sock", [
        {"log": {"level": 20, "message": "working"}},
        {"event": "progress", "oid": oid, "bytesSoFar": 2000, "bytesSinceLast": 2000},
    ])  # ... and then the connection drops before `complete`
    relay = relay_to(sock_dir / "w.sock", harness.tmp_dir)
    s = run(harness, relay, INIT_UP, upload(SMALL, harness.file("s", SMALL)), {"event": "terminate"})
    fake.thread.join(timeout=30)
    assert [m["hello"] for m in fake.received[:1]] == [frames.HELLO]
    assert fake.received[1]["event"] == "init" and fake.received[2]["event"] == "upload"
    assert [c.get("error") for c in s.completes()] == [None]  # one complete, from the agent
    assert_progress_monotonic(s, oid, len(SMALL))
    assert relay.disabled
    assert harness.s3.head_object(Bucket=BUCKET, Key=harness.store.key(oid))["ContentLength"] == len(SMALL)


def test_a_worker_dying_mid_download_leaves_no_temp_file_and_the_agent_downloads(
        harness: Harness, sock_dir: Path) -> None:
    harness.put(SMALL)
    oid = oid_of(SMALL)
    fake = FakeWorker(sock_dir / "w.sock", [{"event": "progress", "oid": oid, "bytesSoFar": 10, "bytesSinceLast": 10}])
    relay = relay_to(sock_dir / "w.sock", harness.tmp_dir)
    s = run(harness, relay, INIT_DOWN, download(SMALL), {"event": "terminate"})
    fake.thread.join(timeout=30)
    announced = [m["tmp"] for m in fake.received if "tmp" in m]
    assert len(announced) == 1 and announced[0]["oid"] == oid
    (complete,) = s.completes()
    assert complete.get("error") is None and Path(complete["path"]).read_bytes() == SMALL
    assert complete["path"] != announced[0]["path"] and not Path(announced[0]["path"]).exists()
    assert sorted(harness.tmp_dir.iterdir()) == [Path(complete["path"])]


class BlockingStore:
    """A store whose download moves one byte, then waits for the test, then moves another."""

    def __init__(self) -> None:
        self.first_bytes = threading.Event()
        self.proceed = threading.Event()
        self.outcome: list[str] = []

    def describe(self, oid: str) -> str:
        return oid

    def upload(self, *_: Any) -> bool:
        raise AssertionError("not used")

    def download(self, oid: str, size: int, sink: Any, progress: Any) -> str:
        try:
            sink.write(b"x")
            progress.add(1)
            self.first_bytes.set()
            assert self.proceed.wait(timeout=60)
            sink.write(b"y")
            progress.add(1)
        except BaseException as exc:  # Cancelled, or the progress event hitting the closed socket first
            self.outcome.append(type(exc).__name__)
            raise
        self.outcome.append("finished")
        return "0" * 64


def test_an_agent_disconnecting_mid_transfer_cancels_it(harness: Harness, sock_dir: Path) -> None:
    store = BlockingStore()
    tmp_dir = harness.tmp_dir
    tmp_dir.mkdir(parents=True)
    tmp = tmp_dir / "lfs-s3-agent-mine"
    tmp.write_bytes(b"")
    with Running(Worker(KEY, sock_dir / "w.sock", store, tmp_dir, idle=3600, repo="r")) as worker:
        sock = rendezvous.try_connect(worker.path)
        assert sock is not None
        stream = sock.makefile("rb")
        sock.sendall(frames.encode(frames.Hello(key=KEY)))
        assert frames.decode_reply(stream.readline()).ok
        sock.sendall(frames.encode(frames.Request(json.dumps(INIT_DOWN).encode())))
        assert frames.decode_to_agent(stream.readline()) == frames.Event({})
        sock.sendall(frames.encode(frames.TmpFile("1" * 64, str(tmp))))
        sock.sendall(frames.encode(frames.Request(json.dumps({"event": "download", "oid": "1" * 64,
                                                              "size": 2}).encode())))
        assert store.first_bytes.wait(timeout=60)
        event = frames.decode_to_agent(stream.readline())
        assert isinstance(event, frames.Event) and event.message["event"] == "progress"
        stream.close()
        sock.close()  # git-lfs killed the agent
        status_before = worker.status()
        store.proceed.set()
    assert store.outcome in (["Cancelled"], ["BrokenPipeError"], ["ConnectionResetError"])  # stopped, not finished
    assert status_before["sessions"] == 1
    assert worker.active == 0


def test_status_and_stop_over_the_socket(harness: Harness, worker: Worker) -> None:
    harness.put(SMALL)
    run(harness, relay_to(worker.path, harness.tmp_dir), INIT_DOWN, download(SMALL), {"event": "terminate"})
    wait_until(lambda: worker.active == 0, "the worker to see the agent go")
    status = rendezvous.control(worker.path, "status")
    assert status is not None
    assert status["pid"] == os.getpid() and status["sessions"] == 1 and status["active"] == 0
    assert status["requests"].get("GetObject") == 1
    assert rendezvous.workers(worker.path.parent, repo="another") == []
    (stopped,) = rendezvous.workers(worker.path.parent, stop=True)
    assert stopped["stopped"] is True
    assert not worker.path.exists()  # new agents start a fresh worker instead of reaching this one
    assert rendezvous.control(worker.path, "status") is None
