"""public_url's rule, and restores requested once (issue 16)."""

from __future__ import annotations

from typing import Any

import pytest

from lfs_s3_agent.errors import Code, StoreError
from lfs_s3_agent.s3.restore import ArchiveState, request_restore, restore_on_read
from lfs_s3_agent.settings import FIELDS_BY_NAME


@pytest.mark.parametrize("url", ["https://d1234.cloudfront.net", "https://cdn.example.com/lfs/", "http://127.0.0.1:8080",
                                 "http://[::1]:9000/x"])
def test_public_url_accepted(url: str) -> None:
    assert FIELDS_BY_NAME["public_url"].normalize(url) == url.rstrip("/")


@pytest.mark.parametrize("url", ["http://cdn.example.com", "ftp://x", "https://user:pw@cdn.example.com",
                                 "https://cdn.example.com/?q=1", "http://10.0.0.1"])
def test_public_url_refused(url: str) -> None:
    with pytest.raises(ValueError):
        FIELDS_BY_NAME["public_url"].normalize(url)


class FakeClient:
    def __init__(self, head: dict[str, Any], restore_error: StoreError | None = None) -> None:
        self.head = head
        self.restores: list[dict[str, Any]] = []
        self.restore_error = restore_error

    def head_object(self, **_: Any) -> dict[str, Any]:
        return self.head

    def restore_object(self, **kwargs: Any) -> None:
        self.restores.append(kwargs)
        if self.restore_error:
            raise self.restore_error


def test_state_from_head() -> None:
    assert ArchiveState.of({}).status == "readable"
    assert ArchiveState.of({"StorageClass": "GLACIER"}).status == "archived"
    assert ArchiveState.of({"StorageClass": "DEEP_ARCHIVE", "Restore": 'ongoing-request="true"'}).status == "restoring"
    done = ArchiveState.of({"StorageClass": "GLACIER",
                            "Restore": 'ongoing-request="false", expiry-date="Fri, 21 Dec 2012 00:00:00 GMT"'})
    assert done.status == "restored" and done.readable
    tiering = ArchiveState.of({"StorageClass": "INTELLIGENT_TIERING", "ArchiveStatus": "DEEP_ARCHIVE_ACCESS"})
    assert tiering.status == "archived" and tiering.tier_name == "DEEP_ARCHIVE_ACCESS"


def test_restore_requested_once() -> None:
    client = FakeClient({"StorageClass": "GLACIER"})
    err = restore_on_read(client, "b", "k", "s3://b/k", days=3, tier="Bulk")  # type: ignore[arg-type]
    assert err.code == Code.ARCHIVED and "requested" in err.message and "pull again" in err.message
    assert client.restores == [{"Bucket": "b", "Key": "k",
                                "RestoreRequest": {"GlacierJobParameters": {"Tier": "Bulk"}, "Days": 3}}]
    client.head = {"StorageClass": "GLACIER", "Restore": 'ongoing-request="true"'}
    err = restore_on_read(client, "b", "k", "s3://b/k", days=3, tier="Bulk")  # type: ignore[arg-type]
    assert "in progress" in err.message and len(client.restores) == 1  # never twice


def test_already_in_progress_and_tiering() -> None:
    busy = FakeClient({}, StoreError("x", s3_code="RestoreAlreadyInProgress", status=409))
    state = ArchiveState("GLACIER")
    assert request_restore(busy, "b", "k", state, days=1, tier="Standard") == "restoring"  # type: ignore[arg-type]
    tiering = FakeClient({})
    request_restore(tiering, "b", "k", ArchiveState("INTELLIGENT_TIERING", "ARCHIVE_ACCESS"),  # type: ignore[arg-type]
                    days=5, tier="Standard")
    assert "Days" not in tiering.restores[0]["RestoreRequest"]
