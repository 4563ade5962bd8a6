"""The ``ObjectStore`` contract, run over every implementation (see conftest.py)."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Any

import pytest

from lfs_s3_agent.errors import AgentError, Code, IntegrityError
from lfs_s3_agent.progress import ProgressReporter

SIZES = [0, 1, 70_000, (5 << 20) + 12_345]  # empty, tiny, one stream, multipart/ranged (threshold 5 MiB)


class Progress:
    def __init__(self, size: int) -> None:
        self.events: list[tuple[int, int]] = []
        self.reporter = ProgressReporter(size, lambda so_far, since: self.events.append((so_far, since)), interval=0)

    @property
    def last(self) -> int:
        return self.events[-1][0] if self.events else 0


def put(store: Any, tmp_path: Path, data: bytes) -> tuple[str, bool, Progress]:
    oid = hashlib.sha256(data).hexdigest()
    path = tmp_path / f"obj-{oid[:8]}"
    path.write_bytes(data)
    progress = Progress(len(data))
    stored = store.upload(oid, len(data), path, progress.reporter)
    return oid, stored, progress


def get(store: Any, oid: str, size: int, tmp_path: Path) -> tuple[bytes, str]:
    path = tmp_path / f"down-{oid[:8]}"
    with open(path, "wb") as sink:  # a real file: large objects are written at offsets
        digest = store.download(oid, size, sink, ProgressReporter(size, lambda a, b: None))
    return path.read_bytes(), digest


@pytest.mark.parametrize("size", SIZES)
def test_what_is_uploaded_downloads_byte_for_byte(store: Any, tmp_path: Path, size: int) -> None:
    data = os.urandom(size)
    oid, stored, progress = put(store, tmp_path, data)
    assert stored is True
    assert progress.last == size and all(b >= a for (a, _), (b, _) in zip(progress.events, progress.events[1:],
                                                                            strict=False))
    got, digest = get(store, oid, size, tmp_path)
    assert got == data and digest == oid
    assert store.stat(oid) == size


def test_a_second_upload_of_an_oid_is_skipped_and_reports_it_whole(store: Any, tmp_path: Path) -> None:
    data = os.urandom(1000)
    put(store, tmp_path, data)
    oid, stored, progress = put(store, tmp_path, data)
    assert stored is False
    assert progress.last == len(data)
    assert get(store, oid, len(data), tmp_path)[0] == data


def test_an_unknown_oid_is_not_found(store: Any, tmp_path: Path) -> None:
    oid = hashlib.sha256(b"never stored").hexdigest()
    assert store.stat(oid) is None
    with pytest.raises(AgentError) as err:
        get(store, oid, 12, tmp_path)
    assert err.value.code == Code.NOT_FOUND


@pytest.mark.parametrize("size", [100, (5 << 20) + 1])
def test_a_file_that_does_not_hash_to_its_oid_is_never_stored(store: Any, tmp_path: Path, size: int) -> None:
    data = os.urandom(size)
    oid = hashlib.sha256(b"another object" + data).hexdigest()
    path = tmp_path / "corrupt"
    path.write_bytes(data)
    with pytest.raises(IntegrityError):
        store.upload(oid, size, path, ProgressReporter(size, lambda a, b: None))
    assert store.stat(oid) is None
    with pytest.raises(AgentError) as err:
        get(store, oid, size, tmp_path)
    assert err.value.code == Code.NOT_FOUND


def test_describe_names_the_object(store: Any) -> None:
    oid = hashlib.sha256(b"x").hexdigest()
    assert oid in store.describe(oid)


def test_the_upload_file_is_read_not_moved(store: Any, tmp_path: Path) -> None:
    """git-lfs hands over its own object file: it must still be there, unchanged."""
    data = os.urandom(2048)
    oid, _, _ = put(store, tmp_path, data)
    assert (tmp_path / f"obj-{oid[:8]}").read_bytes() == data
