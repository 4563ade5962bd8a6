"""Running a command and measuring it: wall time, CPU (user + sys) and peak RSS of its whole process tree.

``os.wait4`` returns the rusage of the child *including* every descendant it waited for, so for
``git lfs push`` it covers git, git-lfs, the ``sh`` wrappers and the agents. ``ru_maxrss`` of that
rusage is the largest single process in the tree (Linux reports kibibytes), not a sum.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import tempfile
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

CLK_TCK = os.sysconf("SC_CLK_TCK")


@dataclass(frozen=True)
class Measured:
    argv: tuple[str, ...]
    returncode: int
    wall_s: float
    user_s: float
    sys_s: float
    maxrss_kib: int
    stdout: str
    stderr: str

    @property
    def cpu_s(self) -> float:
        return self.user_s + self.sys_s

    def check(self) -> Measured:
        if self.returncode != 0:
            raise CommandFailed(self)
        return self


class CommandFailed(RuntimeError):
    def __init__(self, measured: Measured) -> None:
        tail = (measured.stderr.strip() or measured.stdout.strip())[-2000:]
        super().__init__(f"`{' '.join(measured.argv)}` exited {measured.returncode}: {tail}")
        self.measured = measured


def run_measured(argv: Sequence[str], *, cwd: Path | str | None = None, env: Mapping[str, str] | None = None,
                 timeout: float = 1800.0) -> Measured:
    """Run ``argv`` to completion; its output goes to temporary files (no pipe can fill up)."""
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        start = time.perf_counter()
        # Its own process group, so that a timeout or an interrupted benchmark ends the whole tree it
        # started (git -> git-lfs -> sh -> agents), and nothing else.
        proc = subprocess.Popen(list(argv), cwd=cwd, env=dict(env) if env is not None else None,
                                stdin=subprocess.DEVNULL, stdout=out, stderr=err, start_new_session=True)
        killer = threading.Timer(timeout, _kill_group, (proc.pid,))  # a blocking wait4 with a deadline
        killer.start()
        try:
            _, status, usage = os.wait4(proc.pid, 0)
        except BaseException:
            _kill_group(proc.pid)
            proc.wait()
            raise
        finally:
            killer.cancel()
        wall = time.perf_counter() - start
        proc.returncode = os.waitstatus_to_exitcode(status)  # reaped here: tell Popen not to wait again
        out.seek(0)
        err.seek(0)
        return Measured(argv=tuple(argv), returncode=proc.returncode, wall_s=wall, user_s=usage.ru_utime,
                        sys_s=usage.ru_stime, maxrss_kib=usage.ru_maxrss,
                        stdout=out.read().decode("utf-8", "replace"), stderr=err.read().decode("utf-8", "replace"))


def _kill_group(pgid: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signal.SIGKILL)


def run(argv: Sequence[str], *, cwd: Path | str | None = None, env: Mapping[str, str] | None = None,
        timeout: float = 1800.0) -> str:
    """An unmeasured helper command (setup, cleanup); raises with its output when it fails."""
    proc = subprocess.run(list(argv), cwd=cwd, env=dict(env) if env is not None else None, capture_output=True,
                          text=True, timeout=timeout, check=False)
    if proc.returncode != 0:
        raise RuntimeError(f"`{' '.join(argv)}` exited {proc.returncode}:\n{proc.stdout}\n{proc.stderr}")
    return proc.stdout


def process_cpu_s(pid: int) -> float:
    """utime + stime of a running process (its own threads, not its children), from /proc/<pid>/stat."""
    text = Path(f"/proc/{pid}/stat").read_text()
    fields = text[text.rindex(")") + 2:].split()  # the command name may hold spaces; skip past it
    return (int(fields[11]) + int(fields[12])) / CLK_TCK  # fields 14 and 15 of stat(5)


def process_rss_kib(pid: int) -> int:
    """Peak RSS so far (VmHWM) of a running process."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    return 0


def machine_busy_s() -> float:
    """CPU seconds the whole machine has been busy (all CPUs, from /proc/stat), for spotting other load."""
    fields = Path("/proc/stat").read_text().splitlines()[0].split()[1:]
    user, nice, system, _idle, _iowait, irq, softirq, steal = (int(v) for v in fields[:8])
    return (user + nice + system + irq + softirq + steal) / CLK_TCK
