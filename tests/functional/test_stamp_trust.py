"""What the launcher and the thin relay may trust, and what they must not (a review of issue 15's thin relay).

The thin relay trusts the stamp's settings, so the stamp must notice every change of where they come
from; nothing in the work tree may run as the agent; no request line may stop an agent. Each test
drives the launcher as git-lfs does (``sh -c '<path> serve'``) in a throwaway repository.
"""

from __future__ import annotations

import hashlib
import json
import os
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from lfs_s3_agent import launcher, rendezvous
from tests.faultproxy import Fault, FaultProxy
from tests.functional.test_launcher import INIT, TERMINATE, install, session, settle
from tests.functional.test_thinrelay import BAD_DOWNLOAD
from tests.polling import wait_until
from tests.s3server import MotoServer

INIT_UP = INIT.replace(b'"download"', b'"upload"')


def git(repo: Path, *args: str) -> str:
    return subprocess.run(["git", *args], cwd=repo, check=True, capture_output=True, text=True).stdout


def upload_line(path: Path) -> bytes:
    data = path.read_bytes()
    oid = hashlib.sha256(data).hexdigest()
    return json.dumps({"event": "upload", "oid": oid, "size": len(data), "path": str(path),
                       "action": None}, separators=(",", ":")).encode() + b"\n"


# -- 1. Code from the repository's work tree runs in every agent --------------------------------------

def test_a_committed_lfs_s3_agent_package_in_the_work_tree_is_not_imported(repo_dir: Path, tmp_path: Path) -> None:
    """git-lfs runs agents with the work tree as cwd; ``python -S -c`` puts '' (the cwd) first on
    sys.path, so ``from lfs_s3_agent.thinrelay import main`` imports a package the repository commits."""
    install(repo_dir, sys.executable)
    session(repo_dir, INIT + TERMINATE)  # validates: the stamp
    evil = repo_dir / "lfs_s3_agent"
    evil.mkdir()
    pwned = tmp_path / "pwned"
    (evil / "__init__.py").write_text("")
    code = f"open({str(pwned)!r}, 'w').write('ran')\nraise SystemExit(0)\n"
    (evil / "thinrelay.py").write_text(code)
    (evil / "__main__.py").write_text(code)
    session(repo_dir, INIT + BAD_DOWNLOAD + TERMINATE)
    assert not pwned.exists(), "code committed in the repository ran inside the agent"


# -- 2. Settings read from HEAD (file not in the work tree): a warm worker of the old settings ----------

@pytest.fixture(scope="module")
def moto() -> MotoServer:
    with MotoServer() as server:
        yield server


def test_settings_from_head_after_a_branch_switch_do_not_send_small_objects_to_the_old_bucket(
        repo_dir: Path, tmp_path: Path, moto: MotoServer) -> None:
    """With ``.lfs-s3-agent.toml`` not in the work tree (sparse checkout, ``clone --no-checkout``), settings
    come from ``HEAD``; the stamp does not notice HEAD moving, and the thin relay trusts the stamp's settings
    digest: a small object goes to the warm worker of the previous branch's bucket."""
    client = moto.client()
    for name in ("bucket-main", "bucket-other"):
        client.create_bucket(Bucket=name)
    toml = repo_dir / ".lfs-s3-agent.toml"
    (repo_dir / "data").mkdir()
    (repo_dir / "data" / "keep").write_text("x")
    toml.write_text(f'bucket = "bucket-main"\nendpoint_url = "{moto.endpoint}"\n')
    git(repo_dir, "add", ".")
    git(repo_dir, "commit", "-qm", "main")
    git(repo_dir, "checkout", "-qb", "other")
    toml.write_text(f'bucket = "bucket-other"\nendpoint_url = "{moto.endpoint}"\n')
    git(repo_dir, "commit", "-qam", "other")
    git(repo_dir, "checkout", "-q", "main")
    subprocess.run([sys.executable, "-m", "lfs_s3_agent", "install"], cwd=repo_dir, check=True, capture_output=True)
    git(repo_dir, "sparse-checkout", "set", "--no-cone", "/data/")  # the settings file leaves the work tree
    assert not toml.exists()
    settle(repo_dir)
    small = tmp_path / "small"
    small.write_bytes(b"first object\n")
    replies, err = session(repo_dir, INIT_UP + upload_line(small) + TERMINATE)  # validates; starts the worker
    assert "error" not in replies[-1], err
    wait_until(lambda: len(rendezvous.workers(rendezvous.runtime_dir())) == 1, what="the worker")

    git(repo_dir, "checkout", "-q", "other")  # HEAD's settings file now names bucket-other
    assert not toml.exists()
    config = subprocess.run([sys.executable, "-m", "lfs_s3_agent", "config", "--json"], cwd=repo_dir,
                            check=True, capture_output=True, text=True).stdout
    assert "bucket-other" in config  # what the full agent (and `config`) resolve now
    second = tmp_path / "second"
    second.write_bytes(b"second object, pushed from branch other\n")
    replies, err = session(repo_dir, INIT_UP + upload_line(second) + TERMINATE)
    assert "error" not in replies[-1], err
    in_main = [o["Key"] for o in client.list_objects_v2(Bucket="bucket-main").get("Contents", [])]
    in_other = [o["Key"] for o in client.list_objects_v2(Bucket="bucket-other").get("Contents", [])]
    oid = hashlib.sha256(second.read_bytes()).hexdigest()
    assert any(oid in key for key in in_other), f"went to bucket-main instead: {in_main}"


