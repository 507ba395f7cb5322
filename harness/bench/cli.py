"""`harness bench server`: the reference façade against Azurite and nginx, as ratios."""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

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

from harness.bench.client import KIB, MIB
from harness.bench.run import BenchConfig, BenchRun, hot_spots, run_bench
from harness.bench.s2s import s2s_command

_UNITS = {"": 1, "k": KIB, "m": MIB, "g": 1024 * MIB}


def parse_size(text: str) -> int:
    """'1GiB', '8M', '64k', '4096' -> bytes (binary units)."""
    m = re.fullmatch(r"\s*(\d+)\s*([kmg]?)(?:i?b)?\s*", text.lower())
    if not m:
        raise click.BadParameter(f"not a size: {text!r} (e.g. 1GiB, 8MiB, 64KiB)")
    return int(m.group(1)) * _UNITS[m.group(2)]


class SizeType(click.ParamType):
    name = "size"

    def convert(
        self, value: object, param: click.Parameter | None, ctx: click.Context | None
    ) -> int:
        return value if isinstance(value, int) else parse_size(str(value))


SIZE = SizeType()


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
    table = Table(
        title="façade vs anchors (median of repeats)",
        caption="* client-bound: the benchmark client was above 90% CPU",
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
    "--out",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="parent of the run directory [default: reports/]",
)
@click.option("--profile", is_flag=True, help="sample the façade with py-spy during the run")
@click.option(
    "--facade-arg",
    "facade_args",
    multiple=True,
    help="extra flag for the façade, repeatable (e.g. --facade-arg=--loop=asyncio)",
)
def server(
    workers: int,
    size: int,
    block_size: int,
    concurrency: int,
    burst: int,
    small_ops: int,
    small_concurrency: int,
    repeats: int,
    out: Path | None,
    profile: bool,
    facade_args: tuple[str, ...],
) -> None:
    """The reference façade against Azurite (goal ≥ 3×) and nginx (goal ≥ 0.7×)."""
    cfg = BenchConfig(
        size=size,
        block_size=block_size,
        concurrency=concurrency,
        burst=burst,
        small_ops=small_ops,
        small_concurrency=small_concurrency,
        repeats=repeats,
        workers=workers,
        profile=profile,
        facade_args=list(facade_args),
    )
    if out is not None:
        cfg.out = out
    console = Console()
    with progress_reporter(console) as report:
        run = run_bench(cfg, report)
    render(run, console)


bench.add_command(s2s_command)
