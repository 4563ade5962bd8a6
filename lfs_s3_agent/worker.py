"""The shared worker: one warm process that moves small objects for every agent of a repository.

Each agent connection is a whole git-lfs session replayed over a unix socket: the
agent sends the greeting, the init it accepted, then transfer requests, and this
process answers each with ``agent.serve()`` in a thread of its own, on one S3
client (botocore clients are thread-safe) whose connections stay open between
sessions. Log records of a session travel back to its agent as ``{"log": ...}``
lines, so they land in git-lfs's trace like the agent's own.

When an agent disconnects mid-transfer (git-lfs was killed), the transfer stops at
its next bytes (``Cancelled``) and its temporary file is removed. The worker exits
after ``worker_idle`` seconds without sessions, or on ``worker stop``; either way
it first removes its socket, so new agents start a fresh worker instead of
reaching one that is going away, and it serves connections already queued.
"""

from __future__ import annotations

import contextlib
import logging
import os
import queue
import select
import socket
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

from lfs_s3_agent import rendezvous
from lfs_s3_agent.errors import Cancelled, LocalFileError
from lfs_s3_agent.protocol import worker as frames
from lfs_s3_agent.protocol.framing import MAX_LINE

log = logging.getLogger(__name__)
STARTED = time.monotonic()  #: when this module was imported: near enough the worker process's start

_session = threading.local()  # .conn: the Connection whose thread this is


class Connection:
    """One agent's socket: a reader thread feeding lines to ``serve()`` and a locked writer."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.lines: queue.SimpleQueue[bytes] = queue.SimpleQueue()
        self.gone = threading.Event()
        self._send_lock = threading.Lock()
        self._stream = sock.makefile("rb")
        self.tmp_paths: dict[str, str] = {}  #: oid -> the temporary file its agent made for it

    # -- the input side, as a binary stream for LineReader ------------------------------------
    def start_reading(self) -> None:
        threading.Thread(target=self._read, name="conn-reader", daemon=True).start()

    def _read(self) -> None:
        try:
            while line := self._stream.readline(MAX_LINE + 1):
                self.lines.put(line)
        except OSError:
            pass
        self.gone.set()  # the agent has gone (or shut its side): stop what it asked for
        self.lines.put(b"")

    def readline(self, _limit: int = -1) -> bytes:
        """The next git-lfs request line the agent relayed (b"" at the end); other frames are taken in."""
        while True:
            line = self.lines.get()
            if not line:
                return b""
            try:
                frame = frames.decode_to_worker(line)
            except frames.FrameError as exc:
                log.error("ignoring a malformed frame from an agent: %s", exc)
                continue
            if isinstance(frame, frames.TmpFile):
                self.tmp_paths[frame.oid] = frame.path
                continue
            return frame.line + b"\n"

    def open_tmp(self, oid: str) -> tuple[int, str, bool]:
        """The agent's own temporary file for this download (it removes it if it must).

        Opened without O_CREAT: if the agent has gone and removed it, nothing is recreated.
        """
        path = self.tmp_paths.get(oid)
        if path is None:
            raise LocalFileError(f"the agent named no temporary file for {oid}")
        try:
            return os.open(path, os.O_WRONLY | os.O_TRUNC | getattr(os, "O_NOFOLLOW", 0)), path, False
        except OSError as exc:
            raise LocalFileError(f"cannot open the temporary file {path}: {exc.strerror}") from None

    def first_line(self) -> bytes:
        return self._stream.readline(MAX_LINE + 1)

    def check(self) -> None:
        if self.gone.is_set():
            raise Cancelled()

    # -- the output side, as a binary stream for LineWriter ------------------------------------
    def write(self, data: bytes) -> int:
        """A git-lfs event line from ``serve()``, sent as an ``Event`` frame (``{"lfs": <event>}``)."""
        self._send(b'{"lfs":' + data.rstrip(b"\n") + b"}\n")
        return len(data)

    def flush(self) -> None:
        pass

    def send(self, frame: frames.Frame) -> None:
        self._send(frames.encode(frame))

    def _send(self, data: bytes) -> None:
        with self._send_lock:
            self.sock.sendall(data)

    def close(self) -> None:
        try:
            self._stream.close()
            self.sock.close()
        except OSError:
            pass


class SessionLogHandler(logging.Handler):
    """Sends each record logged in a session's thread back to that session's agent."""

    def emit(self, record: logging.LogRecord) -> None:
        conn = getattr(_session, "conn", None)
        if conn is None:
            return
        with contextlib.suppress(Exception):
            conn.send(frames.Log(record.levelno, record.getMessage()))


class NotSessionFilter(logging.Filter):
    """Keeps session records out of the worker's own log (their agent logs them)."""

    def filter(self, record: logging.LogRecord) -> bool:
        return getattr(_session, "conn", None) is None


