"""What the maintenance commands share: set-up from the composition root, listing progress, formats.

Each command module returns a report with ``render()`` (lines for a terminal) and
``to_json()`` (for ``--json``); the CLI prints one or the other (``cli.emit``).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

from lfs_s3_agent import wiring
from lfs_s3_agent.errors import AgentError, Code
from lfs_s3_agent.s3.keys import list_prefix
from lfs_s3_agent.s3.listing import Budget, Listing, list_store
from lfs_s3_agent.settings import Settings
from lfs_s3_agent.store import S3Store

Cwd = str | os.PathLike[str] | None

WORKERS = 10  #: parallel requests (botocore's default connection pool holds 10)


class Report(Protocol):
    """What every command returns: one way to render it, one way to emit ``--json``."""

    def render(self) -> list[str]: ...

    def to_json(self) -> dict[str, Any]: ...


@dataclass
class Context:
    """The store a maintenance command works on, from the composition root."""

    wired: wiring.Wiring

    @property
    def store(self) -> S3Store:
        return self.wired.s3_store()

    @property
    def settings(self) -> Settings:
        return self.wired.settings

    @property
    def repo(self) -> Any:
        return self.wired.repo

    @property
    def where(self) -> str:
        return self.wired.where

    def lfs_object(self, oid: str) -> Path | None:
        """This clone's copy of an object, if it has one."""
        dirs = self.wired.dirs
        return dirs.object_path(oid) if dirs is not None and dirs.has(oid) else None

    def list(self, budget: Budget | None = None, quiet: bool = True) -> Listing:
        s = self.settings
        progress = ListingProgress(f"listing s3://{s.bucket}/{list_prefix(s.prefix)}", quiet=quiet)
        listing = list_store(self.store.client, s.bucket, s.prefix, budget, on_page=progress.page)
        progress.done()
        return listing


def open_store(flags: Mapping[str, Any] | None, cwd: Cwd, *, need_repo: bool) -> Context:
    return Context(wiring.build(flags, cwd=cwd, need_repo=need_repo))


class ListingProgress:
    """Keys listed so far: a redrawn line on a terminal, a plain line every 100 pages otherwise."""

    def __init__(self, label: str, quiet: bool = False) -> None:
        self.label = label
        self.quiet = quiet
        self.stream = sys.stderr
        self.tty = self.stream.isatty()
        self.pages = 0
        self.keys = 0

    def page(self, keys: int) -> None:
        self.pages += 1
        self.keys += keys
        if self.quiet:
            return
        if self.tty:
            self.stream.write(f"\r{self.label}: {self.keys} keys")
            self.stream.flush()
        elif self.pages % 100 == 0:
            print(f"{self.label}: {self.keys} keys so far", file=self.stream, flush=True)

    def done(self) -> None:
        if self.quiet or (not self.tty and self.pages < 100):
            return
        if self.tty:
            self.stream.write("\n")
        else:
            print(f"{self.label}: {self.keys} keys", file=self.stream, flush=True)



def when(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M")


def iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def plural(n: int, word: str) -> str:
    return f"{n} {word}" + ("" if n == 1 else "s")


def fix_for(err: AgentError) -> str:
    if err.code == Code.ACCESS_DENIED:
        return "the credentials need s3:GetObject (and s3:ListBucket) here"
    if err.code == Code.CREDENTIALS:
        return "check the AWS credentials (`lfs-s3-agent doctor`)"
    return ""


def noop(_a: int, _b: int) -> None:
    pass


Progress = Callable[[int, int], None]
