"""The agent's side of the shared worker: hand small transfers over, relay the answers back.

``WorkerRelay`` is the ``agent.Delegate`` that ``serve`` offers each transfer request.
It takes the objects the store moves in one request (up to ``multipart_threshold``),
where the fixed cost of a Python process dominates; larger objects stay in the agent,
so their memory bound stays per process. It connects lazily, at the first such request
(agents that get no work never touch the worker), replays the session's init, then
forwards each request and copies the worker's events to git-lfs until ``complete``.

Nothing here may lose an object: if the worker cannot be reached or goes away before
``complete``, the relay says so (False) and the agent does the request itself, and
all later ones too. Standard library only.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from lfs_s3_agent import lfsdirs
from lfs_s3_agent.protocol import worker as frames
from lfs_s3_agent.protocol.framing import MAX_LINE, LineWriter

if TYPE_CHECKING:
    import socket

log = logging.getLogger(__name__)
worker_log = logging.getLogger("lfs_s3_agent.worker")

#: Connects to the worker (starting it if need be): the socket and the worker's key.
Connector = Callable[[], "tuple[socket.socket, str]"]


class WorkerUnavailable(Exception):
    pass


class WorkerRelay:
    def __init__(self, connector: Connector, *, max_size: int, tmp_dir: Path) -> None:
        self._connector = connector
        self.tmp_dir = tmp_dir
        self.max_size = max_size
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
        from lfs_s3_agent.rendezvous import RendezvousError  # only agents that get small objects import it

        tmp: str | None = None
        handed_over = False
        try:
            if self._sock is None:
                self._open(init_line)
            assert self._sock is not None
            if raw.get("event") == "download":
                # This agent makes and owns the temporary file: if git-lfs kills it mid-download,
                # it removes the file itself (the worker's writes then go to an unlinked inode).
                fd, tmp = lfsdirs.new_temp(self.tmp_dir, str(raw.get("oid", "")))
                os.close(fd)
                self._sock.sendall(frames.encode(frames.TmpFile(str(raw.get("oid", "")), tmp)))
            self._sock.sendall(frames.encode(frames.Request(line)))
            while True:
                frame = frames.decode_to_agent(self._readline())
                if isinstance(frame, frames.Log):
                    worker_log.log(frame.level, "%s", frame.message)
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
                lfsdirs.remove(tmp)

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
            worker_log.log(reply.level, "%s", reply.message)
            reply = frames.decode_to_agent(self._readline())
        if reply.message:
            raise WorkerUnavailable(f"the worker refused the init request: {reply}")
        log.debug("handing small objects to the shared worker (pid %s)", hello.pid)

    def _readline(self) -> bytes:
        assert self._stream is not None
        line: bytes = self._stream.readline(MAX_LINE + 1)
        if not line.endswith(b"\n"):
            raise WorkerUnavailable("the worker closed the connection")
        return line

    def _give_up(self, exc: BaseException) -> None:
        # The agent carries on by itself either way. A worker that went away is routine (info); one
        # that cannot be used here at all is something to fix (warning, with the fix in the message).
        from lfs_s3_agent.rendezvous import RendezvousError

        level = logging.WARNING if isinstance(exc, RendezvousError) else logging.INFO
        log.log(level, "shared worker unavailable (%s); transferring in this process", exc)
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
