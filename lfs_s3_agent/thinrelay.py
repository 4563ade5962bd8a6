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

argv (after ``-c``'s): PACKAGE_DIR PYTHON SOCKET LIMIT CONFIG_DIGEST TMP_DIR MARK AGENT_ARGS...
``--answered-init`` INIT ``--first-line`` LINE (``launcher.launcher_script``).
"""

from __future__ import annotations

import os
import signal
import sys
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, NoReturn

from lfs_s3_agent import workerkey
from lfs_s3_agent.errors import BadRequest, printable
from lfs_s3_agent.protocol.framing import MAX_LINE, decode_line
from lfs_s3_agent.protocol.lfs import TERMINATE, TRANSFER_EVENTS
from lfs_s3_agent.relay import ProgressGuard, WorkerRelay, WorkerUnavailable, fail_fast
from lfs_s3_agent.unreachable import UnreachableMark

if TYPE_CHECKING:
    import socket

_LEVELS = {10: "DEBUG", 20: "INFO", 30: "WARNING", 40: "ERROR", 50: "CRITICAL"}


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
    python, sock_path, limit, config, tmp_dir, mark_path, *rest = argv
    if len(rest) < 4 or rest[-4] != "--answered-init" or rest[-2] != "--first-line":
        raise SystemExit("lfs-s3-agent thin relay: started with unexpected arguments; run `lfs-s3-agent install`")
    agent_args, init, first = rest[:-4], rest[-3], rest[-1]
    log = LogSink(agent_args)
    lines = StdinLines(lambda message: log(40, message))

    def full_agent(pending: list[bytes]) -> NoReturn:
        """Become the full agent (same process), handing it the lines not yet answered."""
        argv = [python, "-m", "lfs_s3_agent", *agent_args, "--answered-init", init]
        for line in pending + lines.rest():
            argv += ["--first-line", line.decode("utf-8", "surrogateescape")]
        sys.stdout.flush()
        sys.stderr.flush()
        os.execv(python, argv)  # the interpreter the launcher runs (``py=``)

    def on_signal(signum: int, _frame: object) -> None:
        raise SystemExit(128 + signum)  # unwind: the relay removes an unfinished download's temporary file

    signal.signal(signal.SIGTERM, on_signal)
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
        except BadRequest:
            full_agent([line])  # it says what is wrong with the line
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
