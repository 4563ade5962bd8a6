"""Archived objects (Glacier, Deep Archive, Intelligent-Tiering's archive tiers): their state and restores.

A HEAD says everything: ``StorageClass`` (absent for STANDARD), ``ArchiveStatus`` (an
Intelligent-Tiering archive tier) and ``Restore`` (``ongoing-request="true"`` while a restore
runs; ``ongoing-request="false", expiry-date="..."`` once a readable copy exists). A restore is
requested only when the HEAD shows none under way or done, and S3's
``RestoreAlreadyInProgress`` also means "under way", so the same restore is never requested
twice. Every request goes through ``client.S3Client``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime
from typing import TYPE_CHECKING, Any

from lfs_s3_agent.errors import AgentError, Code, StoreError

if TYPE_CHECKING:
    from lfs_s3_agent.s3.client import S3Client

ARCHIVE_CLASSES = ("GLACIER", "DEEP_ARCHIVE")
TIERS = ("Standard", "Bulk", "Expedited")

#: How long a restore takes, by storage class and tier (AWS's documented typical times), in hours.
_HOURS = {("GLACIER", "Expedited"): 0.1, ("GLACIER", "Standard"): 5, ("GLACIER", "Bulk"): 12,
          ("DEEP_ARCHIVE", "Standard"): 12, ("DEEP_ARCHIVE", "Bulk"): 48, ("DEEP_ARCHIVE", "Expedited"): 12,
          ("ARCHIVE_ACCESS", "Standard"): 5, ("ARCHIVE_ACCESS", "Bulk"): 12, ("ARCHIVE_ACCESS", "Expedited"): 0.1,
          ("DEEP_ARCHIVE_ACCESS", "Standard"): 12, ("DEEP_ARCHIVE_ACCESS", "Bulk"): 48,
          ("DEEP_ARCHIVE_ACCESS", "Expedited"): 12}
_TYPICAL = {("GLACIER", "Expedited"): "1-5 minutes", ("GLACIER", "Standard"): "3-5 hours",
            ("GLACIER", "Bulk"): "5-12 hours", ("DEEP_ARCHIVE", "Standard"): "within 12 hours",
            ("DEEP_ARCHIVE", "Bulk"): "within 48 hours", ("ARCHIVE_ACCESS", "Expedited"): "1-5 minutes",
            ("ARCHIVE_ACCESS", "Standard"): "3-5 hours", ("ARCHIVE_ACCESS", "Bulk"): "5-12 hours",
            ("DEEP_ARCHIVE_ACCESS", "Standard"): "within 12 hours", ("DEEP_ARCHIVE_ACCESS", "Bulk"): "within 48 hours"}


@dataclass(frozen=True)
class ArchiveState:
    """What a HEAD says about an object's archive class and restore."""

    storage_class: str = "STANDARD"
    archive_status: str | None = None  #: ARCHIVE_ACCESS / DEEP_ARCHIVE_ACCESS (Intelligent-Tiering)
    ongoing: bool = False  #: a restore is under way
    expiry: datetime | None = None  #: a restored copy is readable until then

    @classmethod
    def of(cls, head: dict[str, Any]) -> ArchiveState:
        restore = str(head.get("Restore") or "")
        ongoing = bool(re.search(r'ongoing-request="true"', restore))
        expiry = None
        found = re.search(r'expiry-date="([^"]+)"', restore)
        if found:
            try:
                expiry = parsedate_to_datetime(found.group(1))
            except (TypeError, ValueError):
                expiry = None
        return cls(str(head.get("StorageClass") or "STANDARD"), head.get("ArchiveStatus") or None, ongoing, expiry)

    @property
    def archived(self) -> bool:
        """In an archive class or tier (readable or not)."""
        return self.storage_class in ARCHIVE_CLASSES or self.archive_status in ("ARCHIVE_ACCESS",
                                                                                "DEEP_ARCHIVE_ACCESS")

    @property
    def restored(self) -> bool:
        """A readable restored copy exists."""
        return self.archived and not self.ongoing and self.expiry is not None

    @property
    def readable(self) -> bool:
        return not self.archived or self.restored

    @property
    def tier_name(self) -> str:
        return self.archive_status or self.storage_class

    @property
    def status(self) -> str:
        """``readable`` (not archived), ``restored``, ``restoring`` or ``archived`` (no restore yet)."""
        if not self.archived:
            return "readable"
        if self.restored:
            return "restored"
        return "restoring" if self.ongoing else "archived"


