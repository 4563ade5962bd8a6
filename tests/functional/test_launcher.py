"""The launcher git-lfs runs and the pre-push hook (issue 15): counted, never timed.

Agents that get no request must not start Python once the settings are validated, Python agents
must not import anything heavy to answer init, settings changed since the stamp must still fail
init with code 32, and the hook starts no Python in a clone without link records.
"""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
import time
from pathlib import Path

from lfs_s3_agent import launcher, rendezvous
from tests.polling import wait_until

INIT = b'{"event":"init","operation":"download","remote":"origin","concurrent":true,"concurrenttransfers":8}\n'
TERMINATE = b'{"event":"terminate"}\n'
BAD_DOWNLOAD = b'{"event":"download","oid":"zz","size":1,"action":null}\n'
HEAVY = ("pydantic", "botocore", "boto3", "urllib3", "lfs_s3_agent.protocol.messages")


def counting_python(tmp_path: Path) -> tuple[str, Path]:
    """A stand-in interpreter that records each start and then runs the real one."""
    log = tmp_path / "python-starts.log"
    fake = tmp_path / "counting python"
    # One line per start, in one write (a worker may start at the same moment as an agent), and the
    # thin relay's ``-c`` program, which spans several lines, on it.
    fake.write_text(f'#!/bin/sh\nline=$(printf "%s" "$*" | tr "\\n" " ")\n'
                    f'printf "%s\\n" "$line" >> {shlex.quote(str(log))}\n'
                    f'exec {shlex.quote(sys.executable)} "$@"\n')
    fake.chmod(0o755)
    return str(fake), log


def starts(log: Path) -> list[str]:
    """Python starts for agents (the background early start of the shared worker is counted apart)."""
    return [line for line in all_starts(log) if "worker run" not in line]


def all_starts(log: Path) -> list[str]:
    return log.read_text().splitlines() if log.exists() else []


def install(repo: Path, python: str, *flags: str) -> None:
    subprocess.run([sys.executable, "-m", "lfs_s3_agent", "install", "--bucket", "some-bucket",
                    "--endpoint-url", "http://127.0.0.1:9", *flags], cwd=repo, check=True, capture_output=True)
    path = repo / ".git" / "lfs-s3-agent" / "counting agent.sh"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(launcher.launcher_script(python))
    path.chmod(0o755)
    subprocess.run(["git", "config", "lfs.customtransfer.lfs-s3-agent.path", str(path)], cwd=repo, check=True)
    settle(repo)


def settle(repo: Path) -> None:
    """Date every config source 10 s back, as if written a while ago (the stamp is dated 2 s early)."""
    past = time.time() - 10
    for path in (repo / ".git" / "config", Path.home() / ".gitconfig", repo / ".lfs-s3-agent.toml",
                 repo / ".git" / "HEAD"):
        if path.exists():
            os.utime(path, (past, past))


def session(cwd: Path, data: bytes, env: dict[str, str] | None = None) -> tuple[list[dict[str, object]], str]:
    """One agent started the way git-lfs starts it: ``sh -c '<path> <args>'``."""
    def config(key: str) -> str:
        return subprocess.run(["git", "config", key], cwd=cwd, capture_output=True, text=True,
                              check=True).stdout.strip()

    command = f"{shlex.quote(config('lfs.customtransfer.lfs-s3-agent.path'))} " \
              f"{config('lfs.customtransfer.lfs-s3-agent.args')}"
    proc = subprocess.run(["sh", "-c", command], cwd=cwd, input=data, capture_output=True, timeout=60,
                          env={**os.environ, **(env or {})})
    assert proc.returncode == 0, proc.stderr
    return [json.loads(line) for line in proc.stdout.splitlines()], proc.stderr.decode(errors="replace")


def test_install_points_git_lfs_at_the_launcher(repo_dir: Path) -> None:
    subprocess.run([sys.executable, "-m", "lfs_s3_agent", "install", "--bucket", "some-bucket"], cwd=repo_dir,
                   check=True, capture_output=True)
    path = subprocess.run(["git", "config", "lfs.customtransfer.lfs-s3-agent.path"], cwd=repo_dir, text=True,
                          capture_output=True, check=True).stdout.strip()
    assert path == str(launcher.launcher_path()) and launcher.LAUNCHER_MARK in Path(path).read_text()
    replies, _ = session(repo_dir, INIT + TERMINATE)
    assert replies == [{}]


def test_idle_agents_start_no_python_once_the_settings_are_validated(repo_dir: Path, tmp_path: Path) -> None:
    python, log = counting_python(tmp_path)
    install(repo_dir, python)
    sub = repo_dir / "a sub dir"
    sub.mkdir()
    assert session(sub, INIT + TERMINATE)[0] == [{}]
    assert len(starts(log)) == 1 and "--stamp" in starts(log)[0]  # validated once, in Python
    for data in (INIT + TERMINATE, INIT, INIT + b"\n" + TERMINATE):
        assert session(sub, data)[0] == [{}]
    assert len(starts(log)) == 1  # then answered by the launcher alone


