"""`harness history add|list|import|export|report` and `harness regress`."""

from __future__ import annotations

import json
import re
import sys
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

import click
import pandas as pd

from harness.cli_common import EXIT_BAD_INPUT, EXIT_FAILED, EXIT_OK
from harness.history.records import COLUMNS, STEP_LEVEL, night_of, normalize
from harness.history.store import (
    DEFAULT_HISTORY,
    HistoryError,
    HistoryStore,
    display,
    is_postgres,
)

F = TypeVar("F", bound=Callable[..., Any])
# Columns a CSV must have; the others get defaults (older results rarely kept their repeats).
REQUIRED = ("night", "scenario", "step", "target", "kpi", "value")
DEFAULTS: dict[str, Any] = {
    "driver": "",
    "operation": "",
    "level": STEP_LEVEL,
    "repeats": 1,
    "raw_values": "",
    "facade_build": "unknown",
    "tool_versions": "{}",
    "hardware": "unknown",
    "harness_revision": "unknown",
}


def history_option(f: F) -> F:
    return click.option(
        "--history",
        "location",
        metavar="URL_OR_PATH",
        envvar="HARNESS_HISTORY",
        default=str(DEFAULT_HISTORY),
        show_default=True,
        help="A DuckDB file, or a postgresql:// URL (env HARNESS_HISTORY).",
    )(f)


def _open(location: str, create: bool = False) -> HistoryStore:
    """The store; a DuckDB file that does not exist is created only by commands that add to
    it (a mistyped path must not read as an empty history that passes)."""
    if not create and not is_postgres(location) and not Path(location).is_file():
        click.echo(f"no history at {location} (`harness history add RUN_DIR` creates it)", err=True)
        sys.exit(EXIT_BAD_INPUT)
    try:
        return HistoryStore(location)
    except HistoryError as exc:
        click.echo(str(exc), err=True)
        sys.exit(EXIT_BAD_INPUT)


def parse_since(text: str | None) -> str | None:
    """``2026-11-20``, an ISO time, or ``14d`` (that many days ago) -> the history's night text."""
    if not text:
        return None
    days = re.fullmatch(r"(\d+)d", text.strip())
    try:
        if days:
            return night_of((datetime.now(UTC) - timedelta(days=int(days[1]))).isoformat())
        return night_of(text.strip())
    except ValueError:
        raise click.BadParameter(f"{text!r}: give a date (2026-11-20), an ISO time or Nd") from None


@click.group()
def history() -> None:
    """Keep every run's KPIs in one table (DuckDB by default, PostgreSQL by URL).

    \b
    harness history add reports/2026*-smoke      add run directories (again: replaced)
    harness history list                         the runs it holds
    harness history export --out h.csv           the long format as CSV
    harness history import old.csv               bring older results in (same columns)
    harness history report --out reports/hist    trend charts with change points (HTML)
    """


@history.command()
@click.argument(
    "run_dirs", nargs=-1, required=True, type=click.Path(file_okay=False, path_type=Path)
)
@history_option
def add(run_dirs: tuple[Path, ...], location: str) -> None:
    """Add RUN_DIR... (results.parquet + run.json) to the history."""
    from harness.history.records import run_rows

    bad = [d for d in run_dirs if not (d / "run.json").is_file()]
    for d in bad:
        click.echo(f"{d}: not a run directory (no run.json)", err=True)
    if bad:
        sys.exit(EXIT_BAD_INPUT)
    with _open(location, create=True) as store:
        for run_dir in run_dirs:
            info = json.loads((run_dir / "run.json").read_text())
            if info.get("interrupted"):
                click.echo(f"{run_dir.name}: skipped, the run was interrupted")
                continue
            if not (run_dir / "results.parquet").is_file():
                click.echo(f"{run_dir.name}: skipped, no results.parquet")
                continue
            rows = run_rows(run_dir)
            n = store.add(rows)
            series = rows[["step", "target", "operation", "level"]].drop_duplicates()
            click.echo(f"{run_dir.name}: {n} KPI rows ({len(series)} step/target/level series)")
    click.echo(f"history: {display(location)}")


@history.command(name="list")
@history_option
def list_(location: str) -> None:
    """The runs in the history, oldest first."""
    with _open(location) as store:
        runs = store.runs()
    if runs.empty:
        click.echo(f"{display(location)}: no runs yet")
        return
    click.echo(f"{'night':<21} {'run':<44} {'scenario':<18} {'façade build':<16} rows")
    for r in runs.itertuples(index=False):
        build = r.build_min if r.build_min == r.build_max else f"{r.build_min}…{r.build_max}"
        click.echo(f"{r.night:<21} {r.run_id:<44} {r.scenario:<18} {build:<16} {r.rows}")
    click.echo(f"{len(runs)} run(s) in {display(location)}")


