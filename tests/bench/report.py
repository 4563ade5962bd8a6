"""Medians over runs, the markdown report, the PNG chart and the one-line summary."""

from __future__ import annotations

import statistics
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.bench.tools import Result
from tests.bench.workloads import GiB, MiB

TOOL_ORDER = ("agent", "s5cmd", "boto3", "git-lfs file://")
DIRECTIONS = ("up", "down", "fetch")
#: Other processes' CPU per second of wall time above which a row is marked noisy.
NOISY = 0.25
DIRECTION_LABELS = {"up": "upload (push)", "down": "download (pull)", "fetch": "download (fetch only)"}


@dataclass
class Row:
    """Medians of one workload x direction x tool over its successful runs."""

    workload: str
    server: str
    direction: str
    tool: str
    runs_ok: int
    runs: int
    bytes: int
    objects: int
    wall_s: float | None = None
    client_cpu_s: float | None = None
    command_cpu_s: float | None = None
    peak_rss_kib: float | None = None
    procs: float | None = None
    client_req_per_obj: float | None = None
    client_requests: dict[str, float] = field(default_factory=dict)
    server_req_per_obj: float | None = None
    server_cpu_s: float | None = None
    other_cpu_s: float | None = None
    errors: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def mib_s(self) -> float | None:
        return self.bytes / MiB / self.wall_s if self.wall_s else None

    def per_gib(self, cpu: float | None) -> float | None:
        return cpu / (self.bytes / GiB) if cpu is not None and self.bytes else None

    @property
    def cpu_per_gib(self) -> float | None:
        return self.per_gib(self.client_cpu_s)

    @property
    def server_busy(self) -> float | None:
        return self.server_cpu_s / self.wall_s if self.server_cpu_s is not None and self.wall_s else None


def _median(values: Iterable[float | int | None]) -> float | None:
    present = [float(v) for v in values if v is not None]
    return statistics.median(present) if present else None


def aggregate(results: Sequence[Result]) -> list[Row]:
    groups: dict[tuple[str, str, str], list[Result]] = {}
    for r in results:
        groups.setdefault((r.workload, r.direction, r.tool), []).append(r)
    rows = []
    for (workload, direction, tool), rs in groups.items():
        ok = [r for r in rs if r.error is None]
        first = rs[0]
        row = Row(workload=workload, server=first.server, direction=direction, tool=tool, runs_ok=len(ok),
                  runs=len(rs), bytes=first.bytes, objects=first.objects)
        row.errors = [f"run {r.run}: {r.error}" for r in rs if r.error]
        row.notes = sorted({note for r in rs for note in r.notes})
        if ok:
            row.wall_s = _median(r.wall_s for r in ok)
            row.client_cpu_s = _median(r.client_cpu_s for r in ok)
            row.command_cpu_s = _median(r.command_cpu_s for r in ok)
            row.peak_rss_kib = _median(r.peak_rss_kib for r in ok)
            row.procs = _median(r.procs for r in ok)
            if all(r.client_requests is not None for r in ok):
                row.client_req_per_obj = _median(sum((r.client_requests or {}).values()) / r.objects for r in ok)
                ops = sorted({op for r in ok for op in (r.client_requests or {})})
                row.client_requests = {op: _median((r.client_requests or {}).get(op, 0) for r in ok) or 0.0
                                       for op in ops}
            if all(r.server_requests is not None for r in ok):
                row.server_req_per_obj = _median((r.server_requests or 0) / r.objects for r in ok)
            row.server_cpu_s = _median(r.server_cpu_s for r in ok)
            row.other_cpu_s = _median(r.other_cpu_s for r in ok)
        rows.append(row)
    order = {name: i for i, name in enumerate(TOOL_ORDER)}
    seen: dict[str, int] = {}
    for r in results:
        seen.setdefault(r.workload, len(seen))
    directions = {name: i for i, name in enumerate(DIRECTIONS)}
    rows.sort(key=lambda r: (seen[r.workload], directions.get(r.direction, 9), order.get(r.tool, 99)))
    return rows


def agent_row(rows: Sequence[Row], workload: str, direction: str) -> Row | None:
    for row in rows:
        if row.workload == workload and row.direction == direction and row.tool == "agent":
            return row
    return None


def ratio(a: float | None, b: float | None) -> float | None:
    return a / b if a is not None and b else None