def typical(state: ArchiveState, tier: str) -> str:
    return _TYPICAL.get((state.tier_name, tier), "some hours")


def ready_by(state: ArchiveState, tier: str, since: datetime | None = None) -> datetime:
    """When a restore requested ``since`` (now) is expected to be done."""
    hours = _HOURS.get((state.tier_name, tier), 12)
    return (since or datetime.now(UTC)) + timedelta(hours=hours)


def state_of(client: S3Client, bucket: str, key: str, version_id: str | None = None) -> ArchiveState:
    args: dict[str, Any] = {"Bucket": bucket, "Key": key}
    if version_id:
        args["VersionId"] = version_id
    return ArchiveState.of(client.head_object(**args))


def request_restore(client: S3Client, bucket: str, key: str, state: ArchiveState, *, days: int, tier: str,
                    version_id: str | None = None) -> str:
    """Ask S3 for a readable copy unless one is under way or there: "requested", "restoring" or "restored"."""
    if state.restored:
        return "restored"
    if state.ongoing:
        return "restoring"
    request: dict[str, Any] = {"GlacierJobParameters": {"Tier": tier}}
    if state.archive_status is None:  # Intelligent-Tiering's archive tiers take no Days
        request["Days"] = days
    args: dict[str, Any] = {"Bucket": bucket, "Key": key, "RestoreRequest": request}
    if version_id:
        args["VersionId"] = version_id
    try:
        client.restore_object(**args)
    except AgentError as err:
        if err.s3_code == "RestoreAlreadyInProgress" or err.status == 409:
            return "restoring"
        raise
    return "requested"


def archived_error(where: str, state: ArchiveState, outcome: str, tier: str) -> StoreError:
    """The ``[49]`` a pull reports for an object that cannot be read yet."""
    if outcome == "requested":
        what = (f"its restore ({tier} tier) was requested now and should be ready in {typical(state, tier)} "
                f"(about {ready_by(state, tier):%Y-%m-%d %H:%M} UTC)")
    elif outcome == "restoring":
        what = f"its restore is in progress (a {tier} restore takes {typical(state, tier)})"
    elif outcome == "restored":
        what = "a restored copy is now readable"
    else:
        what = outcome
    return StoreError(f"{where} is archived ({state.tier_name}): {what}; pull again then "
                      "(`lfs-s3-agent restore --status` shows progress)", code=Code.ARCHIVED)


def restore_on_read(client: S3Client, bucket: str, key: str, where: str, *, days: int, tier: str,
                    version_id: str | None = None) -> StoreError:
    """A GET met an archived object: request its restore once; the error to report for it."""
    try:
        state = state_of(client, bucket, key, version_id)
        if not state.archived:  # e.g. a restore finished between the GET and now
            return StoreError(f"{where} was archived and is readable now: pull again", code=Code.ARCHIVED)
        outcome = request_restore(client, bucket, key, state, days=days, tier=tier, version_id=version_id)
    except AgentError as err:
        return StoreError(f"{where} is archived (Glacier/Deep Archive) and its restore could not be requested "
                          f"({err.message}); someone with s3:RestoreObject on it can run `lfs-s3-agent restore`",
                          code=Code.ARCHIVED, s3_code=err.s3_code, status=err.status)
    return archived_error(where, state, outcome, tier)
