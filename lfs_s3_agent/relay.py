"""The agent's side of the shared worker: hand small transfers over, relay the answers back.

``WorkerRelay`` is the ``agent.Delegate`` that ``serve`` offers each transfer request.
It takes the objects the store moves in one request (up to ``multipart_threshold``),
where the fixed cost of a Python process dominates; larger objects stay in the agent,
so their memory bound stays per process. It connects lazily, at the first such request
(agents that get no work never touch the worker), replays the session's init, then
forwards each request and copies the worker's events to git-lfs until ``complete``.

Nothing here may lose an object: if the worker cannot be reached or goes away before
``complete``, the relay says so (False) and the agent does the request itself, and
all later ones too. Standard library only, and only its cheap modules (no logging,
pathlib or tempfile): the thin relay (``thinrelay.py``) runs this same class in every
agent that gets a small object, before any of those would pay for itself.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import IO, TYPE_CHECKING, Any, Protocol

from lfs_s3_agent import tmpfile
from lfs_s3_agent.errors import BadRequest, Code
from lfs_s3_agent.protocol import worker as frames
from lfs_s3_agent.protocol.framing import MAX_LINE, LineWriter, decode_line
from lfs_s3_agent.protocol.lfs import TRANSFER_EVENTS
from lfs_s3_agent.unreachable import NOTE
from lfs_s3_agent.workerkey import RendezvousError

if TYPE_CHECKING:
    import socket

#: Connects to the worker (starting it if need be): the socket and the worker's key.
Connector = Callable[[], "tuple[socket.socket, str]"]
#: Where the worker's log lines go: (level, message), levels as in ``logging``.
LogSink = Callable[[int, str], None]


def log_to_logging(level: int, message: str) -> None:
    """The full agent's ``LogSink``: the worker's lines go through its logging set-up."""
    import logging

    logging.getLogger("lfs_s3_agent.worker").log(level, "%s", message)


class Unreachable(Protocol):
    """Where a git command's agents share that the endpoint cannot be reached (``unreachable.UnreachableMark``)."""

    def check(self) -> str | None: ...

    def record(self, message: str) -> None: ...


class ProgressGuard(LineWriter):
    """A LineWriter that keeps each object's progress monotonic across a hand-over.

    When the shared worker fails mid-object, this process starts the object again from
    byte 0: events that would move git-lfs's bar backwards are dropped and the first one
    past the old mark counts only the new bytes. ``reported``: the marks of a process this one
    took over from (the thin relay's, passed by ``exec`` as ``--progress-sent OID=BYTES``).
    """

    def __init__(self, stream: IO[bytes], unreachable: Unreachable | None = None,
                 reported: dict[str, int] | None = None) -> None:
        super().__init__(stream)
        self._reported: dict[str, int] = dict(reported or {})
        self.unreachable = unreachable

    def in_flight(self) -> dict[str, int]:
        """``bytesSoFar`` last told to git-lfs for each object not yet complete."""
        return dict(self._reported)

    def write(self, message: dict[str, Any]) -> None:
        event, oid = message.get("event"), message.get("oid")
        if event == "progress" and isinstance(oid, str):
            so_far = message.get("bytesSoFar", 0)
            before = self._reported.get(oid, 0)
            if not isinstance(so_far, int) or so_far <= before:
                return
            self._reported[oid] = so_far
            message = {**message, "bytesSinceLast": so_far - before}
        elif event == "complete" and isinstance(oid, str):
            self._reported.pop(oid, None)
            error = message.get("error")
            # Every failed object passes here, whether this process or the shared worker moved it.
            if (self.unreachable is not None and isinstance(error, dict) and error.get("code") == Code.NETWORK
                    and isinstance(error.get("message"), str) and NOTE not in error["message"]):
                self.unreachable.record(error["message"])
        super().write(message)


def fail_fast(unreachable: Unreachable, line: bytes, writer: LineWriter) -> bool:
    """Answer a transfer request at once when the endpoint is known to be unreachable."""
    message = unreachable.check()
    if message is None:
        return False
    try:
        raw = decode_line(line)
    except BadRequest:
        return False
    oid = raw.get("oid")
    if raw.get("event") not in TRANSFER_EVENTS or not isinstance(oid, str):
        return False
    # A plain dict: the same JSON as ``CompleteEvent.failed``, without paying for pydantic.
    writer.write({"event": "complete", "oid": oid, "error": {"code": int(Code.NETWORK), "message": message + NOTE}})
    return True