def agent_command(repo: Path) -> str:
    return shlex.quote(git(repo, "config", "lfs.customtransfer.lfs-s3-agent.path").strip()) + " serve"


# -- 3. A malformed request line the thin relay hands to the full agent in argv ----------------------

def test_a_line_with_a_nul_byte_does_not_kill_the_agent(repo_dir: Path) -> None:
    """Lines go to the full agent as ``--first-line`` arguments: a NUL cannot be in argv (ValueError)."""
    install(repo_dir, sys.executable)
    session(repo_dir, INIT + TERMINATE)
    proc = subprocess.run(["sh", "-c", agent_command(repo_dir)], cwd=repo_dir,
                          input=INIT + BAD_DOWNLOAD + b'{"x":"\x00"}\n' + BAD_DOWNLOAD
                          + TERMINATE, capture_output=True, timeout=60)
    replies = [json.loads(line) for line in proc.stdout.splitlines()]
    assert proc.returncode == 0 and len(replies) == 3, proc.stderr.decode()[-2000:]


def test_a_long_malformed_line_does_not_kill_the_agent(repo_dir: Path) -> None:
    """A line under MAX_LINE (1 MiB) but over the kernel's 128 KiB argv string limit: E2BIG at execv."""
    install(repo_dir, sys.executable)
    session(repo_dir, INIT + TERMINATE)
    long_line = b'{"event":"bogus","pad":"' + b"x" * 200_000 + b'"}\n'
    proc = subprocess.run(["sh", "-c", agent_command(repo_dir)], cwd=repo_dir,
                          input=INIT + BAD_DOWNLOAD + long_line + BAD_DOWNLOAD
                          + TERMINATE, capture_output=True, timeout=60)
    replies = [json.loads(line) for line in proc.stdout.splitlines()]
    assert proc.returncode == 0 and len(replies) == 3, proc.stderr.decode()[-2000:]


# -- 4. A signal mid-download: no temporary file left behind -----------------------------------------