def test_the_next_agent_finds_the_stamp_when_the_first_one_has_answered_init(repo_dir: Path,
                                                                             tmp_path: Path) -> None:
    python, log = counting_python(tmp_path)
    install(repo_dir, python)
    path = subprocess.run(["git", "config", "lfs.customtransfer.lfs-s3-agent.path"], cwd=repo_dir, text=True,
                          capture_output=True, check=True).stdout.strip()
    first = subprocess.Popen(["sh", "-c", f"{shlex.quote(path)} serve"], cwd=repo_dir, stdin=subprocess.PIPE,
                             stdout=subprocess.PIPE)
    assert first.stdin is not None and first.stdout is not None
    try:
        first.stdin.write(INIT)
        first.stdin.flush()
        assert json.loads(first.stdout.readline()) == {}
        # git-lfs starts the next agent now, while the first one still runs: it must find the stamp.
        assert (repo_dir / ".git" / launcher.STAMP_NAME).exists()
        assert session(repo_dir, INIT + TERMINATE)[0] == [{}]
        assert len(starts(log)) == 1  # one validation in Python, not one per agent started meanwhile
    finally:
        first.stdin.close()
        first.wait(timeout=30)


def test_an_include_whose_file_name_is_not_utf8_gets_a_stamp(repo_dir: Path, tmp_path: Path) -> None:
    """git config includes a file whose name is not UTF-8. Listing the files the settings come from
    (``gitrepo.config_files``, ``--show-origin``) raised UnicodeDecodeError: since 150db54 that cost the init
    reply (review, b3b8276), then no stamp was written and every later agent validated the settings in
    Python again. The name now travels as its bytes: a stamp, and a change to that file is still seen."""
    python, log = counting_python(tmp_path)
    install(repo_dir, python)
    include = os.path.join(os.fsencode(tmp_path), b"included-\xe9.gitconfig")
    with open(include, "wb") as fh:
        fh.write(b"[user]\n\tname = someone\n")
    with open(repo_dir / ".git" / "config", "ab") as fh:
        fh.write(b"[include]\n\tpath = " + include + b"\n")
    past = time.time() - 10
    os.utime(include, (past, past))
    settle(repo_dir)
    replies, _ = session(repo_dir, INIT + TERMINATE)
    assert replies == [{}] and len(starts(log)) == 1
    assert include in (repo_dir / ".git" / launcher.STAMP_NAME).read_bytes()
    replies, _ = session(repo_dir, INIT + TERMINATE)
    assert replies == [{}] and len(starts(log)) == 1  # answered from the stamp
    os.utime(include)  # the included file changed: validated again
    replies, _ = session(repo_dir, INIT + TERMINATE)
    assert replies == [{}] and len(starts(log)) == 2


def test_git_config_from_the_environment_is_part_of_the_signature(repo_dir: Path, tmp_path: Path) -> None:
    """``GIT_CONFIG_COUNT`` with ``GIT_CONFIG_KEY_<n>``/``GIT_CONFIG_VALUE_<n>`` is configuration too (git-config(1)
    ENVIRONMENT): another value is another signature, validated in Python (review of d7cbd7d: only the count
    was in it). A count that is not a number, or over 9999, leaves it to Python."""
    python, log = counting_python(tmp_path)
    install(repo_dir, python)
    (tmp_path / "bad.gitconfig").write_text("[lfs-s3-agent]\n\tregion = not a region\n")
    env = {"GIT_CONFIG_COUNT": "1", "GIT_CONFIG_KEY_0": "user.name", "GIT_CONFIG_VALUE_0": "someone"}
    for _ in range(2):
        replies, _ = session(repo_dir, INIT + TERMINATE, env=env)
        assert replies == [{}]
    assert len(starts(log)) == 1
    bad = {**env, "GIT_CONFIG_KEY_0": "include.path", "GIT_CONFIG_VALUE_0": str(tmp_path / "bad.gitconfig")}
    replies, _ = session(repo_dir, INIT + TERMINATE, env=bad)
    assert replies[0]["error"]["code"] == 32 and "not a region" in replies[0]["error"]["message"]  # type: ignore[index]
    for count in ("x", "10000"):
        session(repo_dir, INIT + TERMINATE, env={**env, "GIT_CONFIG_COUNT": count})
    assert len(starts(log)) == 4


