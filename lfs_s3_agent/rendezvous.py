"""Where agents meet the shared worker: its key, its socket, the lock, starting it.

git-lfs starts eight agent processes for every transfer; in each, importing botocore
and pydantic and building an S3 client costs about 0.3 s of CPU, which is most of
the cost of moving small objects. So the agents hand small objects to one warm
process (``worker``) over a unix socket and stay thin themselves.

A worker serves exactly one configuration: its key hashes everything that could
make two agents behave differently (the code, the interpreter, the resolved
settings, the repository, the environment the AWS SDK and git read, the AWS
config files' mtimes), so an agent can only ever reach a worker that would do
what it would do itself. Sockets live in a private per-user directory (mode 0700,
owned by the user; anything else is refused). The first agent that finds no
worker starts one while holding ``<key>.lock``; the others wait on the lock, not
on a timer. Whoever starts a worker (that agent, or a launcher at its first request:
``launcher.py``) first makes the ``<socket>.starting`` marker directory, so there is only ever
one start at a time, and none outlives a ``worker stop`` by binding the socket after it. Standard
library only: this runs before the agent answers anything.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import hashlib
import json
import logging
import os
import select
import socket
import stat
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from lfs_s3_agent import __version__

log = logging.getLogger(__name__)

#: Longest unix socket path the kernel takes (108 on Linux, 104 on macOS).
MAX_SOCKET_PATH = 100
#: How long the agent that starts a worker waits for it to listen (imports, S3 client).
START_TIMEOUT = 30.0

_ENV_PREFIXES = ("AWS_", "LFS_S3_", "GIT_CONFIG")
_ENV_NAMES = ("HOME", "XDG_CONFIG_HOME", "GIT_DIR", "GIT_WORK_TREE", "GIT_COMMON_DIR", "GIT_TRACE",
              "GIT_NAMESPACE", "SSL_CERT_FILE", "SSL_CERT_DIR", "REQUESTS_CA_BUNDLE", "HTTP_PROXY", "HTTPS_PROXY",
              "NO_PROXY", "http_proxy", "https_proxy", "no_proxy", "ALL_PROXY", "all_proxy", "PYTHONPATH")


class RendezvousError(Exception):
    """The shared worker cannot be used here; the message says why and what to do."""


def runtime_dir(env: Mapping[str, str] | None = None) -> Path:
    """The private directory for this user's worker sockets (created 0700, checked)."""
    env = os.environ if env is None else env
    if env.get("LFS_S3_RUNTIME_DIR"):
        path = Path(env["LFS_S3_RUNTIME_DIR"])
    elif env.get("XDG_RUNTIME_DIR") and os.path.isdir(env["XDG_RUNTIME_DIR"]):
        path = Path(env["XDG_RUNTIME_DIR"]) / "lfs-s3-agent"
    else:
        path = Path(tempfile.gettempdir()) / f"lfs-s3-agent-{os.getuid()}"
    try:
        path.mkdir(mode=0o700, parents=True, exist_ok=True)
        st = os.lstat(path)
    except OSError as exc:
        raise RendezvousError(f"cannot create {path}: {exc.strerror}; set LFS_S3_RUNTIME_DIR to a "
                              "writable directory") from None
    if not stat.S_ISDIR(st.st_mode) or st.st_uid != os.getuid() or st.st_mode & 0o077:
        raise RendezvousError(f"{path} is not a private directory of this user (it must be owned by uid "
                              f"{os.getuid()} with mode 0700); remove it or set LFS_S3_RUNTIME_DIR")
    return path


def code_fingerprint() -> str:
    """The version and the size and mtime of every module: an edited checkout gets a new worker."""
    package = Path(__file__).parent
    parts = [__version__, sys.executable, sys.version]
    for path in sorted(package.rglob("*.py")):  # subpackages too (s3/, protocol/, commands/)
        st = path.stat()
        parts.append(f"{path.relative_to(package)}:{st.st_size}:{st.st_mtime_ns}")
    return "\n".join(parts)


