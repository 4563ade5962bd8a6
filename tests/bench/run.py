"""`make bench`: this agent through real git-lfs against s5cmd, boto3 and git-lfs's own file:// transfer.

Starts s3rver (npm, on disk) for the 1 x 1 GiB workload and a moto server for 200 x 1 MiB and
2,000 x 4 KiB, both on 127.0.0.1; runs every tool on the same server in the same run, tools
interleaved run by run; checks the bytes after every run; writes bench-results/ (results.md,
results.png, raw.json) and prints the table and a one-line summary (last).

    python -m tests.bench.run            # full: 3 runs per workload, medians (~15-20 min on 2 cores)
    python -m tests.bench.run --quick    # 1 x 64 MiB, 20 x 1 MiB, 200 x 4 KiB, one run (~1-2 min)
"""

from __future__ import annotations

import argparse
import compileall
import datetime
import json
import os
import platform
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from tests.bench import report
from tests.bench.procs import run
from tests.bench.servers import REPO, S3RVER_JS, LoggedMotoServer, S3rver, Server
from tests.bench.small import KINDS, one_object
from tests.bench.startup import init_latency
from tests.bench.tools import TOOL_KEYS, TOOLS, Agent, Ctx, FileFloor, Result, Tool, environ_for_tools
from tests.bench.workloads import BUCKET, GiB, MiB, Prepared, Workload, prepare, remove, workload_name


def log(message: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m tests.bench.run", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true",
                        help="small sizes (1 x 64 MiB, 20 x 1 MiB, 200 x 4 KiB), one run: for iterating")
    parser.add_argument("--runs", type=int, help="runs per workload (default 3; --quick: 1)")
    parser.add_argument("--big-runs", type=int, help="runs for the large-object workload (default: --runs)")
    parser.add_argument("--big-size", type=int, default=None,
                        help="size of the large object in MiB (default 1024; --quick: 64)")
    parser.add_argument("--workloads", default="big,mib,kib",
                        help="comma-separated subset of big (1 large object), mib (many 1 MiB), kib (many 4 KiB); "
                             "empty: the start-up measurements alone")
    parser.add_argument("--tools", default="agent,s5cmd,boto3,file",
                        help="comma-separated subset of agent, s5cmd, boto3, file")
    parser.add_argument("--many-server", choices=("moto", "s3rver"), default="moto",
                        help="server for the many-files workloads (default moto; s3rver if moto is the bottleneck)")
    parser.add_argument("--init-samples", type=int, default=10, help="spawns for the init-reply time (median)")
    parser.add_argument("--push-samples", type=int, help="runs of the one-small-object push (default 5; --quick 2)")
    parser.add_argument("--no-startup", action="store_true", help="skip the start-up measurements")
    parser.add_argument("--no-fetch", action="store_true",
                        help="skip the extra `git lfs fetch` rows (download without git-lfs's checkout)")
    parser.add_argument("--out", default=str(REPO / "bench-results"), help="results folder (default bench-results/)")
    parser.add_argument("--keep", action="store_true", help="keep the temporary directory (repos, logs, stats)")
    return parser.parse_args(argv)


def choose_workloads(args: argparse.Namespace) -> list[Workload]:
    runs = args.runs or (1 if args.quick else 3)
    big_runs = args.big_runs or runs
    big = args.big_size * MiB if args.big_size else (64 * MiB if args.quick else GiB)
    specs = {
        "big": (1, big, "s3rver", big_runs),
        "mib": (20 if args.quick else 200, MiB, args.many_server, runs),
        "kib": (200 if args.quick else 2000, 4096, args.many_server, runs),
    }
    chosen = []
    for key in [k.strip() for k in args.workloads.split(",") if k.strip()]:
        if key not in specs:
            raise SystemExit(f"unknown workload {key!r}: use big, mib, kib")
        count, size, server, n = specs[key]
        chosen.append(Workload(name=workload_name(count, size), count=count, size=size, server=server, runs=n))
    return chosen