@history.command(name="export")
@history_option
@click.option(
    "--out",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="CSV file [default: standard output].",
)
@click.option("--since", default=None, help="Only nights from this date (2026-11-20, or 14d).")
def export(location: str, out: Path | None, since: str | None) -> None:
    """The history as CSV, one row per KPI value (the format `history import` reads)."""
    with _open(location) as store:
        frame = store.frame(parse_since(since))
    text = frame.to_csv(index=False)
    if out is None:
        click.echo(text, nl=False)
    else:
        out.write_text(text)
        click.echo(f"{len(frame)} rows -> {out}", err=True)


@history.command(name="import")
@click.argument("csv_file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@history_option
def import_(csv_file: Path, location: str) -> None:
    """Add the rows of CSV_FILE (columns as `history export` writes them; night, scenario,
    step, target, kpi and value are required, the others default)."""
    try:
        frame = pd.read_csv(csv_file, dtype=str, keep_default_na=False)
    except (ValueError, pd.errors.ParserError) as exc:
        click.echo(f"{csv_file}: not a CSV file: {exc}", err=True)
        sys.exit(EXIT_BAD_INPUT)
    missing = [c for c in REQUIRED if c not in frame.columns]
    unknown = [c for c in frame.columns if c not in COLUMNS]
    if missing or unknown:
        detail = ", ".join(
            [
                *(f"missing column {c!r}" for c in missing),
                *(f"unknown column {c!r}" for c in unknown),
            ]
        )
        click.echo(f"{csv_file}: {detail} (columns: {', '.join(COLUMNS)})", err=True)
        sys.exit(EXIT_BAD_INPUT)
    for column, default in DEFAULTS.items():
        if column not in frame:
            frame[column] = default
        frame[column] = frame[column].replace("", default)
    if "run_id" not in frame:
        # One imported "run" per night and scenario, so a second import replaces the first.
        frame["run_id"] = [
            f"import:{s}:{n}" for s, n in zip(frame["scenario"], frame["night"], strict=True)
        ]
    try:
        frame = normalize(frame)
    except ValueError as exc:
        click.echo(f"{csv_file}: {exc}", err=True)
        sys.exit(EXIT_BAD_INPUT)
    with _open(location, create=True) as store:
        n = store.add(frame)
    click.echo(f"{csv_file}: {n} KPI rows of {frame['run_id'].nunique()} run(s) imported")


@history.command(name="report")
@history_option
@click.option(
    "--out",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Directory that receives history.html [default: ./reports/history].",
)
@click.option("--since", default=None, help="Only nights from this date (2026-11-20, or 30d).")
def report(location: str, out: Path, since: str | None) -> None:
    """The history page: one trend chart per KPI series, change points and builds marked."""
    from harness.history.analysis import analyse
    from harness.history.page import write_page

    with _open(location) as store:
        rows = store.frame(parse_since(since))
    path = write_page(analyse(rows), out or Path.cwd() / "reports" / "history", display(location))
    click.echo(f"report: {path}")


@click.command()
@history_option
@click.option(
    "--since",
    default=None,
    help="Report changes whose first bad night is on or after this date (2026-11-20, "
    "an ISO time, or 14d); the whole history is still the context.",
)
@click.option("--json", "as_json", is_flag=True, help="Print the analysis as JSON.")
def regress(location: str, since: str | None, as_json: bool) -> None:
    """Change points in every KPI series of the history, and tonight against the last nights.

    Exit status 1 on a confirmed regression (a change point for the worse that no later
    change undid, or tonight worse than the last nights by the rank test), 0 otherwise, 2 when
    the history cannot be read.
    """
    from harness.history.analysis import analyse

    with _open(location) as store:
        rows = store.frame()
    result = analyse(rows, since=parse_since(since))
    if as_json:
        click.echo(json.dumps(result.to_json(), indent=2))
    else:
        for item in [*result.new_series, *result.changes]:
            click.echo(item.line())
        for t in result.tonight:
            if t.verdict.verdict in ("worse", "better"):
                click.echo(t.line())
        click.echo(
            f"{len(result.series)} series over {rows['night'].nunique()} night(s): "
            f"{len(result.regressions)} regression(s), {len(result.recovered)} recovered, "
            f"{len(result.improvements)} improvement(s), "
            f"{len(result.worse_tonight)} worse tonight, {len(result.new_series)} new series"
        )
    sys.exit(EXIT_FAILED if result.confirmed else EXIT_OK)
