"""The thin relay (issue 15): small objects reach the shared worker without the full agent's start.

Counted, never timed: which Python programs each agent session starts (a stand-in interpreter logs
every start), which modules the thin relay imports, and that everything it should not handle (a large
object, a worker gone mid-session, another environment) reaches the full agent in the same process
with nothing lost. The endpoint is 127.0.0.1:9 (nothing listens): the worker answers
the invalid oid ``zz`` with code 40 before any S3 request, which is enough to see who answered.
"""

from __future__ import annotations

import json
import os
import shlex
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

from lfs_s3_agent import launcher, rendezvous, thinrelay
from lfs_s3_agent.protocol.framing import MAX_LINE
from lfs_s3_agent.unreachable import NOTE, UnreachableMark
from tests.functional.test_launcher import (
    BAD_DOWNLOAD,
    INIT,
    TERMINATE,
    counting_python,
    install,
    session,
    starts,
)

BIG_DOWNLOAD = b'{"event":"download","oid":"zz","size":%d,"action":null}\n' % (16 * 1024 * 1024 + 1)


def thin_starts(log: Path) -> list[str]:
    return [line for line in starts(log) if "lfs_s3_agent.thinrelay" in line]


def full_starts(log: Path) -> list[str]:
    """Full agents started for a transfer request (not the one that validated the settings)."""
    return [line for line in starts(log) if line.startswith("-P -m lfs_s3_agent serve") and "--answered-init" in line]


def validated(repo: Path, tmp_path: Path) -> Path:
    python, log = counting_python(tmp_path)
    install(repo, python)
    session(repo, INIT + TERMINATE)  # validates the settings: the stamp
    assert len(starts(log)) == 1
    return log


def test_small_objects_go_through_the_thin_relay_alone(repo_dir: Path, tmp_path: Path) -> None:
    log = validated(repo_dir, tmp_path)
    replies, _ = session(repo_dir, INIT + BAD_DOWNLOAD * 3 + TERMINATE)
    assert [r.get("error", {}).get("code") for r in replies[1:]] == [40, 40, 40]  # type: ignore[union-attr]
    assert len(thin_starts(log)) == 1 and full_starts(log) == []
    assert len(rendezvous.workers(rendezvous.runtime_dir())) == 1  # it answered them


def test_the_thin_relay_imports_nothing_heavy(repo_dir: Path, tmp_path: Path) -> None:
    validated(repo_dir, tmp_path)
    _, stderr = session(repo_dir, INIT + BAD_DOWNLOAD + TERMINATE, env={"PYTHONPROFILEIMPORTTIME": "1"})
    modules = {line.rsplit("|", 1)[-1].strip() for line in stderr.splitlines() if line.startswith("import time:")}
    assert "lfs_s3_agent.thinrelay" in modules
    heavy = {"pydantic", "botocore", "logging", "pathlib", "tempfile", "dataclasses", "subprocess", "argparse",
             "lfs_s3_agent.settings", "lfs_s3_agent.cli", "lfs_s3_agent.agent", "lfs_s3_agent.lfsdirs"}
    assert modules & heavy == set()


def test_a_large_object_goes_to_the_full_agent_with_the_rest_of_the_session(repo_dir: Path, tmp_path: Path) -> None:
    log = validated(repo_dir, tmp_path)
    replies, _ = session(repo_dir, INIT + BAD_DOWNLOAD + BIG_DOWNLOAD + BAD_DOWNLOAD + TERMINATE)
    assert [r.get("error", {}).get("code") for r in replies[1:]] == [40, 40, 40]  # type: ignore[union-attr]
    (full,) = full_starts(log)
    assert len(thin_starts(log)) == 1 and "--answered-init" in full and '"size":16777217' in full


def test_the_thin_relay_logs_where_and_as_the_full_agent_would(repo_dir: Path, tmp_path: Path) -> None:
    log = validated(repo_dir, tmp_path)
    agent_log = tmp_path / "agent.log"
    env = {"LFS_S3_LOG_LEVEL": "debug", "LFS_S3_LOG_FILE": str(agent_log)}
    # LFS_S3_* variables are part of the worker key (a debug agent gets a debug worker): the first session
    # in this environment finds the stamp's worker is not its own, goes to the full agent, which repoints
    # the stamp; the next one is the thin relay's alone.
    session(repo_dir, INIT + BAD_DOWNLOAD + TERMINATE, env=env)
    assert len(thin_starts(log)) == 1 and len(full_starts(log)) == 1
    agent_log.unlink()
    replies, stderr = session(repo_dir, INIT + BAD_DOWNLOAD + TERMINATE, env=env)
    assert replies[1]["error"]["code"] == 40  # type: ignore[index]
    assert len(thin_starts(log)) == 2 and len(full_starts(log)) == 1
    lines = agent_log.read_text().splitlines()
    assert any(" DEBUG handing small objects to the shared worker (pid " in line for line in lines)
    assert any(" DEBUG init: " in line for line in lines)  # the worker's own debug line, relayed
    assert all(line.startswith("lfs-s3-agent[") for line in lines) and "DEBUG" not in stderr


