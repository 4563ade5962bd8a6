"""The thin relay: what the launcher runs for a small object once the settings are known good.

git-lfs hands objects to up to 8 agents; each that gets one used to become the full Python agent,
only to pass small objects on to the shared worker: ~0.13 CPU s per agent (interpreter and site,
~100 modules, the settings read through two ``git`` subprocesses, argparse), 1 CPU s of a
200 x 1 MiB push on 2 cores. This does the same relaying with ``python -S`` and about 25 cheap
standard-library modules (measured: ~45 ms of CPU; the full agent ~200 ms on the same machine).

It trusts what the launcher trusts: the stamp, valid while no config source changed
(``launcher.py``), gives the settings half of the worker key (``workerkey``); the environment
half is computed here, so a changed ``AWS_PROFILE``, credentials file or proxy still means
another worker. Everything else goes to the full agent, by ``exec`` in this same process (git-lfs
sees one agent), with the lines not yet answered: a request for a large object, a line that is
not a transfer request, a worker that cannot be reached, or an environment the stamp's worker
does not serve. The worker's log lines are written where and as the full agent would write them.

It also checks what the launcher's ``-nt`` cannot see: that every file the settings were read from
is still the one the stamp recorded (inode, size, mtime, ctime: a file moved into place keeps an
older mtime, a symlink pointed elsewhere keeps its target's). If one is not, it removes the stamp (the
next agent validates in Python) and hands the session to the full agent.

argv (after ``-c``'s): PACKAGE_DIR PYTHON STAMP SIGNATURE AGENT_ARGS... ``--answered-init`` INIT
``--first-line`` LINE (``launcher.launcher_script``). The full agent gets the same, one ``--first-line``
per line not yet answered, and ``--progress-sent OID=BYTES`` for an object the worker left unfinished.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, NoReturn

from lfs_s3_agent import workerkey
from lfs_s3_agent.errors import BadRequest, Code, printable
from lfs_s3_agent.protocol.framing import MAX_LINE, decode_line
from lfs_s3_agent.protocol.lfs import TERMINATE, TRANSFER_EVENTS
from lfs_s3_agent.relay import ProgressGuard, WorkerRelay, WorkerUnavailable, fail_fast
from lfs_s3_agent.unreachable import UnreachableMark

if TYPE_CHECKING:
    import socket

_LEVELS = {10: "DEBUG", 20: "INFO", 30: "WARNING", 40: "ERROR", 50: "CRITICAL"}
#: The stamp's lines (``launcher.write_stamp``): the signature, then ``launcher.StampedWorker``'s fields,
#: then one ``IDENTITY<TAB>PATH`` line per file the settings were read from.
STAMP_FIELDS = ("signature", "socket", "command", "limit", "config", "tmp_dir", "mark", "package")
STAMP_HEAD = len(STAMP_FIELDS)
#: The stamp holds file names and the launcher's signature as bytes (sh reads them so); those that are not
#: UTF-8 are surrogate escapes in Python, as ``os.fsdecode`` and ``sys.argv`` give them.
STAMP_ERRORS = "surrogateescape"
#: Longest line handed to the full agent as an argument (the kernel takes 128 KiB per argument).
_ARG_MAX = 64 * 1024


def file_identity(path: str) -> str:
    """``inode:size:mtime_ns:ctime_ns`` of the file at ``path`` (symlinks followed), or ``absent``."""
    try:
        st = os.stat(path)
    except OSError:
        return "absent"
    return f"{st.st_ino}:{st.st_size}:{st.st_mtime_ns}:{st.st_ctime_ns}"


def read_stamp(path: str, signature: str) -> dict[str, str] | None:
    """The stamp's fields, when it still has ``signature`` and every file it lists is the one recorded."""
    try:
        with open(path, encoding="utf-8", errors=STAMP_ERRORS) as fh:
            lines = fh.read().split("\n")
    except (OSError, UnicodeDecodeError):
        return None
    if len(lines) < STAMP_HEAD or lines[0] != signature:
        return None
    for line in lines[STAMP_HEAD:]:
        identity, tab, file = line.partition("\t")
        if tab and file_identity(file) != identity:
            return None
    return dict(zip(STAMP_FIELDS, lines, strict=False))