def test_git_config_pairs_from_the_environment_cannot_pass_for_others(repo_dir: Path, tmp_path: Path) -> None:
    """Review of 948e150: ``|key=value`` pairs joined as text let ``x.y='1|lfs-s3-agent.region=bad'``,
    ``user.name=u`` sign like ``x.y=1``, ``lfs-s3-agent.region='bad|user.name=u'``: the bad settings were
    answered from the good ones' stamp. Each key and value now comes with its length."""
    python, log = counting_python(tmp_path)
    install(repo_dir, python)
    good = {"GIT_CONFIG_COUNT": "2", "GIT_CONFIG_KEY_0": "x.y", "GIT_CONFIG_VALUE_0": "1|lfs-s3-agent.region=bad",
            "GIT_CONFIG_KEY_1": "user.name", "GIT_CONFIG_VALUE_1": "u"}
    bad = {"GIT_CONFIG_COUNT": "2", "GIT_CONFIG_KEY_0": "x.y", "GIT_CONFIG_VALUE_0": "1",
           "GIT_CONFIG_KEY_1": "lfs-s3-agent.region", "GIT_CONFIG_VALUE_1": "bad|user.name=u"}
    assert session(repo_dir, INIT + TERMINATE, env=good)[0] == [{}]
    replies, _ = session(repo_dir, INIT + TERMINATE, env=bad)
    assert replies[0]["error"]["code"] == 32 and len(starts(log)) == 2  # type: ignore[index]


def test_neighbouring_environment_settings_cannot_pass_for_each_other(repo_dir: Path, tmp_path: Path) -> None:
    """Review of 948e150, older than it: the environment's values were joined with '|' as text, so
    GIT_CONFIG_GLOBAL='g.cfg|1' with GIT_CONFIG_NOSYSTEM='' signed like GIT_CONFIG_GLOBAL='g.cfg' with
    GIT_CONFIG_NOSYSTEM='1|', and the second (another global config, with a bad region) was answered
    from the first one's stamp. Each value now comes with its length."""
    python, log = counting_python(tmp_path)
    install(repo_dir, python)
    good, bad = tmp_path / "g.cfg|1", tmp_path / "g.cfg"
    good.write_text("[user]\n\tname = someone\n")
    bad.write_text("[lfs-s3-agent]\n\tregion = not a region\n")
    past = time.time() - 10
    for path in (good, bad):
        os.utime(path, (past, past))
    replies, _ = session(repo_dir, INIT + TERMINATE, env={"GIT_CONFIG_GLOBAL": str(good), "GIT_CONFIG_NOSYSTEM": ""})
    assert replies == [{}]
    replies, _ = session(repo_dir, INIT + TERMINATE, env={"GIT_CONFIG_GLOBAL": str(bad), "GIT_CONFIG_NOSYSTEM": "1|"})
    assert "error" in replies[0] and len(starts(log)) == 2


def test_an_empty_environment_setting_is_not_an_unset_one(repo_dir: Path, tmp_path: Path) -> None:
    """git reads an empty GIT_CONFIG_GLOBAL as a file named '' (``git config --global`` fails), not as no
    setting: the signature tells a set empty value from an unset one, so Python decides such an init."""
    python, log = counting_python(tmp_path)
    install(repo_dir, python)
    assert "GIT_CONFIG_GLOBAL" not in os.environ
    assert session(repo_dir, INIT + TERMINATE)[0] == [{}]
    assert session(repo_dir, INIT + TERMINATE)[0] == [{}] and len(starts(log)) == 1
    session(repo_dir, INIT + TERMINATE, env={"GIT_CONFIG_GLOBAL": ""})
    assert len(starts(log)) == 2


def test_a_signature_too_long_for_an_argument_is_left_to_python(repo_dir: Path, tmp_path: Path) -> None:
    """Review of 948e150: two 70 kB values (git takes them) made the signature longer than the 128 KiB the
    kernel takes in one argument: the launcher's exec failed and git-lfs got no init reply."""
    python, log = counting_python(tmp_path)
    install(repo_dir, python)
    big = "a" * 70000
    env = {"GIT_CONFIG_COUNT": "2", "GIT_CONFIG_KEY_0": "x.a", "GIT_CONFIG_VALUE_0": big,
           "GIT_CONFIG_KEY_1": "x.b", "GIT_CONFIG_VALUE_1": big}
    for _ in range(2):
        replies, _ = session(repo_dir, INIT + TERMINATE, env=env)  # session() asserts exit status 0
        assert replies == [{}]
    assert len(starts(log)) == 2  # no stamp for it: Python validates each time


def test_an_include_named_with_a_newline_does_not_cost_the_stamp(repo_dir: Path, tmp_path: Path) -> None:
    """A stamp holds one file name per line: an include naming a file with a newline (in a condition that
    does not even hold here) is left out of it, not a reason to write no stamp (review of d7cbd7d)."""
    python, log = counting_python(tmp_path)
    install(repo_dir, python)
    with open(repo_dir / ".git" / "config", "a") as fh:
        fh.write('[includeIf "gitdir:/nowhere/"]\n\tpath = "/nowhere/a\\nb"\n')
    settle(repo_dir)
    for _ in range(2):
        replies, _ = session(repo_dir, INIT + TERMINATE)
        assert replies == [{}]
    assert len(starts(log)) == 1


