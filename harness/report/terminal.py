"""The terminal summary (rich): the same summary table and verdicts as the HTML report."""

from __future__ import annotations

import os
from typing import Any

import pandas as pd
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from harness.report import (
    STEADY_CLOCK,
    RunData,
    grouped_verdicts,
    per_host,
    steady_state_notes,
    summarize,
    sweep,
)
from harness.results import UNSTABLE_SPREAD


def _num(value: Any, digits: int = 1) -> str:
    if value is None or value != value:  # None or NaN
        return "–"
    return f"{value:,.{digits}f}"


def _range(low: Any, high: Any) -> str:
    return "–" if low is None or low != low else f"{_num(low)}–{_num(high)}"


def wide_console() -> Console:
    """A console that keeps tables readable when output goes to a file or CI log."""
    console = Console()
    if console.is_terminal or os.environ.get("COLUMNS", "").isdigit():
        return console  # a terminal, or a width the caller asked for (COLUMNS=80)
    return Console(width=160)


# Below this width the summary drops the columns a reader can do without (objects, MiB,
# min–max, retries, ...) rather than let rich cut cells short.
NARROW = 120
PERCENTILE_COLUMNS = ("p50_ms", "p90_ms", "p99_ms", "p999_ms", "max_ms")
PERCENTILE_NAMES = {"p50_ms": "p50", "p90_ms": "p90", "p99_ms": "p99", "p999_ms": "p99.9"}
PERCENTILE_NAMES["max_ms"] = "max ms"


def _step_cell(r: dict[str, Any]) -> str:
    # Default step names already start with the driver (`sdk-upload`): do not say it twice.
    step, driver = str(r["step"]), str(r["driver"])
    return step if step.startswith(driver) else f"{step} [{driver}]"


def _result_cell(r: dict[str, Any]) -> str:
    mark = "[green]ok[/]" if r["ok"] else "[red]FAILED[/]"
    return mark + (" [yellow]unstable[/]" if r.get("unstable") else "")


def print_run(data: RunData, console: Console | None = None) -> None:
    console = console or wide_console()
    summary = summarize(data.results)
    narrow = console.width < NARROW
    table = Table(title=f"{data.scenario} — {data.name}", title_justify="left")
    # the step column is as wide as its longest name (up to 24), so names fold only when huge
    widest = min(24, max((len(_step_cell(r)) for r in summary.to_dict("records")), default=4))
    if narrow:
        table.add_column("step", overflow="fold", min_width=widest)
        table.add_column("target", overflow="fold")
        for col in ("MiB/s", "ops/s", "p99 ms"):
            table.add_column(col, justify="right", no_wrap=True)
        table.add_column("result", overflow="fold", min_width=6)
    else:
        table.add_column("step", overflow="fold", min_width=widest)
        table.add_column("target", overflow="fold")
        columns = ("rep", "objects", "MiB", "MiB/s", "min–max", "ops/s", "failed", "retries")
        for col in (*columns, "p99 ms"):
            table.add_column(col, justify="right", no_wrap=True)
        table.add_column("clock", overflow="fold")
        table.add_column("result", no_wrap=True)
    if summary.empty:  # a run stopped by its preflight or an interrupt: say so, no empty grid
        console.print(f"{data.scenario} — {data.name}: no step ran", highlight=False)
        if data.info.get("first_failure"):
            console.print(f"[red]what failed first:[/] {escape(str(data.info['first_failure']))}")
    for r in summary.to_dict("records"):
        if narrow:
            table.add_row(
                _step_cell(r),
                r["target"],
                _num(r["throughput_mib_s"]),
                _num(r["ops_s"]),
                _num(r["p99_ms"], 2),
                _result_cell(r) + (f" ({r['failed']} failed)" if r["failed"] else ""),
            )
            continue
        table.add_row(
            _step_cell(r),
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
            str(r["clock"]) + (f", latency: {r['latency_clock']}" if r["latency_clock"] else ""),
            _result_cell(r),
        )
    if not summary.empty:
        console.print(table)
    if any(r["unstable"] for r in summary.to_dict("records")):
        console.print(
            f"[yellow]unstable[/]: repeats differ by more than {UNSTABLE_SPREAD:g}× "
            "(slowest/fastest); their medians are left out of ratios",
            highlight=False,
        )
    if narrow and not summary.empty:
        clocks = sorted(set(summary["clock"]))
        console.print(f"[dim]clock: {', '.join(clocks)} (see README, KPIs and clocks)[/]")
    for r in summary.to_dict("records"):
        if r["error"]:
            console.print(
                f"[red]{escape(r['step'])} \\[{escape(r['driver'])}] @{r['target']}:[/] "
                + escape(r["error"]),
                highlight=False,
                markup=True,
            )
    print_hosts(per_host(data.results), console)
    levels = sweep(data.results)
    steady = levels["clock"] == STEADY_CLOCK
    print_sweep(levels[steady], console)
    scale_title = "scale points (each timed once, no steady window)"
    print_sweep(levels[~steady], console, title=scale_title)
    for note in steady_state_notes(data.results):
        console.print(f"[dim]{escape(note)}[/]", highlight=False)
    if data.verdicts:
        crit = Table(title="criteria", title_justify="left")
        for col in ("criterion", "scope", "observed", "verdict", "evidence"):
            crit.add_column(col, overflow="fold")  # long scopes wrap, never end in "…"
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


