"""One `bench server` run: start the three servers, measure each workload, write the results.

Each repeat measures every workload on the façade and on Azurite back to back (and nginx right
after the façade's Get Blob, on the very file the façade just committed), so slow drifts of the
machine hit both sides alike. Ratios are medians of the repeats divided by each other.
"""

from __future__ import annotations

import json
import os
import platform
import shutil
import signal
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import psutil
import uvloop

from harness.bench.client import KIB, MIB, BenchClient, ClientPool, PhaseResult
from harness.bench.nginx import NginxServer
from harness.cli_common import new_run_dir
from harness.metrics import latency_summary
from harness.paths import ROOT
from harness.results import StepResult, count_errors
from harness.targets.azurite import AzuriteTarget
from harness.targets.base import DEV_ACCOUNT
from harness.targets.reference import ReferenceTarget
from harness.tools import tool_versions

CONTAINER = "bench"
CLIENT_BOUND_PCT = 90.0  # above this the client, not the server, may set the pace
BUSY_LOAD_PER_CORE = 0.5  # load average per core before the run above which it is flagged


@dataclass
class BenchConfig:
    size: int = 1024 * MIB  # the large blob of the throughput workloads
    block_size: int = 8 * MIB
    concurrency: int = 16  # requests in flight for the large Put Block / Get Blob workloads
    burst: int = 1000  # Put Blocks all in flight at once
    burst_block: int = 64 * KIB
    small_ops: int = 2000  # 1 KiB Put Blobs, then Get Blobs of the same names
    small_size: int = 1 * KIB
    small_concurrency: int = 32
    repeats: int = 3
    # client processes the Put Block / Get Blob throughput workloads are split across (one
    # Python client tops out near 1 GB/s); the other workloads run on one
    client_procs: int = 2
    workers: int = field(default_factory=lambda: os.cpu_count() or 1)
    out: Path = ROOT / "reports"
    profile: bool = False  # py-spy the façade's processes during the run
    facade_args: list[str] = field(default_factory=list)  # extra `python -m reference_server` flags


@dataclass(frozen=True)
class Workload:
    step: str
    label: str
    unit: str  # "MiB/s" or "ops/s"


WORKLOADS = {
    w.step: w
    for w in (
        Workload("put-block", "Put Block throughput", "MiB/s"),
        Workload("get-blob", "Get Blob throughput", "MiB/s"),
        Workload("put-block-burst", "concurrent Put Blocks", "ops/s"),
        Workload("put-small", "small Put Blob", "ops/s"),
        Workload("get-small", "small Get Blob", "ops/s"),
    )
}


@dataclass(frozen=True)
class Comparison:
    step: str
    baseline: str  # target the façade is divided by
    goal: float  # the ratio the façade should reach


COMPARISONS = (
    Comparison("put-block", "azurite", 3.0),
    Comparison("get-blob", "azurite", 3.0),
    Comparison("put-block-burst", "azurite", 3.0),
    Comparison("put-small", "azurite", 3.0),
    Comparison("get-small", "azurite", 3.0),
    Comparison("get-blob", "nginx", 0.7),
)


# Azurite on this 2-core box with the JS SDK (SPEC.md, "Facts learned"): a sanity check. An
# Azurite far below these means the host, not the targets, set the pace of the run.
AZURITE_EXPECTED = {"put-block": 208.0, "get-blob": 345.0, "put-small": 500.0, "get-small": 500.0}


def value(row: StepResult) -> float:
    """The KPI of one measured step in its workload's unit."""
    return row.throughput_mib_s if WORKLOADS[row.step].unit == "MiB/s" else row.ops_s


