"""Failures a user meets, through real git and git-lfs: each must fail the git command with a clear
message and leave nothing wrong behind (no moved ref, no corrupt checkout, no temp file)."""

from __future__ import annotations

import os
import subprocess
import uuid
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.e2e.conftest import (
    AuthServer,
    Git,
    bucket_objects,
    commit_all,
    expected_key,
    leftover_tmp_files,
    lfs_oids,
    pointer_oid,
    remote_heads,
    sha256,
    write_files,
)
from tests.s3server import MotoServer

MakeClone = Callable[..., Git]


def output(proc: subprocess.CompletedProcess[str]) -> str:
    return f"{proc.stdout}\n{proc.stderr}"


# -- wrong bucket ---------------------------------------------------------------------------------

def test_push_to_a_missing_bucket_fails_with_a_clear_message(make_clone: MakeClone, remote: Path) -> None:
    missing = f"no-such-bucket-{uuid.uuid4().hex[:8]}"
    a = make_clone("a", bucket=missing)
    a.run("lfs", "track", "*.bin")
    write_files(a.path, {"x.bin": os.urandom(5000)})
    commit_all(a, "x")
    proc = a.try_("push", "origin", "HEAD:main")
    assert proc.returncode != 0
    text = output(proc)
    assert missing in text and "does not exist" in text, text
    assert "Traceback" not in text
    assert remote_heads(remote) == {}, "git pushed the commit although its LFS object was not stored"


def test_pull_from_a_missing_bucket_fails_with_a_clear_message(make_clone: MakeClone) -> None:
    a = make_clone("a")
    a.run("lfs", "track", "*.bin")
    data = os.urandom(5000)
    write_files(a.path, {"x.bin": data})
    commit_all(a, "x")
    a.run("push", "-q", "origin", "HEAD:main")
    missing = f"no-such-bucket-{uuid.uuid4().hex[:8]}"
    b = make_clone("b", bucket=missing)
    proc = b.try_("lfs", "pull")
    assert proc.returncode != 0
    text = output(proc)
    assert missing in text and "does not exist" in text, text
    assert pointer_oid((b.path / "x.bin").read_bytes()) == sha256(data)
    assert leftover_tmp_files(b.path / ".git" / "lfs") == []


# -- wrong credentials (a separate moto server with auth switched on) ----------------------------

@pytest.fixture
def auth_bucket(auth_s3: AuthServer) -> str:
    name = f"auth-{uuid.uuid4().hex[:12]}"
    auth_s3.client().create_bucket(Bucket=name)
    return name


BAD_CREDENTIALS = {
    "unknown-key": ({"AWS_ACCESS_KEY_ID": "AKIAUNKNOWNKEY0000000", "AWS_SECRET_ACCESS_KEY": "whatever"},
                    "InvalidAccessKeyId"),
    "wrong-secret": ({"AWS_SECRET_ACCESS_KEY": "not-the-secret"}, "SignatureDoesNotMatch"),
}


def bad_env(auth_s3: AuthServer, case: str) -> dict[str, str]:
    return {**auth_s3.env(), **BAD_CREDENTIALS[case][0]}


def test_auth_server_control_good_key_round_trips(make_clone: MakeClone, auth_s3: AuthServer,
                                                  auth_bucket: str) -> None:
    """The control: with the right key the same set-up works, so the failures below are the key's."""
    a = make_clone("a", bucket=auth_bucket, endpoint_url=auth_s3.endpoint)
    a.env.update(auth_s3.env())
    a.run("lfs", "track", "*.bin")
    data = os.urandom(8000)
    write_files(a.path, {"x.bin": data})
    commit_all(a, "x")
    a.run("push", "-q", "origin", "HEAD:main")
    assert set(bucket_objects(auth_s3.server, auth_bucket, auth_s3.client())) == {
        expected_key("repo", sha256(data))}
    b = make_clone("b", bucket=auth_bucket, endpoint_url=auth_s3.endpoint)
    b.env.update(auth_s3.env())
    b.run("lfs", "pull")
    assert (b.path / "x.bin").read_bytes() == data


