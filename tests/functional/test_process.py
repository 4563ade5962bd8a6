"""The agent as git-lfs runs it: a separate process speaking over its real stdin/stdout."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

INIT = b'{"event":"init","operation":"download","remote":"origin","concurrent":true,"concurrenttransfers":8}\n'


def spawn(cwd: Path, *args: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, "-m", "lfs_s3_agent", "serve", *args], cwd=cwd,
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def test_unconfigured_repo_gets_init_error_naming_the_fix(repo_dir: Path) -> None:
    sub = repo_dir / "sub"
    sub.mkdir()
    proc = spawn(sub)
    out, err = proc.communicate(INIT + b'{"event":"terminate"}\n', timeout=60)
    assert proc.returncode == 0
    (reply,) = [json.loads(line) for line in out.splitlines()]
    assert reply["error"]["code"] == 32
    assert "lfs-s3-agent install --bucket NAME" in reply["error"]["message"]
    assert b"no bucket" in err  # also logged for GIT_TRACE=1


def test_stdout_carries_only_protocol_lines_and_eof_ends_the_process(repo_dir: Path) -> None:
    proc = spawn(repo_dir, "--bucket", "some-bucket", "--log-level", "debug")
    out, err = proc.communicate(INIT + b"garbage\n" + b'{"event":"download","oid":"zz","size":1}\n', timeout=60)
    assert proc.returncode == 0
    replies = [json.loads(line) for line in out.splitlines()]
    assert replies[0] == {}
    assert replies[1]["oid"] == "zz" and replies[1]["error"]["code"] == 40
    assert len(replies) == 2
    assert b"not valid JSON" in err and b"end of input" in err


def test_settings_flags_in_customtransfer_args_are_honoured(repo_dir: Path) -> None:
    proc = spawn(repo_dir, "--bucket", "s3://wrong")
    out, _ = proc.communicate(INIT, timeout=60)
    assert "not a URL" in json.loads(out.splitlines()[0])["error"]["message"]