def _f(value: float | None, fmt: str = "{:.2f}", none: str = "n/a") -> str:
    return fmt.format(value) if value is not None else none


def _x(value: float | None) -> str:
    return f"{value:.2f}x" if value is not None else "n/a"


HEADER = ("| dir | tool | runs | wall s | MiB/s | client CPU s | CPU s/GiB | whole-cmd CPU s | peak RSS MiB "
          "| procs | req/obj (client) | req/obj (server log) | server CPU s | server busy | other CPU s "
          "| agent÷tool wall | agent÷tool CPU/GiB |")


def markdown_rows(rows: Sequence[Row], workload: str) -> list[str]:
    lines = [HEADER, "|" + "---|" * (HEADER.count("|") - 1)]
    for row in rows:
        if row.workload != workload:
            continue
        agent = agent_row(rows, row.workload, row.direction)
        if row.tool == "agent" or agent is None:
            wall_ratio = cpu_ratio = "—"
        else:
            wall_ratio = _x(ratio(agent.wall_s, row.wall_s))
            cpu_ratio = _x(ratio(agent.cpu_per_gib, row.cpu_per_gib))
        if row.tool == "s5cmd":
            client_req = "n/a"  # s5cmd cannot count its own requests cheaply; the server log can
        else:
            client_req = _f(row.client_req_per_obj) if row.tool != "git-lfs file://" else "—"
        server_req = _f(row.server_req_per_obj) if row.tool != "git-lfs file://" else "—"
        server_cpu = _f(row.server_cpu_s) if row.tool != "git-lfs file://" else "—"
        busy = _f(row.server_busy * 100 if row.server_busy is not None else None, "{:.0f}%") \
            if row.tool != "git-lfs file://" else "—"
        runs = f"{row.runs_ok}/{row.runs}" + (" FAILED" if row.errors else "")
        if row.other_cpu_s is not None and row.wall_s and row.other_cpu_s / row.wall_s > NOISY:
            runs += " (noisy)"
        lines.append(
            f"| {row.direction} | {row.tool} | {runs} | {_f(row.wall_s)} | {_f(row.mib_s, '{:.1f}')} "
            f"| {_f(row.client_cpu_s)} | {_f(row.cpu_per_gib, '{:.1f}')} | {_f(row.command_cpu_s)} "
            f"| {_f(row.peak_rss_kib / 1024 if row.peak_rss_kib else None, '{:.0f}')} | {_f(row.procs, '{:.0f}')} "
            f"| {client_req} | {server_req} | {server_cpu} | {busy} | {_f(row.other_cpu_s)} | {wall_ratio} "
            f"| {cpu_ratio} |")
    return lines


@dataclass
class Startup:
    init_ms: list[float]
    push: list[Result]
    floor_push: list[Result]
    small: Any = None  #: tests.bench.small.Small: one object, push and pull, cold and warm, beside file://

    def init_median(self) -> float | None:
        return statistics.median(self.init_ms) if self.init_ms else None


@dataclass
class Target:
    what: str
    limit: str
    measured: str
    ok: bool | None  # None: not measured


