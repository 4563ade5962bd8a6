"""Where agents meet the shared worker: its key, its socket, the lock, starting it.

git-lfs starts eight agent processes for every transfer; in each, importing botocore
and pydantic and building an S3 client costs about 0.3 s of CPU, which is most of
the cost of moving small objects. So the agents hand small objects to one warm
process (``worker``) over a unix socket and stay thin themselves.

A worker serves exactly one configuration: its key (``workerkey``) hashes
everything that could make two agents behave differently (the code, the
interpreter, the resolved settings, the repository, the environment the AWS SDK
and git read, the AWS config files' mtimes), so an agent can only ever reach a
worker that would do what it would do itself. Sockets live in a private per-user directory (mode 0700,
owned by the user; anything else is refused). The first agent that finds no
worker starts one while holding ``<key>.lock``; the others wait on the lock, not
on a timer. Whoever starts a worker (that agent, or a launcher at its first request:
``launcher.py``) first makes the ``<socket>.starting`` marker directory, so there is only ever
one start at a time, and none outlives a ``worker stop`` by binding the socket after it. Standard
library only: this runs before the agent answers anything.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import select
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from lfs_s3_agent import workerkey
from lfs_s3_agent.workerkey import START_TIMEOUT as START_TIMEOUT
from lfs_s3_agent.workerkey import RendezvousError as RendezvousError  # raised here too
from lfs_s3_agent.workerkey import clear_starting as clear_starting
from lfs_s3_agent.workerkey import try_connect as try_connect
from lfs_s3_agent.workerkey import wait_for_launched as wait_for_launched

log = logging.getLogger(__name__)


def runtime_dir(env: Mapping[str, str] | None = None) -> Path:
    """The private directory for this user's worker sockets (created 0700, checked): ``workerkey.runtime_dir``."""
    return Path(workerkey.runtime_dir(env))


def worker_key(values: Mapping[str, Any], *, git_dir: Path | None, common_dir: Path | None,
               lfs_storage: str | None, env: Mapping[str, str] | None = None) -> str:
    """The name of the worker that serves exactly this configuration (a SHA-256, hex; ``workerkey``)."""
    return workerkey.combine(
        workerkey.config_digest(values, git_dir=git_dir, common_dir=common_dir, lfs_storage=lfs_storage),
        workerkey.environment_digest(env))


def config_digest_for(resolved: Any) -> str:
    """The settings half of ``key_for(resolved)``: what the launcher's stamp records for the thin relay."""
    repo = resolved.repo
    return workerkey.config_digest(resolved.values, git_dir=repo.git_dir if repo else None,
                                   common_dir=repo.common_dir if repo else None, lfs_storage=resolved.lfs_storage)


def key_for(resolved: Any) -> str:
    """``worker_key`` of a ``settings.Resolved``: what the agent looks for and the worker checks."""
    return workerkey.combine(config_digest_for(resolved), workerkey.environment_digest())


def socket_path(directory: Path, key: str) -> Path:
    return Path(workerkey.socket_path(str(directory), key))


@contextlib.contextmanager
def locked(path: Path) -> Iterator[None]:
    """Hold an exclusive lock on ``path`` (created if needed) for the block."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # closing releases the lock


def connect(key: str, worker_args: list[str], *, cwd: str | None = None,
            env: Mapping[str, str] | None = None) -> socket.socket:
    """Connect to the worker for ``key``, starting it first when none is running."""
    directory = runtime_dir(env)
    path = socket_path(directory, key)
    sock = try_connect(path) or wait_for_launched(path)
    if sock is not None:
        return sock
    with locked(directory / f"{key[:32]}.lock"):
        for _ in range(3):
            # Another agent, or a launcher, may have started it while we waited.
            sock = try_connect(path) or wait_for_launched(path)
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


def adopt(directory: Path, key: str) -> bool:
    """Claim the start of the worker for ``key`` from inside a worker process already starting.

    True when this process may become that worker: nothing listens on its socket and nobody else
    is starting it; its starting marker is then ours, so agents wait for us (``wait_for_launched``)
    instead of starting another, and the caller removes it once it listens (or fails).
    """
    path = socket_path(directory, key)
    try:
        os.mkdir(starting_marker(path))  # atomic: whoever makes it starts the worker (as in connect())
    except FileExistsError:
        return False  # an agent or a launcher is starting it
    try:
        sock = try_connect(path)
        if sock is not None:
            sock.close()
            clear_starting(path)
            return False
        with contextlib.suppress(FileNotFoundError):
            path.unlink()  # left by a worker that was killed: nothing listens on it
    except BaseException:
        clear_starting(path)
        raise
    return True


def starting_marker(path: Path) -> Path:
    """The directory a launcher (or an agent) makes while it starts the worker for socket ``path``."""
    return Path(workerkey.starting_marker(path))


def log_path(directory: Path, key: str) -> Path:
    return directory / f"{key[:32]}.log"


def move_log(directory: Path, old_key: str, new_key: str) -> None:
    """Send this process's stderr to ``new_key``'s log when it goes to ``old_key``'s (an adopting worker).

    A launcher starts the stamp's worker with its stderr appended to that key's log; a worker that
    adopts another key (``adopt``) serves that key's agents, whose ``worker`` commands and users read
    that key's log. Any other stderr (a terminal, a pipe) is left alone.
    """
    try:
        current = os.fstat(2)
        old = os.stat(log_path(directory, old_key))
    except OSError:
        return
    if (current.st_dev, current.st_ino) != (old.st_dev, old.st_ino):
        return
    try:
        fd = os.open(log_path(directory, new_key), os.O_WRONLY | os.O_APPEND | os.O_CREAT
                     | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0), 0o600)
    except OSError:
        return  # the old log it is, then
    sys.stderr.flush()
    os.dup2(fd, 2)
    os.close(fd)


def start_worker(directory: Path, key: str, worker_args: list[str], *, cwd: str | None = None) -> None:
    """Start ``lfs-s3-agent worker run`` detached and wait until it says it listens."""
    logfile = log_path(directory, key)
    # -P: the work tree (the current directory) is not on sys.path, so a repository cannot ship a
    # package of this name that would run in our place.
    command = [sys.executable, "-P", "-m", "lfs_s3_agent", "worker", "run", "--key", key, *worker_args]
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
            # A worker being started (its marker is there) has no socket yet, and its log may be an old
            # one it appends to (the launcher's ``2>>``, ``move_log``), which does not date it: kept.
            owner = path.with_suffix(".sock")
            if (path.suffix in (".log", ".lock") and not owner.exists() and not starting_marker(owner).exists()
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

    Stopping waits for workers being started to listen, for each worker's transfers to finish and
    for it to exit; its status then has ``stopped`` (and ``error`` when it could not be stopped).
    """
    if stop:
        # A worker being started (its starter's marker is there) listens in a moment: wait for it, so
        # that it is stopped too instead of outliving this stop (at most START_TIMEOUT for a start
        # that never ends; wait_for_launched clears such a marker).
        for marker in sorted(directory.glob(f"*.sock{workerkey.STARTING_SUFFIX}")):
            sock = wait_for_launched(marker.with_suffix(""))  # the socket: the marker without its suffix
            if sock is not None:
                sock.close()
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
