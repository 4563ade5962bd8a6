"""The local S3 servers the benchmark measures against, on 127.0.0.1 only.

Both log one line per HTTP response to a file; counting the lines written during a tool's run gives
the requests the *server* saw (retries included), for every tool alike, s5cmd included. Each server
exposes its pid so that its CPU time (utime + stime from /proc) can be read before and after a run:
when the server's CPU is close to the wall time, the server is the bottleneck, not the client.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any, Protocol

from tests.bench.procs import process_cpu_s, process_rss_kib
from tests.s3server import TEST_ENV, MotoServer, free_port

REPO = Path(__file__).resolve().parents[2]
TOOLS_DIR = REPO / ".bench-tools"
S3RVER_JS = TOOLS_DIR / "node_modules" / "s3rver" / "bin" / "s3rver.js"

#: s3rver's one built-in account (it checks signatures against it).
S3RVER_ENV = {"AWS_ACCESS_KEY_ID": "S3RVER", "AWS_SECRET_ACCESS_KEY": "S3RVER", "AWS_DEFAULT_REGION": "us-east-1",
              "AWS_REGION": "us-east-1"}

# koa-logger via winston: "info: /bucket/key 200 12ms 1.2mb" (colour codes around "info").
_S3RVER_RESPONSE = re.compile(rb"^\S*info\S*: .*\d+ms \S+\s*$", re.MULTILINE)
# werkzeug: '127.0.0.1 - - [date] "PUT /bucket/key HTTP/1.1" 200 -'
# (werkzeug wraps the quoted request in colour codes when the status is not 200, e.g. 206 or 404).
_WERKZEUG_RESPONSE = re.compile(rb'^127\.0\.0\.1 - - \[[^]]*\] ".*HTTP/1\.[01].*" \d{3} ', re.MULTILINE)


class Server(Protocol):
    name: str
    endpoint: str
    env: dict[str, str]

    @property
    def pid(self) -> int: ...

    def log_size(self) -> int: ...

    def requests_since(self, offset: int) -> int: ...

    def stop(self) -> None: ...


class _LoggedServer:
    """Shared parts: the log file, the request count, CPU and memory of the server process."""

    name = "?"
    log_path: Path
    proc: subprocess.Popen[bytes] | None

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def cpu_s(self) -> float:
        return process_cpu_s(self.pid)

    def rss_kib(self) -> int:
        return process_rss_kib(self.pid)

    def log_size(self) -> int:
        return self.log_path.stat().st_size

    def requests_since(self, offset: int) -> int:
        """Responses logged since ``offset``; waits until the count settles (lines come after responses)."""
        count, deadline = -1, time.monotonic() + 3.0
        while True:
            time.sleep(0.15)
            with self.log_path.open("rb") as fh:
                fh.seek(offset)
                now = len(self._pattern().findall(fh.read()))
            if now == count or time.monotonic() > deadline:
                return now
            count = now

    def _pattern(self) -> re.Pattern[bytes]:
        raise NotImplementedError

    def alive(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            tail = self.log_path.read_bytes()[-2000:].decode("utf-8", "replace") if self.log_path.exists() else ""
            raise RuntimeError(f"{self.name} server is not running (exit {self.proc and self.proc.returncode}):\n"
                               f"{tail}")


class S3rver(_LoggedServer):
    """s3rver (npm, stores objects on disk) in a node process: ``node s3rver.js -d DIR -a 127.0.0.1 -p PORT``."""

    name = "s3rver"

    def __init__(self, data_dir: Path, log_path: Path) -> None:
        if not S3RVER_JS.exists():
            raise RuntimeError(f"s3rver is not installed at {S3RVER_JS}: run `make bench` (it runs "
                               f"`npm install --prefix .bench-tools s3rver@3.7.1`)")
        self.data_dir = data_dir
        self.log_path = log_path
        self.port = free_port()
        self.endpoint = f"http://127.0.0.1:{self.port}"
        self.env = dict(S3RVER_ENV)
        self.proc = None
        self._log: Any = None

    def _pattern(self) -> re.Pattern[bytes]:
        return _S3RVER_RESPONSE

    def start(self, timeout: float = 30.0) -> S3rver:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self._log = self.log_path.open("wb")
        # node itself, not the npm shim: the pid we read CPU time from must be the server's.
        self.proc = subprocess.Popen(["node", str(S3RVER_JS), "-d", str(self.data_dir), "-a", "127.0.0.1",
                                      "-p", str(self.port)], stdout=self._log, stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL)
        _wait_ready(self, f"{self.endpoint}/", timeout)
        return self

    def stop(self) -> None:
        _stop(self.proc)
        if self._log is not None:
            self._log.close()


class LoggedMotoServer(MotoServer, _LoggedServer):
    """tests.s3server.MotoServer with werkzeug's request log kept in a file instead of discarded."""

    name = "moto"

    def __init__(self, log_path: Path) -> None:
        super().__init__()
        self.log_path = log_path
        self.env = dict(TEST_ENV)
        self._log: Any = None

    def _pattern(self) -> re.Pattern[bytes]:
        return _WERKZEUG_RESPONSE

    def start(self, timeout: float = 30.0) -> LoggedMotoServer:
        self._log = self.log_path.open("wb")
        env = {**os.environ, **TEST_ENV}
        self.proc = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(self.port)],
                                     stdout=self._log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env)
        _wait_ready(self, f"{self.endpoint}/moto-api/", timeout)
        return self

    def stop(self) -> None:
        super().stop()
        if self._log is not None:
            self._log.close()


def _wait_ready(server: _LoggedServer, url: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:  # readiness poll
        server.alive()
        try:
            urllib.request.urlopen(url, timeout=1).close()
            return
        except urllib.error.HTTPError:
            return  # it answered (s3rver says 403 to an unsigned GET /)
        except (urllib.error.URLError, ConnectionError, OSError):
            time.sleep(0.05)
    _stop(server.proc)
    raise RuntimeError(f"{server.name} did not start on {url}")


def _stop(proc: subprocess.Popen[bytes] | None) -> None:
    if proc is not None and proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
