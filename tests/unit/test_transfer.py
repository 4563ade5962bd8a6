import hashlib
import io

import pytest

from lfs_s3_agent.errors import IntegrityError
from lfs_s3_agent.progress import ProgressReporter
from lfs_s3_agent.s3.transfer import HashingReader

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


MiB = 1 << 20


def test_part_plan_fits_any_object_up_to_5_tib_in_10000_parts() -> None:
    from lfs_s3_agent.s3.transfer import MAX_OBJECT, MAX_PARTS, PartPlan

    for size in (1, 5 * MiB, 80 * 1024 * MiB, 1 << 40, MAX_OBJECT):
        plan = PartPlan.make(size, 8 * MiB, 8)
        parts = plan.parts()
        assert len(parts) <= MAX_PARTS
        assert sum(length for _, _, length in parts) == size
        assert plan.part_size % MiB == 0 and plan.part_size >= 5 * MiB
        # memory in flight never exceeds the configured budget (or one part, for huge objects)
        assert plan.concurrency * plan.part_size <= max(8 * 8 * MiB, plan.part_size)
    huge = PartPlan.make(MAX_OBJECT, 8 * MiB, 8)
    assert huge.concurrency == 1 and huge.part_size == 525 * MiB


def test_part_plan_numbers_and_offsets() -> None:
    from lfs_s3_agent.s3.transfer import PartPlan

    plan = PartPlan.make(12 * MiB + 7, 5 * MiB, 4)
    assert plan.parts() == [(1, 0, 5 * MiB), (2, 5 * MiB, 5 * MiB), (3, 10 * MiB, 2 * MiB + 7)]


def test_part_plan_refuses_more_than_5_tib() -> None:
    from lfs_s3_agent.errors import AgentError, Code
    from lfs_s3_agent.s3.transfer import MAX_OBJECT, PartPlan

    with pytest.raises(AgentError, match="5 TiB") as info:
        PartPlan.make(MAX_OBJECT + 1, 8 * MiB, 8)
    assert info.value.code == Code.LOCAL_FILE


def test_part_body_counts_progress_once_across_resends() -> None:
    from lfs_s3_agent.s3.transfer import PartBody

    events: list[tuple[int, int]] = []
    progress = ProgressReporter(10, lambda a, b: events.append((a, b)), interval=0)
    body = PartBody(b"0123456789", progress)
    assert body.read(4) == b"0123" and body.read() == b"456789"
    body.seek(0)
    assert body.read() == b"0123456789"
    assert sum(b for _, b in events) == 10
