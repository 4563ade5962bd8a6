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

import contextlib
import json
import logging
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from lfs_s3_agent.agent import TMP_PREFIX

if TYPE_CHECKING:
    import socket
from lfs_s3_agent.wire import MAX_LINE, LineWriter

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
        size = raw.get("size")
        return (not self.disabled and isinstance(size, int) and not isinstance(size, bool)
                and 0 <= size <= self.max_size)

    def transfer(self, line: bytes, raw: dict[str, Any], init_line: bytes, writer: LineWriter) -> bool:
        """Have the worker do this request; False (and no ``complete`` written) if it could not."""
        from lfs_s3_agent.rendezvous import RendezvousError  # only agents that get small objects import it

        tmp: str | None = None
        delivered = False
        try:
            if self._sock is None:
                self._open(init_line)
            assert self._sock is not None
            if raw.get("event") == "download":
                # This agent makes and owns the temporary file: if git-lfs kills it mid-download,
                # it removes the file itself (the worker's writes then go to an unlinked inode).
                tmp = self._mkstemp(str(raw.get("oid", "")))
                self._sock.sendall(json.dumps({"lfsS3Tmp": 1, "oid": raw.get("oid"), "path": tmp}).encode() + b"\n")
            self._sock.sendall(line + b"\n")
            while True:
                message = self._receive()
                if "log" in message:
                    self._log(message["log"])
                    continue
                if message.get("event") == "complete":
                    delivered = "error" not in message
                    writer.write(message)
                    self.relayed += 1
                    return True
                writer.write(message)
        except (OSError, ValueError, WorkerUnavailable, RendezvousError) as exc:
            self._give_up(exc)
            return False
        finally:
            if tmp is not None and not delivered:
                _remove(tmp)

    def _mkstemp(self, oid: str) -> str:
        self.tmp_dir.mkdir(parents=True, exist_ok=True)
        fd, path = tempfile.mkstemp(dir=self.tmp_dir, prefix=f"{TMP_PREFIX}{oid[:12]}-")
        os.close(fd)
        return path

    def _open(self, init_line: bytes) -> None:
        from lfs_s3_agent import rendezvous

        sock, key = self._connector()
        self._sock = sock
        self._stream = sock.makefile("rb")
        rendezvous.send_line(sock, {"hello": rendezvous.HELLO, "key": key})
        hello = self._receive()
        if hello.get("hello") != "ok":
            raise WorkerUnavailable(f"the worker refused the session: {hello.get('error', hello)}")
        sock.sendall(init_line + b"\n")
        reply = self._receive()
        if reply:
            raise WorkerUnavailable(f"the worker refused the init request: {reply}")
        log.debug("handing small objects to the shared worker (pid %s)", hello.get("pid"))

    def _receive(self) -> dict[str, Any]:
        assert self._stream is not None
        line = self._stream.readline(MAX_LINE + 1)
        if not line.endswith(b"\n"):
            raise WorkerUnavailable("the worker closed the connection")
        message = json.loads(line)
        if not isinstance(message, dict):
            raise ValueError(f"unexpected line from the worker: {line[:200]!r}")
        return message

    def _log(self, record: Any) -> None:
        if isinstance(record, dict):
            level = record.get("level")
            worker_log.log(level if isinstance(level, int) else logging.INFO, "%s", record.get("message", ""))

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


def _remove(path: str) -> None:
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)