class Worker:
    """Accepts agent connections on ``path`` and serves each in a thread, over one shared store."""

    def __init__(self, key: str, path: Path, store: Any, tmp_dir: Path | None, idle: float,
                 repo: str | None) -> None:
        self.key = key
        self.path = path
        self.store = store
        self.tmp_dir = tmp_dir
        self.idle = idle
        self.repo = repo
        self.started = time.time()
        self.sessions = 0
        self.active = 0
        self.last_active = time.monotonic()
        self.stopping = threading.Event()
        self._lock = threading.Lock()
        self._threads: list[threading.Thread] = []
        self.stop_waiters: list[Connection] = []  #: `worker stop` callers, answered by our exit
        self.listener: socket.socket | None = None
        self._inode = 0
        self._wake_r, self._wake_w = os.pipe()

    # -- lifecycle -------------------------------------------------------------------------------
    def listen(self) -> None:
        listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        listener.bind(os.fspath(self.path))
        listener.listen(64)
        listener.setblocking(False)
        self._inode = os.stat(self.path).st_ino
        self.listener = listener

    def stop(self) -> None:
        """Ask ``run()`` to shut down (from any thread)."""
        self.stopping.set()
        with contextlib.suppress(OSError):  # already shut down: the pipe is closed
            os.write(self._wake_w, b"x")

    def run(self, before_exit: Callable[[], None] | None = None) -> None:
        """Accept agents until idle for ``idle`` seconds, stopped, or our socket is gone.

        ``before_exit`` runs after the last session, before ``worker stop`` callers are answered.
        """
        assert self.listener is not None
        while not self.stopping.is_set():
            with self._lock:
                wait = self.idle - (time.monotonic() - self.last_active) if self.active == 0 else self.idle
            if wait <= 0 or not self._still_ours():
                break
            # At most 5 s between checks that the socket file is still ours.
            readable = select.select([self.listener.fileno(), self._wake_r], [], [], min(wait, 5.0))[0]
            if self.listener.fileno() in readable:
                self._accept_pending()
        self.shutdown()
        try:
            if before_exit is not None:
                before_exit()
        finally:
            for conn in self.stop_waiters:
                conn.close()
            os.close(self._wake_r)
            os.close(self._wake_w)

    def _accept_pending(self) -> None:
        assert self.listener is not None
        while True:
            try:
                sock, _ = self.listener.accept()
            except (BlockingIOError, InterruptedError):
                return
            sock.setblocking(True)
            self._start(sock)

    def _still_ours(self) -> bool:
        """False once our socket file has gone or another worker's replaced it."""
        try:
            return os.stat(self.path).st_ino == self._inode
        except OSError:
            return False

    def shutdown(self) -> None:
        """Stop listening, serve what is queued, wait for the sessions to end."""
        self.stopping.set()
        if self._still_ours():
            with contextlib.suppress(OSError):
                self.path.unlink()
        if self.listener is not None:
            self._accept_pending()  # agents that connected just before the socket went
            self.listener.close()
        for thread in list(self._threads):
            thread.join()

    def _start(self, sock: socket.socket) -> None:
        thread = threading.Thread(target=self._session, args=(sock,), name="session", daemon=True)
        self._threads = [t for t in self._threads if t.is_alive()]
        self._threads.append(thread)
        thread.start()

    # -- sessions --------------------------------------------------------------------------------
    def _session(self, sock: socket.socket) -> None:
        conn = Connection(sock)
        try:
            if self._converse(conn):
                return  # a stop command's connection: closed when the worker exits
        except Cancelled:
            log.info("an agent disconnected mid-transfer; its transfer was stopped")
        except OSError as exc:
            log.info("an agent connection failed: %s", exc)
        except Exception:
            log.exception("session failed")
        finally:
            if conn not in self.stop_waiters:
                conn.close()
            if getattr(_session, "conn", None) is conn:
                _session.conn = None
                with self._lock:
                    self.active -= 1
                    self.last_active = time.monotonic()

    def _converse(self, conn: Connection) -> bool:
        """Serve one connection; True if it must stay open after this returns."""
        from lfs_s3_agent import agent

        try:
            hello = frames.decode_hello(conn.first_line() or b"{}")
        except frames.FrameError as exc:
            conn.send(frames.HelloReply(ok=False, pid=os.getpid(), error=str(exc)))
            return False
        if hello.control == "status":
            conn.send(frames.HelloReply(ok=True, pid=os.getpid(), extra=self.status()))
            return False
        if hello.control == "stop":
            conn.send(frames.HelloReply(ok=True, pid=os.getpid(), extra={"stopping": True}))
            self.stop_waiters.append(conn)
            self.stop()
            return True
        if hello.key != self.key:
            conn.send(frames.HelloReply(ok=False, pid=os.getpid(), error="this worker serves another configuration"))
            return False
        conn.send(frames.HelloReply(ok=True, pid=os.getpid()))
        with self._lock:
            self.sessions += 1
            self.active += 1
        _session.conn = conn
        conn.start_reading()
        agent.serve(conn, conn, self.store, tmp_dir=self.tmp_dir, cancel_check=conn.check,  # type: ignore[arg-type]
                    tmp_opener=conn.open_tmp)
        return False

    def status(self) -> dict[str, Any]:
        with self._lock:
            return {"pid": os.getpid(), "key": self.key, "repo": self.repo, "socket": str(self.path),
                    "started": self.started, "sessions": self.sessions, "active": self.active,
                    "idle_seconds": round(time.monotonic() - self.last_active, 1) if self.active == 0 else 0.0,
                    "idle_limit": self.idle, "requests": dict(getattr(self.store, "requests", {}))}


