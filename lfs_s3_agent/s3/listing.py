"""Listing the store: its keys sorted into ours and foreign ones, and its unfinished uploads.

One ``ListObjectsV2`` request per 1,000 keys; every request can be counted against a
``Budget`` (``gc --max-requests``). ``on_page`` is told how many keys each page had, for a
progress line; this module prints nothing.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

from lfs_s3_agent.s3.keys import classify, list_prefix

if TYPE_CHECKING:
    from lfs_s3_agent.s3.client import S3Client


@dataclass
class Entry:
    """One key of ours in the store."""

    kind: str  #: "stored" (the object's bytes) or "linked" (a link record)
    oid: str
    key: str
    stored_bytes: int  #: what the key itself occupies
    last_modified: datetime
    etag: str = ""
    linked_size: int | None = None  #: a linked object's size (from its record or a pointer)
    source: str | None = None  #: a linked object's original

    @property
    def size(self) -> int | None:
        """The LFS object's size."""
        return self.stored_bytes if self.kind == "stored" else self.linked_size


@dataclass
class Foreign:
    key: str
    size: int


@dataclass
class Listing:
    entries: list[Entry] = field(default_factory=list)
    foreign: list[Foreign] = field(default_factory=list)


class BudgetReached(Exception):
    pass


class Budget:
    """Counts S3 requests against ``--max-requests``; refuses the one that would exceed it."""

    def __init__(self, limit: int | None) -> None:
        self.limit = limit
        self.used = 0

    def spend(self, n: int = 1) -> None:
        if self.limit is not None and self.used + n > self.limit:
            raise BudgetReached
        self.used += n

    def left(self) -> int | None:
        return None if self.limit is None else self.limit - self.used


def list_store(client: S3Client, bucket: str, prefix: str, budget: Budget | None = None,
               on_page: Callable[[int], None] | None = None) -> Listing:
    """Every key under the prefix, sorted into ours and foreign ones (one request per 1,000 keys)."""
    listing = Listing()
    token = None
    while True:
        if budget is not None:
            budget.spend()
        args: dict[str, Any] = {"Bucket": bucket, "Prefix": list_prefix(prefix)}
        if token:
            args["ContinuationToken"] = token
        page = client.list_objects_v2(**args)
        if on_page is not None:
            on_page(len(page.get("Contents", [])))
        for obj in page.get("Contents", []):
            key = obj["Key"]
            found = classify(prefix, key)
            if found is None:
                listing.foreign.append(Foreign(key, int(obj["Size"])))
            else:
                listing.entries.append(Entry(kind=found[0], oid=found[1], key=key, stored_bytes=int(obj["Size"]),
                                             last_modified=obj["LastModified"], etag=str(obj.get("ETag", ""))))
        token = page.get("NextContinuationToken")
        if not page.get("IsTruncated") or not token:
            return listing


@dataclass
class Upload:
    key: str
    upload_id: str
    initiated: datetime


def list_uploads(client: S3Client, bucket: str, prefix: str, budget: Budget | None = None) -> list[Upload]:
    """Unfinished multipart uploads of object keys in our layout under the prefix."""
    found = []
    markers: dict[str, str] = {}
    while True:
        if budget is not None:
            budget.spend()
        page = client.list_multipart_uploads(Bucket=bucket, Prefix=list_prefix(prefix), **markers)
        for upload in page.get("Uploads", []):
            if (classify(prefix, upload["Key"]) or ("", ""))[0] == "stored":
                found.append(Upload(upload["Key"], upload["UploadId"], upload["Initiated"]))
        if not page.get("IsTruncated"):
            return found
        markers = {"KeyMarker": page.get("NextKeyMarker", ""), "UploadIdMarker": page.get("NextUploadIdMarker", "")}