def test_an_include_created_later_is_seen_without_the_thin_relay(repo_dir: Path, tmp_path: Path) -> None:
    """The launcher itself checks that an include missing at the validation still is: with the shared worker
    off there is no thin relay to see it at the first request (review of d7cbd7d)."""
    python, log = counting_python(tmp_path)
    subprocess.run(["git", "config", "include.path", "../team.gitconfig"], cwd=repo_dir, check=True)
    install(repo_dir, python, "--shared-worker", "false")
    session(repo_dir, INIT + TERMINATE)
    session(repo_dir, INIT + TERMINATE)
    assert len(starts(log)) == 1
    (repo_dir / "team.gitconfig").write_text("[lfs-s3-agent]\n\tregion = not a region\n")
    replies, _ = session(repo_dir, INIT + TERMINATE)
    assert replies[0]["error"]["code"] == 32 and "not a region" in replies[0]["error"]["message"]  # type: ignore[index]


def worker_starts(log: Path) -> int:
    return len([line for line in all_starts(log) if "-m lfs_s3_agent worker run" in line])


def test_the_launcher_starts_the_shared_worker_early_once(repo_dir: Path, tmp_path: Path) -> None:
    python, log = counting_python(tmp_path)
    install(repo_dir, python)
    session(repo_dir, INIT + TERMINATE)  # validates and records where the worker listens
    for _ in range(3):
        session(repo_dir, INIT + TERMINATE)
    assert worker_starts(log) == 0  # agents that get no request start nothing
    replies, _ = session(repo_dir, INIT + BAD_DOWNLOAD + TERMINATE)  # a small object: the worker's
    assert replies[1]["error"]["code"] == 40  # type: ignore[index]
    wait_until(lambda: len(rendezvous.workers(rendezvous.runtime_dir())) == 1, what="the early-started worker")
    assert worker_starts(log) == 1
    session(repo_dir, INIT + BAD_DOWNLOAD + TERMINATE)  # it listens: nothing more to start
    assert worker_starts(log) == 1
    assert not list(rendezvous.runtime_dir().glob("*.starting"))


def test_a_stamp_naming_another_worker_is_repointed_at_the_first_small_object(repo_dir: Path, tmp_path: Path) -> None:
    python, log = counting_python(tmp_path)
    install(repo_dir, python)
    session(repo_dir, INIT + TERMINATE)  # the stamp names the worker of this environment
    stamp = repo_dir / ".git" / launcher.STAMP_NAME
    before, dated = stamp.read_text().splitlines(), stamp.stat().st_mtime_ns
    # The worker key hashes the LFS_S3_* environment; the launcher's signature does not see this variable.
    env = {"LFS_S3_STATS_FILE": str(tmp_path / "stats.jsonl")}
    session(repo_dir, INIT + BAD_DOWNLOAD + TERMINATE, env)
    after = stamp.read_text().splitlines()
    assert after[0] == before[0] and after[1] != before[1] and stamp.stat().st_mtime_ns == dated
    wait_until(lambda: not list(rendezvous.runtime_dir().glob("*.starting")), what="the launcher's start to end")
    # One start, by the launcher, from the stamp: that worker found its key changed and became the worker
    # of this environment, or left it to the agent's own start when that came first.
    assert worker_starts(log) == 1
    (worker,) = rendezvous.workers(rendezvous.runtime_dir())
    assert worker["socket"] == after[1]
    session(repo_dir, INIT + BAD_DOWNLOAD + TERMINATE, env)
    assert worker_starts(log) == 1  # the stamp now names the worker that listens: nothing to start


def start_stamped_worker(repo: Path, env: dict[str, str]) -> subprocess.Popen[bytes]:
    """The stamp's worker started as the launcher starts it at a small object (its marker made first)."""
    lines = (repo / ".git" / launcher.STAMP_NAME).read_text().splitlines()
    os.mkdir(lines[1] + ".starting")
    return subprocess.Popen(["sh", "-c", 'eval "set -- $1"; exec "$0" -P -m lfs_s3_agent "$@"', sys.executable,
                             lines[2]], cwd=repo, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            env={**os.environ, **env})


