"""The fast subset of the fault matrix (``make reliability`` runs all of it)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.reliability.matrix import SCENARIOS, Scenario, run
from tests.s3server import MotoServer


@pytest.fixture(scope="module")
def server() -> Iterator[MotoServer]:
    with MotoServer() as s:
        s.client().create_bucket(Bucket="reliability")
        yield s


@pytest.mark.parametrize("scenario", [s for s in SCENARIOS if s.fast], ids=lambda s: s.name)
def test_fault_is_survived_or_reported_cleanly(scenario: Scenario, server: MotoServer, tmp_path: Path) -> None:
    result = run(scenario, server, "reliability", tmp_path)
    assert result.injected >= 1, "the fault was never injected: the scenario tests nothing"
    assert result.data_ok, f"corrupt data after {scenario.name}: {result}"
    assert result.leftovers == 0
    if scenario.expect == "completed":
        assert result.outcome == "completed", result.message
    else:
        assert result.outcome.endswith(scenario.expect), result


# -- one retry owner: requests counted at the proxy -------------------------------------------------------


@pytest.mark.parametrize(("kind", "size", "expected"), [
    ("status", 40_000, 4),  # 500 every time: max_attempts GETs, not botocore's attempts times ours
    ("reset-response", 40_000, 4),  # a body that breaks every time: the resumes share the budget
    ("corrupt", 40_000, 2),  # bytes that fail their SHA-256 every time: downloaded afresh once
    ("status", 6 << 20, 4),  # ranged: the first range fails every time
])
def test_a_download_that_fails_every_time_makes_at_most_max_attempts_gets(
        kind: str, size: int, expected: int, server: MotoServer, tmp_path: Path) -> None:
    import hashlib
    import io
    import json
    import os

    from lfs_s3_agent.agent import serve
    from lfs_s3_agent.s3.keys import object_key
    from lfs_s3_agent.settings import Settings
    from lfs_s3_agent.store import S3Store
    from tests.faultproxy import Fault, FaultProxy

    data = os.urandom(size)
    oid = hashlib.sha256(data).hexdigest()
    server.client().put_object(Bucket="reliability", Key=object_key("once", oid), Body=data)
    with FaultProxy(server.endpoint) as proxy:
        fault = proxy.add(Fault(kind, method="GET", path=oid, times=1000, status=500, code="InternalError"))
        store = S3Store(Settings(bucket="reliability", prefix="once", endpoint_url=proxy.endpoint, timeout=2,
                                 max_attempts=4, multipart_threshold=5 << 20, part_size=5 << 20, concurrency=2))
        lines = "".join(json.dumps(m) + "\n" for m in (
            {"event": "init", "operation": "download", "concurrent": True, "concurrenttransfers": 1},
            {"event": "download", "oid": oid, "size": size}, {"event": "terminate"})).encode()
        out = io.BytesIO()
        serve(io.BytesIO(lines), out, store, tmp_dir=tmp_path / "tmp", progress_interval=0)
        seen = fault.seen
    (complete,) = [m for m in map(json.loads, out.getvalue().splitlines()) if m.get("event") == "complete"]
    assert "error" in complete
    assert seen == expected
    assert list((tmp_path / "tmp").iterdir()) == []
