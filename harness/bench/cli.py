"""`harness bench server`: the reference façade against Azurite and nginx, as ratios."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import click
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
)
from rich.table import Table

from harness.bench.run import BenchConfig, BenchRun, hot_spots, run_bench
from harness.bench.s2s import s2s_command
from harness.bench.tls import TlsBenchConfig, run_tls_bench
from harness.bench.tls import render as render_tls
from harness.cli_common import SIZE, config_from_options, out_option


@contextmanager
def progress_reporter(console: Console) -> Iterator[Callable[[str, int], Callable[[int], None]]]:
    """A rich progress bar per measured phase; the bars stay as a log of the run."""
    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
        transient=False,
    ) as progress:

        def report(description: str, total: int) -> Callable[[int], None]:
            task = progress.add_task(description, total=total)
            return lambda n: progress.advance(task, n)

        yield report


def render(run: BenchRun, console: Console) -> None:
    # The footnote explains a mark: only when some row carries it.
    bound = any(s["client_bound"] for s in run.summary)
    table = Table(
        title="façade vs anchors (median of repeats)",
        caption="* client-bound: a benchmark client process was above 90% CPU" if bound else None,
    )
    for col in ("workload", "unit", "façade", "baseline", "ratio", "goal", "met"):
        table.add_column(
            col,
            justify="right" if col in ("façade", "ratio") else "left",
            no_wrap=col != "workload",
        )
    for s in run.summary:
        ours = "–" if s["reference"] is None else f"{s['reference']:,.1f}"
        base = "–" if s["baseline_value"] is None else f"{s['baseline_value']:,.1f}"
        ratio = "–" if s["ratio"] is None else f"{s['ratio']:.2f}×"
        met = "[green]yes[/]" if s["met"] else "[red]no[/]"
        if s["client_bound"]:
            met += "[yellow]*[/]"
        table.add_row(
            s["label"], s["unit"], ours, f"{s['baseline']} {base}", ratio, f"≥ {s['goal']}×", met
        )
    console.print(table)
    for p in run.profiles:
        console.print(f"façade hot spots ({p.name}):")
        for frame, share in hot_spots(p, top=10):
            console.print(f"  {share:5.1f}% {frame}")
    for note in run.notes:
        console.print(f"[yellow]note:[/] {note}")
    console.print(f"results: {run.run_dir / 'bench.json'}, {run.run_dir / 'bench.md'}")


def missed_goals(run: BenchRun) -> list[str]:
    """The goals the table shows as not met, as "label ratio (goal ≥ N×)" lines."""
    missed = []
    for s in run.summary:
        if not s["met"]:
            ratio = "no ratio" if s["ratio"] is None else f"{s['ratio']:.2f}×"
            missed.append(f"{s['label']} {ratio} (goal ≥ {s['goal']}×)")
    return missed


@click.group()
def bench() -> None:
    """Benchmarks."""


@bench.command("server")
@click.option(
    "--workers",
    type=int,
    default=lambda: os.cpu_count() or 1,
    show_default="cores",
    help="façade worker processes",
)
@click.option(
    "--size",
    type=SIZE,
    default="1GiB",
    show_default=True,
    help="large blob for the throughput workloads",
)
@click.option("--block-size", type=SIZE, default="8MiB", show_default=True)
@click.option(
    "--concurrency",
    type=int,
    default=16,
    show_default=True,
    help="requests in flight for the large Put Block / Get Blob workloads",
)
@click.option(
    "--burst",
    type=int,
    default=1000,
    show_default=True,
    help="64 KiB Put Blocks all in flight at once",
)
@click.option(
    "--small-ops",
    type=int,
    default=2000,
    show_default=True,
    help="1 KiB Put Blobs (then Get Blobs) per repeat",
)
@click.option("--small-concurrency", type=int, default=32, show_default=True)
@click.option(
    "--repeats",
    type=click.IntRange(min=1),
    default=3,
    show_default=True,
    help="the table shows the median",
)
@click.option(
    "--client-procs",
    type=click.IntRange(min=1),
    default=2,
    show_default=True,
    help="client processes the Put Block / Get Blob throughput workloads are split across",
)
@out_option()
@click.option("--profile", is_flag=True, help="sample the façade with py-spy during the run")
@click.option(
    "--facade-arg",
    "facade_args",
    multiple=True,
    help="extra flag for the façade, repeatable (e.g. --facade-arg=--loop=asyncio)",
)
def server(**options: Any) -> None:
    """The reference façade against Azurite (goal ≥ 3×) and nginx (goal ≥ 0.7×)."""
    cfg = config_from_options(BenchConfig, options)
    console = Console()
    with progress_reporter(console) as report:
        run = run_bench(cfg, report)
    render(run, console)
    missed = missed_goals(run)
    if missed:  # a benchmark is a gate too: a missed goal fails the command
        total = len(run.summary)
        console.print(f"[red]{len(missed)} of {total} goal(s) missed:[/] " + "; ".join(missed))
        sys.exit(1)


bench.add_command(s2s_command)


@bench.command("tls")
@click.option("--size", type=SIZE, default="256MiB", show_default=True, help="the bulk blob")
@click.option("--block-size", type=SIZE, default="8MiB", show_default=True)
@click.option("--concurrency", type=int, default=16, show_default=True, help="bulk requests")
@click.option("--small-ops", type=int, default=1000, show_default=True, help="1 KiB Put/Get Blobs")
@click.option("--small-concurrency", type=int, default=32, show_default=True)
@click.option("--repeats", type=click.IntRange(min=1), default=3, show_default=True)
@click.option(
    "--workers",
    type=click.IntRange(min=1),
    default=lambda: os.cpu_count() or 1,
    show_default="cores",
    help="worker processes of each façade",
)
@out_option()
def tls(**options: Any) -> None:
    """Small-op and bulk throughput over https against http, as ratios (exit 1 on failed
    requests)."""
    cfg = config_from_options(TlsBenchConfig, options)
    console = Console()
    with progress_reporter(console) as report:
        run = run_tls_bench(cfg, report)
    render_tls(run, console)
    if run.failed:
        console.print("[red]failed requests in:[/] " + ", ".join(run.failed))
        sys.exit(1)