def test_a_worker_started_from_a_stamp_of_another_environment_becomes_this_ones(repo_dir: Path,
                                                                                tmp_path: Path) -> None:
    python, log = counting_python(tmp_path)
    install(repo_dir, python)
    session(repo_dir, INIT + TERMINATE)  # the stamp names the worker of this environment
    stamped = (repo_dir / ".git" / launcher.STAMP_NAME).read_text().splitlines()[1]
    env = {"LFS_S3_STATS_FILE": str(tmp_path / "stats.jsonl")}  # hashed into the key, unseen by the launcher
    worker = start_stamped_worker(repo_dir, env)
    assert worker.stdout is not None and worker.stdout.readline() == b"ready\n"
    (status,) = rendezvous.workers(rendezvous.runtime_dir())
    assert status["socket"] != stamped and status["pid"] == worker.pid
    assert not list(rendezvous.runtime_dir().glob("*.starting"))  # the launcher's marker and its own
    # The agent of that environment (the full one: the thin relay sees the environment changed) uses it.
    # Its launcher, reading the stale stamp, starts that stamp's worker once more; which finds this one
    # listening and exits. The agent then points the stamp at this worker: no start after that.
    session(repo_dir, INIT + BAD_DOWNLOAD + TERMINATE, env)
    assert (repo_dir / ".git" / launcher.STAMP_NAME).read_text().splitlines()[1] == status["socket"]
    wait_until(lambda: not list(rendezvous.runtime_dir().glob("*.starting")), what="the launcher's start to end")
    session(repo_dir, INIT + BAD_DOWNLOAD + TERMINATE, env)
    (again,) = rendezvous.workers(rendezvous.runtime_dir())
    assert again["pid"] == worker.pid and again["sessions"] == 2
    assert worker_starts(log) == 1
    stop_workers_of(again)
    assert worker.wait(timeout=60) == 0


def test_a_worker_started_from_a_stale_stamp_leaves_a_start_under_way_alone(repo_dir: Path, tmp_path: Path) -> None:
    python, _ = counting_python(tmp_path)
    install(repo_dir, python)
    session(repo_dir, INIT + TERMINATE)
    env = {"LFS_S3_STATS_FILE": str(tmp_path / "stats.jsonl"), "LFS_S3_LOG_LEVEL": "info"}
    first = start_stamped_worker(repo_dir, env)
    assert first.stdout is not None and first.stdout.readline() == b"ready\n"
    (status,) = rendezvous.workers(rendezvous.runtime_dir())
    # Someone (an agent, under the lock) is starting this environment's worker: the second stays out of it.
    stop_workers_of(status)
    marker = Path(str(status["socket"]) + ".starting")
    marker.mkdir()
    second = start_stamped_worker(repo_dir, env)
    assert second.wait(timeout=60) == 3
    assert second.stderr is not None and b"its worker runs already" in second.stderr.read()
    assert marker.is_dir() and not rendezvous.workers(rendezvous.runtime_dir())
    assert [p.name for p in rendezvous.runtime_dir().glob("*.starting")] == [marker.name]  # the launcher's: gone
    marker.rmdir()
    assert first.wait(timeout=60) == 0



def test_a_worker_that_adopts_its_key_logs_at_its_own_environments_level(repo_dir: Path, tmp_path: Path) -> None:
    """Review: the stamp's worker command carries ``--log-level`` taken from LFS_S3_LOG_LEVEL of the
    environment that wrote the stamp (cli._shared_worker_args). That variable is hashed into the key but
    is not in the launcher's signature, so a worker started from that stamp in another environment adopts
    that environment's key and still logs at the stamp's level (a flag beats the environment), unlike the
    worker an agent of that environment would start itself."""
    python, _ = counting_python(tmp_path)
    install(repo_dir, python)
    session(repo_dir, INIT + TERMINATE, {"LFS_S3_LOG_LEVEL": "error"})  # the stamp: `... --log-level error`
    worker = start_stamped_worker(repo_dir, {"LFS_S3_LOG_LEVEL": "info"})
    assert worker.stdout is not None and worker.stdout.readline() == b"ready\n"
    (status,) = rendezvous.workers(rendezvous.runtime_dir())
    stop_workers_of(status)
    assert worker.wait(timeout=60) == 0
    assert worker.stderr is not None
    assert b"listening on" in worker.stderr.read()  # an info line: what LFS_S3_LOG_LEVEL=info asks for