def worker_key(values: Mapping[str, Any], *, git_dir: Path | None, common_dir: Path | None,
               lfs_storage: str | None, env: Mapping[str, str] | None = None) -> str:
    """The name of the worker that serves exactly this configuration (a SHA-256, hex)."""
    env = os.environ if env is None else env
    relevant = {k: v for k, v in env.items() if k.startswith(_ENV_PREFIXES) or k in _ENV_NAMES}
    aws_files = []
    home = env.get("HOME", "")
    for name, default in (("AWS_CONFIG_FILE", "~/.aws/config"), ("AWS_SHARED_CREDENTIALS_FILE", "~/.aws/credentials")):
        path = env.get(name) or default.replace("~", home, 1)
        try:
            st = os.stat(path)
            aws_files.append(f"{path}:{st.st_size}:{st.st_mtime_ns}")
        except OSError:
            aws_files.append(f"{path}:absent")
    material = json.dumps({
        "code": code_fingerprint(), "uid": os.getuid(), "settings": {k: values[k] for k in sorted(values)},
        "git_dir": str(git_dir), "common_dir": str(common_dir), "lfs_storage": lfs_storage,
        "env": sorted(relevant.items()), "aws_files": aws_files,
    }, sort_keys=True, default=str)
    return hashlib.sha256(material.encode()).hexdigest()


def key_for(resolved: Any) -> str:
    """``worker_key`` of a ``settings.Resolved``: what the agent looks for and the worker checks."""
    repo = resolved.repo
    return worker_key(resolved.values, git_dir=repo.git_dir if repo else None,
                      common_dir=repo.common_dir if repo else None, lfs_storage=resolved.lfs_storage)


def socket_path(directory: Path, key: str) -> Path:
    path = directory / f"{key[:32]}.sock"
    if len(os.fsencode(path)) > MAX_SOCKET_PATH:
        raise RendezvousError(f"socket path {path} is too long for a unix socket; set LFS_S3_RUNTIME_DIR to a "
                              "shorter directory")
    return path


@contextlib.contextmanager
def locked(path: Path) -> Iterator[None]:
    """Hold an exclusive lock on ``path`` (created if needed) for the block."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # closing releases the lock


def try_connect(path: Path) -> socket.socket | None:
    """A connection to the worker listening at ``path``, or None when nothing listens there."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.connect(os.fspath(path))
        return sock
    except OSError as exc:
        sock.close()
        if exc.errno in (errno.ENOENT, errno.ECONNREFUSED):
            return None
        raise RendezvousError(f"cannot connect to the shared worker at {path}: {exc.strerror}") from None


def connect(key: str, worker_args: list[str], *, cwd: str | None = None,
            env: Mapping[str, str] | None = None) -> socket.socket:
    """Connect to the worker for ``key``, starting it first when none is running."""
    directory = runtime_dir(env)
    path = socket_path(directory, key)
    sock = try_connect(path) or _wait_for_launched(path)
    if sock is not None:
        return sock
    with locked(directory / f"{key[:32]}.lock"):
        for _ in range(3):
            # Another agent, or a launcher, may have started it while we waited.
            sock = try_connect(path) or _wait_for_launched(path)
            if sock is not None:
                return sock
            try:
                # The launchers' marker, made here too: a launcher that got a request now starts no
                # second worker, which would bind the socket once this one has stopped and outlive it.
                os.mkdir(starting_marker(path))
                break
            except FileExistsError:
                continue  # a launcher just started one: wait for it
        else:
            raise RendezvousError(f"the shared worker for {path} keeps being started and never listens")
        try:
            with contextlib.suppress(FileNotFoundError):
                path.unlink()  # left by a worker that was killed: nothing listens on it
            start_worker(directory, key, worker_args, cwd=cwd)
        finally:
            clear_starting(path)
        sock = try_connect(path)
    if sock is None:
        raise RendezvousError(f"the shared worker started but does not listen on {path}")
    return sock


def starting_marker(path: Path) -> Path:
    """The directory a launcher makes while it starts the worker for socket ``path`` (one start at a time)."""
    return path.with_name(path.name + ".starting")


def clear_starting(path: Path) -> None:
    with contextlib.suppress(OSError):
        os.rmdir(starting_marker(path))


def _wait_for_launched(path: Path) -> socket.socket | None:
    """A worker a launcher is starting (its marker is there and young): wait until it listens."""
    marker = starting_marker(path)
    while True:
        try:
            age = time.time() - os.stat(marker).st_mtime
        except OSError:
            return try_connect(path)  # it listens now, or it gave up: either way the marker is gone
        if age > START_TIMEOUT:
            clear_starting(path)  # its worker never got to listen
            return None
        sock = try_connect(path)
        if sock is not None:
            return sock
        time.sleep(0.01)


def log_path(directory: Path, key: str) -> Path:
    return directory / f"{key[:32]}.log"