def test_a_changed_include_file_is_validated_again(repo_dir: Path, tmp_path: Path) -> None:
    """The stamp lists every file git config read (``include.path`` too): the thin relay trusts the
    stamp's settings, so a bucket changed in an included file must send the launcher to Python."""
    included = tmp_path / "team.gitconfig"
    included.write_text('[lfs-s3-agent]\n\tregion = eu-west-1\n')
    subprocess.run(["git", "config", "include.path", str(included)], cwd=repo_dir, check=True)
    past = time.time() - 10  # written a while ago (stamps here are dated 2 s early: install's margin)
    os.utime(included, (past, past))
    log = validated(repo_dir, tmp_path)
    listed = (repo_dir / ".git" / launcher.STAMP_NAME).read_text().splitlines()[launcher.STAMP_HEAD:]
    assert any(line.endswith(f"\t{included}") for line in listed)
    session(repo_dir, INIT + TERMINATE)
    assert len(starts(log)) == 1  # the stamp holds
    included.write_text('[lfs-s3-agent]\n\tregion = not a region\n')
    replies, _ = session(repo_dir, INIT + TERMINATE)
    assert replies[0]["error"]["code"] == 32 and "not a region" in replies[0]["error"]["message"]  # type: ignore[index]
    included.unlink()  # gone: also a change
    session(repo_dir, INIT + TERMINATE)
    assert len(starts(log)) == 3 and all("--stamp " in line for line in starts(log))


def test_an_include_file_created_after_the_validation_is_seen(repo_dir: Path, tmp_path: Path) -> None:
    """An ``include.path`` (here relative, as git resolves it: to the including file's directory) naming a
    file that does not exist yet is listed as absent: created later, even dated in the past (``cp -p``, an
    unpacked archive), it sends the launcher to Python for the init. Before, a file git config had not read
    was not in the stamp at all, and its new settings went unseen while the stamp held."""
    subprocess.run(["git", "config", "include.path", "../team.gitconfig"], cwd=repo_dir, check=True)
    log = validated(repo_dir, tmp_path)
    included = repo_dir / "team.gitconfig"
    listed = (repo_dir / ".git" / launcher.STAMP_NAME).read_text().splitlines()[launcher.STAMP_HEAD:]
    assert f"absent\t{repo_dir / '.git' / '..' / 'team.gitconfig'}" in listed  # as git opens it
    session(repo_dir, INIT + BAD_DOWNLOAD + TERMINATE)
    assert len(starts(log)) == 2 and len(thin_starts(log)) == 1  # the stamp holds while it is missing
    included.write_text('[lfs-s3-agent]\n\tregion = not a region\n')
    past = time.time() - 3600
    os.utime(included, (past, past))
    replies, _ = session(repo_dir, INIT + TERMINATE)
    assert replies[0]["error"]["code"] == 32 and "not a region" in replies[0]["error"]["message"]  # type: ignore[index]
    assert len(starts(log)) == 3


def test_an_include_reached_through_a_symlinked_directory_is_watched_where_git_reads_it(
        repo_dir: Path, tmp_path: Path) -> None:
    """``link/main.cfg`` includes ``../team.gitconfig``: git opens ``link/../team.gitconfig``, which the kernel
    resolves through the symlink (``real/team.gitconfig``), not the ``team.gitconfig`` beside ``link``
    (review of d7cbd7d: paths were normalised as text)."""
    real = tmp_path / "real" / "sub"
    real.mkdir(parents=True)
    (tmp_path / "home").mkdir()
    os.symlink(real, tmp_path / "home" / "link")
    (real / "main.cfg").write_text("[include]\n\tpath = ../team.gitconfig\n")
    team = tmp_path / "real" / "team.gitconfig"
    team.write_text("[lfs-s3-agent]\n\tregion = eu-west-1\n")
    past = time.time() - 10
    for path in (real / "main.cfg", team):
        os.utime(path, (past, past))
    subprocess.run(["git", "config", "include.path", str(tmp_path / "home" / "link" / "main.cfg")],
                   cwd=repo_dir, check=True)
    log = validated(repo_dir, tmp_path)
    session(repo_dir, INIT + TERMINATE)
    assert len(starts(log)) == 1  # the stamp holds
    team.write_text("[lfs-s3-agent]\n\tregion = not a region\n")
    replies, _ = session(repo_dir, INIT + TERMINATE)
    assert replies[0]["error"]["code"] == 32 and "not a region" in replies[0]["error"]["message"]  # type: ignore[index]