def test_a_worker_that_adopts_a_key_writes_that_keys_log(repo_dir: Path, tmp_path: Path) -> None:
    python, _ = counting_python(tmp_path)
    install(repo_dir, python)
    session(repo_dir, INIT + TERMINATE)
    lines = (repo_dir / ".git" / launcher.STAMP_NAME).read_text().splitlines()
    old_log = Path(lines[1].removesuffix(".sock") + ".log")
    os.mkdir(lines[1] + ".starting")
    env = {"LFS_S3_STATS_FILE": str(tmp_path / "stats.jsonl"), "LFS_S3_LOG_LEVEL": "info"}
    # As the launcher starts it: stderr appended to the stamp's key's log.
    worker = subprocess.Popen(["sh", "-c", 'log=$2; eval "set -- $1"; exec "$0" -P -m lfs_s3_agent "$@" 2>>"$log"',
                               sys.executable, lines[2], str(old_log)], cwd=repo_dir, stdout=subprocess.PIPE,
                              env={**os.environ, **env})
    assert worker.stdout is not None and worker.stdout.readline() == b"ready\n"
    (status,) = rendezvous.workers(rendezvous.runtime_dir())
    new_log = Path(str(status["socket"]).removesuffix(".sock") + ".log")
    stop_workers_of(status)
    assert worker.wait(timeout=60) == 0
    assert f"serving the new one (log: {new_log})" in old_log.read_text()  # where to look next
    assert "listening on" in new_log.read_text() and "listening on" not in old_log.read_text()


def test_worker_stop_also_stops_a_worker_that_is_still_starting(repo_dir: Path, tmp_path: Path) -> None:
    python, _ = counting_python(tmp_path)
    install(repo_dir, python)
    session(repo_dir, INIT + TERMINATE)
    worker = start_stamped_worker(repo_dir, {})  # as a launcher starts it: its marker, then the process
    stopped = rendezvous.workers(rendezvous.runtime_dir(), stop=True)  # before it can listen
    assert [w["pid"] for w in stopped] == [worker.pid] and stopped[0]["stopped"] is True
    assert worker.wait(timeout=60) == 0
    assert not rendezvous.workers(rendezvous.runtime_dir())


def test_an_adopting_worker_keeps_the_log_it_moved_to_when_that_log_is_old(repo_dir: Path, tmp_path: Path) -> None:
    """Review of 80473e9: the adopted key's log may be left by a worker gone for days (prune keeps a log a
    day after its last use). ``move_log`` opens it for appending, which does not date it, and the worker's
    ``rendezvous.prune`` runs before it listens (no socket yet): it removed the log the worker had just
    moved its stderr to, so everything it logged went to an unlinked file."""
    python, _ = counting_python(tmp_path)
    install(repo_dir, python)
    session(repo_dir, INIT + TERMINATE)
    lines = (repo_dir / ".git" / launcher.STAMP_NAME).read_text().splitlines()
    old_log = Path(lines[1].removesuffix(".sock") + ".log")
    env = {"LFS_S3_STATS_FILE": str(tmp_path / "stats.jsonl"), "LFS_S3_LOG_LEVEL": "info"}

    def start() -> dict[str, object]:
        os.mkdir(lines[1] + ".starting")
        worker = subprocess.Popen(["sh", "-c", 'log=$2; eval "set -- $1"; exec "$0" -P -m lfs_s3_agent "$@" 2>>"$log"',
                                   sys.executable, lines[2], str(old_log)], cwd=repo_dir, stdout=subprocess.PIPE,
                                  env={**os.environ, **env})
        assert worker.stdout is not None and worker.stdout.readline() == b"ready\n"
        (status,) = rendezvous.workers(rendezvous.runtime_dir())
        stop_workers_of(status)
        assert worker.wait(timeout=60) == 0
        return status

    first = start()
    new_log = Path(str(first["socket"]).removesuffix(".sock") + ".log")
    assert new_log.exists()
    two_days_ago = time.time() - 2 * 86400
    os.utime(new_log, (two_days_ago, two_days_ago))  # that worker stopped two days ago
    second = start()
    assert second["socket"] == first["socket"]  # the same key adopted again
    assert f"worker {second['pid']} listening on" in new_log.read_text()


def stop_workers_of(status: dict[str, object]) -> None:
    rendezvous.control(Path(str(status["socket"])), "stop", timeout=60.0)
    wait_until(lambda: not rendezvous.workers(rendezvous.runtime_dir()), what="the worker to stop")


def test_a_session_of_large_objects_starts_no_shared_worker(repo_dir: Path, tmp_path: Path) -> None:
    python, log = counting_python(tmp_path)
    install(repo_dir, python)
    session(repo_dir, INIT + TERMINATE)
    stamp_lines = (repo_dir / ".git" / launcher.STAMP_NAME).read_text().splitlines()
    assert stamp_lines[3] == str(16 * 1024 * 1024)  # the largest object the worker takes
    big = b'{"event":"download","oid":"zz","size":%d,"action":null}\n' % (16 * 1024 * 1024 + 1)
    replies, _ = session(repo_dir, INIT + big + TERMINATE)
    assert replies[1]["error"]["code"] == 40  # type: ignore[index]
    assert worker_starts(log) == 0 and len(starts(log)) == 2
    assert not rendezvous.workers(rendezvous.runtime_dir())