def start_worker(directory: Path, key: str, worker_args: list[str], *, cwd: str | None = None) -> None:
    """Start ``lfs-s3-agent worker run`` detached and wait until it says it listens."""
    logfile = log_path(directory, key)
    command = [sys.executable, "-m", "lfs_s3_agent", "worker", "run", "--key", key, *worker_args]
    with open(logfile, "wb") as err:
        # A new session: a Ctrl-C in the terminal stops git-lfs and its agents, not the worker,
        # which notices its agents have gone. Its stdio must not be git-lfs's pipes, or git-lfs
        # would wait for the worker to exit before it finishes.
        proc = subprocess.Popen(command, cwd=cwd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=err,
                                start_new_session=True, close_fds=True)
    assert proc.stdout is not None
    deadline = time.monotonic() + START_TIMEOUT
    line = b""
    with proc.stdout:
        while not line.endswith(b"\n"):
            remaining = deadline - time.monotonic()
            if remaining <= 0 or not select.select([proc.stdout], [], [], remaining)[0]:
                proc.kill()
                raise RendezvousError(f"the shared worker did not start within {START_TIMEOUT:.0f} s (see {logfile})")
            chunk = os.read(proc.stdout.fileno(), 64)
            if not chunk:
                break
            line += chunk
    if line.strip() != b"ready":
        code = proc.wait()
        tail = logfile.read_text(errors="replace").strip().splitlines()[-1:] if logfile.exists() else []
        raise RendezvousError(f"the shared worker exited with status {code} before it listened"
                              f"{': ' + tail[0] if tail else ''} (see {logfile})")
    # The worker outlives this agent; the kernel reaps it (reparented) once this process exits.
    proc.returncode = 0  # stop Popen's destructor from warning about a running child


def prune(directory: Path, older_than: float = 86400.0, settle: float = 60.0) -> list[Path]:
    """Remove what workers gone for more than ``older_than`` seconds left: logs, lock files, dead sockets.

    A socket nothing listens on (its worker was killed) counts as gone once it is ``settle`` seconds
    old (a starting worker binds a moment before it listens); the worker's lock and log follow it
    ``older_than`` after their last use. Returns what was removed.
    """
    now = time.time()
    removed = []

    def age(path: Path) -> float:
        return now - path.stat().st_mtime

    for path in sorted(directory.iterdir()):
        with contextlib.suppress(OSError, RendezvousError):
            if path.suffix == ".sock" and age(path) > settle:
                sock = try_connect(path)
                if sock is None:
                    path.unlink()
                    removed.append(path)
                else:
                    sock.close()
    for path in sorted(directory.iterdir()):
        with contextlib.suppress(OSError):
            if (path.suffix in (".log", ".lock") and not path.with_suffix(".sock").exists()
                    and age(path) > older_than):
                path.unlink()
                removed.append(path)
    return removed


def running_workers(directory: Path) -> list[Path]:
    """The sockets in the runtime directory (workers that may be running)."""
    return sorted(p for p in directory.glob("*.sock") if p.is_socket())


def control(path: Path, command: str, timeout: float = 60.0) -> dict[str, Any] | None:
    """Send a control command (``status``, ``stop``) to the worker at ``path``; its reply, or None.

    For ``stop`` this returns once the worker has finished its transfers and exited.
    """
    sock = try_connect(path)
    if sock is None:
        return None
    with sock:
        sock.settimeout(timeout)
        from lfs_s3_agent.protocol import worker as frames

        sock.sendall(frames.encode(frames.Hello(control=command)))
        stream = sock.makefile("rb")
        line = stream.readline()
        if not line.strip():
            return {}
        try:
            hello = frames.decode_reply(line)
        except frames.FrameError as exc:
            raise RendezvousError(str(exc)) from None
        if command == "stop":
            stream.read()  # the worker closes this connection last, as it exits
        return {**(hello.extra or {}), "pid": hello.pid}


def workers(directory: Path, *, repo: str | None = None, stop: bool = False) -> list[dict[str, Any]]:
    """Status of each worker in ``directory`` (only ``repo``'s if given); with ``stop``, stop them.

    Stopping waits for each worker's transfers to finish and for it to exit; its status then has
    ``stopped`` (and ``error`` when it could not be stopped).
    """
    found = []
    for path in running_workers(directory):
        try:
            status = control(path, "status", timeout=10.0)
        except (OSError, ValueError, RendezvousError) as exc:
            if repo is not None:
                continue  # whose it is cannot be known: not this repository's to report or stop
            # A worker too busy to answer within the timeout is still one of the user's: stop it too.
            status = {"socket": str(path), "error": f"no answer to status: {exc}"}
        if status is None or (repo is not None and status.get("repo") != repo):
            continue
        if stop:
            try:
                control(path, "stop")
                status["stopped"] = True
            except (OSError, ValueError, RendezvousError) as exc:
                status["stopped"] = False
                status["error"] = str(exc)
        found.append(status)
    return found
