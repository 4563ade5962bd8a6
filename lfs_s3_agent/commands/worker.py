"""``worker status`` and ``worker stop``: the shared workers of this repository (or all of this user's)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from lfs_s3_agent import gitrepo, rendezvous
from lfs_s3_agent.errors import ConfigError


@dataclass
class WorkerReport:
    runtime_dir: str
    action: str
    everyone: bool
    workers: list[dict[str, Any]] = field(default_factory=list)

    @property
    def exit_status(self) -> int:
        return 0 if all(w.get("stopped", True) for w in self.workers) else 1

    def to_json(self) -> dict[str, Any]:
        return {"runtime_dir": self.runtime_dir, "workers": self.workers}

    def render(self) -> list[str]:
        if not self.workers:
            return [f"no shared worker running{'' if self.everyone else ' for this repository'} ({self.runtime_dir})"]
        lines = []
        for w in self.workers:
            if self.action == "stop":
                state = "stopped" if w.get("stopped") else f"NOT stopped: {w.get('error')}"
            elif w.get("error"):
                state = w["error"]
            elif w.get("active"):
                state = f"{w['active']} active session(s)"
            else:
                state = f"idle {w.get('idle_seconds', 0):.0f} s of {w.get('idle_limit', 0):.0f}"
            lines.append(f"pid {w.get('pid')}  {w.get('repo')}  {w.get('sessions', 0)} session(s) served, {state}")
        return lines


def workers(action: str, *, everyone: bool = False) -> WorkerReport:
    """Status of the shared workers (``action`` "status"), or stop them ("stop") after their transfers."""
    try:
        directory = rendezvous.runtime_dir()
    except rendezvous.RendezvousError as exc:
        raise ConfigError(str(exc)) from None
    repo = None if everyone else str(gitrepo.repo_paths().common_dir)
    found = rendezvous.workers(directory, repo=repo, stop=action == "stop")
    rendezvous.prune(directory)  # what killed or long-gone workers left behind
    return WorkerReport(str(directory), action, everyone, found)
