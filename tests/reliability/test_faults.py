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
