"""Every ``ObjectStore`` implementation, as one parametrized fixture (after giftless's storage test mixins).

- ``memory``: the in-memory reference store;
- ``s3``: ``S3Store`` on moto (in-process), small parts so multipart paths run too;
- ``linked``: ``LinkedStore`` around that ``S3Store`` (no link records: it must behave exactly like the
  store it wraps).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from moto import mock_aws

from lfs_s3_agent.linked import LinkedStore, LocalLinks
from lfs_s3_agent.settings import Settings
from lfs_s3_agent.store import S3Store
from tests.contract.memory import MemoryStore

BUCKET = "contract"


@pytest.fixture(params=["memory", "s3", "linked"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Any]:
    if request.param == "memory":
        yield MemoryStore()
        return
    with mock_aws():
        boto3.client("s3", region_name="us-east-1").create_bucket(Bucket=BUCKET)
        s3 = S3Store(Settings(bucket=BUCKET, prefix="c", multipart_threshold=5 << 20, part_size=5 << 20,
                              concurrency=2, max_attempts=2, stale_upload_days=0))
        yield s3 if request.param == "s3" else LinkedStore(s3, LocalLinks(tmp_path / "links"))
