"""Which shared worker an agent may reach: its key, the private runtime directory, its socket path.

A worker serves exactly one configuration: its key hashes everything that could make two agents
behave differently. It has two halves, so that the thin relay (``thinrelay.py``), which must not
resolve the settings (git subprocesses, ~100 ms of imports), can still compute it:

- the *configuration digest*: the resolved settings, the git dirs and ``lfs.storage``. Computed by
  the Python agent that validates the settings and recorded in the launcher's stamp, which the
  launcher trusts only while no config source changed (``launcher.py``);
- the *environment digest*: the code (version, interpreter, size and mtime of every module), the
  uid, the environment the AWS SDK and git read, and the AWS config files' size and mtime. Computed
  afresh by every process, from ``os.environ``: a changed ``AWS_PROFILE`` or credentials file
  always means another worker.

Connecting to a worker that listens, or is being started, is here too.

Standard library only, and only its cheapest modules (no pathlib, logging, tempfile or
dataclasses): the thin relay runs this in every agent that gets a small object.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import os
import socket
import stat
import sys
import time
from collections.abc import Mapping
from typing import Any

from lfs_s3_agent import __version__

#: Longest unix socket path the kernel takes (108 on Linux, 104 on macOS).
MAX_SOCKET_PATH = 100
#: How long a worker may take to listen once started (imports, S3 client) before its start is given up.
START_TIMEOUT = 30.0

_ENV_PREFIXES = ("AWS_", "LFS_S3_", "GIT_CONFIG")
_ENV_NAMES = ("HOME", "XDG_CONFIG_HOME", "GIT_DIR", "GIT_WORK_TREE", "GIT_COMMON_DIR", "GIT_TRACE",
              "GIT_NAMESPACE", "SSL_CERT_FILE", "SSL_CERT_DIR", "REQUESTS_CA_BUNDLE", "HTTP_PROXY", "HTTPS_PROXY",
              "NO_PROXY", "http_proxy", "https_proxy", "no_proxy", "ALL_PROXY", "all_proxy", "PYTHONPATH")


class RendezvousError(Exception):
    """The shared worker cannot be used here; the message says why and what to do."""


def runtime_dir(env: Mapping[str, str] | None = None) -> str:
    """The private directory for this user's worker sockets (created 0700, checked).

    Raises ``RendezvousError`` naming ``LFS_S3_RUNTIME_DIR`` when it cannot be made or is not private.
    """
    env = os.environ if env is None else env
    if env.get("LFS_S3_RUNTIME_DIR"):
        path = env["LFS_S3_RUNTIME_DIR"]
    elif env.get("XDG_RUNTIME_DIR") and os.path.isdir(env["XDG_RUNTIME_DIR"]):
        path = os.path.join(env["XDG_RUNTIME_DIR"], "lfs-s3-agent")
    else:
        import tempfile

        path = os.path.join(tempfile.gettempdir(), f"lfs-s3-agent-{os.getuid()}")
    try:
        os.makedirs(path, mode=0o700, exist_ok=True)
        st = os.lstat(path)
    except OSError as exc:
        raise RendezvousError(f"cannot create {path}: {exc.strerror}; set LFS_S3_RUNTIME_DIR to a "
                              "writable directory") from None
    if not stat.S_ISDIR(st.st_mode) or st.st_uid != os.getuid() or st.st_mode & 0o077:
        raise RendezvousError(f"{path} is not a private directory of this user (it must be owned by uid "
                              f"{os.getuid()} with mode 0700); remove it or set LFS_S3_RUNTIME_DIR")
    return path


def socket_path(directory: str, key: str) -> str:
    """``<directory>/<first 32 hex digits of key>.sock``; ``RendezvousError`` if too long for a socket."""
    path = os.path.join(directory, f"{key[:32]}.sock")
    if len(os.fsencode(path)) > MAX_SOCKET_PATH:
        raise RendezvousError(f"socket path {path} is too long for a unix socket; set LFS_S3_RUNTIME_DIR to a "
                              "shorter directory")
    return path


def code_fingerprint() -> str:
    """The version, the interpreter and the size and mtime of every module: an edited checkout gets
    a new worker."""
    package = os.path.dirname(os.path.abspath(__file__))
    parts = [__version__, sys.executable, sys.version]
    found = []
    for top, dirs, files in os.walk(package):  # subpackages too (s3/, protocol/, commands/)
        dirs[:] = [d for d in dirs if d != "__pycache__"]
        found += [os.path.join(top, name) for name in files if name.endswith(".py")]
    for path in sorted(found):
        st = os.stat(path)
        parts.append(f"{os.path.relpath(path, package)}:{st.st_size}:{st.st_mtime_ns}")
    return "\n".join(parts)


def config_digest(values: Mapping[str, Any], *, git_dir: object, common_dir: object,
                  lfs_storage: str | None) -> str:
    """The settings half of the key (SHA-256, hex): resolved setting values, git dirs, ``lfs.storage``."""
    material = json.dumps({"settings": {k: values[k] for k in sorted(values)}, "git_dir": str(git_dir),
                           "common_dir": str(common_dir), "lfs_storage": lfs_storage}, sort_keys=True, default=str)
    return hashlib.sha256(material.encode()).hexdigest()


def environment_digest(env: Mapping[str, str] | None = None) -> str:
    """The environment half of the key (SHA-256, hex): code, uid, AWS/git/proxy environment, AWS files."""
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
    material = json.dumps({"code": code_fingerprint(), "uid": os.getuid(), "env": sorted(relevant.items()),
                           "aws_files": aws_files}, sort_keys=True)
    return hashlib.sha256(material.encode()).hexdigest()


def combine(config: str, environment: str) -> str:
    """The worker key from its two halves (SHA-256, hex)."""
    return hashlib.sha256(f"lfs-s3-agent worker key\n{config}\n{environment}".encode()).hexdigest()


def try_connect(path: str | os.PathLike[str]) -> socket.socket | None:
    """A connection to the worker listening at ``path``, or None when nothing listens there."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.connect(os.fspath(path))
        return sock
    except OSError as exc:
        sock.close()
        if exc.errno in (errno.ENOENT, errno.ECONNREFUSED):
            return None
        raise RendezvousError(f"cannot connect to the shared worker at {os.fspath(path)}: {exc.strerror}") from None


#: What a socket's path gets for its starting marker (the launcher's ``sh`` makes it too).
STARTING_SUFFIX = ".starting"


def starting_marker(path: str | os.PathLike[str]) -> str:
    """The directory whoever starts the worker for socket ``path`` makes first (one start at a time)."""
    return os.fspath(path) + STARTING_SUFFIX


def clear_starting(path: str | os.PathLike[str]) -> None:
    with contextlib.suppress(OSError):
        os.rmdir(starting_marker(path))


def wait_for_launched(path: str | os.PathLike[str]) -> socket.socket | None:
    """A worker being started (its marker is there and young): wait until it listens; None if it never does."""
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