@pytest.mark.parametrize("signum", ["SIGTERM", "SIGINT", "SIGHUP"])  # SIGHUP: a closed terminal or ssh session
def test_a_signal_mid_download_leaves_no_temporary_file(repo_dir: Path, moto: MotoServer, signum: str) -> None:
    import signal

    data = os.urandom(6 << 20)
    oid = hashlib.sha256(data).hexdigest()
    client = moto.client()
    client.create_bucket(Bucket="bucket-signal")
    client.put_object(Bucket="bucket-signal", Key=f"{oid[:2]}/{oid[2:4]}/{oid}", Body=data)
    tmp = repo_dir / ".git" / "lfs" / "tmp"
    # The worker's GET of the object stalls at the proxy: the download is in flight when the signal comes.
    with FaultProxy(moto.endpoint, faults=[Fault("stall", method="GET", path=oid, stall_seconds=60)]) as proxy:
        install(repo_dir, sys.executable, "--bucket", "bucket-signal", "--endpoint-url", proxy.endpoint)
        session(repo_dir, INIT + TERMINATE)
        session(repo_dir, INIT + BAD_DOWNLOAD + TERMINATE)  # a warm worker
        wait_until(lambda: len(rendezvous.workers(rendezvous.runtime_dir())) == 1, what="the worker")
        agent = subprocess.Popen(["sh", "-c", "exec " + agent_command(repo_dir)], cwd=repo_dir,
                                 stdin=subprocess.PIPE, stdout=subprocess.PIPE)
        assert agent.stdin is not None and agent.stdout is not None
        agent.stdin.write(INIT)
        agent.stdin.flush()
        assert json.loads(agent.stdout.readline()) == {}
        agent.stdin.write(b'{"event":"download","oid":"%s","size":%d,"action":null}\n' % (oid.encode(), len(data)))
        agent.stdin.flush()
        wait_until(lambda: any(tmp.glob("lfs-s3-agent-*")), what="the download's temporary file")
        os.kill(agent.pid, getattr(signal, signum))  # the sh launcher exec'd the thin relay: same pid
        agent.wait(timeout=30)
    left = list(tmp.glob("*"))
    assert left == [], f"left after {signum}: {left}"


# -- 5. A config source replaced by an older file: the stamp still holds ---------------------------

def _old(*paths: Path) -> None:
    past = __import__("time").time() - 100
    for path in paths:
        os.utime(path, (past, past), follow_symlinks=True)


def _replaced_settings_fail_the_next_request_and_then_init(repo: Path) -> None:
    """What a replaced settings file (no newer mtime) does: the launcher cannot see it at init, the thin relay
    sees it at the first request (the file's identity changed), removes the stamp and hands the session to the
    full agent, which fails each request with code 32; the next command fails at init."""
    stamp = repo / ".git" / launcher.STAMP_NAME
    replies, _ = session(repo, INIT + BAD_DOWNLOAD + TERMINATE)
    assert replies[0] == {} and replies[1]["error"]["code"] == 32, replies  # type: ignore[index]
    assert not stamp.exists()
    replies, _ = session(repo, INIT + TERMINATE)
    assert replies[0].get("error", {}).get("code") == 32, replies  # type: ignore[union-attr]


def test_a_settings_symlink_pointed_elsewhere_is_validated_again(repo_dir: Path) -> None:
    """``[ f -nt stamp ]`` follows the symlink: re-pointing ``.lfs-s3-agent.toml`` (a checkout of a commit
    that changes the link) at an older file is not seen by the launcher."""
    (repo_dir / "a.toml").write_text('bucket = "bucket-a"\n')
    (repo_dir / "b.toml").write_text('bucket = "b"\n')  # not a bucket name: must fail with 32
    toml = repo_dir / ".lfs-s3-agent.toml"
    toml.symlink_to("a.toml")
    install(repo_dir, sys.executable)
    subprocess.run(["git", "config", "--unset", "lfs-s3-agent.bucket"], cwd=repo_dir, check=True)
    _old(repo_dir / "a.toml", repo_dir / "b.toml", repo_dir / ".git" / "config")
    assert session(repo_dir, INIT + TERMINATE)[0] == [{}]  # validated: the stamp
    toml.unlink()
    toml.symlink_to("b.toml")
    _replaced_settings_fail_the_next_request_and_then_init(repo_dir)


def test_a_settings_file_moved_into_place_is_validated_again(repo_dir: Path, tmp_path: Path) -> None:
    """``mv`` keeps the file's mtime (so do ``cp -p``, ``rsync -t``, ``tar x``): an older file moved over
    the settings file is not newer than the stamp."""
    toml = repo_dir / ".lfs-s3-agent.toml"
    toml.write_text('bucket = "bucket-a"\n')
    install(repo_dir, sys.executable)
    subprocess.run(["git", "config", "--unset", "lfs-s3-agent.bucket"], cwd=repo_dir, check=True)
    spare = tmp_path / "spare.toml"
    spare.write_text('bucket = "b"\n')
    _old(toml, spare, repo_dir / ".git" / "config")
    assert session(repo_dir, INIT + TERMINATE)[0] == [{}]
    os.replace(spare, toml)
    _replaced_settings_fail_the_next_request_and_then_init(repo_dir)


