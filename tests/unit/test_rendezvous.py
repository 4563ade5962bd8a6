"""Which worker an agent may reach: the key, the private runtime directory, the socket path."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from lfs_s3_agent import rendezvous, settings

VALUES = {spec.name: spec.default for spec in settings.FIELDS} | {"bucket": "b"}
GIT = {"git_dir": Path("/r/.git"), "common_dir": Path("/r/.git"), "lfs_storage": None}
ENV = {"HOME": "/nonexistent-home", "AWS_PROFILE": "work", "TERM": "xterm"}


def key(values: dict[str, object] = VALUES, env: dict[str, str] = ENV, **git: object) -> str:
    return rendezvous.worker_key(values, env=env, **{**GIT, **git})  # type: ignore[arg-type]


def test_the_key_is_stable_for_the_same_configuration() -> None:
    assert key() == key(dict(reversed(list(VALUES.items()))))


@pytest.mark.parametrize("change", [
    {"values": VALUES | {"prefix": "other"}},
    {"values": VALUES | {"endpoint_url": "http://127.0.0.1:9000"}},
    {"env": ENV | {"AWS_PROFILE": "home"}},
    {"env": ENV | {"AWS_SECRET_ACCESS_KEY": "rotated"}},
    {"env": ENV | {"LFS_S3_LOG_LEVEL": "debug"}},
    {"env": ENV | {"GIT_CONFIG_GLOBAL": "/x"}},
    {"env": ENV | {"HTTPS_PROXY": "http://127.0.0.1:3128"}},
    {"git_dir": Path("/r/.git/worktrees/w")},
    {"common_dir": Path("/other/.git")},
    {"lfs_storage": "/big/lfs"},
])
def test_anything_that_changes_behaviour_changes_the_key(change: dict[str, object]) -> None:
    assert key(**change) != key()  # type: ignore[arg-type]


def test_unrelated_environment_does_not_change_the_key() -> None:
    assert key(env=ENV | {"TERM": "dumb", "PWD": "/elsewhere", "SHLVL": "3"}) == key()


def test_an_edited_aws_credentials_file_changes_the_key(tmp_path: Path) -> None:
    creds = tmp_path / "credentials"
    creds.write_text("[default]\n")
    env = ENV | {"AWS_SHARED_CREDENTIALS_FILE": str(creds)}
    before = key(env=env)
    creds.write_text("[default]\naws_access_key_id = new\n")
    assert key(env=env) != before


def test_runtime_dir_is_created_private(tmp_path: Path) -> None:
    path = rendezvous.runtime_dir({"LFS_S3_RUNTIME_DIR": str(tmp_path / "run")})
    assert path == tmp_path / "run"
    assert os.stat(path).st_mode & 0o777 == 0o700


def test_a_runtime_dir_others_can_enter_is_refused(tmp_path: Path) -> None:
    shared = tmp_path / "shared"
    shared.mkdir(mode=0o755)
    shared.chmod(0o755)
    with pytest.raises(rendezvous.RendezvousError, match=r"not a private directory.*mode 0700"):
        rendezvous.runtime_dir({"LFS_S3_RUNTIME_DIR": str(shared)})


def test_a_symlinked_runtime_dir_is_refused(tmp_path: Path) -> None:
    real = tmp_path / "real"
    real.mkdir(mode=0o700)
    (tmp_path / "link").symlink_to(real)
    with pytest.raises(rendezvous.RendezvousError, match="LFS_S3_RUNTIME_DIR"):
        rendezvous.runtime_dir({"LFS_S3_RUNTIME_DIR": str(tmp_path / "link")})


def test_a_socket_path_too_long_names_the_fix(tmp_path: Path) -> None:
    with pytest.raises(rendezvous.RendezvousError, match=r"too long.*LFS_S3_RUNTIME_DIR"):
        rendezvous.socket_path(tmp_path / ("d" * 120), "f" * 64)


def test_nothing_listening_is_none_not_an_error(tmp_path: Path) -> None:
    assert rendezvous.try_connect(tmp_path / "absent.sock") is None
    (tmp_path / "plain.sock").write_text("")
    assert rendezvous.try_connect(tmp_path / "plain.sock") is None  # ECONNREFUSED: a stale leftover


def test_prune_removes_what_gone_workers_left_and_keeps_live_ones(tmp_path: Path) -> None:
    import socket

    directory = tmp_path / "run"
    directory.mkdir()
    old = 3 * 86400
    live = socket.socket(socket.AF_UNIX)
    live.bind(str(directory / "live.sock"))
    live.listen()
    dead = socket.socket(socket.AF_UNIX)
    dead.bind(str(directory / "dead.sock"))  # bound, never listening: its worker was killed
    dead.close()
    for name in ("live.lock", "live.log", "dead.lock", "dead.log", "gone.lock", "gone.log", "young.lock"):
        (directory / name).write_text("")
    for name in ("live.sock", "live.lock", "live.log", "dead.sock", "dead.lock", "dead.log", "gone.lock",
                 "gone.log"):
        past = os.stat(directory / name).st_mtime - old
        os.utime(directory / name, (past, past), follow_symlinks=False)
    try:
        removed = {p.name for p in rendezvous.prune(directory)}
    finally:
        live.close()
    assert removed == {"dead.sock", "dead.lock", "dead.log", "gone.lock", "gone.log"}
    assert sorted(p.name for p in directory.iterdir()) == ["live.lock", "live.log", "live.sock", "young.lock"]


def test_prune_keeps_the_old_log_of_a_worker_being_started(tmp_path: Path) -> None:
    """A worker prunes before it listens; its log, appended to (``2>>``, ``move_log``), may date from days ago."""
    directory = tmp_path / "run"
    directory.mkdir()
    (directory / "starting.sock.starting").mkdir()  # the launcher's (or adopt's) marker: no socket yet
    for name in ("starting.log", "starting.lock"):
        (directory / name).write_text("a worker of three days ago\n")
        past = os.stat(directory / name).st_mtime - 3 * 86400
        os.utime(directory / name, (past, past))
    assert rendezvous.prune(directory) == []


def test_a_stale_launcher_marker_is_cleared(tmp_path: Path) -> None:
    import time

    sock = tmp_path / "k.sock"
    marker = rendezvous.starting_marker(sock)
    assert rendezvous.wait_for_launched(sock) is None  # no marker, nothing listening
    marker.mkdir()
    old = time.time() - rendezvous.START_TIMEOUT - 5
    os.utime(marker, (old, old))
    assert rendezvous.wait_for_launched(sock) is None and not marker.exists()


def test_an_agent_starting_the_worker_holds_the_launchers_marker(monkeypatch: pytest.MonkeyPatch) -> None:
    """While an agent starts the worker, a launcher's ``mkdir`` fails, so it starts no second worker
    (which would bind the socket once the first had stopped, and outlive ``worker stop``)."""
    import socket

    directory = rendezvous.runtime_dir()  # the test's own (tests/conftest.py): a short path
    k = "a" * 64
    listeners: list[socket.socket] = []
    seen: list[bool] = []

    def start(directory: Path, key: str, worker_args: list[str], *, cwd: str | None = None) -> None:
        path = rendezvous.socket_path(directory, key)
        seen.append(rendezvous.starting_marker(path).is_dir())
        listener = socket.socket(socket.AF_UNIX)
        listener.bind(str(path))
        listener.listen()
        listeners.append(listener)

    monkeypatch.setattr(rendezvous, "start_worker", start)
    try:
        rendezvous.connect(k, []).close()
        path = rendezvous.socket_path(directory, k)
        assert seen == [True] and not rendezvous.starting_marker(path).exists()
    finally:
        for listener in listeners:
            listener.close()


def test_a_worker_that_fails_to_start_leaves_no_marker(monkeypatch: pytest.MonkeyPatch) -> None:
    directory = rendezvous.runtime_dir()

    def start(directory: Path, key: str, worker_args: list[str], *, cwd: str | None = None) -> None:
        raise rendezvous.RendezvousError("the shared worker exited with status 2 before it listened")

    monkeypatch.setattr(rendezvous, "start_worker", start)
    with pytest.raises(rendezvous.RendezvousError, match="status 2"):
        rendezvous.connect("b" * 64, [])
    assert list(directory.glob("*.starting")) == []  # the next agent's launcher may start one


def test_stop_all_stops_a_worker_too_busy_to_answer_status(monkeypatch: pytest.MonkeyPatch) -> None:
    import socket

    directory = rendezvous.runtime_dir()

    listener = socket.socket(socket.AF_UNIX)
    listener.bind(str(directory / "busy.sock"))
    listener.listen()
    sent: list[str] = []

    def control(path: Path, command: str, timeout: float = 60.0) -> dict[str, object] | None:
        sent.append(command)
        if command == "status":
            raise TimeoutError("timed out")
        return {"pid": 1}

    monkeypatch.setattr(rendezvous, "control", control)
    try:
        assert rendezvous.workers(directory, repo="/r/.git", stop=True) == []  # whose it is: unknown
        assert sent == ["status"]
        (found,) = rendezvous.workers(directory, stop=True)
    finally:
        listener.close()
    assert sent == ["status", "status", "stop"]
    assert found["stopped"] is True and "no answer to status" in str(found["error"])


def test_a_worker_that_fails_before_it_listens_leaves_no_marker(monkeypatch: pytest.MonkeyPatch) -> None:
    """Agents wait on a starting marker for up to START_TIMEOUT: a worker that dies before it listens
    (here building its store, after adopting its own key) must not leave one, its launcher's or its own."""
    import io
    import logging
    import types

    from lfs_s3_agent import wiring, worker

    directory = rendezvous.runtime_dir()
    stamped, own = "c" * 64, "d" * 64
    launchers = rendezvous.starting_marker(rendezvous.socket_path(directory, stamped))
    launchers.mkdir()

    def store() -> None:
        raise RuntimeError("no store today")

    wired = types.SimpleNamespace(resolved=object(), store=store, dirs=None)
    monkeypatch.setattr(wiring, "build", lambda flags: wired)
    monkeypatch.setattr(rendezvous, "key_for", lambda resolved: own)
    root = logging.getLogger()
    handlers = list(root.handlers)
    filters = {h: list(h.filters) for h in handlers}
    try:
        with pytest.raises(RuntimeError, match="no store today"):
            worker.run(stamped, {}, ready=io.BytesIO())
    finally:
        root.handlers[:] = handlers
        for handler, kept in filters.items():
            handler.filters[:] = kept
    assert list(directory.glob("*.starting")) == []



