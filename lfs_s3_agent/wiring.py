"""The composition root: settings -> repository paths -> store, built once, the same way everywhere.

``serve`` (each agent git-lfs starts), ``worker run`` (the shared worker) and every command
call ``build``. Building is cheap and standard-library only (two ``git`` subprocesses and the
settings file); the store's S3 client is made on first use, after git-lfs's init is answered.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from lfs_s3_agent import gitrepo, settings
from lfs_s3_agent.errors import ConfigError, GitError
from lfs_s3_agent.lfsdirs import LfsDirs

if TYPE_CHECKING:
    from lfs_s3_agent.linked import LinkedStore, LocalLinks
    from lfs_s3_agent.progress import ProgressReporter
    from lfs_s3_agent.store import ObjectStore, S3Store

Cwd = str | os.PathLike[str] | None


@dataclass
class Wiring:
    """One resolved configuration and what it builds (each piece made once, on first use)."""

    resolved: settings.Resolved
    cwd: Cwd = None
    _s3: S3Store | None = field(default=None, repr=False)
    _store: ObjectStore | None = field(default=None, repr=False)

    @property
    def settings(self) -> settings.Settings:
        return self.resolved.settings

    @property
    def repo(self) -> gitrepo.RepoPaths | None:
        return self.resolved.repo

    @property
    def dirs(self) -> LfsDirs | None:
        """git-lfs's directories in this repository (None outside one)."""
        return LfsDirs.of(self.repo, self.resolved.lfs_storage) if self.repo is not None else None

    @property
    def where(self) -> str:
        return self.settings.describe()

    @property
    def capabilities_file(self) -> Path | None:
        """Where what the store was found to do is kept (``s3.capabilities``), beside the link records."""
        return self.repo.common_dir / "lfs-s3-agent" / "capabilities.json" if self.repo is not None else None

    def local_links(self) -> LocalLinks | None:
        if self.repo is None:
            return None
        from lfs_s3_agent.linked import LocalLinks, local_links_dir

        return LocalLinks(local_links_dir(self.repo.common_dir))

    def s3_store(self) -> S3Store:
        """The content-addressed store alone (maintenance commands, copies)."""
        if self._s3 is None:
            from lfs_s3_agent.store import S3Store

            self._s3 = S3Store(self.settings, capabilities_file=self.capabilities_file)
        return self._s3

    def linked_store(self) -> LinkedStore:
        from lfs_s3_agent.linked import LinkedStore

        return LinkedStore(self.s3_store(), self.local_links())

    def store(self) -> ObjectStore:
        """What the agent serves: the store, with linked objects served from their originals."""
        if self._store is None:
            store: ObjectStore = self.linked_store()
            self._store = store
        return self._store


def build(flags: Mapping[str, Any] | None = None, *, cwd: Cwd = None, require_bucket: bool = True,
          need_repo: bool = False) -> Wiring:
    """Resolve the settings at ``cwd`` (ConfigError listing every problem; GitError outside a repository
    when ``need_repo``)."""
    if need_repo:
        gitrepo.repo_paths(cwd)  # "not inside a git repository" before "no bucket is configured"
    resolved = settings.load(flags, cwd=cwd, require_bucket=require_bucket)
    if need_repo and resolved.repo is None:
        raise GitError(gitrepo.NOT_A_REPO)
    return Wiring(resolved, cwd)


class UnconfiguredStore:
    """The store of an agent whose settings are unusable: init fails, so nothing ever reaches it."""

    requests: dict[str, int] = {}  # noqa: RUF012 - never written

    def __init__(self, error: ConfigError) -> None:
        self.error = error

    def describe(self, oid: str) -> str:
        return oid

    def stat(self, oid: str) -> int | None:
        raise self.error

    def upload(self, oid: str, size: int, path: Path, progress: ProgressReporter) -> bool:
        raise self.error

    def download(self, oid: str, size: int, sink: IO[bytes], progress: ProgressReporter) -> str:
        raise self.error
