"""`harness bench tls`: the cost of https on the reference façade, as https / http ratios.

The command itself is in harness.bench.cli, beside `bench server`.

Two façades of the same build run side by side, one plain and one serving a lab CA certificate.
Each repeat measures the bulk workloads (Put Block and ranged Get Blob of one large blob) and the
small ones (1 KiB Put Blob, then Get Blob) on both, alternating which goes first so slow drifts
of the machine hit both alike. Keep-alive holds a connection per client slot, so the ratio is
the cost of encryption, not of handshakes. Ratios are medians of the repeats divided.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import statistics
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import uvloop
from rich.console import Console
from rich.table import Table

from harness.bench.client import KIB, MIB, BenchClient
from harness.bench.run import BUSY_LOAD_PER_CORE, WORKLOADS, Reporter, to_step_result, value
from harness.cli_common import new_run_dir
from harness.paths import ROOT
from harness.results import StepResult
from harness.targets.reference import ReferenceTarget

CONTAINER = "bench-tls"
SCHEMES = ("http", "https")
STEPS = ("put-block", "get-blob", "put-small", "get-small")  # bulk, then small operations


@dataclass
class TlsBenchConfig:
    size: int = 256 * MIB  # the large blob of the bulk workloads
    block_size: int = 8 * MIB
    concurrency: int = 16
    small_ops: int = 1000
    small_size: int = 1 * KIB
    small_concurrency: int = 32
    repeats: int = 3
    workers: int = field(default_factory=lambda: os.cpu_count() or 1)
    out: Path = ROOT / "reports"
    ca_dir: Path | None = None  # the lab CA (default: harness.labca.default_ca_dir())


@dataclass
class TlsBenchRun:
    run_dir: Path
    config: TlsBenchConfig
    rows: list[StepResult]
    summary: list[dict[str, Any]]
    load_before: float = 0.0  # 1-min load average when the run started

    @property
    def busy_host(self) -> bool:
        """Other processes competed for the cores: ratios are noisy (as `bench server` says)."""
        return self.load_before > BUSY_LOAD_PER_CORE * (os.cpu_count() or 1)

    @property
    def failed(self) -> list[str]:
        return sorted({f"{r.target} {r.step}" for r in self.rows if not r.ok})


async def measure(
    client: BenchClient, cfg: TlsBenchConfig, repeat: int, report: Reporter
) -> list[StepResult]:
    """Every workload of this benchmark once on one endpoint (its target name is the scheme)."""
    name = client.endpoint.target
    large = f"large-{repeat}"
    put = await client.put_blocks(
        CONTAINER,
        large,
        cfg.size,
        cfg.block_size,
        cfg.concurrency,
        report(f"{name}: Put Block", cfg.size),
    )
    get = await client.get_ranges(
        CONTAINER,
        large,
        cfg.size,
        cfg.block_size,
        cfg.concurrency,
        report(f"{name}: Get Blob", cfg.size),
    )
    await client.delete_blob(CONTAINER, large)
    names = [f"small/{repeat}/{i:06d}" for i in range(cfg.small_ops)]
    sput = await client.put_small(
        CONTAINER,
        names,
        cfg.small_size,
        cfg.small_concurrency,
        report(f"{name}: small Put Blob", cfg.small_ops),
    )
    sget = await client.get_small(
        CONTAINER, names, cfg.small_concurrency, report(f"{name}: small Get Blob", cfg.small_ops)
    )
    phases = [
        (put, "put-block", cfg.concurrency),
        (get, "get-blob", cfg.concurrency),
        (sput, "put-small", cfg.small_concurrency),
        (sget, "get-small", cfg.small_concurrency),
    ]
    return [
        dataclasses.replace(to_step_result(p, step, name, repeat, c), scenario="bench-tls")
        for p, step, c in phases
    ]


def summarize(rows: list[StepResult]) -> list[dict[str, Any]]:
    """Median per (workload, scheme) over the repeats with no failed request, and https / http."""
    out = []
    for step in STEPS:
        medians: dict[str, float | None] = {}
        for scheme in SCHEMES:
            vals = [value(r) for r in rows if r.step == step and r.target == scheme and r.ok]
            medians[scheme] = statistics.median(vals) if vals else None
        plain, tls = medians["http"], medians["https"]
        w = WORKLOADS[step]
        out.append(
            {
                "step": step,
                "label": w.label,
                "unit": w.unit,
                "http": plain,
                "https": tls,
                "ratio": tls / plain if plain and tls is not None else None,
                "client_bound": any(r.extra.get("client_bound") for r in rows if r.step == step),
            }
        )
    return out


async def _run(
    clients: dict[str, BenchClient], cfg: TlsBenchConfig, report: Reporter
) -> list[StepResult]:
    for client in clients.values():
        await client.ensure_container(CONTAINER)
    rows: list[StepResult] = []
    for repeat in range(cfg.repeats):
        order = SCHEMES if repeat % 2 == 0 else SCHEMES[::-1]
        for scheme in order:
            rows += await measure(clients[scheme], cfg, repeat, report)
    return rows


def run_tls_bench(
    cfg: TlsBenchConfig, report: Reporter, run_dir: Path | None = None
) -> TlsBenchRun:
    """Start both façades inside the run dir, measure, stop them, remove their data."""
    run_dir = run_dir or new_run_dir(cfg.out, "bench-tls")
    load_before = os.getloadavg()[0]
    targets = {
        "http": ReferenceTarget(workers=cfg.workers),
        "https": ReferenceTarget(workers=cfg.workers, tls=True, ca_dir=cfg.ca_dir),
    }
    try:
        clients = {}
        for scheme, target in targets.items():
            target.start(run_dir / scheme)
            endpoint = dataclasses.replace(target.endpoint(), target=scheme)
            clients[scheme] = BenchClient(endpoint, target.server_pids)
        rows = uvloop.run(_run(clients, cfg, report))
    finally:
        for target in targets.values():
            target.stop()
            if target.data_root is not None:
                shutil.rmtree(target.data_root, ignore_errors=True)
    run = TlsBenchRun(run_dir, cfg, rows, summarize(rows), load_before)
    doc = {
        "config": {k: str(v) for k, v in dataclasses.asdict(cfg).items()},
        "load_before": load_before,
        "summary": run.summary,
        "rows": [dataclasses.asdict(r) for r in rows],
    }
    (run_dir / "bench-tls.json").write_text(json.dumps(doc, indent=2, default=str) + "\n")
    return run


def _fmt(v: float | None) -> str:
    return "–" if v is None else f"{v:,.1f}"


def render(run: TlsBenchRun, console: Console) -> None:
    table = Table(title="https vs http on the reference façade (median of repeats)")
    for col in ("workload", "unit", "http", "https", "https / http"):
        table.add_column(col, justify="left" if col in ("workload", "unit") else "right")
    for s in run.summary:
        ratio = "–" if s["ratio"] is None else f"{s['ratio']:.2f}×"
        mark = " *" if s["client_bound"] else ""
        table.add_row(s["label"], s["unit"], _fmt(s["http"]), _fmt(s["https"]), ratio + mark)
    console.print(table)
    if any(s["client_bound"] for s in run.summary):
        console.print("* client-bound: the benchmark client was above 90% CPU")
    if run.busy_host:
        console.print(
            f"[yellow]note:[/] host busy before the run (1-min load average "
            f"{run.load_before:.1f} on {os.cpu_count()} cores): ratios are noisy; rerun when idle"
        )
    console.print(f"results: {run.run_dir / 'bench-tls.json'}")
