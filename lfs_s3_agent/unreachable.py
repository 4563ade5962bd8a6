"""Fail fast: once the endpoint cannot be reached, the rest of the git command's objects fail at once.

git-lfs runs 8 agents per git command (and they may share a worker), and it never retries: each
object spends its whole retry budget on a dead endpoint. So the first object whose request fails
with ``Code.NETWORK`` (connection refused, DNS, TLS, connections that keep breaking; after
``S3Client.call``'s retries) leaves a mark, ``<git common dir>/lfs-s3-agent/unreachable-<hash of
the endpoint>``, holding the time and the message. An agent honours a mark written *after it
started*: git-lfs starts every agent of a command before it hands out the first object, so the
mark reaches every agent of the command that made it, and never an agent of a later command
(which tries the endpoint again, and marks it again if it is still down). No process ids are
involved: the ``sh -c`` wrapper, git-lfs and the shared worker need not be told apart.
Standard library only (read on every request: one ``stat`` while there is no mark), and only its
cheap modules: the thin relay (``thinrelay.py``) checks and leaves marks too.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import time

NOTE = " [not attempted: an earlier object of this git command could not reach the endpoint]"


class UnreachableMark:
    """The mark for one endpoint in one repository, as seen by a process that started at ``started``."""

    def __init__(self, directory: str | os.PathLike[str], endpoint: str, *, started: float | None = None) -> None:
        digest = hashlib.sha256(endpoint.encode("utf-8")).hexdigest()[:16]
        self.path = os.path.join(os.fspath(directory), f"unreachable-{digest}")
        self.started = time.time() if started is None else started

    @classmethod
    def at(cls, path: str, *, started: float) -> UnreachableMark:
        """The mark at ``path`` (``self.path`` of one made by endpoint, as a launcher's stamp records it)."""
        mark = cls.__new__(cls)
        mark.path, mark.started = path, started
        return mark

    def check(self) -> str | None:
        """The message of a failure recorded since this process started, else None."""
        try:
            with open(self.path, encoding="utf-8") as fh:
                data = json.load(fh)
        except (OSError, ValueError):
            return None
        if not isinstance(data, dict) or not isinstance(data.get("time"), (int, float)):
            return None
        if data["time"] < self.started:
            return None  # an earlier git command's: try the endpoint again
        message = data.get("message")
        return message if isinstance(message, str) else None

    def record(self, message: str) -> None:
        """Leave the mark (atomically: readers never see half of it); best effort."""
        directory = os.path.dirname(self.path)
        tmp = os.path.join(directory, f".unreachable-{os.getpid()}-{os.urandom(4).hex()}")
        try:
            os.makedirs(directory, exist_ok=True)
            with open(tmp, "x", encoding="utf-8") as fh:
                json.dump({"time": time.time(), "message": message}, fh)
            os.replace(tmp, self.path)
        except OSError:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