def print_hosts(steps: list[dict[str, Any]], console: Console) -> None:
    """Steps run on inventory hosts: one line per host, when each finished (stragglers)."""
    if not steps:
        return
    table = Table(title="per host (done at: seconds from the step's first start)",
                  title_justify="left")  # fmt: skip
    for col in ("step", "host", "objects", "MiB/s", "done at s", "result"):
        table.add_column(col, justify="left" if col in ("step", "host") else "right")
    for step in steps:
        for i, h in enumerate(step["hosts"]):
            table.add_row(
                step["step"] if i == 0 else "",
                h["host"],
                str(h["objects"]),
                _num(h["throughput_mib_s"]),
                _num(h["done_s"], 3),
                "[green]ok[/]" if h["ok"] else "[red]FAILED[/]",
            )
    console.print(table)


def print_comparison(
    labels: list[str], rows: list[dict[str, Any]], console: Console | None = None
) -> None:
    console = console or wide_console()
    # Narrow terminals get one rate per label (MiB/s, or ops/s in parentheses for steps that
    # move no bodies) and its ratio; wide ones both MiB/s and ops/s.
    narrow = console.width < NARROW
    metrics = ("rate",) if narrow else ("throughput_mib_s", "ops_s")
    units = {"rate": "MiB/s (ops/s)", "throughput_mib_s": "MiB/s", "ops_s": "ops/s"}
    table = Table(
        title="side by side (medians; × = ratio to the first; list and remove move no bodies;"
        " ! = unstable repeats, no ratio)",
        title_justify="left",
    )
    table.add_column("step", overflow="fold")
    for i, label in enumerate(labels):
        for metric in metrics:
            table.add_column(f"{label}\n{units[metric]}", justify="right", overflow="fold")
            if i:
                table.add_column("×", justify="right", no_wrap=True)
    for row in rows:
        cells = [_step_cell(row) + ("" if row["step"].endswith(row["operation"]) else
                                    f" ({row['operation']})")]  # fmt: skip
        payload = any(_known(row.get(f"{label}:throughput_mib_s")) for label in labels)
        for i, label in enumerate(labels):
            flag = "!" if row.get(f"{label}:unstable") else ""
            for metric in metrics:
                key = metric if metric != "rate" else "throughput_mib_s" if payload else "ops_s"
                value = _num(row[f"{label}:{key}"])
                cells.append((value if key != "ops_s" or not narrow else f"({value})") + flag)
                if i:
                    cells.append(_num(row[f"{label}:{key}:ratio"], 2))
        table.add_row(*cells)
    console.print(table)


def _known(value: Any) -> bool:
    return value is not None and value == value  # neither None nor NaN


def print_sweep(table: pd.DataFrame, console: Console | None = None, title: str = "") -> None:
    """The load sweep: one line per target, operation and level; client-bound levels marked."""
    if table.empty:
        return
    console = console or wide_console()
    out = Table(title=title or "load sweep (steady windows)", title_justify="left")
    # Narrow terminals keep the median and the tail (p50, p99, max); wide ones every percentile.
    narrow = console.width < NARROW
    percentiles = ("p50_ms", "p99_ms", "max_ms") if narrow else PERCENTILE_COLUMNS
    points = bool(table["point"].astype(bool).any())  # scale points say what they measured
    for col in ("target", "op", *(("point",) if points else ())):
        out.add_column(col, overflow="fold")
    users = "conc." if points else "users"
    for col in (users, "ops/s", "MiB/s", *(PERCENTILE_NAMES[c] for c in percentiles)):
        out.add_column(col, justify="right", no_wrap=True)
    out.add_column("errors", justify="right", overflow="fold")
    if not narrow:
        for col in ("503 %", "gen CPU %"):
            out.add_column(col, justify="right")
    out.add_column("mark", overflow="fold")
    previous = None
    for r in table.to_dict("records"):
        group = (r["target"], r["operation"])
        errors = ", ".join(f"{k}×{v}" for k, v in sorted(r["errors"].items()))
        mark = "[red]client-bound[/]" if r["client_bound"] else ""
        if not r["objects"] and not r["failed"]:  # the level ran but no request completed
            mark += (" " if mark else "") + "[yellow]no requests[/]"
        if not r["ok"]:
            mark += (" " if mark else "") + "[red]FAILED[/]"
        wide = (
            [] if narrow else [_num(r["server_busy_share"] * 100, 2), _num(r["generator_cpu_pct"])]
        )
        out.add_row(
            str(r["target"]) if group != previous else "",
            str(r["operation"]) if group != previous else "",
            *((r["point"],) if points else ()),
            f"{r['users']:,}",
            _num(r["ops_s"]),
            _num(r["throughput_mib_s"]),
            *(_num(r[c], 2) for c in percentiles),
            f"{r['failed']}" + (f" ({errors})" if errors else ""),
            *wide,
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
