"""The request loop git-lfs talks to: ``serve(stdin, stdout, store, ...)``.

One request at a time (git-lfs gets parallelism by starting several agents).
Init is validated and answered with the standard library alone so a spawned
agent replies in a few tens of milliseconds; pydantic (``messages``) and boto3
(inside the store) are imported when the first transfer request arrives.
Per-object problems become a ``complete`` with an error and the loop goes on;
only configuration problems fail init. The loop ends with exit status 0 on
``terminate`` or end of input.

A ``Delegate`` may take transfer requests off the loop (the relay to the shared
worker); whatever it declines or fails to finish is done here, in this process.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, Protocol

from lfs_s3_agent import lfsdirs
from lfs_s3_agent.errors import AgentError, BadRequest, Code, ConfigError, LocalFileError, printable
from lfs_s3_agent.progress import ProgressReporter
from lfs_s3_agent.protocol.framing import LineReader, LineWriter, decode_line
from lfs_s3_agent.protocol.lfs import TERMINATE, TRANSFER_EVENTS, InitRequest, error_reply
from lfs_s3_agent.relay import ProgressGuard, Unreachable, fail_fast

if TYPE_CHECKING:
    from lfs_s3_agent.protocol.messages import CompleteEvent, DownloadRequest, UploadRequest
    from lfs_s3_agent.store import ObjectStore

log = logging.getLogger(__name__)


class Delegate(Protocol):
    """Something that can carry out some transfer requests elsewhere (``relay.WorkerRelay``)."""

    def accepts(self, raw: dict[str, Any]) -> bool:
        """Would it take this (decoded, transfer) request?"""

    def transfer(self, line: bytes, raw: dict[str, Any], init_line: bytes, writer: LineWriter) -> bool:
        """Carry out the request and write its events; False if it could not finish (nothing
        was completed: the caller does the request itself)."""


class Agent:
    """The state of one session: the init handshake, the store and where downloads go."""

    def __init__(self, writer: LineWriter, store: ObjectStore, *, tmp_dir: Path | None,
                 config_error: ConfigError | None = None, progress_interval: float = 0.1,
                 cancel_check: Callable[[], None] | None = None,
                 tmp_opener: lfsdirs.TmpOpener | None = None, on_init: Callable[[], None] | None = None) -> None:
        self.writer = writer
        self.on_init = on_init
        self.store = store
        self.tmp_dir = tmp_dir
        self.config_error = config_error
        self.progress_interval = progress_interval
        self.cancel_check = cancel_check
        self.tmp_opener = tmp_opener or self._mkstemp
        self.init: InitRequest | None = None
        self.init_line: bytes | None = None  #: the accepted init request, as received
        #: set when the launcher answered init before the settings turned out unusable: every request fails
        self.late_config_error: ConfigError | None = None

    def take_answered_init(self, line: bytes) -> None:
        """Adopt an init request the launcher already answered ``{}`` (nothing is written).

        Settings found unusable now can no longer fail the init: each transfer request fails
        instead, with the configuration error's code and message.
        """
        try:
            raw = decode_line(line)
        except BadRequest as exc:
            log.error("ignoring the answered init line: %s", exc.message)
            return
        reply = self._handshake(raw)
        if not reply:
            self.init_line = line
        elif self.config_error is not None:
            self.late_config_error = self.config_error

    def handle_line(self, line: bytes) -> bool:
        """Answer one request line; False when the session is over (terminate)."""
        try:
            raw = decode_line(line)
        except BadRequest as exc:
            log.error("ignoring request line: %s", exc.message)
            return True
        if raw.get("event") == "init":
            reply = self._handshake(raw)
            if not reply:
                self.init_line = line
                if self.on_init is not None:
                    # Before the reply: git-lfs starts the next agent as soon as it has it, and that
                    # agent's launcher must find the stamp, or it validates in Python too. Written
                    # after the reply, the stamp lost that race: the first command after a settings
                    # change paid two Python validations (~0.15 CPU s each, one after the other,
                    # as git-lfs waits for each init reply) to save ~10 ms of this agent's reply.
                    try:
                        self.on_init()
                    except Exception as exc:  # only an optimisation: never at the cost of the reply
                        log.info("no stamp: %s: %s", type(exc).__name__, exc)
            self.writer.write(reply)
            return True
        if raw.get("event") == TERMINATE:
            # Most of git-lfs's workers never get a transfer: they must not pay for pydantic to stop.
            return False
        if self.late_config_error is not None:
            oid = raw.get("oid")
            if isinstance(oid, str) and oid:
                self.writer.write({"event": "complete", "oid": oid, "error": {
                    "code": int(Code.CONFIG), "message": f"lfs-s3-agent: {self.late_config_error.message}"}})
            else:
                log.error("ignoring request: %s", self.late_config_error.message)
            return True
        from lfs_s3_agent.protocol import messages  # first transfer request: now pydantic is worth its cost

        try:
            request = messages.parse_request(raw)
            if request.event == "terminate":
                return False
            if self.init is None:
                raise BadRequest(f"{request.event} request before a successful init", oid=request.oid)
        except BadRequest as exc:
            self._reject(exc)
            return True
        self.writer.write(messages.encode(self._transfer(request)))
        return True

    def _handshake(self, raw: dict[str, Any]) -> dict[str, Any]:
        if self.init is not None:
            return error_reply(Code.BAD_REQUEST, "init already received in this session")
        try:
            request = InitRequest.parse(raw)
        except BadRequest as exc:
            return error_reply(exc.code, exc.message)
        if self.config_error is not None:
            return error_reply(Code.CONFIG, printable(f"lfs-s3-agent: {self.config_error.message}"))
        self.init = request
        log.debug("init: %s", request)
        return {}

    def _reject(self, exc: BadRequest) -> None:
        from lfs_s3_agent.protocol.messages import CompleteEvent, encode

        if exc.oid is None:
            # Nothing to answer: git-lfs matches replies by oid, and an unsolicited line would be
            # taken as the reply to its next request.
            log.error("ignoring request: %s", exc.message)
        else:
            self.writer.write(encode(CompleteEvent.failed(exc.oid, exc.code, exc.message)))

    def _transfer(self, request: UploadRequest | DownloadRequest) -> CompleteEvent:
        from lfs_s3_agent.protocol.messages import CompleteEvent, ProgressEvent, encode

        oid = request.oid

        def emit(so_far: int, since_last: int) -> None:
            self.writer.write(encode(ProgressEvent(oid=oid, bytesSoFar=so_far, bytesSinceLast=since_last)))

        progress = ProgressReporter(request.size, emit, interval=self.progress_interval, check=self.cancel_check)
        try:
            if request.event == "upload":
                self._upload(request, progress)
                return CompleteEvent(oid=oid)
            return CompleteEvent(oid=oid, path=self._download(request, progress))
        except AgentError as exc:
            log.error("%s %s failed: [%d] %s", request.event, oid, exc.code, exc.message)
            # git-lfs prints the message as it is: nothing the store controls may reach the terminal raw.
            return CompleteEvent.failed(oid, exc.code, printable(exc.message, keep_newlines=False))
        except Exception as exc:  # a bug: report it for this object and keep serving
            log.exception("%s %s failed unexpectedly", request.event, oid)
            return CompleteEvent.failed(oid, Code.INTERNAL, printable(
                f"internal error ({type(exc).__name__}: {exc}); please report it with the output of GIT_TRACE=1",
                keep_newlines=False))

    def _upload(self, request: UploadRequest, progress: ProgressReporter) -> None:
        path = Path(request.path)
        try:
            st = path.stat()
        except OSError as exc:
            raise LocalFileError(f"cannot read the object to upload at {path}: {exc.strerror}") from None
        if not path.is_file():
            raise LocalFileError(f"the object to upload at {path} is not a regular file")
        if st.st_size != request.size:
            raise LocalFileError(f"the object to upload at {path} has {st.st_size} bytes, but the "
                                 f"request says {request.size}; run `git lfs fsck`")
        if not os.access(path, os.R_OK):
            raise LocalFileError(f"cannot read the object to upload at {path}: permission denied")
        uploaded = self.store.upload(request.oid, request.size, path, progress)
        log.info("%s %s (%d bytes)", "uploaded" if uploaded else "already stored", request.oid, request.size)

    def _download(self, request: DownloadRequest, progress: ProgressReporter) -> str:
        """Download into lfs/tmp, verified (size and SHA-256) before git-lfs ever sees the path."""
        oid = request.oid
        path, _ = lfsdirs.download_verified(
            lambda sink: self.store.download(oid, request.size, sink, progress), oid=oid, size=request.size,
            where=lambda: self.store.describe(oid), opener=self.tmp_opener)
        progress.finish()
        return path

    def _mkstemp(self, oid: str) -> tuple[int, str, bool]:
        if self.tmp_dir is None:
            raise LocalFileError("cannot download: not inside a git repository (no lfs/tmp directory)")
        fd, path = lfsdirs.new_temp(self.tmp_dir, oid)
        return fd, path, True


def serve(stdin: IO[bytes], stdout: IO[bytes], store: ObjectStore, *, tmp_dir: Path | None,
          config_error: ConfigError | None = None, progress_interval: float = 0.1,
          delegate: Delegate | None = None, cancel_check: Callable[[], None] | None = None,
          tmp_opener: lfsdirs.TmpOpener | None = None, unreachable: Unreachable | None = None,
          answered_init: bytes | None = None, first_lines: tuple[bytes, ...] = (),
          on_init: Callable[[], None] | None = None, progress_sent: dict[str, int] | None = None) -> int:
    """Run one git-lfs session over the given streams; return the process exit status.

    ``delegate`` is offered each transfer request first; ``cancel_check`` is called as
    bytes move and raises ``Cancelled`` when the requester has gone; ``tmp_opener``
    replaces creating a temporary file for each download; ``unreachable`` fails transfers at once
    after another object of the same git command found the endpoint unreachable. ``answered_init`` is
    an init request the launcher already answered, ``first_lines`` lines it read from stdin before
    starting us; ``on_init`` runs when an init is accepted, before its reply is written;
    ``progress_sent``: ``bytesSoFar`` the process we took over from already told git-lfs, per oid (the
    bar neither goes back nor counts those bytes twice when we move the object again).
    """
    reader = LineReader(stdin)
    writer = ProgressGuard(stdout, unreachable, progress_sent)
    agent = Agent(writer, store, tmp_dir=tmp_dir, config_error=config_error,
                  progress_interval=progress_interval, cancel_check=cancel_check, tmp_opener=tmp_opener,
                  on_init=on_init)
    if answered_init is not None:
        agent.take_answered_init(answered_init)
    pending = list(first_lines)
    while True:
        try:
            line = pending.pop(0) if pending else reader.read()
        except BadRequest as exc:
            log.error("ignoring request line: %s", exc.message)
            continue
        if line is None:
            log.debug("end of input: exiting")
            return 0
        if unreachable is not None and agent.init_line is not None and fail_fast(unreachable, line, writer):
            continue
        if delegate is not None and agent.init_line is not None and _delegated(delegate, line, agent.init_line,
                                                                               writer):
            continue
        if not agent.handle_line(line):
            log.debug("terminate: exiting")
            return 0


def _delegated(delegate: Delegate, line: bytes, init_line: bytes, writer: LineWriter) -> bool:
    try:
        raw = decode_line(line)
    except BadRequest:
        return False  # the agent reports it
    if raw.get("event") not in TRANSFER_EVENTS or not delegate.accepts(raw):
        return False
    return delegate.transfer(line, raw, init_line, writer)