class StdinLines:
    """Lines from fd 0, read in chunks; what is buffered can be handed to the full agent whole.

    A line longer than ``MAX_LINE`` (git-lfs sends a few hundred bytes) is dropped whole, as the
    full agent's ``LineReader`` drops it, and ``on_drop`` is told.
    """

    def __init__(self, on_drop: Callable[[str], None]) -> None:
        self._buffer = b""
        self._eof = False
        self._dropping = False  #: inside an over-long line: skip to its end
        self._on_drop = on_drop

    def next(self) -> bytes | None:
        """The next non-blank line without its newline; None at end of input."""
        while True:
            newline = self._buffer.find(b"\n")
            if newline >= 0:
                line, self._buffer = self._buffer[:newline].strip(), self._buffer[newline + 1:]
                if not self._dropping and len(line) > MAX_LINE:
                    self._on_drop(f"ignoring request line: request line longer than {MAX_LINE} bytes")
                elif not self._dropping and line:
                    return line
                self._dropping = False
                continue
            if self._eof:
                line, self._buffer = self._buffer.strip(), b""
                return None if self._dropping or not line else line
            if len(self._buffer) > MAX_LINE:
                if not self._dropping:
                    self._on_drop(f"ignoring request line: request line longer than {MAX_LINE} bytes")
                self._buffer, self._dropping = b"", True
            chunk = os.read(0, 65536)
            if not chunk:
                self._eof = True
            self._buffer += chunk

    def rest(self) -> list[bytes]:
        """Every line received and not yet returned (a partial last line is read to its end first)."""
        while self._buffer and not self._buffer.endswith(b"\n") and not self._eof:
            chunk = os.read(0, 65536)
            if not chunk:
                self._eof = True
            self._buffer += chunk
        lines = [line.strip() for line in self._buffer.split(b"\n")]
        self._buffer = b""
        return [line for line in lines if line]


def process_started() -> float:
    """When this process started (epoch seconds): the launcher's start, before it answered init.

    Linux: ``/proc/self/stat`` field 22 (clock ticks since boot, ``proc(5)``) against ``CLOCK_BOOTTIME``;
    elsewhere: now.
    """
    now = time.time()
    try:
        with open("/proc/self/stat", "rb") as fh:
            data = fh.read()
        ticks = int(data[data.rindex(b")") + 2:].split()[19])
        started = now - (time.clock_gettime(time.CLOCK_BOOTTIME) - ticks / os.sysconf("SC_CLK_TCK"))
    except (OSError, ValueError, IndexError, AttributeError):
        return now
    return min(started, now)


class LogSink:
    """The worker's log lines, written as the full agent writes its own (``cli.setup_logging``): to
    ``--log-file`` / ``LFS_S3_LOG_FILE`` or stderr, from ``--log-level`` / ``LFS_S3_LOG_LEVEL`` up (default:
    warnings, and info too under ``GIT_TRACE``)."""

    def __init__(self, agent_args: list[str]) -> None:
        options = _options(agent_args)
        trace = os.environ.get("GIT_TRACE", "") not in ("", "0", "false")
        level = options.get("--log-level") or os.environ.get("LFS_S3_LOG_LEVEL") or ("info" if trace else "warning")
        self.threshold = {"debug": 10, "info": 20, "warning": 30, "error": 40}.get(level.lower(), 30)
        self.file = options.get("--log-file") or os.environ.get("LFS_S3_LOG_FILE") or None

    def __call__(self, level: int, message: str) -> None:
        if level < self.threshold:
            return
        line = printable(f"lfs-s3-agent[{os.getpid()}] {_LEVELS.get(level, 'INFO')} {message}") + "\n"
        if self.file is not None:
            try:
                with open(self.file, "a", encoding="utf-8") as fh:
                    fh.write(line)
                return
            except OSError:
                pass  # as logging does when its file cannot be written: the line goes to stderr
        sys.stderr.write(line)
        sys.stderr.flush()


def _options(agent_args: list[str]) -> dict[str, str]:
    """``--log-file``/``--log-level`` values among the agent's arguments (``--opt value`` or ``--opt=value``)."""
    found = {}
    for i, arg in enumerate(agent_args):
        name, eq, value = arg.partition("=")
        if name in ("--log-file", "--log-level"):
            if eq:
                found[name] = value
            elif i + 1 < len(agent_args):
                found[name] = agent_args[i + 1]
    return found