def test_a_worker_that_fails_unexpectedly_before_it_adopts_leaves_no_marker(monkeypatch: pytest.MonkeyPatch) -> None:
    """Review: before the worker listens, only ConfigError/GitError/RendezvousError clear the launcher's
    marker (worker.py, the first try of run()); anything else raised while it resolves its settings or its
    key leaves it, and every agent then waits START_TIMEOUT on it. Here the key's code fingerprint fails
    (a module file removed by an upgrade while the worker starts: os.stat raises FileNotFoundError); a
    settings file that is not UTF-8 does the same (tomllib's UnicodeDecodeError)."""
    import io
    import logging
    import types

    from lfs_s3_agent import wiring, worker

    directory = rendezvous.runtime_dir()
    launchers = rendezvous.starting_marker(rendezvous.socket_path(directory, "c" * 64))
    launchers.mkdir()

    def key_for(resolved: object) -> str:
        raise FileNotFoundError(2, "No such file or directory", "lfs_s3_agent/store.py")

    monkeypatch.setattr(wiring, "build", lambda flags: types.SimpleNamespace(resolved=object()))
    monkeypatch.setattr(rendezvous, "key_for", key_for)
    root = logging.getLogger()
    handlers = list(root.handlers)
    filters = {h: list(h.filters) for h in handlers}
    try:
        with pytest.raises(FileNotFoundError):
            worker.run("c" * 64, {}, ready=io.BytesIO())
        left = [p.name for p in directory.glob("*.starting")]
    finally:
        root.handlers[:] = handlers
        for handler, kept in filters.items():
            handler.filters[:] = kept
        for marker in directory.glob("*.starting"):
            marker.rmdir()  # or the autouse fixture waits START_TIMEOUT for it
    assert left == []
