"""The terminal summary (rich): the same summary table and verdicts as the HTML report."""

from __future__ import annotations

from typing import Any

import pandas as pd
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from harness.report import RunData, grouped_verdicts, steady_state_notes, summarize, sweep


def _num(value: Any, digits: int = 1) -> str:
    if value is None or value != value:  # None or NaN
        return "–"
    return f"{value:,.{digits}f}"


def _range(low: Any, high: Any) -> str:
    return "–" if low is None or low != low else f"{_num(low)}–{_num(high)}"


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
    columns = ("rep", "objects", "MiB", "MiB/s", "min–max", "ops/s", "failed", "retries")
    for col in (*columns, "p99 ms", "result"):
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
            _range(r["throughput_min"], r["throughput_max"]),
            _num(r["ops_s"]),
            str(r["failed"]),
            str(r["retries"]),
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
    print_sweep(sweep(data.results), console)
    for note in steady_state_notes(data.results):
        console.print(f"[dim]{escape(note)}[/]", highlight=False)
    if data.verdicts:
        crit = Table(title="criteria", title_justify="left")
        for col in ("criterion", "scope", "observed", "verdict", "evidence"):
            crit.add_column(col)
        for v in grouped_verdicts(data.verdicts):
            scope = f"{v['step']}/{v['driver']}/{v['target']}"
            crit.add_row(
                v["criterion"],
                scope + (f"/{v['operation']}" if v.get("operation") else ""),
                v["observed_text"],
                "[green]PASS[/]"
                if v["passed"]
                else "[red]ERROR[/]"
                if v.get("errored")
                else "[red]FAIL[/]",
                v["evidence"],
            )
        console.print(crit)
    print_drift(data.drift, console)
    for note in data.info.get("notes", []):
        console.print(f"[red]{escape(note)}[/]")
    verdict = "[green bold]PASS[/]" if data.passed else "[red bold]FAIL[/]"
    console.print(f"verdict: {verdict}")


def print_comparison(
    labels: list[str], rows: list[dict[str, Any]], console: Console | None = None
) -> None:
    console = console or wide_console()
    table = Table(
        title="side by side (medians; × = ratio to the first; list and remove move no bodies)",
        title_justify="left",
    )
    for col in ("step", "driver", "op"):
        table.add_column(col)
    for i, label in enumerate(labels):
        table.add_column(f"{label}\nMiB/s", justify="right")
        if i:
            table.add_column("×", justify="right")
        table.add_column("ops/s", justify="right")
        if i:
            table.add_column("×", justify="right")
    for row in rows:
        cells = [row["step"], row["driver"], row["operation"]]
        for i, label in enumerate(labels):
            for metric in ("throughput_mib_s", "ops_s"):
                cells.append(_num(row[f"{label}:{metric}"]))
                if i:
                    cells.append(_num(row[f"{label}:{metric}:ratio"], 2))
        table.add_row(*cells)
    console.print(table)


def print_sweep(table: pd.DataFrame, console: Console | None = None, title: str = "") -> None:
    """The load sweep: one line per target, operation and level; client-bound levels marked."""
    if table.empty:
        return
    console = console or wide_console()
    out = Table(title=title or "load sweep (steady windows)", title_justify="left")
    for col in ("target", "op"):
        out.add_column(col)
    for col in ("users", "ops/s", "MiB/s", "p50", "p90", "p99", "p99.9", "max ms"):
        out.add_column(col, justify="right")
    for col in ("errors", "503 %", "gen CPU %"):
        out.add_column(col, justify="right")
    out.add_column("mark")
    previous = None
    for r in table.to_dict("records"):
        group = (r["target"], r["operation"])
        errors = ", ".join(f"{k}×{v}" for k, v in sorted(r["errors"].items()))
        mark = "[red]client-bound[/]" if r["client_bound"] else ""
        if not r["ok"]:
            mark += (" " if mark else "") + "[red]FAILED[/]"
        out.add_row(
            str(r["target"]) if group != previous else "",
            str(r["operation"]) if group != previous else "",
            f"{r['users']:,}",
            _num(r["ops_s"]),
            _num(r["throughput_mib_s"]),
            *(_num(r[c], 2) for c in ("p50_ms", "p90_ms", "p99_ms", "p999_ms", "max_ms")),
            f"{r['failed']}" + (f" ({errors})" if errors else ""),
            _num(r["server_busy_share"] * 100, 2),
            _num(r["generator_cpu_pct"]),
            mark,
            end_section=False,
        )
        previous = group
    console.print(out)


def drift_lines(drift: dict[str, Any]) -> list[str]:
    """run.json's contract section as report lines: one per drift, or one "no drift" per tool."""
    if not drift.get("recorded"):
        return []
    lines = []
    for tool in drift.get("tools", []):
        if tool.get("lines"):
            lines += [f"{tool['slug']}: {line}" for line in tool["lines"]]
        else:
            lines.append(tool["summary"])
    return lines


def print_drift(drift: dict[str, Any], console: Console | None = None) -> None:
    console = console or wide_console()
    if drift.get("checked") is False:
        console.print(f"[dim]contract: not checked ({drift.get('reason')})[/]")
        return
    if not drift.get("recorded"):
        reason = drift.get("reason")
        console.print(f"[dim]contract: calls not recorded{f' ({reason})' if reason else ''}[/]")
        return
    for tool in drift.get("tools", []):
        if tool.get("lines"):
            for line in tool["lines"]:
                console.print(
                    f"[yellow]contract drift[/] {escape(tool['slug'])}: {escape(line)}",
                    highlight=False,
                )
        else:
            console.print(f"[green]contract:[/] {escape(tool['summary'])}", highlight=False)
    if not drift.get("tools"):
        console.print("[dim]contract: no client calls recorded (Locust steps are not recorded)[/]")


def print_sweep_comparison(
    labels: list[str], rows: list[dict[str, Any]], console: Console | None = None
) -> None:
    """Sweeps side by side: ops/s and p99 per label at each operation and concurrency."""
    console = console or wide_console()
    table = Table(
        title="load sweeps side by side (ops/s, p99 ms, ops/s ratio to the first; "
        "* = client-bound)",
        title_justify="left",
    )
    for col in ("step", "op", "users"):
        table.add_column(col, justify="right" if col == "users" else "left")
    for i, label in enumerate(labels):
        table.add_column(f"{label}\nops/s", justify="right")
        table.add_column("p99", justify="right")
        if i:
            table.add_column("×", justify="right")
    for row in rows:
        cells = [row["step"], row["operation"], f"{row['users']:,}"]
        for i, label in enumerate(labels):
            star = "*" if row[f"{label}:client_bound"] else ""
            cells += [_num(row[f"{label}:ops_s"]) + star, _num(row[f"{label}:p99_ms"], 2)]
            if i:
                cells.append(_num(row[f"{label}:ops_s:ratio"], 2))
        table.add_row(*cells)
    console.print(table)
