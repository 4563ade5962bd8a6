"""verify, gc, ls/du, copy and doctor on real repositories with history, pushed by real git-lfs.

Covers: verify of every ref and a missing object reported with its path and commit; gc keeping
an object only an old tag references while deleting a deleted branch's objects; gc stopped by its
request budget and finished by a second run; copy killed mid-way and resumed, copying only the
rest, then a clone installed at the new place; copy to another endpoint (streamed); doctor.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from collections.abc import Callable
from pathlib import Path

import pytest

from lfs_s3_agent.cli import main
from lfs_s3_agent.commands import gc as gc_mod
from tests.e2e.conftest import (
    Git,
    bucket_objects,
    commit_all,
    expected_key,
    lfs_oids,
    sha256,
    tree_digests,
    write_files,
)
from tests.s3server import MotoServer

MakeClone = Callable[..., Git]


def rnd(n: int) -> bytes:
    return os.urandom(n)


def drop_branch(git: Git, name: str) -> None:
    """Delete a branch here and on the remote, and forget it in the reflogs: its objects are garbage now."""
    git.run("push", "-q", "origin", "--delete", name)
    git.run("branch", "-qD", name)
    git.run("reflog", "expire", "--expire=now", "--all")


def test_verify_gc_ls_du_on_a_history_with_a_tag_and_a_deleted_branch(
        make_clone: MakeClone, s3: MotoServer, bucket: str) -> None:
    a = make_clone("a")
    a.run("lfs", "track", "*.bin")
    v1 = {"asset.bin": rnd(20_000), "old/tagged only.bin": rnd(15_000)}
    write_files(a.path, v1)
    commit_all(a, "v1")
    v1_commit = a.run("rev-parse", "HEAD").strip()
    a.run("tag", "-a", "v1", "-m", "release 1")
    v2 = {"asset.bin": rnd(25_000)}
    write_files(a.path, v2)
    (a.path / "old" / "tagged only.bin").unlink()
    commit_all(a, "v2")
    a.run("checkout", "-qb", "experiment")
    experiment = {"exp/trial.bin": rnd(12_000), "exp/trial2.bin": rnd(13_000)}
    write_files(a.path, experiment)
    commit_all(a, "experiment")
    a.run("checkout", "-q", "main")
    a.run("push", "-q", "origin", "main", "experiment", "v1")
    tagged = sha256(v1["old/tagged only.bin"])
    every = lfs_oids(v1) | lfs_oids(v2) | lfs_oids(experiment)
    assert set(bucket_objects(s3, bucket)) == {expected_key("repo", oid) for oid in every}

    assert "all present and intact" in a.agent("verify", "--all", "--deep").stdout
    head = json.loads(a.agent("verify", "--json").stdout)
    assert head["ok"] and head["checked"] == 3  # HEAD's history: both versions of asset.bin, the tagged file

    drop_branch(a, "experiment")
    dry = json.loads(a.agent("gc", "--grace", "0", "--allow-short-grace", "--json").stdout)
    assert dry["dry_run"] and {c["oid"] for c in dry["candidates"]} == lfs_oids(experiment)
    assert set(bucket_objects(s3, bucket)) == {expected_key("repo", oid) for oid in every}, "a dry run deleted"

    text = a.agent("gc", "--force").stdout  # default grace: everything was pushed moments ago
    assert "deleted 0 objects" in text and "2 newer than 7d" in text
    done = a.agent("gc", "--force", "--grace", "0", "--allow-short-grace")
    assert "deleted 2 objects and 0 link records" in done.stdout, done.stdout
    left = set(bucket_objects(s3, bucket))
    assert left == {expected_key("repo", oid) for oid in lfs_oids(v1) | lfs_oids(v2)}
    assert expected_key("repo", tagged) in left, "gc deleted an object only the old tag references"

    b = make_clone("b")
    b.run("checkout", "-q", "v1")
    b.run("lfs", "pull")
    assert (b.path / "old" / "tagged only.bin").read_bytes() == v1["old/tagged only.bin"]

    listing = json.loads(a.agent("ls", "--json").stdout)
    in_head = {row["oid"]: row["in_head"] for row in listing["objects"]}
    assert in_head == {sha256(v2["asset.bin"]): True, sha256(v1["asset.bin"]): False, tagged: False}
    usage = json.loads(a.agent("du", "--json").stdout)
    assert usage["stored"]["count"] == 3 and usage["stored"]["head_count"] == 1
    assert usage["stored"]["head_bytes"] == 25_000 and usage["head_missing"] == 0

    s3.client().delete_object(Bucket=bucket, Key=expected_key("repo", sha256(v1["asset.bin"])))
    proc = a.agent("verify", "--all", check=False)
    assert proc.returncode == 1
    assert "MISSING: asset.bin" in proc.stdout and v1_commit[:10] in proc.stdout, proc.stdout
    assert "1 missing" in proc.stdout


def test_gc_stopped_by_its_request_budget_then_finished_by_a_second_run(
        make_clone: MakeClone, s3: MotoServer, bucket: str, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    a = make_clone("a")
    a.run("lfs", "track", "*.bin")
    keep = rnd(1000)
    write_files(a.path, {"keep.bin": keep})
    commit_all(a, "base")
    a.run("checkout", "-qb", "doomed")
    garbage = {f"g{i}.bin": rnd(2000 + i) for i in range(5)}
    write_files(a.path, garbage)
    commit_all(a, "garbage")
    a.run("checkout", "-q", "main")
    a.run("push", "-q", "origin", "main", "doomed")
    drop_branch(a, "doomed")

    # Delete batches of 2 keys: listing (1) + uploads listing (1) + 2 batches x (markers + delete) = 6
    # requests; the last key waits.
    monkeypatch.setattr(gc_mod, "DELETE_BATCH", 2)
    monkeypatch.chdir(a.path)
    assert main(["gc", "--force", "--grace", "0", "--allow-short-grace", "--max-requests", "6"]) == gc_mod.BUDGET_EXIT
    captured = capsys.readouterr()
    assert "budget reached: deleted 4 of 5" in captured.err and "run again to continue" in captured.err
    assert "S3 requests: 6 (of at most 6)" in captured.out
    still = {oid for oid in lfs_oids(garbage) if expected_key("repo", oid) in bucket_objects(s3, bucket)}
    assert len(still) == 1

    second = json.loads(a.agent("gc", "--force", "--grace", "0", "--allow-short-grace", "--max-requests", "6",
                                "--json").stdout)
    assert second["complete"] and [d["oid"] for d in second["deleted"]] == sorted(still)
    assert set(bucket_objects(s3, bucket)) == {expected_key("repo", sha256(keep))}


def test_copy_killed_mid_way_resumes_with_only_the_rest_then_a_clone_uses_the_copy(
        make_clone: MakeClone, s3: MotoServer, bucket: str) -> None:
    a = make_clone("a")
    a.run("lfs", "track", "*.bin")
    files = {f"data/f{i:02d}.bin": rnd(1500 + i) for i in range(30)}
    write_files(a.path, files)
    commit_all(a, "thirty files")
    a.run("push", "-q", "origin", "HEAD:main")
    dest = f"{bucket}-copy"
    s3.client().create_bucket(Bucket=dest)

    proc = subprocess.Popen([sys.executable, "-m", "lfs_s3_agent", "copy", f"s3://{dest}/mirror", "--jobs", "1"],
                            cwd=a.path, env=a.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert proc.stderr is not None
    reported = 0
    try:
        for line in proc.stderr:  # one plain line per object copied (stderr is a pipe, not a terminal)
            reported += line.startswith("copied ")
            if reported == 3:
                proc.kill()
                break
    finally:
        proc.kill()
        proc.communicate(timeout=60)
    assert reported == 3 and proc.returncode == -9, "the copy finished before it could be killed"
    present = set(bucket_objects(s3, dest))
    assert 3 <= len(present) < len(files)

    resumed = json.loads(a.agent("copy", f"s3://{dest}/mirror", "--jobs", "4", "--json").stdout)
    assert {i["dest_key"] for i in resumed["skipped"]} == present
    assert len(resumed["copied"]) == len(files) - len(present)
    assert resumed["ok"] and resumed["install_command"].startswith(f"lfs-s3-agent install --bucket {dest} "
                                                                   "--prefix mirror")
    copied = bucket_objects(s3, dest)
    assert set(copied) == {expected_key("mirror", oid) for oid in lfs_oids(files)}
    again = json.loads(a.agent("copy", f"s3://{dest}/mirror", "--json").stdout)
    assert again["copied"] == [] and len(again["skipped"]) == len(files)

    c = make_clone("c", bucket=dest, prefix="mirror")
    c.run("lfs", "pull")
    assert tree_digests(c.path) == tree_digests(a.path)


def test_copy_to_another_endpoint_streams_through_this_machine(
        make_clone: MakeClone, s3: MotoServer, bucket: str) -> None:
    a = make_clone("a")
    a.run("lfs", "track", "*.bin")
    files = {"x.bin": rnd(3000), "y.bin": rnd(4000)}
    write_files(a.path, files)
    commit_all(a, "two")
    a.run("push", "-q", "origin", "HEAD:main")
    with MotoServer() as other:
        dest = f"other-{uuid.uuid4().hex[:10]}"
        other.client().create_bucket(Bucket=dest)
        out = a.agent("copy", f"s3://{dest}/moved", "--dest-endpoint-url", other.endpoint)
        assert "another endpoint" in out.stdout and "0 server-side, 2 streamed" in out.stdout, out.stdout
        assert f"--endpoint-url {other.endpoint}" in out.stdout
        client = other.client()
        for name, data in files.items():
            got = client.get_object(Bucket=dest, Key=expected_key("moved", sha256(data)))
            assert got["Body"].read() == data and got["Metadata"] == {"sha256": sha256(data)}, name


@pytest.mark.moto_only("STS GetCallerIdentity: doctor must show the caller's ARN (arn:aws:...); RGW 16 serves no STS "
                       "at its S3 endpoint")
def test_doctor_in_an_installed_clone_and_in_one_without_install(make_clone: MakeClone, s3: MotoServer,
                                                                 bucket: str) -> None:
    a = make_clone("a")
    proc = a.agent("doctor")
    lines = proc.stdout.splitlines()
    names = [line.split()[1] for line in lines if line[:1] in "✓✗!-"]
    assert names == ["git", "git-lfs", "install", "settings", "credentials", "bucket", "read/write", "store",
                     "checksums"]
    assert all(line.startswith("✓") for line in lines if line[:1] in "✓✗!-"), proc.stdout
    assert f"endpoint_url = {s3.endpoint}  (git config lfs-s3-agent.endpoint-url)" in proc.stdout
    assert "arn:aws:" in proc.stdout and "testing-secret" not in proc.stdout
    assert not [k for k in bucket_objects(s3, bucket) if ".lfs-s3-agent-doctor-" in k]

    b = make_clone("b", install=False)
    failed = b.agent("doctor", "--json", check=False)
    assert failed.returncode == 1
    checks = {c["name"]: c for c in json.loads(failed.stdout)["checks"]}
    assert checks["install"]["status"] == "fail" and "lfs-s3-agent install" in checks["install"]["fix"]
    assert checks["settings"]["status"] == "fail" and checks["bucket"]["status"] == "skip"


def test_gc_refuses_while_the_remote_has_unfetched_branches(make_clone: MakeClone, tmp_path: Path) -> None:
    a = make_clone("a")
    a.run("lfs", "track", "*.bin")
    write_files(a.path, {"a.bin": rnd(100)})
    commit_all(a, "a")
    a.run("push", "-q", "origin", "HEAD:main")
    b = make_clone("b")
    b.run("checkout", "-qb", "feature")
    write_files(b.path, {"only-on-feature.bin": rnd(100)})
    commit_all(b, "feature")
    b.run("push", "-q", "origin", "feature")
    proc = a.agent("gc", "--force", "--grace", "0", "--allow-short-grace", check=False)
    assert proc.returncode == 1 and "refs/heads/feature" in proc.stderr and "git fetch origin" in proc.stderr
    a.run("fetch", "-q", "origin")
    assert "deleted 0 objects" in a.agent("gc", "--force", "--grace", "0", "--allow-short-grace").stdout
