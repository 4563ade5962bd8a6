"""Our temporary files in git-lfs's ``lfs/tmp``: their names and how one is made.

``os`` only: ``lfsdirs.new_temp`` (the agent, link, checkout) and the thin relay (which must not
import ``tempfile``, ``pathlib`` or ``logging``: ``thinrelay.py``) both make them here.
"""

from __future__ import annotations

import os

#: Prefix of our temporary files in lfs/tmp (git-lfs's own have numeric names).
TMP_PREFIX = "lfs-s3-agent-"


def create(tmp_dir: str, oid: str) -> tuple[int, str]:
    """A new, empty file in ``tmp_dir`` (made if missing), mode 0600: ``(fd, path)``; OSError if none.

    Only the hex digits of ``oid`` go into the name: callers may hold an oid not yet validated (the relay
    opens the file before the worker checks the request), and a ``/`` or ``..`` must never shape a path.
    """
    label = "".join(c for c in oid[:12] if c in "0123456789abcdef")
    os.makedirs(tmp_dir, exist_ok=True)
    flags = os.O_RDWR | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0)
    for _ in range(100):
        path = os.path.join(tmp_dir, f"{TMP_PREFIX}{label}-{os.urandom(6).hex()}")
        try:
            return os.open(path, flags, 0o600), path
        except FileExistsError:
            continue
    raise FileExistsError(f"no free temporary file name in {tmp_dir}")
