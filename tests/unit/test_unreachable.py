"""The unreachable-endpoint mark: honoured by processes started before it, ignored by later ones."""

from __future__ import annotations

import time
from pathlib import Path

from lfs_s3_agent.unreachable import UnreachableMark


def test_a_mark_reaches_agents_of_the_same_command_only(tmp_path: Path) -> None:
    before = UnreachableMark(tmp_path, "http://127.0.0.1:9", started=time.time() - 1)
    assert before.check() is None
    before.record("cannot reach the S3 endpoint")
    assert before.check() == "cannot reach the S3 endpoint"
    # an agent of a later git command started after the mark: it tries the endpoint again
    later = UnreachableMark(tmp_path, "http://127.0.0.1:9", started=time.time() + 1)
    assert later.check() is None
    # another endpoint has its own mark
    assert UnreachableMark(tmp_path, "http://127.0.0.1:10", started=0).check() is None


def test_a_damaged_mark_is_ignored(tmp_path: Path) -> None:
    mark = UnreachableMark(tmp_path, "e", started=0)
    Path(mark.path).write_text("{not json")
    assert mark.check() is None
    Path(mark.path).write_text('{"time": "x", "message": "m"}')
    assert mark.check() is None
    assert not list(tmp_path.glob(".unreachable-*"))
