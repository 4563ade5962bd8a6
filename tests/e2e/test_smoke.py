from collections.abc import Callable

from tests.e2e.conftest import Git
from tests.s3server import MotoServer


def test_push_then_pull_in_fresh_clone(make_clone: Callable[..., Git], s3: MotoServer, bucket: str) -> None:
    a = make_clone("a")
    a.run("lfs", "track", "*.bin")
    data = bytes(range(256)) * 4096
    (a.path / "x.bin").write_bytes(data)
    a.run("add", ".")
    a.run("commit", "-qm", "x")
    a.run("push", "-q", "origin", "HEAD:main")
    keys = [o["Key"] for o in s3.client().list_objects_v2(Bucket=bucket).get("Contents", [])]
    assert len(keys) == 1 and keys[0].startswith("repo/")
    b = make_clone("b")
    b.run("lfs", "pull")
    assert (b.path / "x.bin").read_bytes() == data
