"""``ls`` and ``du``: what is in the store, and what HEAD references of it."""

from __future__ import annotations

from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from lfs_s3_agent import reachable
from lfs_s3_agent.commands.common import WORKERS, Cwd, iso, open_store, plural, when
from lfs_s3_agent.console import Progress, human_bytes
from lfs_s3_agent.errors import AgentError
from lfs_s3_agent.reachable import Reached
from lfs_s3_agent.s3.listing import Entry, Foreign


@dataclass
class Inventory:
    store: str
    entries: list[Entry]
    foreign: list[Foreign]
    head: dict[str, Reached] | None  #: oid -> pointer in HEAD; None outside a repository

    def in_head(self, oid: str) -> bool | None:
        return None if self.head is None else oid in self.head

    def to_json(self) -> dict[str, Any]:
        return ls_json(self)

    def render(self) -> list[str]:
        return ls_render(self)


def inventory(flags: Mapping[str, Any] | None = None, *, cwd: Cwd = None, read_links: bool = True,
              quiet: bool = False) -> Inventory:
    ctx = open_store(flags, cwd, need_repo=False)
    head: dict[str, Reached] | None = None
    if ctx.repo is not None:
        head = {}
        if reachable.has_commits("HEAD", cwd):
            head = {r.oid: r for r in reachable.scan(["HEAD^{tree}"], cwd).values()}
    listing = ctx.list(quiet=quiet)
    linked = [e for e in listing.entries if e.kind == "linked"]
    for e in linked:
        if head and e.oid in head:
            e.linked_size = head[e.oid].pointer.size
    records = ctx.wired.linked_store().records
    if read_links and linked:
        def one(e: Entry) -> None:
            try:
                record = records.get(e.oid)
            except AgentError as err:
                e.source = f"(unreadable: {err.message})"
            else:
                if record is not None:
                    e.linked_size, e.source = record.size, record.describe()
            bar.advance(1)

        with Progress("reading link records", len(linked), quiet=quiet) as bar, ThreadPoolExecutor(WORKERS) as pool:
            list(pool.map(one, linked))
    entries = sorted(listing.entries, key=lambda e: (e.oid, e.kind))
    return Inventory(ctx.where, entries, listing.foreign, head)


def ls_json(inv: Inventory) -> dict[str, Any]:
    rows = []
    for e in inv.entries:
        ref = inv.head.get(e.oid) if inv.head else None
        rows.append({"oid": e.oid, "key": e.key, "kind": e.kind, "size": e.size, "stored_bytes": e.stored_bytes,
                     "last_modified": iso(e.last_modified), "in_head": inv.in_head(e.oid),
                     "path": ref.path if ref else None, "source": e.source})
    return {"store": inv.store, "objects": rows, "foreign_keys": [{"key": f.key, "bytes": f.size}
                                                                   for f in inv.foreign]}


def ls_render(inv: Inventory) -> list[str]:
    lines = [f"{inv.store}: {plural(len(inv.entries), 'object')}"
             + (" (HEAD column: referenced by HEAD)" if inv.head is not None else " (not in a repository)")]
    for e in inv.entries:
        ref = inv.head.get(e.oid) if inv.head else None
        size = human_bytes(e.size) if e.size is not None else "?"
        mark = {True: "HEAD", False: "-", None: "?"}[inv.in_head(e.oid)]
        tail = f"  {ref.path}" if ref else ""
        if e.kind == "linked" and e.source:
            tail += f"  -> {e.source}"
        lines.append(f"{when(e.last_modified)}  {size:>10}  {e.kind:<6}  {mark:<4}  {e.oid}{tail}")
    if inv.foreign:
        lines.append(f"foreign keys (not ours, left alone): {len(inv.foreign)}")
        lines.extend(f"  {f.key}  {human_bytes(f.size)}" for f in inv.foreign[:20])
    return lines


@dataclass
class Usage:
    store: str
    stored: dict[str, int]
    linked: dict[str, int]
    foreign: dict[str, int]
    head_objects: int | None
    head_missing: int | None

    def to_json(self) -> dict[str, Any]:
        return {"store": self.store, "stored": self.stored, "linked": self.linked, "foreign": self.foreign,
                "head_objects": self.head_objects, "head_missing": self.head_missing}

    def render(self) -> list[str]:
        st, ln, fo = self.stored, self.linked, self.foreign

        def row(label: str, count: int, size: int, note: str = "") -> str:
            return f"  {label:<22}{count:>8}  {human_bytes(size):>10}" + (f"  ({note})" if note else "")

        lines = [f"{self.store}:", row("stored objects", st["count"], st["bytes"])]
        if self.head_objects is not None:
            lines.append(row("  referenced by HEAD", st["head_count"], st["head_bytes"]))
            lines.append(row("  not in HEAD", st["count"] - st["head_count"], st["bytes"] - st["head_bytes"]))
        lines.append(row("linked objects", ln["count"], ln["record_bytes"], "their link records"))
        if self.head_objects is not None:
            lines.append(row("  referenced by HEAD", ln["head_count"], ln["head_bytes"], "in their originals"))
        if fo["count"]:
            lines.append(row("foreign keys", fo["count"], fo["bytes"], "not ours, left alone"))
        if self.head_objects is not None:
            lines.append(f"HEAD references {plural(self.head_objects, 'LFS object')}"
                         + (f"; {self.head_missing} of them not in the store (run `lfs-s3-agent verify`)"
                            if self.head_missing else ""))
        return lines


def du(flags: Mapping[str, Any] | None = None, *, cwd: Cwd = None, quiet: bool = False) -> Usage:
    inv = inventory(flags, cwd=cwd, read_links=False, quiet=quiet)
    stored = [e for e in inv.entries if e.kind == "stored"]
    linked = [e for e in inv.entries if e.kind == "linked"]
    head = inv.head
    in_head = head or {}
    usage = Usage(
        store=inv.store,
        stored={"count": len(stored), "bytes": sum(e.stored_bytes for e in stored),
                "head_count": sum(1 for e in stored if e.oid in in_head),
                "head_bytes": sum(e.stored_bytes for e in stored if e.oid in in_head)},
        linked={"count": len(linked), "record_bytes": sum(e.stored_bytes for e in linked),
                "head_count": sum(1 for e in linked if e.oid in in_head),
                "head_bytes": sum(in_head[e.oid].pointer.size for e in linked if e.oid in in_head)},
        foreign={"count": len(inv.foreign), "bytes": sum(f.size for f in inv.foreign)},
        head_objects=None if head is None else len(head),
        head_missing=None if head is None else len(set(head) - {e.oid for e in inv.entries}),
    )
    return usage