def targets(rows: Sequence[Row], startup: Startup | None, big: str | None, many: Sequence[str]) -> list[Target]:
    """The issue's targets (item 8) as measured in this run."""
    out: list[Target] = []

    def find(workload: str, direction: str, tool: str) -> Row | None:
        return next((r for r in rows if r.workload == workload and r.direction == direction and r.tool == tool), None)

    if big:
        for direction in ("up", "down"):
            agent, s5 = find(big, direction, "agent"), find(big, direction, "s5cmd")
            wall = ratio(agent.wall_s, s5.wall_s) if agent and s5 else None
            cpu = ratio(agent.cpu_per_gib, s5.cpu_per_gib) if agent and s5 else None
            out.append(Target(f"{big} {direction}: wall time vs s5cmd", "≤ 1.10x", _x(wall),
                              None if wall is None else wall <= 1.10))
            out.append(Target(f"{big} {direction}: client CPU/GiB vs s5cmd", "≤ 2.00x", _x(cpu),
                              None if cpu is None else cpu <= 2.0))
        agent, s5 = find(big, "fetch", "agent"), find(big, "down", "s5cmd")
        if agent and s5:
            wall = ratio(agent.wall_s, s5.wall_s)
            cpu = ratio(agent.cpu_per_gib, s5.cpu_per_gib)
            out.append(Target(f"{big} download without checkout (`git lfs fetch`): wall time vs s5cmd cp",
                              "≤ 1.10x", _x(wall), None if wall is None else wall <= 1.10))
            out.append(Target(f"{big} download without checkout (`git lfs fetch`): client CPU/GiB vs s5cmd",
                              "≤ 2.00x", _x(cpu), None if cpu is None else cpu <= 2.0))
        agent_rows = [r for r in (find(big, d, "agent") for d in DIRECTIONS) if r and r.peak_rss_kib]
        if agent_rows:
            peak = max(r.peak_rss_kib or 0 for r in agent_rows) / 1024
            out.append(Target(f"peak RSS per agent process, {big} (target is for 4 GiB: not run here)",
                              "< 150 MiB", f"{peak:.0f} MiB", peak < 150))
    for workload in many:
        for direction in ("up", "down"):
            agent, boto = find(workload, direction, "agent"), find(workload, direction, "boto3")
            wall = ratio(agent.wall_s, boto.wall_s) if agent and boto else None
            verb = "push" if direction == "up" else "pull"
            out.append(Target(f"{workload} {verb}: wall time vs boto3 loop (8 threads)", "≤ 1.00x", _x(wall),
                              None if wall is None else wall <= 1.0))
    if startup is not None:
        init = startup.init_median()
        out.append(Target("init reply after spawn, as git-lfs spawns it (median)", "< 15 ms", _f(init, "{:.0f} ms"),
                          None if init is None else init < 15))
        small = startup.small
        if small is not None:
            for verb in ("push", "pull"):
                floor = small.median(f"file {verb}")
                for mode, limit in (("warm", 3.0), ("cold", 7.0)):
                    got = small.median(f"{verb} {mode}")
                    r = ratio(got, floor) if got is not None and floor is not None else None
                    out.append(Target(f"one 10 KiB object, `git {verb}`{' (lfs pull)' if verb == 'pull' else ''}, "
                                      f"worker {mode}: wall vs git-lfs file://", f"≤ {limit:.0f}x", _x(r),
                                      None if r is None else r <= limit))
            cpu = small.median("push warm", "cpu")
            out.append(Target("one 10 KiB object `git push`, worker warm: CPU of the whole command", "< 0.25 s",
                              _f(cpu, "{:.2f} s"), None if cpu is None else cpu < 0.25))
    return out


def background_load(results: Sequence[Result]) -> float | None:
    """Average CPUs busy with other work while tools were measured (0 on a quiet machine)."""
    pairs = [(r.other_cpu_s, r.wall_s) for r in results if r.other_cpu_s is not None and r.wall_s]
    wall = sum(w for _, w in pairs if w)
    return sum(o for o, _ in pairs if o is not None) / wall if wall else None


