"""The shared worker end to end: real git-lfs starts the agents, the agents start and use one worker.

Every test runs with its own runtime directory (tests/conftest.py) whose workers are stopped after it.
Counts come from ``LFS_S3_STATS_FILE`` (one JSON line per agent or worker process, with its S3 calls)
and ``lfs-s3-agent worker status --json``.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import os
import signal
import stat
from pathlib import Path
from typing import Any

from lfs_s3_agent.s3.transfer import CHUNK
from tests.e2e.conftest import Git, commit_all, known_store, tree_digests
from tests.faultproxy import Fault, FaultProxy
from tests.polling import wait_until
from tests.s3server import MotoServer

THRESHOLD = 5 << 20


def stats(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def calls(records: list[dict[str, Any]], role: str) -> dict[str, int]:
    total: dict[str, int] = {}
    for r in records:
        if r.get("role") == role:
            for op, n in r["requests"].items():
                total[op] = total.get(op, 0) + n
    return total


def status(git: Git) -> list[dict[str, Any]]:
    return list(json.loads(git.agent("worker", "status", "--json").stdout)["workers"])


def small_files(git: Git, n: int) -> dict[str, bytes]:
    files = {f"small/{i:03d}.bin": os.urandom(1000 + i) for i in range(n)}
    for name, data in files.items():
        (git.path / name).parent.mkdir(parents=True, exist_ok=True)
        (git.path / name).write_bytes(data)
    return files


def test_small_objects_go_through_one_warm_worker_large_ones_stay_in_the_agent(
        make_clone: Any, tmp_path: Path) -> None:
    a = make_clone("a", multipart_threshold="5MiB", part_size="5MiB")
    known_store(a)
    a.run("lfs", "track", "*.bin")
    small_files(a, 30)
    (a.path / "large.bin").write_bytes(os.urandom(THRESHOLD + 12345))
    commit_all(a, "data")
    push_stats = tmp_path / "push.jsonl"
    a.run("push", "origin", "HEAD:main", env={"LFS_S3_STATS_FILE": str(push_stats)})

    (worker,) = status(a)
    assert worker["repo"] == str(a.path / ".git") and worker["active"] == 0 and worker["sessions"] >= 1
    assert worker["requests"].get("PutObject") == 30

    b = make_clone("b", multipart_threshold="5MiB", part_size="5MiB")
    pull_stats = tmp_path / "pull.jsonl"
    b.run("lfs", "pull", env={"LFS_S3_STATS_FILE": str(pull_stats)})
    assert tree_digests(b.path) == tree_digests(a.path)

    a.agent("worker", "stop", "--all")  # both workers write their stats as they exit
    assert status(a) == [] and status(b) == []
    pushed, pulled = stats(push_stats), stats(pull_stats)
    assert [r["role"] for r in pushed].count("worker") == 1
    assert [r["role"] for r in pulled].count("worker") == 1
    assert calls(pushed, "worker") == {"PutObject": 30}
    assert calls(pushed, "agent").get("UploadPart") == 2 and "PutObject" not in calls(pushed, "agent")
    assert calls(pulled, "worker") == {"GetObject": 30}
    assert calls(pulled, "agent") == {"GetObject": 2}  # the large object, in two ranges


def test_small_objects_of_a_warm_push_and_pull_go_through_thin_relays(make_clone: Any, tmp_path: Path) -> None:
    """Once the settings are validated, the agents git-lfs starts for small objects are thin relays
    (``role: relay`` in the stats), never the full agent, and the objects arrive intact."""
    path = tmp_path / "stats.jsonl"
    env = {"LFS_S3_STATS_FILE": str(path)}  # the same in every command: it is part of the worker key
    a = make_clone("a")
    a.run("lfs", "track", "*.bin")
    small_files(a, 2)
    commit_all(a, "one")
    a.run("push", "origin", "HEAD:main", env=env)  # validates the settings in this environment
    before = len(stats(path))
    files = {f"more/{i:03d}.bin": os.urandom(3000 + i) for i in range(24)}
    for name, data in files.items():
        (a.path / name).parent.mkdir(parents=True, exist_ok=True)
        (a.path / name).write_bytes(data)
    commit_all(a, "two")
    a.run("push", "origin", "HEAD:main", env=env)
    pushed = stats(path)[before:]
    assert pushed and {r["role"] for r in pushed} == {"relay"}

    b = make_clone("b")
    b.run("lfs", "pull", "-I", "small/000.bin", env=env)  # validates b's settings
    before = len(stats(path))
    b.run("lfs", "pull", env=env)
    pulled = stats(path)[before:]
    assert pulled and {r["role"] for r in pulled} == {"relay"}
    assert tree_digests(b.path) == tree_digests(a.path)


def test_the_worker_stays_warm_between_git_commands_and_exits_when_idle(make_clone: Any) -> None:
    # Idle time well above the gap between the two pushes (> 2 s on a loaded machine, or over TLS to RGW:
    # then a second worker served the second push and the check below failed although nothing was wrong).
    a = make_clone("a", worker_idle="8")
    a.run("lfs", "track", "*.bin")
    small_files(a, 3)
    commit_all(a, "one")
    a.run("push", "origin", "HEAD:main")
    (first,) = status(a)
    socket_path = Path(first["socket"])
    small_files(a, 6)
    commit_all(a, "two")
    a.run("push", "origin", "HEAD:main")
    statuses = status(a)
    if statuses and statuses[0]["pid"] == first["pid"]:  # not idle for 8 s in between: the same process
        assert statuses[0]["sessions"] > first["sessions"]
    else:  # on a loaded machine the 8 s passed: the first worker had exited, never two at once
        assert not _alive(first["pid"]) and len(statuses) <= 1
    wait_until(lambda: not socket_path.exists(), "the idle worker to exit", limit=60)
    wait_until(lambda: not _alive(first["pid"]), "the idle worker process to end", limit=60)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:  # a zombie (the worker's parent agent has not been reaped yet) has exited
        return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"
    except OSError:
        return False


def test_shared_worker_false_moves_everything_in_the_agents(make_clone: Any, tmp_path: Path) -> None:
    a = make_clone("a", shared_worker="false")
    known_store(a)
    a.run("lfs", "track", "*.bin")
    small_files(a, 5)
    commit_all(a, "data")
    push_stats = tmp_path / "push.jsonl"
    a.run("push", "origin", "HEAD:main", env={"LFS_S3_STATS_FILE": str(push_stats)})
    assert status(a) == []
    assert not list(Path(os.environ["LFS_S3_RUNTIME_DIR"]).glob("*.sock"))
    assert calls(stats(push_stats), "agent") == {"PutObject": 5}


def test_a_killed_worker_is_replaced_by_the_next_command(make_clone: Any) -> None:
    a = make_clone("a")
    a.run("lfs", "track", "*.bin")
    small_files(a, 4)
    commit_all(a, "data")
    a.run("push", "origin", "HEAD:main")
    (first,) = status(a)
    os.kill(first["pid"], signal.SIGKILL)
    wait_until(lambda: not _alive(first["pid"]), "the worker to die")
    assert Path(first["socket"]).exists()  # a stale socket: nothing listens on it
    b = make_clone("b")
    b.run("lfs", "pull")
    assert tree_digests(b.path) == tree_digests(a.path)
    pids = {w["pid"] for w in status(b)}
    assert pids and first["pid"] not in pids


def test_a_worker_killed_mid_download_is_finished_by_the_agents(make_clone: Any, s3: MotoServer,
                                                                  bucket: str) -> None:
    a = make_clone("a")
    a.run("lfs", "track", "*.bin")
    files = small_files(a, 3)
    commit_all(a, "data")
    a.run("push", "origin", "HEAD:main")
    a.agent("worker", "stop")
    victim = next(iter(files))
    oid = json.loads(a.run("lfs", "ls-files", "--json"))["files"]
    oid = next(f["oid"] for f in oid if f["name"] == victim)
    with FaultProxy(s3.endpoint, ca_bundle=getattr(s3, "ca_bundle", None)) as proxy:
        stall = proxy.add(Fault("stall", "GET", oid, times=1, stall_seconds=120))
        b = make_clone("b", endpoint_url=proxy.endpoint)
        pull = b.popen("lfs", "pull")
        wait_until(lambda: stall.injected == 1, "the worker to start the download")
        (worker,) = status(b)
        os.kill(worker["pid"], signal.SIGKILL)
        _, err = pull.communicate(timeout=300)
    assert pull.returncode == 0, err
    assert tree_digests(b.path) == tree_digests(a.path)
    assert not [p for p in (b.path / ".git" / "lfs" / "tmp").iterdir() if p.name.startswith("lfs-s3-agent-")]


def progress_of(log: Path, name: str) -> list[int]:
    """``bytesSoFar`` of each progress line git-lfs wrote for ``name`` (``GIT_LFS_PROGRESS``: "download 1/1
    524288/1048576 NAME", git-lfs tq/meter.go)."""
    lines = log.read_text().splitlines() if log.exists() else []
    return [int(line.split()[2].split("/")[0]) for line in lines
            if line.startswith("download ") and line.split()[3:] == [name]]


def test_a_worker_killed_mid_object_never_sends_git_lfs_progress_back(make_clone: Any, s3: MotoServer,
                                                                       bucket: str, tmp_path: Path) -> None:
    """The thin relay tells the full agent it hands the object to what git-lfs has already been told."""
    a = make_clone("a")
    a.run("lfs", "track", "*.bin")
    (a.path / "warm.bin").write_bytes(os.urandom(1000))
    victim = os.urandom(4 * CHUNK)  # reads are CHUNK long: half the body is 2 progress events
    (a.path / "victim.bin").write_bytes(victim)
    commit_all(a, "data")
    a.run("push", "origin", "HEAD:main")
    with FaultProxy(s3.endpoint, ca_bundle=getattr(s3, "ca_bundle", None)) as proxy:
        b = make_clone("b", endpoint_url=proxy.endpoint)
        b.run("lfs", "pull", "-I", "warm.bin")  # the settings validated (the stamp: thin relays) and a warm worker
        stall = proxy.add(Fault("stall-body", "GET", hashlib.sha256(victim).hexdigest(), times=1,
                                stall_seconds=120))
        progress = tmp_path / "progress.log"
        pull = b.popen("lfs", "pull", "-I", "victim.bin", env={"GIT_LFS_PROGRESS": str(progress)})
        wait_until(lambda: stall.injected == 1 and progress_of(progress, "victim.bin") != [],
                   "the worker to report the first half of the object")
        (worker,) = status(b)
        os.kill(worker["pid"], signal.SIGKILL)
        _, err = pull.communicate(timeout=300)
    assert pull.returncode == 0, err
    assert (b.path / "victim.bin").read_bytes() == victim
    told = progress_of(progress, "victim.bin")
    assert 0 < told[0] < len(victim) and told[-1] == len(victim)
    # Each event's bytesSinceLast is what git-lfs adds to its total: an event that does not move bytesSoFar
    # forward (the full agent starting the object again from byte 0) counts bytes git-lfs already had.
    assert all(a < b for a, b in itertools.pairwise(told)), f"bytes told twice or sent back: {told}"


def test_an_unsafe_runtime_dir_falls_back_to_the_agents_and_says_why(make_clone: Any, tmp_path: Path) -> None:
    shared = tmp_path / "shared-run"
    shared.mkdir()
    shared.chmod(0o777)
    a = make_clone("a")
    a.run("lfs", "track", "*.bin")
    small_files(a, 3)
    commit_all(a, "data")
    proc = a.try_("push", "origin", "HEAD:main", env={"LFS_S3_RUNTIME_DIR": str(shared), "GIT_TRACE": "1"})
    assert proc.returncode == 0, proc.stderr
    assert "is not a private directory" in proc.stderr and "transferring in this process" in proc.stderr
    assert not list(shared.iterdir())
    assert stat.S_IMODE(shared.stat().st_mode) == 0o777  # left as it was
    b = make_clone("b")
    b.run("lfs", "pull")
    assert tree_digests(b.path) == tree_digests(a.path)


def test_debug_logging_keeps_the_worker_in_use(make_clone: Any, tmp_path: Path) -> None:
    """The worker's own log lines travel as frames: they are never taken for its replies (issue 15)."""
    a = make_clone("a")
    known_store(a)
    a.run("lfs", "track", "*.bin")
    files = small_files(a, 3)
    commit_all(a, "data")
    debug = {"LFS_S3_LOG_LEVEL": "debug", "LFS_S3_LOG_FILE": str(tmp_path / "agents.log")}
    a.run("push", "origin", "HEAD:main", env=debug)
    (worker,) = status(a)
    assert worker["requests"].get("PutObject") == len(files)
    log = (tmp_path / "agents.log").read_text()
    assert "handing small objects to the shared worker" in log and "shared worker unavailable" not in log
    b = make_clone("b")
    b.run("lfs", "pull", env=debug)
    assert tree_digests(b.path) == tree_digests(a.path)
    assert [w["requests"].get("GetObject") for w in status(b)] == [len(files)]
