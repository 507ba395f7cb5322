"""`harness report A B ...`: two or more runs side by side (HTML + terminal) with ratios."""

from __future__ import annotations

from pathlib import Path

from rich.console import Console
from rich.markup import escape

from harness.cli_common import utc_stamp
from harness.report import (
    comparison_warnings,
    load_run,
    run_labels,
    side_by_side,
    sweep_side_by_side,
    sweeps_by_label,
)
from harness.report.html import run_summaries, write_compare_report
from harness.report.terminal import print_comparison, print_sweep_comparison, wide_console


def compare_runs(
    run_dirs: list[Path],
    out_dir: Path | None = None,
    console: Console | None = None,
    labels: list[str] | None = None,
) -> Path:
    """Render the comparison of ``run_dirs`` into ``out_dir`` (default: a new directory in the
    parent of the first run) and print it; returns the report.html path. Columns are named by
    ``labels`` (one per run) or else by each run's target."""
    runs = [load_run(d) for d in run_dirs]
    if labels and len(labels) != len(runs):
        raise ValueError(f"{len(labels)} label(s) for {len(runs)} runs: give one per run")
    if out_dir is None:
        out_dir = Path(run_dirs[0]).parent / f"{utc_stamp()}-compare"
    path = write_compare_report(runs, out_dir, labels)
    summaries = run_summaries(runs, labels)
    console = console or wide_console()
    for warning in comparison_warnings(list(summaries), summaries):
        console.print(f"[yellow]warning:[/] {escape(warning)}", highlight=False)
    for run, label in zip(runs, run_labels(runs, labels), strict=True):
        console.print(f"[dim]{escape(label)} = {escape(str(run.run_dir))}[/]", highlight=False)
    columns, rows = side_by_side(summaries)
    print_comparison(columns, rows, console)
    sweeps = sweeps_by_label(runs, labels)
    if sweeps:
        print_sweep_comparison(*sweep_side_by_side(sweeps), console=console)
    return path
