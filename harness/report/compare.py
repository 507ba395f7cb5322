"""`harness report A B ...`: two or more runs side by side (HTML + terminal) with ratios."""

from __future__ import annotations

from pathlib import Path

from rich.console import Console

from harness.cli_common import utc_stamp
from harness.report import load_run, side_by_side, sweep_side_by_side, sweeps_by_label
from harness.report.html import run_summaries, write_compare_report
from harness.report.terminal import print_comparison, print_sweep_comparison


def compare_runs(
    run_dirs: list[Path], out_dir: Path | None = None, console: Console | None = None
) -> Path:
    """Render the comparison of ``run_dirs`` into ``out_dir`` (default: a new directory in the
    parent of the first run) and print it; returns the report.html path."""
    runs = [load_run(d) for d in run_dirs]
    if out_dir is None:
        out_dir = Path(run_dirs[0]).parent / f"{utc_stamp()}-compare"
    path = write_compare_report(runs, out_dir)
    labels, rows = side_by_side(run_summaries(runs))
    print_comparison(labels, rows, console)
    sweeps = sweeps_by_label(runs)
    if sweeps:
        print_sweep_comparison(*sweep_side_by_side(sweeps), console=console)
    return path