def summarize(rows: list[StepResult]) -> list[dict[str, Any]]:
    """Median per (step, target) over the measured repeats, and the façade's ratios."""

    def median(step: str, target: str) -> tuple[float | None, list[float], bool]:
        sel = [r for r in rows if r.step == step and r.target == target and not r.warmup]
        vals = [value(r) for r in sel if r.ok]
        bound = any(r.extra.get("client_bound") for r in sel)
        return (statistics.median(vals) if vals else None), vals, bound

    out = []
    for c in COMPARISONS:
        w = WORKLOADS[c.step]
        ours, ours_vals, b1 = median(c.step, "reference")
        base, base_vals, b2 = median(c.step, c.baseline)
        ratio = ours / base if ours is not None and base else None
        out.append(
            {
                "step": c.step,
                "label": w.label,
                "unit": w.unit,
                "baseline": c.baseline,
                "reference": ours,
                "baseline_value": base,
                "reference_repeats": ours_vals,
                "baseline_repeats": base_vals,
                "ratio": ratio,
                "goal": c.goal,
                "met": ratio is not None and ratio >= c.goal,
                "client_bound": b1 or b2,
            }
        )
    return out


def to_step_result(
    phase: PhaseResult, step: str, target: str, repeat: int, concurrency: int, warmup: bool = False
) -> StepResult:
    by_status, by_code = count_errors(phase.errors)
    # Any client process above the threshold may have set the pace of the whole phase.
    bound = phase.busiest_client_pct > CLIENT_BOUND_PCT
    return StepResult(
        scenario="bench-server",
        step=step,
        driver="bench",
        operation=step,
        target=target,
        repeat=repeat,
        warmup=warmup,
        ok=not phase.errors,
        started_at=time.time() - phase.duration_s,
        duration_s=phase.duration_s,
        bytes=phase.bytes,
        objects=phase.ops,
        failed=len(phase.errors),
        concurrency=concurrency,
        **latency_summary(phase.latencies_ms),
        errors_by_status=by_status,
        errors_by_code=by_code,
        error=f"{len(phase.errors)} failed requests" if phase.errors else None,
        client_cpu_pct_max=round(phase.client_cpu_pct, 1),
        extra={
            "server_cpu_pct": round(phase.server_cpu_pct, 1),
            "client_bound": bound,
            "client_procs": phase.client_procs,
        },
    )


Reporter = Callable[[str, int], Callable[[int], None]]  # (description, total) -> advance(n)


async def measure_target(
    client: BenchClient,
    cfg: BenchConfig,
    repeat: int,
    report: Reporter,
    after_get: Callable[[str], Any] | None = None,
) -> list[StepResult]:
    """Every workload once on one Blob endpoint; ``after_get`` runs while the large blob exists."""
    name = client.endpoint.target
    large = f"large-{repeat}"
    rows = []
    put = await client.put_blocks(
        CONTAINER,
        large,
        cfg.size,
        cfg.block_size,
        cfg.concurrency,
        report(f"{name}: Put Block", cfg.size),
        procs=cfg.client_procs,
    )
    rows.append(to_step_result(put, "put-block", name, repeat, cfg.concurrency))
    get = await client.get_ranges(
        CONTAINER,
        large,
        cfg.size,
        cfg.block_size,
        cfg.concurrency,
        report(f"{name}: Get Blob", cfg.size),
        procs=cfg.client_procs,
    )
    rows.append(to_step_result(get, "get-blob", name, repeat, cfg.concurrency))
    if after_get is not None:
        rows.extend(await after_get(large))
    await client.delete_blob(CONTAINER, large)
    burst = await client.put_block_burst(
        CONTAINER,
        f"burst-{repeat}",
        cfg.burst,
        cfg.burst_block,
        report(f"{name}: {cfg.burst} concurrent Put Blocks", cfg.burst),
    )
    rows.append(to_step_result(burst, "put-block-burst", name, repeat, cfg.burst))
    names = [f"small/{repeat}/{i:06d}" for i in range(cfg.small_ops)]
    sput = await client.put_small(
        CONTAINER,
        names,
        cfg.small_size,
        cfg.small_concurrency,
        report(f"{name}: small Put Blob", cfg.small_ops),
    )
    rows.append(to_step_result(sput, "put-small", name, repeat, cfg.small_concurrency))
    sget = await client.get_small(
        CONTAINER, names, cfg.small_concurrency, report(f"{name}: small Get Blob", cfg.small_ops)
    )
    rows.append(to_step_result(sget, "get-small", name, repeat, cfg.small_concurrency))
    return rows