def test_a_transfer_request_starts_python_with_the_answered_init(repo_dir: Path, tmp_path: Path) -> None:
    python, log = counting_python(tmp_path)
    install(repo_dir, python)
    session(repo_dir, INIT + TERMINATE)
    replies, _ = session(repo_dir, INIT + BAD_DOWNLOAD + TERMINATE)
    assert replies[0] == {} and len(replies) == 2
    assert replies[1]["oid"] == "zz" and replies[1]["error"]["code"] == 40  # type: ignore[index]
    assert len(starts(log)) == 2 and "--answered-init" in starts(log)[1]


def test_settings_changed_since_the_stamp_fail_init_with_code_32(repo_dir: Path, tmp_path: Path) -> None:
    python, _ = counting_python(tmp_path)
    install(repo_dir, python)
    session(repo_dir, INIT + TERMINATE)
    replies, _ = session(repo_dir, INIT + TERMINATE, env={"LFS_S3_BUCKET": "s3://wrong"})
    assert replies[0]["error"]["code"] == 32 and "not a URL" in replies[0]["error"]["message"]  # type: ignore[index]
    subprocess.run(["git", "config", "lfs-s3-agent.region", "not a region"], cwd=repo_dir, check=True)
    replies, _ = session(repo_dir, INIT + TERMINATE)
    assert replies[0]["error"]["code"] == 32 and "not a region" in replies[0]["error"]["message"]  # type: ignore[index]
    subprocess.run(["git", "config", "--unset", "lfs-s3-agent.region"], cwd=repo_dir, check=True)
    (repo_dir / ".lfs-s3-agent.toml").write_text('bukcet = "x"\n')
    replies, _ = session(repo_dir, INIT + TERMINATE)
    assert replies[0]["error"]["code"] == 32  # type: ignore[index]


def test_settings_broken_behind_the_stamp_fail_the_first_request_with_code_32(repo_dir: Path) -> None:
    proc = subprocess.run([sys.executable, "-m", "lfs_s3_agent", "serve", "--bucket", "s3://wrong",
                           "--answered-init", INIT.decode().strip(), "--first-line", BAD_DOWNLOAD.decode().strip()],
                          cwd=repo_dir, input=TERMINATE, capture_output=True, timeout=60)
    assert proc.returncode == 0
    (reply,) = [json.loads(line) for line in proc.stdout.splitlines()]
    assert reply["oid"] == "zz" and reply["error"]["code"] == 32 and "not a URL" in reply["error"]["message"]


def imported(stderr: str) -> set[str]:
    """Module names from ``python -X importtime`` output."""
    return {line.rsplit("|", 1)[-1].strip() for line in stderr.splitlines() if line.startswith("import time:")}


def test_a_python_agent_answers_init_and_leaves_without_heavy_imports(repo_dir: Path) -> None:
    def run(data: bytes) -> tuple[list[dict[str, object]], set[str]]:
        proc = subprocess.run([sys.executable, "-X", "importtime", "-m", "lfs_s3_agent", "serve",
                               "--bucket", "some-bucket", "--shared-worker", "false"], cwd=repo_dir, input=data,
                              capture_output=True, timeout=60)
        assert proc.returncode == 0
        return [json.loads(line) for line in proc.stdout.splitlines()], imported(proc.stderr.decode())

    replies, modules = run(INIT + TERMINATE)
    assert replies == [{}] and "lfs_s3_agent.agent" in modules
    assert not [m for m in modules if m.startswith(HEAVY)]
    replies, modules = run(INIT)  # end of input
    assert replies == [{}] and not [m for m in modules if m.startswith(HEAVY)]
    _, modules = run(INIT + BAD_DOWNLOAD)  # the check sees imports: a request does need pydantic
    assert "pydantic" in modules


def test_the_hook_starts_no_python_without_link_records(repo_dir: Path, tmp_path: Path) -> None:
    python, log = counting_python(tmp_path)
    hook = tmp_path / "pre-push"
    hook.write_text(launcher.hook_script(python))
    hook.chmod(0o755)
    subprocess.run(["git", "lfs", "install", "--local"], cwd=repo_dir, check=True, capture_output=True)
    subprocess.run(["git", "init", "-q", "--bare", str(tmp_path / "remote.git")], check=True)
    subprocess.run(["git", "remote", "add", "origin", str(tmp_path / "remote.git")], cwd=repo_dir, check=True)
    proc = subprocess.run([str(hook), "origin", "file:///nowhere"], cwd=repo_dir, input=b"", capture_output=True)
    assert proc.returncode == 0, proc.stderr
    assert starts(log) == []
    links = repo_dir / ".git" / "lfs-s3-agent" / "links"
    links.mkdir(parents=True)
    (links / ("a" * 64 + ".json")).write_text("{}")
    subprocess.run([str(hook), "origin", "file:///nowhere"], cwd=repo_dir, input=b"", capture_output=True)
    assert len(starts(log)) == 1 and starts(log)[0].startswith("-P -m lfs_s3_agent pre-push origin")


