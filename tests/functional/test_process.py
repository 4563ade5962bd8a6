"""The agent as git-lfs runs it: a separate process speaking over its real stdin/stdout."""

from __future__ import annotations

import json
import os
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


def test_pydantic_plugins_of_installed_packages_do_not_run_in_the_agent(repo_dir: Path, tmp_path: Path) -> None:
    # pydantic imports every installed distribution's ``pydantic`` entry point when a model is defined;
    # the agent holds the user's credentials, so none runs there (unless PYDANTIC_DISABLE_PLUGINS says so).
    site = tmp_path / "site"
    dist = site / "evil_plugin-1.0.dist-info"
    dist.mkdir(parents=True)
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: evil-plugin\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text("[pydantic]\nevil = evil_plugin:plugin\n")
    marker = tmp_path / "plugin-ran"
    (site / "evil_plugin.py").write_text(
        f"open({str(marker)!r}, 'w').close()\n"
        "class Plugin:\n    def new_schema_validator(self, *args, **kwargs):\n        return None, None, None\n"
        "plugin = Plugin()\n")
    base = {k: v for k, v in os.environ.items() if k != "PYDANTIC_DISABLE_PLUGINS"} | {"PYTHONPATH": str(site)}
    upload = b'{"event":"upload","oid":"%s","size":1,"path":"/nonexistent/x"}\n' % (b"a" * 64)
    for env, runs in ((base, False), (base | {"PYDANTIC_DISABLE_PLUGINS": ""}, True)):
        proc = subprocess.run([sys.executable, "-m", "lfs_s3_agent", "serve", "--bucket", "some-bucket",
                               "--endpoint-url", "http://127.0.0.1:9", "--shared-worker", "false"],
                              cwd=repo_dir, input=INIT.replace(b"download", b"upload") + upload,
                              capture_output=True, timeout=60, env=env)
        replies = [json.loads(line) for line in proc.stdout.splitlines()]
        assert replies[1]["error"]["code"] == 41, proc.stderr  # the request went through the pydantic models
        assert marker.exists() == runs, proc.stderr