def render(rows: Sequence[Row], workloads: Sequence[tuple[str, str]], startup: Startup | None,
           target_list: Sequence[Target], meta: dict[str, Any]) -> str:
    """The whole results.md."""
    out = ["# lfs-s3-agent benchmark", ""]
    out.append(f"{meta['date']} · {meta['machine']} · {meta['runs_note']} · medians over successful runs. "
               f"Versions: {meta['versions']}. Agent code: {meta.get('agent_code', '?')}.")
    out.append("")
    load = meta.get("background")
    if load is not None and load > 0.2:
        out.append(f"**Warning: the machine was not quiet.** Other processes kept {load:.2f} CPUs busy on average "
                   f"while tools were measured (load average {' '.join(meta.get('loadavg_start', []))} at the "
                   "start); see *other CPU s*. Rows with many processes (the agent's 8) suffer most; rerun on an "
                   "idle machine before quoting absolute times.")
        out.append("")
    out.append("Every row of a workload ran in the same run, against the same server process, tools interleaved "
               "run by run. Ratios are this agent's value divided by the peer's (below 1.00x: the agent is "
               "faster / cheaper). *client CPU* is user+sys of the tool's own processes: for the agent the sum "
               "over the agent processes git-lfs started and the shared worker they used (from "
               "`LFS_S3_STATS_FILE`; the worker starts cold in every run, is stopped after it so that it "
               "reports, and its CPU is added to whole-cmd CPU), for s5cmd its process, for boto3 the worker "
               "process (interpreter start and imports included), for `git-lfs file://` "
               "the whole git-lfs command. *whole-cmd CPU* is everything the command ran (git, git-lfs, sh, "
               "agents). *peak RSS* is the largest single client process (for the agent: max over its "
               "processes). *req/obj (client)*: S3 calls counted in the client (agent stats, a botocore hook "
               "in the boto3 worker); *(server log)*: HTTP responses the server logged during the run "
               "(retries included; downloads also count listings). *server busy*: server CPU ÷ wall: near "
               "or above 100% means the server was the bottleneck (node's event loop or moto under the GIL; "
               "s3rver's file I/O threads can take it past 100%). "
               "*other CPU*: CPU the rest of the machine used during the run (from /proc/stat, minus client and "
               "server): rows where it exceeds a quarter of a CPU are marked *(noisy)*: something else was "
               "running. `down` is `git lfs pull` in a fresh clone, which includes git-lfs's own work after the "
               "download (it hashes the object again and checks the files out into the working tree), for the "
               "agent and `file://` alike; s5cmd and boto3 write each file once. `fetch` rows (`git lfs fetch` "
               "in a fresh clone: the download into `.git/lfs/objects` without checkout) separate the agent's "
               "share from git-lfs's. `git-lfs file://` push hard-links objects into the bare repository (same "
               "file system), so its push rows are git-lfs's fixed cost, not a copy.")
    out.append("")
    for workload, server in workloads:
        out.append(f"## {workload} (server: {server})")
        out.append("")
        out.extend(markdown_rows(rows, workload))
        out.append("")
        for row in rows:
            if row.workload != workload:
                continue
            if row.tool == "agent" and row.client_requests:
                calls = ", ".join(f"{op} {n:g}" for op, n in row.client_requests.items())
                out.append(f"- agent {row.direction}: S3 calls per run (median): {calls}")
            for error in row.errors:
                out.append(f"- **{row.tool} {row.direction} failed** {error}")
            for note in row.notes:
                out.append(f"- {row.tool} {row.direction}: {note}")
        out.append("")
    if startup is not None:
        out.append("## Start-up")
        out.append("")
        init = startup.init_ms
        if init:
            out.append(f"- init reply after spawning the agent as git-lfs does (`sh -c` of the configured launcher) "
                       "in a configured repository: "
                       f"median {statistics.median(init):.0f} ms over {len(init)} spawns "
                       f"(min {min(init):.0f}, max {max(init):.0f})")
        small = startup.small
        if small is not None:
            out.append("- one new 10 KiB object, `git push` (with the pre-push hook) and `git lfs pull -I FILE`, "
                       f"medians over {len(small.wall['file push'])} runs (wall s / whole-command CPU s; a warm "
                       "worker's CPU during the command included, a cold start's worker not):")
            for kind in ("push warm", "push cold", "file push", "pull warm", "pull cold", "file pull"):
                label = kind.replace("file ", "git-lfs file:// ") if kind.startswith("file") else f"agent {kind}"
                out.append(f"  - {label}: {_f(small.median(kind), '{:.3f}')} s / "
                           f"{_f(small.median(kind, 'cpu'), '{:.2f}')} s")
            for error in small.errors:
                out.append(f"  - **failed**: {error}")
        for label, results in (("agent", startup.push), ("git-lfs file://", startup.floor_push)):
            ok = [r for r in results if r.error is None]
            if not ok:
                for r in results:
                    out.append(f"- `git lfs push` of one small object ({label}) failed: {r.error}")
                continue
            wall = _median(r.wall_s for r in ok)
            line = (f"- `git lfs push` of one 1 KiB object, default 8 workers, {label}: median wall "
                    f"{_f(wall, '{:.3f}')} s over {len(ok)} runs; whole command CPU "
                    f"{_f(_median(r.command_cpu_s for r in ok), '{:.2f}')} s")
            if label == "agent":
                rss = _median(r.peak_rss_kib for r in ok)
                line += (f"; {_f(_median(r.procs for r in ok), '{:.0f}')} processes (agents and the shared worker), "
                         "together "
                         f"{_f(_median(r.client_cpu_s for r in ok), '{:.2f}')} s CPU, largest "
                         f"{_f(rss / 1024 if rss else None, '{:.0f}')} MiB RSS")
            out.append(line)
        out.append("")
    if target_list:
        out.append("## Targets (issue 3, item 8), from this run")
        out.append("")
        out.append("| target | limit | measured | met |")
        out.append("|---|---|---|---|")
        for t in target_list:
            met = "n/a" if t.ok is None else ("yes" if t.ok else "**no**")
            out.append(f"| {t.what} | {t.limit} | {t.measured} | {met} |")
        out.append("")
    return "\n".join(out)