async def warm_up(client: BenchClient, cfg: BenchConfig) -> None:
    """Container creation plus a few small round trips, unmeasured (JIT, caches, pools)."""
    await client.ensure_container(CONTAINER)
    names = [f"warmup/{i}" for i in range(min(50, cfg.small_ops))]
    await client.put_small(CONTAINER, names, cfg.small_size, 8)
    await client.get_small(CONTAINER, names, 8)


class Servers:
    """The three servers of one run, each in its own directory of the run dir."""

    def __init__(self, run_dir: Path, workers: int, facade_args: list[str]) -> None:
        self.run_dir = run_dir
        self.reference = ReferenceTarget(workers=workers, extra_args=facade_args)
        self.azurite = AzuriteTarget()
        self.nginx: NginxServer | None = None

    def start(self) -> None:
        self.reference.start(self.run_dir / "reference")
        self.azurite.start(self.run_dir / "azurite")
        assert self.reference.data_root is not None
        # nginx's root is the façade's account directory: it serves the very committed files.
        account_dir = self.reference.data_root / DEV_ACCOUNT
        account_dir.mkdir(parents=True, exist_ok=True)
        self.nginx = NginxServer(account_dir, self.reference.workers)
        self.nginx.start(self.run_dir / "nginx")

    def stop(self) -> None:
        for server in (self.nginx, self.azurite, self.reference):
            if server is not None:
                server.stop()

    def clean(self) -> None:
        """Remove the data roots and nginx's scratch dirs; logs and configs stay."""
        scratch = ["reference/data", "azurite/data"]
        scratch += [f"nginx/{k}" for k in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")]
        for data in scratch:
            shutil.rmtree(self.run_dir / data, ignore_errors=True)

    def clients(self, pool: ClientPool | None = None) -> dict[str, BenchClient]:
        assert self.nginx is not None
        return {
            t.name: BenchClient(t.endpoint(), t.server_pids, pool)
            for t in (self.reference, self.azurite, self.nginx)
        }


async def run_workloads(
    servers: Servers, cfg: BenchConfig, report: Reporter, pool: ClientPool | None = None
) -> list[StepResult]:
    clients = servers.clients(pool)
    nginx = clients.pop("nginx")
    for c in clients.values():
        await warm_up(c, cfg)
    rows: list[StepResult] = []
    for repeat in range(cfg.repeats):

        async def nginx_get(blob: str, repeat: int = repeat) -> list[StepResult]:
            phase = await nginx.get_ranges(
                CONTAINER,
                blob,
                cfg.size,
                cfg.block_size,
                cfg.concurrency,
                report("nginx: Get of the same file", cfg.size),
                procs=cfg.client_procs,
            )
            return [to_step_result(phase, "get-blob", "nginx", repeat, cfg.concurrency)]

        rows += await measure_target(clients["reference"], cfg, repeat, report, nginx_get)
        rows += await measure_target(clients["azurite"], cfg, repeat, report)
    return rows


def _versions() -> dict[str, str]:
    rev = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"],
        capture_output=True,
        text=True,
        cwd=ROOT,
        check=False,
    ).stdout.strip()
    tools = tool_versions()
    return {
        "python": platform.python_version(),
        "aiohttp": aiohttp.__version__,
        "uvloop": uvloop.__version__,
        "azurite": tools.get("azurite", ""),
        "nginx": tools.get("nginx", ""),
        "git": rev,
    }


