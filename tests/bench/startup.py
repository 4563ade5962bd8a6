"""Start-up cost: time from spawning the agent to its init reply, the way git-lfs spawns it.

git-lfs starts its 8 agents one after another, each with its own init handshake, for every transfer;
so this latency is paid 8 times in a row per `git lfs push`/`pull`. Measured by running what
``install`` configured (``sh -c '<lfs.customtransfer.lfs-s3-agent.path> <args>'``: the launcher,
issue 15) in a configured repository whose settings were validated once, writing the init line at
once and timing until its reply line arrives.
"""

from __future__ import annotations

import json
import shlex
import subprocess
import time
from pathlib import Path

INIT = b'{"event":"init","operation":"upload","remote":"origin","concurrent":true,"concurrenttransfers":8}\n'
TERMINATE = b'{"event":"terminate"}\n'


def agent_command(repo: Path, env: dict[str, str]) -> str:
    """What git-lfs runs with ``sh -c`` in ``repo``."""
    def config(key: str) -> str:
        return subprocess.run(["git", "config", key], cwd=repo, env=env, capture_output=True, text=True,
                              check=True).stdout.strip()

    return f"{shlex.quote(config('lfs.customtransfer.lfs-s3-agent.path'))} " \
           f"{config('lfs.customtransfer.lfs-s3-agent.args')}"


def spawn_once(repo: Path, env: dict[str, str], command: str) -> float:
    start = time.perf_counter()
    proc = subprocess.Popen(["sh", "-c", command], cwd=repo, env=env,
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert proc.stdin is not None and proc.stdout is not None
    try:
        proc.stdin.write(INIT)
        proc.stdin.flush()
        line = proc.stdout.readline()
        elapsed = (time.perf_counter() - start) * 1000
        _, err = proc.communicate(TERMINATE, timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    reply = json.loads(line) if line.strip() else None
    if reply != {}:
        raise RuntimeError(f"init reply was {line!r}, not {{}}; stderr: {err.decode(errors='replace')[-1000:]}")
    return elapsed


def init_latency(repo: Path, env: dict[str, str], samples: int) -> list[float]:
    """Milliseconds from spawn to the init reply, one value per spawn (after one validating spawn)."""
    command = agent_command(repo, env)
    time.sleep(2.5)  # config written just now is newer than any stamp: let it age, as in real use
    spawn_once(repo, env, command)
    return [spawn_once(repo, env, command) for _ in range(samples)]