def choose_tools(args: argparse.Namespace) -> list[Tool]:
    out = []
    for key in [k.strip() for k in args.tools.split(",") if k.strip()]:
        if key not in TOOL_KEYS:
            raise SystemExit(f"unknown tool {key!r}: use {', '.join(TOOL_KEYS)}")
        out.append(TOOLS[TOOL_KEYS[key]])
    return out


def s3_client(server: Server) -> Any:
    """The harness's own client (setup, checks, cleanup): no flexible checksums, path-style."""
    import boto3
    from botocore.config import Config

    return boto3.client("s3", endpoint_url=server.endpoint, region_name="us-east-1",
                        aws_access_key_id=server.env["AWS_ACCESS_KEY_ID"],
                        aws_secret_access_key=server.env["AWS_SECRET_ACCESS_KEY"],
                        config=Config(request_checksum_calculation="when_required",
                                      response_checksum_validation="when_required",
                                      s3={"addressing_style": "path"}, retries={"max_attempts": 5}))


def setup_home(home: Path) -> dict[str, str]:
    home.mkdir()
    (home / ".gitconfig").write_text(
        "[user]\n\tname = Bench\n\temail = bench@example.com\n[init]\n\tdefaultBranch = main\n"
        "[protocol \"file\"]\n\tallow = always\n[advice]\n\tdetachedHead = false\n")
    env = environ_for_tools(home)
    run(["git", "lfs", "install", "--skip-repo"], cwd=home, env=env)
    return env


def versions(env: dict[str, str]) -> str:
    def out(argv: list[str]) -> str:
        try:
            return subprocess.run(argv, capture_output=True, text=True, env=env, timeout=30).stdout.strip()
        except OSError:
            return "?"

    from importlib.metadata import version

    from lfs_s3_agent import __version__
    from tests.bench.tools import s5cmd_binary

    s3rver = json.loads((S3RVER_JS.parents[1] / "package.json").read_text())["version"] if S3RVER_JS.exists() else "?"
    return ", ".join([
        f"lfs-s3-agent {__version__}", out(["git", "lfs", "version"]).split(" (")[0],
        f"s5cmd {out([str(s5cmd_binary()), 'version'])}", f"boto3 {version('boto3')}", f"moto {version('moto')}",
        f"s3rver {s3rver}", f"node {out(['node', '--version'])}", f"python {platform.python_version()}",
    ])


def agent_code_id(env: dict[str, str]) -> str:
    """Which agent code was measured: the commit, and a digest of lfs_s3_agent/*.py as it was on disk."""
    import hashlib

    digest = hashlib.sha256()
    for path in sorted((REPO / "lfs_s3_agent").glob("*.py")):
        digest.update(path.name.encode() + b"\0" + path.read_bytes())
    try:
        commit = run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO, env=env).strip()
    except RuntimeError:
        commit = "?"
    return f"commit {commit}, lfs_s3_agent/*.py sha256 {digest.hexdigest()[:12]}"


def machine() -> str:
    model = "?"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{os.cpu_count()} CPUs ({model}), {platform.system()} {platform.release()}"