def run(key: str, flags: dict[str, Any], *, ready: IO[bytes]) -> int:
    """The body of ``lfs-s3-agent worker run``: listen, say ``ready``, serve until idle."""
    from lfs_s3_agent import wiring
    from lfs_s3_agent.errors import ConfigError, GitError

    root = logging.getLogger()
    root.addHandler(SessionLogHandler())
    for handler in root.handlers:
        if not isinstance(handler, SessionLogHandler):
            handler.addFilter(NotSessionFilter())
    try:
        wired = wiring.build(flags)
        directory = rendezvous.runtime_dir()
        own = rendezvous.key_for(wired.resolved)
        if own != key:
            # A launcher started us from a stamp written in another environment (another
            # AWS_PROFILE, LFS_S3_* or proxy variable...) or before a settings change. Its agent
            # falls back to the full agent, which looks for the worker of *this* configuration:
            # be that worker, unless one already runs or is being started.
            rendezvous.clear_starting(rendezvous.socket_path(directory, key))
            if not rendezvous.adopt(directory, own):
                log.info("the configuration changed while this worker started, and its worker runs already")
                return 3
            log.info("the configuration changed while this worker started; serving the new one (log: %s)",
                     rendezvous.log_path(directory, own))
            rendezvous.move_log(directory, key, own)
            key = own
        path = rendezvous.socket_path(directory, key)
        rendezvous.prune(directory)
    except BaseException as exc:  # whatever it is, no agent must wait on our marker for a worker that died
        with contextlib.suppress(rendezvous.RendezvousError, OSError):
            rendezvous.clear_starting(rendezvous.socket_path(rendezvous.runtime_dir(), key))
        if not isinstance(exc, (ConfigError, GitError, rendezvous.RendezvousError)):
            raise  # a bug, or an interrupt: reported by the caller
        log.error("%s", getattr(exc, "message", exc))
        return 2
    # Until we listen, agents wait on the starting marker (the launcher's, or ours from adopt()): it goes
    # once we listen or fail, so that none waits START_TIMEOUT for a worker that died.
    try:
        dirs = wired.dirs
        store = wired.store()
        # Pay for the imports and the client now, once, before any agent waits on them: a first request
        # needs both (pydantic to parse it, the client to move its bytes) before its first byte moves.
        t_settings = time.monotonic()
        from lfs_s3_agent.protocol import messages  # noqa: F401

        t_messages = time.monotonic()
        try:
            wired.s3_store().client  # noqa: B018
        except Exception as exc:
            log.warning("S3 client: %s", exc)
        t_client = time.monotonic()
        worker = Worker(key, path, store, dirs.tmp if dirs else None, float(wired.settings.worker_idle),
                        str(wired.repo.common_dir) if wired.repo else None)
        worker.listen()
    finally:
        rendezvous.clear_starting(path)  # agents now connect (or start their own)
    ready.write(b"ready\n")
    ready.flush()
    ready.close()
    log.info("worker %d listening on %s; ready %.0f ms after its modules loaded, %.0f ms of CPU in all "
             "(settings %.0f ms, pydantic %.0f ms, S3 client %.0f ms)", os.getpid(), path,
             (time.monotonic() - STARTED) * 1000, time.process_time() * 1000,
             (t_settings - STARTED) * 1000, (t_messages - t_settings) * 1000, (t_client - t_messages) * 1000)

    def write_stats() -> None:
        if os.environ.get("LFS_S3_STATS_FILE"):
            from lfs_s3_agent.procstats import write_stats

            write_stats(os.environ["LFS_S3_STATS_FILE"], store.requests, role="worker")

    worker.run(before_exit=write_stats)
    log.info("worker %d exiting after %d sessions", os.getpid(), worker.sessions)
    return 0


def main_stdio() -> IO[bytes]:
    """The ready pipe is our stdout; everything printed later goes to the log (stderr)."""
    ready = os.fdopen(os.dup(sys.stdout.fileno()), "wb")
    os.dup2(sys.stderr.fileno(), sys.stdout.fileno())
    sys.stdout = sys.stderr
    return ready
