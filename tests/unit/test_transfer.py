import hashlib
import io

import pytest

from lfs_s3_agent.errors import IntegrityError
from lfs_s3_agent.progress import ProgressReporter
from lfs_s3_agent.transfer import HashingReader

DATA = bytes(range(256)) * 100
OID = hashlib.sha256(DATA).hexdigest()


def drain(reader: HashingReader, size: int = 1000) -> bytes:
    out = b""
    while chunk := reader.read(size):
        out += chunk
    return out


def test_streams_the_bytes_and_checks_them() -> None:
    events: list[tuple[int, int]] = []
    progress = ProgressReporter(len(DATA), lambda a, b: events.append((a, b)), interval=0)
    reader = HashingReader(io.BytesIO(DATA), len(DATA), OID, progress)
    assert drain(reader) == DATA
    assert events[-1][0] == len(DATA)


def test_rewind_for_signing_or_retry_counts_progress_once() -> None:
    events: list[tuple[int, int]] = []
    progress = ProgressReporter(len(DATA), lambda a, b: events.append((a, b)), interval=0)
    reader = HashingReader(io.BytesIO(DATA), len(DATA), OID, progress)
    drain(reader)
    reader.seek(0)
    assert drain(reader) == DATA
    assert sum(b for _, b in events) == len(DATA)
    reader.seek(5000)
    assert reader.tell() == 5000 and drain(reader) == DATA[5000:]  # re-hashed the skipped part: no error


def test_corrupt_content_raises_before_the_last_bytes_are_handed_over() -> None:
    bad = bytearray(DATA)
    bad[-1] ^= 1
    reader = HashingReader(io.BytesIO(bytes(bad)), len(DATA), OID, None, label="obj")
    got = reader.read(len(DATA) - 10)
    with pytest.raises(IntegrityError, match="obj: local file's SHA-256"):
        reader.read(100)
    assert len(got) == len(DATA) - 10


@pytest.mark.parametrize("data", [DATA[:-1], DATA + b"x"])
def test_file_of_the_wrong_size_is_refused(data: bytes) -> None:
    reader = HashingReader(io.BytesIO(data), len(DATA), OID, None)
    with pytest.raises(IntegrityError, match="changed size"):
        drain(reader)