def main(argv: list[str]) -> NoReturn:
    python, stamp_path, signature, *rest = argv
    if len(rest) < 4 or rest[-4] != "--answered-init" or rest[-2] != "--first-line":
        raise SystemExit("lfs-s3-agent thin relay: started with unexpected arguments; run `lfs-s3-agent install`")
    agent_args, init, first = rest[:-4], rest[-3], rest[-1]
    log = LogSink(agent_args)
    lines = StdinLines(lambda message: log(40, message))
    writer: ProgressGuard | None = None

    def full_agent(pending: list[bytes]) -> NoReturn:
        """Become the full agent (same process), handing it the lines not yet answered."""
        argv = [python, "-P", "-m", "lfs_s3_agent", *agent_args, "--answered-init", init]
        # What git-lfs was already told of an object the worker did not finish: the full agent moves it again
        # from byte 0, and its ProgressGuard must neither send git-lfs's bar back nor count those bytes twice.
        for oid, count in (writer.in_flight() if writer is not None else {}).items():
            if "\0" not in oid and len(oid) < _ARG_MAX:
                argv += ["--progress-sent", f"{oid}={count}"]
        for line in pending + lines.rest():
            if b"\0" in line or len(line) > _ARG_MAX:
                unpassable(line)  # cannot be an argument; no request that long or with a NUL is valid
            else:
                argv += ["--first-line", line.decode("utf-8", "surrogateescape")]
        sys.stdout.flush()
        sys.stderr.flush()
        os.execv(python, argv)  # the interpreter the launcher runs (``py=``)

    def unpassable(line: bytes) -> None:
        """Answer a line nobody can serve as the full agent would: a failed ``complete`` when it names an
        oid (git-lfs waits for one), else a logged error."""
        nul = ", with a NUL byte" if b"\0" in line else ""
        message = f"request line not usable ({len(line)} bytes{nul})"
        try:
            oid = decode_line(line).get("oid")
        except BadRequest as exc:
            oid, message = None, exc.message
        if isinstance(oid, str) and oid and writer is not None:
            writer.write({"event": "complete", "oid": oid, "error": {"code": int(Code.BAD_REQUEST),
                                                                     "message": f"lfs-s3-agent: {message}"}})
        else:
            log(40, f"ignoring request line: {message}")

    stamp = read_stamp(stamp_path, signature)
    if stamp is None:
        # A file the settings came from was replaced without a newer mtime, or the stamp changed since the
        # launcher read it: the next agent's launcher must validate again, and this session is the full agent's.
        with contextlib.suppress(OSError):
            os.unlink(stamp_path)
        full_agent([first.encode("utf-8", "surrogateescape")])
    sock_path, limit, config, tmp_dir, mark_path = (stamp[k] for k in ("socket", "limit", "config", "tmp_dir", "mark"))

    def on_signal(signum: int, _frame: object) -> None:
        raise SystemExit(128 + signum)  # unwind: the relay removes an unfinished download's temporary file

    for signum in (signal.SIGTERM, signal.SIGHUP):  # SIGHUP: the terminal or ssh session closed
        signal.signal(signum, on_signal)
    mark = UnreachableMark.at(mark_path, started=process_started())
    writer = ProgressGuard(sys.stdout.buffer, mark)

    def connect() -> tuple[socket.socket, str]:
        key = workerkey.combine(config, workerkey.environment_digest())
        path = workerkey.socket_path(workerkey.runtime_dir(), key)
        if path != sock_path:
            raise WorkerUnavailable("the environment changed since the settings were validated")
        sock = workerkey.try_connect(path) or workerkey.wait_for_launched(path)
        if sock is None:
            raise WorkerUnavailable(f"no shared worker listens on {path}")
        return sock, key

    relay = WorkerRelay(connect, max_size=int(limit), tmp_dir=tmp_dir, on_log=log)
    init_line = init.encode("utf-8", "surrogateescape")
    pending = [first.encode("utf-8", "surrogateescape")]
    while True:
        line = pending.pop() if pending else lines.next()
        if line is None:
            break
        try:
            raw = decode_line(line)
        except BadRequest as exc:
            log(40, f"ignoring request line: {exc.message}")  # as the full agent does: no oid to answer
            continue
        if raw.get("event") == TERMINATE:
            break
        if raw.get("event") not in TRANSFER_EVENTS:
            full_agent([line])
        if fail_fast(mark, line, writer):
            continue
        if not (relay.accepts(raw) and relay.transfer(line, raw, init_line, writer)):
            full_agent([line])  # a large object, or the worker could not finish this one
    relay.close()
    if os.environ.get("LFS_S3_STATS_FILE"):
        from lfs_s3_agent.procstats import write_stats

        write_stats(os.environ["LFS_S3_STATS_FILE"], {}, role="relay")
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)