def run_workload(workload: Workload, tools: list[Tool], server: Server, root: Path, env: dict[str, str],
                 results: list[Result], *, fetch: bool) -> None:
    client = s3_client(server)
    log(f"{workload.name}: generating data and repositories")
    prepared = prepare(workload, root, env, server.endpoint)
    ctx = Ctx(root=root, client=client, server=server)
    try:
        for run_no in range(1, workload.runs + 1):
            shift = (run_no - 1) % len(tools)
            for tool in tools[shift:] + tools[:shift]:  # rotate the order run by run
                failed_up = False
                directions = ["up", "down"] + (["fetch"] if fetch and hasattr(tool, "fetch") else [])
                for direction in directions:
                    result = Result(workload=workload.name, server=server.name if tool.name != FileFloor.name
                                    else "local disk", direction=direction, tool=tool.name, run=run_no,
                                    bytes=workload.total, objects=workload.count)
                    if direction != "up" and failed_up:
                        result.error = "skipped: the upload failed"
                    else:
                        try:
                            getattr(tool, direction)(ctx, prepared, run_no, result)
                        except Exception as exc:
                            result.error = f"{type(exc).__name__}: {exc}"
                    failed_up = failed_up or (direction == "up" and result.error is not None)
                    results.append(result)
                    mib_s = workload.total / MiB / result.wall_s if result.wall_s else 0
                    log(f"{workload.name} run {run_no}/{workload.runs} {tool.name:<16} {direction:<4} "
                        + (f"FAILED: {result.error[:300]}" if result.error else
                           f"{result.wall_s:.2f} s  {mib_s:.1f} MiB/s  client CPU {result.client_cpu_s:.2f} s"))
                _cleanup(tool, ctx, prepared, run_no)
    finally:
        remove(prepared.root)


def _cleanup(tool: Tool, ctx: Ctx, prepared: Prepared, run_no: int) -> None:
    """Remove a run's files and objects; a failure here is logged, never fatal to the benchmark."""
    try:
        tool.cleanup(ctx, prepared, run_no)
    except Exception as exc:
        log(f"cleanup after {tool.name} failed: {exc}")