@pytest.mark.parametrize("case", sorted(BAD_CREDENTIALS))
def test_push_with_bad_credentials_fails_with_a_clear_message(
        make_clone: MakeClone, auth_s3: AuthServer, auth_bucket: str, remote: Path, case: str) -> None:
    a = make_clone("a", bucket=auth_bucket, endpoint_url=auth_s3.endpoint)
    a.run("lfs", "track", "*.bin")
    write_files(a.path, {"x.bin": os.urandom(6000)})
    commit_all(a, "x")
    proc = a.try_("push", "origin", "HEAD:main", env=bad_env(auth_s3, case))
    assert proc.returncode != 0
    text = output(proc)
    assert BAD_CREDENTIALS[case][1] in text and "credentials" in text, text
    assert "Traceback" not in text
    assert remote_heads(remote) == {}
    assert bucket_objects(auth_s3.server, auth_bucket, auth_s3.client()) == {}
    # The same clone pushes once the credentials are right.
    a.run("push", "-q", "origin", "HEAD:main", env=auth_s3.env())
    assert len(bucket_objects(auth_s3.server, auth_bucket, auth_s3.client())) == 1


@pytest.mark.parametrize("case", sorted(BAD_CREDENTIALS))
def test_pull_with_bad_credentials_fails_with_a_clear_message(
        make_clone: MakeClone, auth_s3: AuthServer, auth_bucket: str, case: str) -> None:
    a = make_clone("a", bucket=auth_bucket, endpoint_url=auth_s3.endpoint)
    a.run("lfs", "track", "*.bin")
    data = os.urandom(7000)
    write_files(a.path, {"x.bin": data})
    commit_all(a, "x")
    a.run("push", "-q", "origin", "HEAD:main", env=auth_s3.env())
    b = make_clone("b", bucket=auth_bucket, endpoint_url=auth_s3.endpoint)
    proc = b.try_("lfs", "pull", env=bad_env(auth_s3, case))
    assert proc.returncode != 0
    text = output(proc)
    assert BAD_CREDENTIALS[case][1] in text and "credentials" in text, text
    assert "Traceback" not in text
    assert pointer_oid((b.path / "x.bin").read_bytes()) == sha256(data)
    assert leftover_tmp_files(b.path / ".git" / "lfs") == []


# -- an object replaced in the bucket ----------------------------------------------------------

def test_object_replaced_in_the_bucket_is_caught_on_pull(make_clone: MakeClone, s3: MotoServer,
                                                         bucket: str) -> None:
    a = make_clone("a")
    a.run("lfs", "track", "*.bin")
    files = {"good.bin": os.urandom(30_000), "same size.bin": os.urandom(40_000),
             "shorter.bin": os.urandom(50_000), "longer.bin": os.urandom(20_000)}
    write_files(a.path, files)
    commit_all(a, "x")
    a.run("push", "-q", "origin", "HEAD:main")
    assert len(bucket_objects(s3, bucket)) == 4

    client = s3.client()
    replaced = {
        "same size.bin": os.urandom(len(files["same size.bin"])),
        "shorter.bin": files["shorter.bin"][:-1000],
        "longer.bin": files["longer.bin"] + b"tail",
    }
    for name, data in replaced.items():
        client.put_object(Bucket=bucket, Key=expected_key("repo", sha256(files[name])), Body=data)

    b = make_clone("b")
    proc = b.try_("lfs", "pull")
    assert proc.returncode != 0
    text = output(proc)
    assert "Traceback" not in text
    objects = b.path / ".git" / "lfs" / "objects"
    for name in replaced:
        oid = sha256(files[name])
        assert expected_key("repo", oid) in text, f"no message names the object for {name}:\n{text}"
        # Nothing corrupt checked out, nothing corrupt in the store: the file is still its pointer.
        assert (b.path / name).read_bytes() == b.run("show", f"HEAD:{name}").encode()
        assert pointer_oid((b.path / name).read_bytes()) == oid
        assert not (objects / oid[0:2] / oid[2:4] / oid).exists()
    assert (b.path / "good.bin").read_bytes() == files["good.bin"]
    assert leftover_tmp_files(b.path / ".git" / "lfs") == []
    assert b.run("status", "--porcelain", "--untracked-files=all") == ""
    assert lfs_oids(files) >= {p.name for p in objects.rglob("*") if p.is_file()}