class WorkerUnavailable(Exception):
    pass


class WorkerRelay:
    def __init__(self, connector: Connector, *, max_size: int, tmp_dir: str | os.PathLike[str],
                 on_log: LogSink = log_to_logging) -> None:
        self._connector = connector
        self.tmp_dir = os.fspath(tmp_dir)
        self.max_size = max_size
        self.on_log = on_log
        self.gave_up: BaseException | None = None  #: why the relay stopped handing objects over
        self._sock: socket.socket | None = None
        self._stream: Any = None
        self.disabled = False
        self.relayed = 0  #: requests the worker completed

    def accepts(self, raw: dict[str, Any]) -> bool:
        """Small objects, and only requests the worker can answer: one without a string oid gets no
        ``complete`` from anyone (the agent logs it), so the relay would wait for an answer forever."""
        size = raw.get("size")
        oid = raw.get("oid")
        return (not self.disabled and isinstance(size, int) and not isinstance(size, bool)
                and 0 <= size <= self.max_size and isinstance(oid, str) and oid != "")

    def transfer(self, line: bytes, raw: dict[str, Any], init_line: bytes, writer: LineWriter) -> bool:
        """Have the worker do this request; False (and no ``complete`` written) if it could not."""
        tmp: str | None = None
        handed_over = False
        try:
            if self._sock is None:
                self._open(init_line)
            assert self._sock is not None
            if raw.get("event") == "download":
                # This agent makes and owns the temporary file: if git-lfs kills it mid-download,
                # it removes the file itself (the worker's writes then go to an unlinked inode).
                fd, tmp = tmpfile.create(self.tmp_dir, str(raw.get("oid", "")))
                os.close(fd)
                self._sock.sendall(frames.encode(frames.TmpFile(str(raw.get("oid", "")), tmp)))
            self._sock.sendall(frames.encode(frames.Request(line)))
            while True:
                frame = frames.decode_to_agent(self._readline())
                if isinstance(frame, frames.Log):
                    self.on_log(frame.level, frame.message)
                    continue
                message = frame.message
                writer.write(message)
                if message.get("event") == "complete":
                    # The file is git-lfs's only once it has been told where it is.
                    handed_over = "error" not in message
                    self.relayed += 1
                    return True
        except (OSError, frames.FrameError, WorkerUnavailable, RendezvousError) as exc:
            self._give_up(exc)
            return False
        finally:
            if tmp is not None and not handed_over:
                try:
                    os.unlink(tmp)
                except FileNotFoundError:
                    pass
                except OSError as exc:
                    self.on_log(30, f"cannot remove the temporary file {tmp}: {exc.strerror}")

    def _open(self, init_line: bytes) -> None:
        sock, key = self._connector()
        self._sock = sock
        self._stream = sock.makefile("rb")
        sock.sendall(frames.encode(frames.Hello(key=key)))
        hello = frames.decode_reply(self._readline())
        if not hello.ok:
            raise WorkerUnavailable(f"the worker refused the session: {hello.error}")
        sock.sendall(frames.encode(frames.Request(init_line)))
        reply = frames.decode_to_agent(self._readline())
        while isinstance(reply, frames.Log):  # the worker's log lines (debug logs the init) are not its reply
            self.on_log(reply.level, reply.message)
            reply = frames.decode_to_agent(self._readline())
        if reply.message:
            raise WorkerUnavailable(f"the worker refused the init request: {reply}")
        self.on_log(10, f"handing small objects to the shared worker (pid {hello.pid})")

    def _readline(self) -> bytes:
        assert self._stream is not None
        line: bytes = self._stream.readline(MAX_LINE + 1)
        if not line.endswith(b"\n"):
            raise WorkerUnavailable("the worker closed the connection")
        return line

    def _give_up(self, exc: BaseException) -> None:
        # The agent carries on by itself either way. A worker that went away is routine (info); one
        # that cannot be used here at all is something to fix (warning, with the fix in the message).
        level = 30 if isinstance(exc, RendezvousError) else 20
        self.on_log(level, f"shared worker unavailable ({exc}); transferring in this process")
        self.gave_up = exc
        self.disabled = True
        self.close()

    def close(self) -> None:
        if self._sock is not None:
            try:
                self._stream.close()
                self._sock.close()
            except OSError:
                pass
            self._sock = None
