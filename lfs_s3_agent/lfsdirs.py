"""git-lfs's directories, and the one way a download reaches them (standard library only).

``LfsDirs`` is ``<git common dir>/lfs`` (or ``lfs.storage``): ``tmp/`` for downloads in
progress (on the same filesystem as ``objects/``, so git-lfs can rename them) and
``objects/<oid[0:2]>/<oid[2:4]>/<oid>``. ``download_verified`` is the one path from a store
to a file: a temporary file in ``lfs/tmp``, filled, checked for size and SHA-256, then handed
over (the agent returns its path to git-lfs) or moved into ``lfs/objects`` (link, checkout),
and removed on every failure. The agent, the relay to the shared worker, ``link`` and
``checkout`` all use it.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import IO, TYPE_CHECKING

from lfs_s3_agent import tmpfile
from lfs_s3_agent.errors import IntegrityError, LocalFileError

if TYPE_CHECKING:
    from lfs_s3_agent.gitrepo import RepoPaths

log = logging.getLogger(__name__)

TMP_PREFIX = tmpfile.TMP_PREFIX

#: Opens the file a download is written to: (fd, path, whether the caller owns and removes it).
TmpOpener = Callable[[str], "tuple[int, str, bool]"]


@dataclass(frozen=True)
class LfsDirs:
    root: Path

    @classmethod
    def of(cls, repo: RepoPaths, lfs_storage: str | None) -> LfsDirs:
        """git-lfs's storage dir: ``lfs.storage`` (relative to the common dir) or ``<common>/lfs``."""
        if lfs_storage:
            storage = Path(os.path.expanduser(lfs_storage))
            return cls(storage if storage.is_absolute() else repo.common_dir / storage)
        return cls(repo.common_dir / "lfs")

    @property
    def tmp(self) -> Path:
        return self.root / "tmp"

    def object_path(self, oid: str) -> Path:
        """Where git-lfs keeps an object's bytes."""
        return self.root / "objects" / oid[0:2] / oid[2:4] / oid

    def has(self, oid: str) -> bool:
        return self.object_path(oid).is_file()

    def opener(self, oid: str) -> tuple[int, str, bool]:
        fd, path = new_temp(self.tmp, oid)
        return fd, path, True


def new_temp(tmp_dir: Path, oid: str) -> tuple[int, str]:
    """A new temporary file in ``tmp_dir`` (fd, path; ``tmpfile.create``); ``LocalFileError`` (41) if none
    can be made."""
    try:
        return tmpfile.create(os.fspath(tmp_dir), oid)
    except OSError as exc:
        raise LocalFileError(f"cannot create a temporary file in {tmp_dir}: {exc.strerror or exc}") from None


def remove(path: str | Path) -> None:
    """Remove a temporary file; a failure is logged, never raised (the real error is elsewhere)."""
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass
    except OSError as exc:
        log.error("could not remove temporary file %s: %s", path, exc)


def download_verified(fill: Callable[[IO[bytes]], str], *, oid: str | None, size: int, where: Callable[[], str],
                      opener: TmpOpener) -> tuple[str, str]:
    """Fill a temporary file, check it, and return (its path, its SHA-256); on any failure it is removed.

    ``fill`` writes the bytes and returns their SHA-256 (the byte movers hash as they go). The
    file must have ``size`` bytes and, when ``oid`` is given, hash to it; otherwise
    ``IntegrityError`` (42) naming ``where()``. Nothing unverified is ever handed over.
    """
    fd, path, owned = opener(oid or "hashing")
    try:
        with os.fdopen(fd, "wb") as sink:
            digest = fill(sink)
            try:
                sink.flush()
                written = os.fstat(sink.fileno()).st_size
            except OSError as exc:
                raise LocalFileError(f"cannot write {path}: {exc.strerror}") from None
        if written != size:
            raise IntegrityError(f"{where()}: got {written} bytes, expected {size}; the stored object is truncated "
                                 "or was replaced")
        if oid is not None and digest != oid:
            raise IntegrityError(f"{where()}: downloaded bytes have SHA-256 {digest}, not the oid; the stored object "
                                 "is corrupt or was replaced (nothing was checked out)")
        return path, digest
    except BaseException:
        if owned:
            remove(path)
        raise


def download_into_objects(fill: Callable[[IO[bytes]], str], dirs: LfsDirs, *, oid: str | None, size: int,
                          where: Callable[[], str]) -> str:
    """``download_verified`` into ``lfs/objects`` (as git-lfs would keep it); return the oid."""
    path, digest = download_verified(fill, oid=oid, size=size, where=where, opener=dirs.opener)
    try:
        final = dirs.object_path(digest)
        final.parent.mkdir(parents=True, exist_ok=True)
        os.replace(path, final)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(path)
        raise
    return digest