# -- 6. restamp_worker from an agent whose settings are older than the stamp ----------------------------

def test_an_older_agent_does_not_repoint_a_newer_stamp_at_its_old_settings(repo_dir: Path, tmp_path: Path) -> None:
    """An agent that resolved its settings before a newer validation re-points that newer stamp (keeping its
    date and signature) at its own, older, worker: the launcher trusts it and the thin relay sends small
    objects to the worker of settings that no longer hold."""
    from tests.functional.test_thinrelay import Session

    install(repo_dir, sys.executable)
    session(repo_dir, INIT_UP + TERMINATE)  # stamp 1: bucket some-bucket
    session(repo_dir, INIT + BAD_DOWNLOAD + TERMINATE)  # its worker, warm (as after any recent command)
    wait_until(lambda: len(rendezvous.workers(rendezvous.runtime_dir())) == 1, what="the worker")
    (old_worker,) = rendezvous.workers(rendezvous.runtime_dir())
    old = Session(repo_dir)
    assert old.ask(INIT_UP) == {}  # answered from stamp 1
    missing = tmp_path / "missing"
    big = b'{"event":"upload","oid":"%s","size":%d,"path":"%s","action":null}\n' % (
        b"a" * 64, 17 << 20, str(missing).encode())
    assert old.ask(big)["error"]["code"] == 41  # type: ignore[index]  # the full agent: resolved some-bucket
    subprocess.run(["git", "config", "lfs-s3-agent.bucket", "other-bucket"], cwd=repo_dir, check=True)
    settle(repo_dir)  # (this launcher dates stamps 2 s early; install's probe makes it 50 ms on Linux)
    session(repo_dir, INIT_UP + TERMINATE)  # stamp 2: other-bucket
    stamp = repo_dir / ".git" / launcher.STAMP_NAME
    validated = stamp.read_text().splitlines()
    small = big.replace(b"%d" % (17 << 20), b"1").replace(b"a" * 64, b"b" * 64)
    assert old.ask(small)["error"]["code"] == 41  # type: ignore[index]  # relayed: connect() restamps
    old.end()
    now = stamp.read_text().splitlines()
    assert now[0] == validated[0]  # the launcher still trusts it...
    # What follows: the next command's thin relays go to the some-bucket worker the old agent started.
    before = {w["key"]: w["sessions"] for w in rendezvous.workers(rendezvous.runtime_dir())}
    session(repo_dir, INIT_UP + small + TERMINATE)
    after = {w["key"]: w["sessions"] for w in rendezvous.workers(rendezvous.runtime_dir())}
    served = [key for key in after if after[key] != before.get(key)]
    print("stamp socket", now[1], "served by", served, "old worker", old_worker["key"])
    assert served != [old_worker["key"]], "a small object of other-bucket's settings went to some-bucket's worker"
    assert now[4] == validated[4], "the stamp now holds the settings digest of some-bucket, not other-bucket"


def test_the_launcher_starts_no_worker_in_a_runtime_directory_it_does_not_own(repo_dir: Path, tmp_path: Path) -> None:
    """The stamp names a socket in the runtime directory as it was at the validation; if that directory was
    swept and made again by another user, the launcher must not make its marker or append its worker's log
    there (through their symlinks)."""
    if os.geteuid() != 0:
        pytest.skip("needs root to give the runtime directory to another user (CI runs as root)")
    install(repo_dir, sys.executable)
    session(repo_dir, INIT + TERMINATE)  # the stamp, naming a socket in the runtime directory
    runtime = rendezvous.runtime_dir()
    os.chown(runtime, 65534, 65534)
    try:
        replies, _ = session(repo_dir, INIT + BAD_DOWNLOAD + TERMINATE)
    finally:
        os.chown(runtime, 0, 0)
    assert replies[1]["oid"] == "zz" and "error" in replies[1]  # answered, by an agent of its own
    assert [p.name for p in runtime.iterdir()] == []  # no marker, no log, no worker