def run_startup(server: Server, root: Path, env: dict[str, str], samples: int, push_samples: int,
                tools: list[Tool]) -> report.Startup:
    workload = Workload(name=workload_name(1, 1024), count=1, size=1024, server=server.name, runs=push_samples)
    prepared = prepare(workload, root, env, server.endpoint)
    ctx = Ctx(root=root, client=s3_client(server), server=server)
    startup = report.Startup(init_ms=[], push=[], floor_push=[])
    try:
        log(f"start-up: {samples} spawns of the agent as git-lfs spawns it (sh -c of the launcher)")
        startup.init_ms = init_latency(prepared.agent_src, {**env, **server.env}, samples)
        log(f"start-up: init reply median {statistics.median(startup.init_ms):.0f} ms")
        pushers: list[tuple[Tool, list[Result]]] = [(TOOLS[Agent.name], startup.push)]
        if any(t.name == FileFloor.name for t in tools):
            pushers.append((TOOLS[FileFloor.name], startup.floor_push))
        for run_no in range(1, push_samples + 1):
            for tool, into in pushers:
                result = Result(workload=workload.name, server=server.name, direction="up", tool=tool.name,
                                run=run_no, bytes=workload.total, objects=1)
                try:
                    tool.up(ctx, prepared, run_no, result)
                except Exception as exc:
                    result.error = f"{type(exc).__name__}: {exc}"
                into.append(result)
                log(f"start-up: one-object push, {tool.name}: "
                    + (f"FAILED: {result.error}" if result.error else f"{result.wall_s:.3f} s"))
                _cleanup(tool, ctx, prepared, run_no)
        log(f"start-up: one 10 KiB object, git push / git lfs pull, cold and warm, {push_samples} runs")
        startup.small = one_object(root / "small", env, server.endpoint, server.env, push_samples)
        for kind in KINDS:
            log(f"start-up: {kind}: median {startup.small.median(kind) or float('nan'):.3f} s, "
                f"CPU {startup.small.median(kind, 'cpu') or float('nan'):.2f} s")
    finally:
        remove(prepared.root)
        remove(root / "small")
    return startup


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    # A plain `kill` unwinds through the finally below, so the servers are stopped then too.
    signal.signal(signal.SIGTERM, lambda signum, _frame: sys.exit(128 + signum))
    workloads = choose_workloads(args)
    tools = choose_tools(args)
    push_samples = args.push_samples or (2 if args.quick else 5)
    out_dir = Path(args.out)
    started = time.monotonic()
    root = Path(tempfile.mkdtemp(prefix="lfs-s3-bench-"))
    servers: dict[str, Any] = {}
    meta: dict[str, Any] = {}
    results: list[Result] = []
    startup: report.Startup | None = None
    load_start = Path("/proc/loadavg").read_text().split()[:3]
    log(f"working in {root} (load average {' '.join(load_start)})")
    try:
        env = setup_home(root / "home")
        # An installed package has its bytecode compiled (pip does it); a checkout under
        # PYTHONDONTWRITEBYTECODE would recompile every module in each agent process.
        compileall.compile_dir(REPO / "lfs_s3_agent", quiet=1)
        meta["agent_code"] = agent_code_id(env)  # at the start: the code may change while we run
        wanted = {w.server for w in workloads} | (set() if args.no_startup else {"moto"})
        for name in sorted(wanted):
            server: Any = (S3rver(root / "s3rver-data", root / "s3rver.log") if name == "s3rver"
                           else LoggedMotoServer(root / "moto.log"))
            servers[name] = server  # registered before start: stopped in finally even if start fails
            server.start()
            s3_client(server).create_bucket(Bucket=BUCKET)
            log(f"{name} on {server.endpoint} (pid {server.pid})")
        for workload in workloads:
            run_workload(workload, tools, servers[workload.server], root, env, results, fetch=not args.no_fetch)
            servers[workload.server].alive()
        if not args.no_startup:
            startup = run_startup(servers["moto"], root, env, args.init_samples, push_samples, tools)
        server_rss = {name: s.rss_kib() for name, s in servers.items()}
        meta.update({
            "date": datetime.datetime.now().astimezone().strftime("%Y-%m-%d %H:%M %Z"), "machine": machine(),
            "loadavg_start": load_start, "loadavg_end": Path("/proc/loadavg").read_text().split()[:3],
            "versions": versions(env),
            "runs_note": ", ".join(f"{w.name}: {w.runs} run(s)" for w in workloads),
            "server_peak_rss_kib": server_rss, "elapsed_s": None,
        })
    finally:
        for server in servers.values():
            try:
                server.stop()
            except Exception as exc:  # keep stopping the others
                log(f"stopping {server.name} failed: {exc}")
        if args.keep:
            log(f"kept {root}")
        else:
            shutil.rmtree(root, ignore_errors=True)

    meta["elapsed_s"] = round(time.monotonic() - started, 1)
    rows = report.aggregate(results)
    big = next((w.name for w in workloads if w.count == 1), None)
    many = [w.name for w in workloads if w.count > 1]
    target_list = report.targets(rows, startup, big, many)
    failures = sum(1 for r in results if r.error) + sum(
        1 for r in (startup.push + startup.floor_push if startup else []) if r.error)
    meta["background"] = report.background_load(results)
    markdown = report.render(rows, [(w.name, w.server) for w in workloads], startup, target_list, meta)
    markdown += ("\nServer peak RSS: " + ", ".join(f"{k} {v / 1024:.0f} MiB" for k, v in
                                                    meta["server_peak_rss_kib"].items())
                 + f". Whole benchmark: {meta['elapsed_s'] / 60:.1f} min.\n")
    line = report.summary(rows, startup, big, many, failures)

    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "results.md").write_text(markdown + "\n" + line + "\n")
    raw = {"meta": meta, "results": [r.to_json() for r in results],
           "startup": None if startup is None else {
               "init_ms": startup.init_ms, "push": [r.to_json() for r in startup.push],
               "floor_push": [r.to_json() for r in startup.floor_push]},
           "summary": line}
    (out_dir / "raw.json").write_text(json.dumps(raw, indent=2) + "\n")
    written = [out_dir / "results.md", out_dir / "raw.json"]
    if rows:  # --workloads "" measures start-up alone: no chart to draw
        report.chart(rows, out_dir / "results.png", f"lfs-s3-agent vs peers, {meta['date']} ({meta['machine']})")
        written.insert(1, out_dir / "results.png")
    print(markdown)
    print(f"results: {', '.join(map(str, written))}")
    print(line)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
