"""Start-up cost (issue 3, item 5): time from spawning the agent to its init reply.

git-lfs starts its 8 agents one after another, each with its own init handshake, for every transfer;
so this latency is paid 8 times in a row per `git lfs push`/`pull`. Measured here by spawning the agent
as git-lfs configures it (``<python> -m lfs_s3_agent serve`` in a configured repository, minus git-lfs's
``sh -c`` wrapper, ~1 ms), writing the init line at once and timing until its reply line arrives.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

INIT = b'{"event":"init","operation":"upload","remote":"origin","concurrent":true,"concurrenttransfers":8}\n'
TERMINATE = b'{"event":"terminate"}\n'


def init_latency(repo: Path, env: dict[str, str], samples: int) -> list[float]:
    """Milliseconds from spawn to the init reply, one value per spawn."""
    out = []
    for _ in range(samples):
        start = time.perf_counter()
        proc = subprocess.Popen([sys.executable, "-m", "lfs_s3_agent", "serve"], cwd=repo, env=env,
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
        out.append(elapsed)
    return out