@dataclass
class BenchRun:
    run_dir: Path
    config: BenchConfig
    rows: list[StepResult]
    summary: list[dict[str, Any]]
    versions: dict[str, str]
    notes: list[str]
    profiles: list[Path]
    load_before: float = 0.0  # 1-min load average when the run started

    def to_json(self) -> dict[str, Any]:
        cfg = {k: str(v) if isinstance(v, Path) else v for k, v in asdict(self.config).items()}
        return {
            "kind": "bench-server",
            "config": cfg,
            "host": {
                "cpus": os.cpu_count(),
                "memory_gib": round(psutil.virtual_memory().total / 2**30, 1),
                "platform": platform.platform(),
                "load_avg_1m_before": round(self.load_before, 2),
            },
            "versions": self.versions,
            "summary": self.summary,
            "results": [r.to_row() for r in self.rows],
            "notes": self.notes,
            "profiles": [p.name for p in self.profiles],
        }


def _start_profiler(pid: int, run_dir: Path) -> subprocess.Popen | None:
    """py-spy on the façade and its forked workers, collapsed stacks into the run dir."""
    py_spy = shutil.which("py-spy", path=str(Path(sys.executable).parent)) or shutil.which("py-spy")
    if py_spy is None:
        return None
    argv = [py_spy, "record", "--pid", str(pid), "--subprocesses", "--rate", "100"]
    argv += ["--format", "raw", "--output", str(run_dir / "profile-reference.txt")]
    with (run_dir / "py-spy.log").open("wb") as log:
        return subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT)


def run_bench(cfg: BenchConfig, report: Reporter, run_dir: Path | None = None) -> BenchRun:
    """Start the servers inside the run dir (one disk), measure, stop them, remove the data."""
    run_dir = run_dir or new_run_dir(cfg.out, "bench-server")
    servers = Servers(run_dir, cfg.workers, cfg.facade_args)
    profiler = None
    pool = None
    versions = _versions()
    load_before = os.getloadavg()[0]
    try:
        if cfg.client_procs > 1:
            pool = ClientPool(cfg.client_procs)
        servers.start()
        if cfg.profile:
            profiler = _start_profiler(servers.reference.server_pids()[0], run_dir)
        rows = uvloop.run(run_workloads(servers, cfg, report, pool))
    finally:
        if pool is not None:
            pool.close()
        if profiler is not None:
            profiler.send_signal(signal.SIGINT)  # py-spy writes its output on SIGINT
            try:
                profiler.wait(timeout=60)
            except subprocess.TimeoutExpired:
                profiler.kill()
                profiler.wait()
        servers.stop()
        servers.clean()
    summary = summarize(rows)
    notes = []
    cores = os.cpu_count() or 1
    if load_before > BUSY_LOAD_PER_CORE * cores:
        # Other processes compete with the servers and the client for the same cores.
        notes.append(
            f"host busy before the run (1-min load average {load_before:.1f} on {cores} cores):"
            " absolute numbers are low and ratios noisy; rerun on an idle host"
        )
    bound = sorted({f"{r.target} {r.step}" for r in rows if r.extra.get("client_bound")})
    if bound:
        notes.append(
            f"client-bound (a benchmark client process above {CLIENT_BOUND_PCT:.0f}% CPU): "
            + ", ".join(bound)
            + "; those numbers measure the client as much as the server"
        )
    slow = [
        f"{s['step']} {s['baseline_value']:.0f} vs ~{AZURITE_EXPECTED[s['step']]:.0f} {s['unit']}"
        for s in summary
        if s["baseline"] == "azurite"
        and s["step"] in AZURITE_EXPECTED
        and s["baseline_value"] is not None
        and s["baseline_value"] < AZURITE_EXPECTED[s["step"]] / 2
    ]
    if slow:
        notes.append("Azurite below half of its known numbers on this box: " + ", ".join(slow))
    failed = sorted({f"{r.target} {r.step}" for r in rows if not r.ok})
    if failed:
        notes.append("failed requests in: " + ", ".join(failed) + " (repeats left out of medians)")
    if cfg.profile:
        notes.append("profiled run: py-spy sampled the façade, so its numbers are slightly low")
    profiles = [p for p in [run_dir / "profile-reference.txt"] if p.exists()]
    result = BenchRun(run_dir, cfg, rows, summary, versions, notes, profiles, load_before)
    write_outputs(result)
    return result