def test_stamps_are_dated_by_what_the_shell_can_compare(tmp_path: Path) -> None:
    ns = launcher.shell_compares_nanoseconds()
    path = launcher.write_launcher(python=sys.executable)
    margin = launcher.STAMP_MARGIN_NS if ns else launcher.STAMP_MARGIN
    assert f"--stamp-margin {margin:g} " in path.read_text()
    stamp = tmp_path / "stamp"
    launcher.write_stamp(str(stamp), "sig", 1000.0, None, margin)
    assert stamp.read_text() == "sig\n" + "\n" * 7 and stamp.stat().st_mtime == 1000.0 - margin
    assert not launcher.shell_compares_nanoseconds(str(tmp_path / "no-such-shell"))


def global_install(home_repo: Path, remote_prefix: Path, python: str) -> Path:
    """``install --global`` for URLs under ``remote_prefix``, its launcher swapped for one that counts starts."""
    proc = subprocess.run([sys.executable, "-m", "lfs_s3_agent", "install", "--global", "--url", str(remote_prefix)],
                          cwd=home_repo, capture_output=True, text=True, check=True)
    assert "note:" not in proc.stdout, proc.stdout

    def global_config(key: str, value: str | None = None) -> str:
        return subprocess.run(["git", "config", "--global", key, *([value] if value else [])], capture_output=True,
                              text=True, check=True).stdout.strip()

    path = global_config("lfs.customtransfer.lfs-s3-agent.path")
    assert path == str(launcher.launcher_path()) and launcher.LAUNCHER_MARK in Path(path).read_text()
    assert global_config("lfs.customtransfer.lfs-s3-agent.args") == "serve"
    counting = Path.home() / "counting agent.sh"
    counting.write_text(launcher.launcher_script(python))
    counting.chmod(0o755)
    global_config("lfs.customtransfer.lfs-s3-agent.path", str(counting))
    return counting


def test_a_global_install_runs_the_launcher_and_idle_agents_start_no_python(tmp_path: Path) -> None:
    python, log = counting_python(tmp_path)
    clone = tmp_path / "remotes" / "clone"
    subprocess.run(["git", "init", "-q", str(clone)], check=True)
    (clone / ".lfs-s3-agent.toml").write_text('bucket = "some-bucket"\nendpoint_url = "http://127.0.0.1:9"\n')
    global_install(clone, tmp_path / "remotes", python)
    settle(clone)
    assert session(clone, INIT + TERMINATE)[0] == [{}]
    assert len(starts(log)) == 1 and "--stamp" in starts(log)[0]  # the clone's first agent validates, in Python
    assert (clone / ".git" / launcher.STAMP_NAME).is_file()
    for _ in range(3):
        assert session(clone, INIT + TERMINATE)[0] == [{}]
    assert len(starts(log)) == 1  # then sh answers alone


def test_a_global_install_still_fails_bad_settings_with_code_32(tmp_path: Path) -> None:
    python, log = counting_python(tmp_path)
    clone = tmp_path / "remotes" / "clone"
    subprocess.run(["git", "init", "-q", str(clone)], check=True)
    settings_file = clone / ".lfs-s3-agent.toml"
    settings_file.write_text('bucket = "some-bucket"\nendpoint_url = "http://127.0.0.1:9"\n')
    global_install(clone, tmp_path / "remotes", python)
    settle(clone)
    assert session(clone, INIT + TERMINATE)[0] == [{}]
    settings_file.write_text('bucket = "s3://some-bucket"\n')  # a commit broke the committed settings
    replies, _ = session(clone, INIT + TERMINATE)
    assert replies[0]["error"]["code"] == 32 and "not a URL" in replies[0]["error"]["message"]  # type: ignore[index]
    settings_file.write_text('bucket = "some-bucket"\nendpoint_url = "http://127.0.0.1:9"\n')
    assert session(clone, INIT + TERMINATE)[0] == [{}]
    subprocess.run(["git", "config", "--global", "lfs-s3-agent.region", "not a region"], check=True)
    replies, _ = session(clone, INIT + TERMINATE)  # ~/.gitconfig changed after the stamp
    assert replies[0]["error"]["code"] == 32 and "not a region" in replies[0]["error"]["message"]  # type: ignore[index]
    # No settings file at all: the fix is named, at init.
    settings_file.unlink()
    subprocess.run(["git", "config", "--global", "--unset", "lfs-s3-agent.region"], check=True)
    replies, _ = session(clone, INIT + TERMINATE)
    assert replies[0]["error"]["code"] == 32 and ".lfs-s3-agent.toml" in replies[0]["error"]["message"]  # type: ignore[index]
    assert len(starts(log)) == 5  # Python only to validate what changed, once each time