class Session:
    """One agent as git-lfs runs it, fed a line at a time."""

    def __init__(self, repo: Path, env: dict[str, str] | None = None) -> None:
        def config(key: str) -> str:
            return subprocess.run(["git", "config", key], cwd=repo, capture_output=True, text=True,
                                  check=True).stdout.strip()

        command = f"{shlex.quote(config('lfs.customtransfer.lfs-s3-agent.path'))} " \
                  f"{config('lfs.customtransfer.lfs-s3-agent.args')}"
        self.proc = subprocess.Popen(["sh", "-c", command], cwd=repo, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, env={**os.environ, **(env or {})})

    def ask(self, line: bytes) -> dict[str, object]:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write(line)
        self.proc.stdin.flush()
        reply: dict[str, object] = json.loads(self.proc.stdout.readline())
        return reply

    def end(self) -> str:
        _, err = self.proc.communicate(TERMINATE, timeout=60)
        assert self.proc.returncode == 0, err
        return err.decode(errors="replace")


def test_a_worker_gone_mid_session_hands_the_rest_to_the_full_agent(repo_dir: Path, tmp_path: Path) -> None:
    log = validated(repo_dir, tmp_path)
    agent = Session(repo_dir)
    assert agent.ask(INIT) == {}
    first = agent.ask(BAD_DOWNLOAD)
    assert first["error"]["code"] == 40  # type: ignore[index]
    (worker,) = rendezvous.workers(rendezvous.runtime_dir())
    os.kill(int(worker["pid"]), signal.SIGKILL)  # `worker stop` would wait for this agent's session to end
    second = agent.ask(BAD_DOWNLOAD)  # the relay finds the connection closed: the full agent answers
    assert second["oid"] == "zz" and second["error"]["code"] == 40  # type: ignore[index]
    agent.end()
    (full,) = full_starts(log)
    assert '--first-line {"event":"download","oid":"zz"' in full
    assert not list((repo_dir / ".git" / "lfs" / "tmp").glob("lfs-s3-agent-*"))  # no temporary file left


def test_an_unreachable_mark_fails_requests_at_once(repo_dir: Path, tmp_path: Path) -> None:
    validated(repo_dir, tmp_path)
    stamp = (repo_dir / ".git" / launcher.STAMP_NAME).read_text().splitlines()
    agent = Session(repo_dir)
    assert agent.ask(INIT) == {}  # the agent started before the mark: it honours it
    UnreachableMark.at(stamp[6], started=0).record("could not connect to the endpoint URL")
    reply = agent.ask(BAD_DOWNLOAD)
    assert reply["error"]["code"] == 47 and str(reply["error"]["message"]).endswith(NOTE)  # type: ignore[index]
    agent.end()
    assert rendezvous.workers(rendezvous.runtime_dir()) == []  # nothing was relayed


def test_stdin_lines_hand_over_what_was_read() -> None:
    r, w = os.pipe()
    os.write(w, b'{"a":1}\n\n{"b":2}\n{"c":')
    saved = os.dup(0)
    os.dup2(r, 0)
    try:
        dropped: list[str] = []
        lines = thinrelay.StdinLines(dropped.append)
        assert lines.next() == b'{"a":1}'
        os.write(w, b"3}\n")
        assert lines.rest() == [b'{"b":2}', b'{"c":3}']  # a partial line is read to its end first
        # An over-long line is dropped whole, and said so (written from a thread: it overfills the pipe).
        writer = threading.Thread(target=lambda: (os.write(w, b"x" * (MAX_LINE + 10) + b'yyy\n{"d":4}\n'),
                                                  os.close(w)))
        writer.start()
        assert lines.next() == b'{"d":4}' and len(dropped) == 1
        assert lines.next() is None
        writer.join()
    finally:
        os.dup2(saved, 0)
        os.close(saved)
        os.close(r)


def test_process_start_is_before_now_and_recent() -> None:
    started = thinrelay.process_started()
    assert time.time() - 3600 < started <= time.time()
    if sys.platform == "linux":  # from /proc: this test process started before this test ran
        assert started < time.time() - 0.001