def summary(rows: Sequence[Row], startup: Startup | None, big: str | None, many: Sequence[str],
            failures: int) -> str:
    parts = []

    def find(workload: str, direction: str, tool: str) -> Row | None:
        return next((r for r in rows if r.workload == workload and r.direction == direction and r.tool == tool), None)

    if big:
        for direction in ("up", "down"):
            agent, s5 = find(big, direction, "agent"), find(big, direction, "s5cmd")
            if agent and s5:
                parts.append(f"{big.replace(' ', '')} {direction} {_x(ratio(agent.wall_s, s5.wall_s))} s5cmd wall, "
                             f"{_x(ratio(agent.cpu_per_gib, s5.cpu_per_gib))} CPU")
        agent, s5 = find(big, "fetch", "agent"), find(big, "down", "s5cmd")
        if agent and s5:
            parts.append(f"fetch {_x(ratio(agent.wall_s, s5.wall_s))} s5cmd wall")
    for workload in many:
        for direction in ("up", "down"):
            agent, boto = find(workload, direction, "agent"), find(workload, direction, "boto3")
            if agent and boto:
                parts.append(f"{workload.replace(' ', '')} {direction} {_x(ratio(agent.wall_s, boto.wall_s))} boto3")
    if startup is not None and startup.init_ms:
        parts.append(f"init {statistics.median(startup.init_ms):.0f} ms")
        ok = [r for r in startup.push if r.error is None]
        if ok:
            parts.append(f"1-object push {_f(_median(r.wall_s for r in ok), '{:.2f}')} s")
        small = startup.small
        if small is not None:
            for kind in ("push warm", "push cold", "pull warm", "pull cold"):
                floor = small.median("file " + kind.split()[0])
                got = small.median(kind)
                parts.append(f"1x10KiB {kind} {_x(ratio(got, floor) if got and floor else None)} file://")
    parts.append("all integrity checks passed" if failures == 0 else f"{failures} FAILED run(s)")
    return "bench (agent÷peer, medians): " + "; ".join(parts)


def chart(rows: Sequence[Row], path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    groups: list[tuple[str, str]] = []
    for row in rows:
        key = (row.workload, row.direction)
        if key not in groups:
            groups.append(key)
    tools = [t for t in TOOL_ORDER if any(r.tool == t for r in rows)]
    metrics: list[tuple[str, Any]] = [
        ("throughput, MiB/s (higher is better)", lambda r: r.mib_s),
        ("client CPU s per GiB (lower is better)", lambda r: r.cpu_per_gib),
        ("peak RSS per process, MiB (lower is better)",
         lambda r: r.peak_rss_kib / 1024 if r.peak_rss_kib else None),
    ]
    fig, axes = plt.subplots(len(metrics), 1, figsize=(14, 12), constrained_layout=True)
    width = 0.8 / max(1, len(tools))
    colors = {"agent": "#d62728", "s5cmd": "#1f77b4", "boto3": "#2ca02c", "git-lfs file://": "#7f7f7f"}
    for ax, (label, get) in zip(axes, metrics, strict=True):
        for i, tool in enumerate(tools):
            xs, ys = [], []
            for g, (workload, direction) in enumerate(groups):
                found = next((r for r in rows if r.workload == workload and r.direction == direction
                              and r.tool == tool), None)
                value = get(found) if found is not None else None
                if value:
                    xs.append(g + (i - (len(tools) - 1) / 2) * width)
                    ys.append(value)
            ax.bar(xs, ys, width, label=tool, color=colors.get(tool))
        if "RSS" not in label:
            ax.set_yscale("log")
        ax.set_title(label)
        ax.set_xticks(range(len(groups)))
        ax.set_xticklabels([f"{w}\n{DIRECTION_LABELS.get(d, d)}" for w, d in groups], fontsize=8)
        ax.grid(axis="y", which="both", alpha=0.3)
    axes[0].legend(ncol=len(tools), loc="upper right")
    fig.suptitle(title)
    fig.savefig(path, dpi=110)
    plt.close(fig)