def _fmt(v: float | None) -> str:
    return "–" if v is None else f"{v:,.1f}"


# Leaf frames of threads parked waiting for work: time there is idle, not cost.
_IDLE_FRAMES = (
    "_worker (concurrent/futures/thread.py",
    "select (selectors.py",
    "main (multiprocessing/resource_tracker.py",
    "wait (threading.py",
)


def hot_spots(profile: Path, top: int = 15) -> list[tuple[str, float]]:
    """Self-time share per frame from py-spy's collapsed stacks, idle waits left out."""
    counts: dict[str, int] = {}
    total = 0
    for line in profile.read_text().splitlines():
        stack, _, n = line.rpartition(" ")
        if not stack or not n.isdigit():
            continue
        frame = stack.split(";")[-1]
        if frame.startswith(_IDLE_FRAMES) or ".wait (threading.py" in frame:
            continue
        total += int(n)
        counts[frame] = counts.get(frame, 0) + int(n)
    ranked = sorted(counts.items(), key=lambda kv: -kv[1])[:top]
    return [(f, 100 * n / total) for f, n in ranked] if total else []


def write_outputs(run: BenchRun) -> None:
    (run.run_dir / "bench.json").write_text(json.dumps(run.to_json(), indent=2) + "\n")
    cfg = run.config
    lines = [
        "# bench server",
        "",
        f"{cfg.size // MIB} MiB in {cfg.block_size // MIB} MiB blocks, {cfg.concurrency} at a "
        f"time; {cfg.burst} concurrent {cfg.burst_block // KIB} KiB Put Blocks; "
        f"{cfg.small_ops} x {cfg.small_size // KIB} KiB Put/Get Blob at {cfg.small_concurrency}; "
        f"façade workers {cfg.workers}; {cfg.client_procs} client processes for Put Block / "
        f"Get Blob throughput; median of {cfg.repeats}.",
        "",
        "| workload | unit | façade | baseline | baseline value | ratio | goal | met |",
        "|---|---|---:|---|---:|---:|---:|---|",
    ]
    for s in run.summary:
        ratio = "–" if s["ratio"] is None else f"{s['ratio']:.2f}×"
        met = ("yes" if s["met"] else "no") + (" (client-bound)" if s["client_bound"] else "")

        lines.append(
            f"| {s['label']} | {s['unit']} | {_fmt(s['reference'])} | {s['baseline']} | "
            f"{_fmt(s['baseline_value'])} | {ratio} | ≥ {s['goal']}× | {met} |"
        )
    lines += ["", "| target | step | repeat | value | client CPU % | server CPU % | errors |"]
    lines += ["|---|---|---:|---:|---:|---:|---:|"]
    for r in run.rows:
        lines.append(
            f"| {r.target} | {r.step} | {r.repeat} | {_fmt(value(r))} | "
            f"{_fmt(r.client_cpu_pct_max)} | {_fmt(r.extra.get('server_cpu_pct'))} | {r.failed} |"
        )
    for p in run.profiles:
        lines += ["", f"Façade hot spots (self time, {p.name}):", ""]
        lines += [f"- {share:.1f}% {frame}" for frame, share in hot_spots(p)]
    if run.notes:
        lines += ["", *[f"Note: {n}" for n in run.notes]]
    versions = ", ".join(f"{k} {v}" for k, v in run.versions.items() if v)
    lines += ["", f"Versions: {versions}.", ""]
    (run.run_dir / "bench.md").write_text("\n".join(lines))
