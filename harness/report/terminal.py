"""The terminal summary (rich): the same summary table and verdicts as the HTML report."""

from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from harness.report import RunData, summarize


def _num(value: Any, digits: int = 1) -> str:
    if value is None or value != value:  # None or NaN
        return "–"
    return f"{value:,.{digits}f}"


def wide_console() -> Console:
    """A console that keeps tables readable when output goes to a file or CI log."""
    console = Console()
    return console if console.is_terminal else Console(width=160)


def print_run(data: RunData, console: Console | None = None) -> None:
    console = console or wide_console()
    summary = summarize(data.results)
    table = Table(title=f"{data.scenario} — {data.name}", title_justify="left")
    for col in ("step", "driver", "op", "target"):
        table.add_column(col)
    for col in ("rep", "objects", "MiB", "MiB/s", "min–max", "ops/s", "failed", "p99 ms", "result"):
        table.add_column(col, justify="right")
    for r in summary.to_dict("records"):
        table.add_row(
            r["step"],
            r["driver"],
            r["operation"],
            r["target"],
            str(r["repeats"]),
            _num(r["objects"], 0),
            _num(r["bytes"] / 2**20, 2),
            _num(r["throughput_mib_s"]),
            f"{_num(r['throughput_min'])}–{_num(r['throughput_max'])}",
            _num(r["ops_s"]),
            str(r["failed"]),
            _num(r["p99_ms"], 2),
            "[green]ok[/]" if r["ok"] else "[red]FAILED[/]",
        )
    console.print(table)
    for r in summary.to_dict("records"):
        if r["error"]:
            console.print(
                f"[red]{escape(r['step'])} \\[{escape(r['driver'])}] @{r['target']}:[/] "
                + escape(r["error"]),
                highlight=False,
                markup=True,
            )
    if data.verdicts:
        crit = Table(title="criteria", title_justify="left")
        for col in ("criterion", "scope", "observed", "verdict", "evidence"):
            crit.add_column(col)
        for v in data.verdicts:
            crit.add_row(
                v["criterion"],
                f"{v['step']}/{v['driver']}/{v['target']}",
                _num(v["observed"], 3),
                "[green]PASS[/]" if v["passed"] else "[red]FAIL[/]",
                v["evidence"],
            )
        console.print(crit)
    for note in data.info.get("notes", []):
        console.print(f"[red]{escape(note)}[/]")
    verdict = "[green bold]PASS[/]" if data.passed else "[red bold]FAIL[/]"
    console.print(f"verdict: {verdict}")


def print_comparison(
    labels: list[str], rows: list[dict[str, Any]], console: Console | None = None
) -> None:
    console = console or Console()
    table = Table(title="side by side (median MiB/s, ratio to the first)", title_justify="left")
    for col in ("step", "driver", "op"):
        table.add_column(col)
    for i, label in enumerate(labels):
        table.add_column(f"{label}\nMiB/s", justify="right")
        if i:
            table.add_column("×", justify="right")
    for row in rows:
        cells = [row["step"], row["driver"], row["operation"]]
        for i, label in enumerate(labels):
            cells.append(_num(row[f"{label}:throughput_mib_s"]))
            if i:
                cells.append(_num(row[f"{label}:throughput_mib_s:ratio"], 2))
        table.add_row(*cells)
    console.print(table)
