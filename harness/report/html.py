"""HTML reports (jinja2) with matplotlib charts embedded as PNG data URIs: one file to share."""

from __future__ import annotations

import base64
import io
import textwrap
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # no display here or in CI
import matplotlib.pyplot as plt
import matplotlib.ticker as ticker
import pandas as pd
from jinja2 import Environment, FileSystemLoader, select_autoescape

from harness.report import (
    STEADY_CLOCK,
    RunData,
    by_target,
    comparison_warnings,
    grouped_verdicts,
    per_host,
    per_target_labels,
    run_labels,
    side_by_side,
    steady_state_notes,
    summarize,
    sweep,
    sweep_side_by_side,
    sweeps_by_label,
)
from harness.results import CLOCKS, UNSTABLE_SPREAD

TEMPLATES = Path(__file__).parent / "templates"
_env = Environment(loader=FileSystemLoader(TEMPLATES), autoescape=select_autoescape(["html", "j2"]))


def _fmt(value: Any, digits: int = 1) -> str:
    if value is None or (isinstance(value, float) and pd.isna(value)):
        return "–"
    if isinstance(value, float):
        return f"{value:,.{digits}f}"
    return str(value)


_env.filters["num"] = _fmt


def _plain(value: Any) -> str:
    """A fact for a table cell: nested mappings and lists as ``k: v`` text, not Python reprs."""
    if isinstance(value, dict):
        return "; ".join(f"{k}: {_plain(v)}" for k, v in value.items())
    if isinstance(value, list | tuple):
        return ", ".join(_plain(v) for v in value)
    return "–" if value is None else str(value)


_env.filters["plain"] = _plain


def _png(fig: plt.Figure) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    plt.close(fig)
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()


def _bar_label(step: str, driver: str) -> str:
    # Default step names already start with the driver (`sdk-upload`); do not say it twice.
    return step if step.startswith(driver) else f"{step} [{driver}]"


def throughput_chart(
    summary: pd.DataFrame, title: str = "Throughput per step and driver", legend: str = "target"
) -> str | None:
    """Median MiB/s per (step, driver) with min–max whiskers; one bar colour per target.

    Steps that move no object bodies (list, remove: NaN throughput; or no bytes at all) and
    failed steps (their numbers measure no transfer) are left out."""
    summary = summary[pd.to_numeric(summary["throughput_mib_s"]).notna()]
    if "bytes" in summary:  # a listing or connections bench: a 0.0 bar says nothing
        summary = summary[pd.to_numeric(summary["bytes"]).fillna(0) > 0]
    summary = summary[summary["ok"].astype(bool)]
    if summary.empty:
        return None
    bar_labels = pd.Series(
        [_bar_label(r.step, r.driver) for r in summary.itertuples()], index=summary.index
    )
    labels = list(dict.fromkeys(bar_labels))
    targets = list(dict.fromkeys(summary["target"]))
    fig, ax = plt.subplots(figsize=(min(18, max(6, 0.9 * len(labels) * len(targets) + 2)), 4.5))
    # Each step's bars sit side by side centred on its tick, one slot per target that ran it
    # (slots of targets a step never ran left the bars off-centre, beside an empty gap).
    present = {
        label: [t for t in targets if ((summary["target"] == t) & (bar_labels == label)).any()]
        for label in labels
    }
    width = 0.8 / max(1, max(len(ts) for ts in present.values()))
    bar_groups: list[tuple[list[float], list[float], list[float]]] = []
    any_unstable = False
    for target in targets:
        part = summary[summary["target"] == target]
        xs, ys, lo, hi = [], [], [], []
        for r in part.itertuples():
            label = _bar_label(r.step, r.driver)
            mine = present[label]
            xs.append(labels.index(label) + (mine.index(target) - (len(mine) - 1) / 2) * width)
            ys.append(r.throughput_mib_s)
            lo.append(r.throughput_mib_s - r.throughput_min)
            hi.append(r.throughput_max - r.throughput_mib_s)
        bars = ax.bar(xs, ys, width, yerr=[lo, hi], capsize=3, label=target)
        unstable = part["unstable"] if "unstable" in part else [False] * len(part)
        for bar, flagged in zip(bars, unstable, strict=True):
            if flagged:  # hatched: repeats too far apart for the median to be a KPI
                bar.set_hatch("///")
                bar.set_edgecolor("#ffffff")
        any_unstable |= any(bool(u) for u in unstable)
        bar_groups.append((xs, ys, hi))
    ax.set_xticks(
        list(range(len(labels))),
        labels,
        fontsize=9,
        rotation=30,
        ha="right",
        rotation_mode="anchor",
    )
    top = ax.get_ylim()[1]
    # side by side bars are too narrow for a number across: it stands upright, never over
    # its neighbour's ("39.138.8")
    upright = 90 if width < 0.8 else 0
    for xs, ys, hi in bar_groups:
        # above the whisker, so the number never sits on the error bar
        for x, y, up, text in zip(xs, ys, hi, small_bar_labels(ys, top), strict=True):
            if text:
                ax.annotate(text, (x, y + up), xytext=(0, 3), textcoords="offset points",
                            ha="center", va="bottom", fontsize=8, rotation=upright)  # fmt: skip
    ax.set_ylabel("MiB/s (median of repeats)")
    ax.set_title(title)
    handles, names = ax.get_legend_handles_labels()
    if any_unstable:
        handles.append(plt.Rectangle((0, 0), 1, 1, facecolor="#bbbbbb", hatch="///",
                                     edgecolor="#ffffff"))  # fmt: skip
        names.append(f"unstable (slowest > {UNSTABLE_SPREAD:g}× fastest)")
    # beside the axes, never over a bar
    ax.legend(handles, names, title=legend, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    ax.grid(axis="y", alpha=0.3)
    return _png(fig)


SMALL_BAR = 0.15  # a bar below this share of the axis gets its value written above it


def small_bar_labels(values: list[float], top: float) -> list[str]:
    """Value labels for bars too short to read against the axis; "" for the others."""
    return [f"{v:,.1f}" if top > 0 and v < SMALL_BAR * top else "" for v in values]


def step_starts(samples: pd.DataFrame) -> list[tuple[float, str]]:
    """(unix time, step) where each step begins in the sample stream (its first sample)."""
    starts: list[tuple[float, str]] = []
    previous = ""
    for t, step in samples.sort_values("t")[["t", "step"]].itertuples(index=False):
        step = step if isinstance(step, str) else ""
        if step and step != previous and step not in {s for _, s in starts}:
            starts.append((float(t), step))
        previous = step
    return starts


def resources_chart(samples: pd.DataFrame) -> str | None:
    """CPU % and RSS MiB over time for the client tree and each local server; a dotted line
    marks where each step starts."""
    t0 = samples["t"].min() if not samples.empty else 0.0  # the host chart's origin too
    samples = _local(samples)
    if samples.empty:
        return None
    fig, (cpu_ax, rss_ax) = plt.subplots(2, 1, figsize=(9, 5), sharex=True)
    for (role, target), part in samples.groupby(["role", "target"], sort=False):
        name = "client" if role == "client" else f"server ({target})"
        cpu_ax.plot(part["t"] - t0, part["cpu_pct"], label=name)
        rss_ax.plot(part["t"] - t0, part["rss_mib"], label=name)
    rows = _mark_steps([cpu_ax, rss_ax], samples, t0)
    cpu_ax.set_ylabel("CPU % (100 = 1 core)")
    rss_ax.set_ylabel("RSS MiB")
    rss_ax.set_xlabel("seconds since the run's first sample (controller clock)")
    cpu_ax.legend(fontsize=8)
    cpu_ax.set_title("CPU and memory over time (psutil, process trees; dotted: numbered step "
                     "starts)", pad=6 + 9 * rows)  # fmt: skip
    for ax in (cpu_ax, rss_ax):
        ax.grid(alpha=0.3)
    return _png(fig)


STEP_KEY_WIDTH = 140  # characters per line of the step key under a time chart


def step_key(starts: list[tuple[float, str]]) -> list[str]:
    """The key of the numbered step starts, wrapped: ``steps: 1 up · 2 down``; a number stays
    with its name (no-break space) and names never break at their hyphens."""
    key = " · ".join(f"{n}\u00a0{step}" for n, (_, step) in enumerate(starts, 1))
    return textwrap.wrap("steps: " + key, STEP_KEY_WIDTH, break_on_hyphens=False)


def _mark_steps(axes: list[plt.Axes], samples: pd.DataFrame, t0: float) -> int:
    """A dotted line on every axis where each step starts, numbered above the first axis; the
    numbers' key goes under the figure (names written at the lines overlap as soon as steps
    start a second apart). Returns how many label rows the numbers took."""
    span = max(1e-9, float(samples["t"].max() - t0))
    previous, lift, rows = -1.0, 0, 0
    starts = step_starts(samples)
    for n, (t, _) in enumerate(starts, 1):
        for ax in axes:
            ax.axvline(t - t0, color="#888888", ls=":", lw=1)
        # numbers of steps that start close together are lifted apart, not stacked
        lift = lift + 1 if previous >= 0 and (t - previous) / span < 0.025 else 0
        previous = t
        rows = max(rows, lift % 4 + 1)
        axes[0].annotate(str(n), (t - t0, 1.0), xycoords=("data", "axes fraction"),
                         xytext=(0, 2 + 9 * (lift % 4)), textcoords="offset points",
                         fontsize=7, color="#555555", ha="center", va="bottom")  # fmt: skip
    if starts:
        axes[-1].annotate("\n".join(step_key(starts)), (0.0, 0.0), xycoords="axes fraction",
                          xytext=(0, -36), textcoords="offset points", fontsize=7,
                          color="#555555", ha="left", va="top")  # fmt: skip
    return rows


def _local(samples: pd.DataFrame) -> pd.DataFrame:
    """The controller's own process samples (not the inventory hosts' rows)."""
    return samples[samples["role"] != "host"] if "role" in samples else samples


def host_samples_chart(samples: pd.DataFrame) -> str | None:
    """Every inventory host over time, one line each: CPU %, memory used and network MiB/s
    (received + sent, from the counters' differences); dotted lines mark step starts."""
    if "role" not in samples:
        return None
    hosts = samples[samples["role"] == "host"].sort_values("t")
    if hosts.empty:
        return None
    t0 = float(samples["t"].min())
    fig, axes = plt.subplots(3, 1, figsize=(9, 7), sharex=True)
    cpu_ax, mem_ax, net_ax = axes
    for host, part in hosts.groupby("host", sort=True):
        x = part["t"] - t0
        cpu_ax.plot(x, pd.to_numeric(part["cpu_pct"], errors="coerce"), label=host)
        mem_ax.plot(x, pd.to_numeric(part["mem_used_bytes"], errors="coerce") / 2**30, label=host)
        moved = (part["net_rx_bytes"] + part["net_tx_bytes"]).diff() / part["t"].diff()
        net_ax.plot(x, moved.clip(lower=0) / 2**20, label=host)
    rows = _mark_steps(list(axes), _local(samples), t0)
    cpu_ax.set_ylabel("CPU % (whole host)")
    mem_ax.set_ylabel("memory used GiB")
    net_ax.set_ylabel("network MiB/s (rx + tx)")
    net_ax.set_xlabel("seconds since start")
    cpu_ax.legend(title="host", fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    cpu_ax.set_title("Inventory hosts over time (sampled over SSH every second; dotted: "
                     "numbered step starts)", pad=6 + 9 * rows)  # fmt: skip
    for ax in axes:
        ax.grid(alpha=0.3)
    return _png(fig)


PERCENTILES = (("p50_ms", "p50"), ("p90_ms", "p90"), ("p99_ms", "p99"), ("p999_ms", "p99.9"))
PERCENTILE_COLOURS = ("#9ecae1", "#4292c6", "#08519c", "#08306b")
BOUND_NOTE = "client-bound (generator ≥ 90% CPU)"


def _level_axis(ax: plt.Axes, part: pd.DataFrame) -> None:
    """The levels' x (users, blobs or connections) on a log axis, ticks at the levels that ran."""
    xs = sorted({float(x) for x in part["x"]}) if not part.empty else [1.0]
    ax.set_xscale("log", base=2 if part.empty or _x_label(part) == "concurrent users" else 10)
    ax.set_xticks(xs, [f"{x:,.0f}" for x in xs])
    ax.minorticks_off()
    # set, not autoscaled: a lone point is centred, and a panel with no latency drawn (levels
    # that completed no request) still spans its levels
    margin = 2.0 if len(xs) == 1 else 1.4
    ax.set_xlim(xs[0] / margin, xs[-1] * margin)
    ax.set_xlabel(_x_label(part))
    ax.grid(alpha=0.3)


def _x_label(part: pd.DataFrame) -> str:
    names = list(dict.fromkeys(part["x_label"])) if not part.empty else []
    return " / ".join(names) or "concurrent users"


def _line_label(target: str, series: str) -> str:
    return f"{target} ({series})" if series else str(target)


def _sweep_titles(table: pd.DataFrame) -> tuple[str, str]:
    """(throughput, latency) titles saying what the levels are and which clock timed them."""
    steady = table["clock"] == STEADY_CLOCK
    if steady.all():
        steady_latency = "Latency vs concurrency (steady window, merged histograms)"
        return "Throughput vs concurrency", steady_latency
    scale = "each point timed once, no steady window"
    if not steady.any():
        return "Throughput per scale point", f"Latency per scale point ({scale})"
    return "Throughput per level", f"Latency per level (Locust: steady window; scale: {scale})"


def _mark_bound(ax: plt.Axes, part: pd.DataFrame, column: str) -> bool:
    """Ring the client-bound points of ``part`` on ``ax``; True when there were any."""
    bound = part[part["client_bound"].astype(bool)]
    if bound.empty:
        return False
    ax.scatter(
        bound["x"],
        pd.to_numeric(bound[column]),
        s=160,
        facecolors="none",
        edgecolors="#d62728",
        linewidths=1.8,
        zorder=5,
    )
    return True


def sweep_throughput_chart(table: pd.DataFrame, title: str = "") -> str:
    """ops/s (top) and MiB/s (bottom) against each level's x (users, blobs or connections):
    one column per operation, one line per target (and listing layout); client-bound levels
    ringed in red."""
    title = title or _sweep_titles(table)[0]
    ops = list(dict.fromkeys(table["operation"]))
    lines = list(dict.fromkeys(zip(table["target"], table["series"], strict=True)))
    metrics = [("ops_s", "ops/s"), ("throughput_mib_s", "MiB/s")]
    if not pd.to_numeric(table["throughput_mib_s"]).fillna(0).any():
        metrics = metrics[:1]  # nothing moved a body: no row of "no payload" panels
    fig, axes = plt.subplots(
        len(metrics), len(ops), figsize=(max(6.5, 4.2 * len(ops)), 3.1 * len(metrics)),
        squeeze=False, sharex="col",
    )  # fmt: skip
    colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    any_bound = False
    for col, op in enumerate(ops):
        mine = table[table["operation"] == op]
        for row, (metric, unit) in enumerate(metrics):
            ax = axes[row][col]
            _level_axis(ax, mine)
            moved = pd.to_numeric(mine[metric]).fillna(0)
            if metric == "throughput_mib_s" and not moved.any():  # List Blobs, Delete, HEAD
                ax.set_yticks([])
                ax.text(0.5, 0.5, "no payload", transform=ax.transAxes, ha="center",
                        va="center", color="#888888")  # fmt: skip
            else:
                for i, (target, series) in enumerate(lines):
                    part = mine[(mine["target"] == target) & (mine["series"] == series)]
                    part = part.sort_values("x")
                    if part.empty:
                        continue
                    ax.plot(
                        part["x"],
                        part[metric],
                        marker="o",
                        color=colours[i % len(colours)],
                        label=_line_label(target, series),
                    )
                    any_bound |= _mark_bound(ax, part, metric)
                ax.set_ylim(bottom=0)
            if row == 0:
                ax.set_title(op, fontsize=11, fontweight="bold")
            if row < len(metrics) - 1:
                ax.set_xlabel("")
            if col == 0:
                ax.set_ylabel(unit)
    handles, names = _legend_entries(axes)
    if any_bound:
        handles.append(
            plt.Line2D([], [], marker="o", ls="", mfc="none", mec="#d62728", mew=1.8, markersize=11)
        )
        names.append(BOUND_NOTE)
    fig.legend(handles, names, loc="upper center", ncol=min(4, len(names)), frameon=False,
               bbox_to_anchor=(0.5, 1.0))  # fmt: skip
    fig.suptitle(title, y=1.05 + 0.04 * ((len(names) - 1) // 4), fontsize=12)
    fig.tight_layout()
    return _png(fig)


def _legend_entries(axes: Any) -> tuple[list[Any], list[str]]:
    """Every line named once, whichever panel drew it first."""
    entries: dict[str, Any] = {}
    for ax in [a for row in axes for a in row]:
        for handle, name in zip(*ax.get_legend_handles_labels(), strict=True):
            entries.setdefault(name, handle)
    return list(entries.values()), list(entries)


NO_REQUESTS = "level completed no request"
LATENCY_COLUMNS = [c for c, _ in PERCENTILES] + ["max_ms"]


def sweep_latency_chart(table: pd.DataFrame, title: str = "") -> str:
    """p50/p90/p99/p99.9 and max against each level's x (log scale): one panel per target
    (rows) and operation (columns), client-bound levels shaded. A level that completed no
    request has no latency: it gets a red cross on the axis, and a chart without any latency
    at all stays linear (a log axis of nothing cannot be drawn)."""
    title = title or _sweep_titles(table)[1]
    ops = list(dict.fromkeys(table["operation"]))
    labels = list(dict.fromkeys(table["target"]))
    latencies = table[LATENCY_COLUMNS].apply(pd.to_numeric, errors="coerce")
    measured = bool((latencies > 0).any().any())
    fig, axes = plt.subplots(
        len(labels),
        len(ops),
        figsize=(max(6.5, 4.2 * len(ops)), 3.2 * len(labels) + 0.6),
        squeeze=False,
        sharex="col",
        sharey=True,
    )
    any_idle = False
    for r, label in enumerate(labels):
        for c, op in enumerate(ops):
            ax = axes[r][c]
            part = table[(table["operation"] == op) & (table["target"] == label)]
            part = part.sort_values(["series", "x"])
            for series, line in part.groupby("series", sort=False):
                style = {"ls": ":" if series and series != part["series"].iloc[0] else "-"}
                for (column, name), colour in zip(PERCENTILES, PERCENTILE_COLOURS, strict=True):
                    values = pd.to_numeric(line[column], errors="coerce")
                    ax.plot(line["x"], values, marker="o", ms=4, color=colour, label=name, **style)
                ax.plot(
                    line["x"],
                    pd.to_numeric(line["max_ms"], errors="coerce"),
                    ls="--",
                    marker="_",  # visible even for a lone level
                    ms=8,
                    color="#999999",
                    label="max",
                )
            for x in part[part["client_bound"].astype(bool)]["x"]:
                ax.axvspan(x / 2**0.35, x * 2**0.35, color="#d62728", alpha=0.10, lw=0)
            idle = part[(pd.to_numeric(part["objects"]).fillna(0) == 0)]
            if not idle.empty:  # drawn on the x axis: the level ran, nothing came back
                ax.scatter(idle["x"], [0.04] * len(idle), marker="x", s=60, color="#d62728",
                           transform=ax.get_xaxis_transform(), clip_on=False, zorder=6)  # fmt: skip
                any_idle = True
            _level_axis(ax, part)
            if measured:
                ax.set_yscale("log")
                # 1-2-3-5 ticks in plain milliseconds: "10^1" alone left readers guessing
                ax.yaxis.set_major_locator(ticker.LogLocator(base=10, subs=(1.0, 2.0, 3.0, 5.0)))
                ax.yaxis.set_major_formatter(ticker.FuncFormatter(lambda v, _: f"{v:g}"))
                ax.yaxis.set_minor_formatter(ticker.NullFormatter())
            else:
                ax.set_yticks([])
                ax.text(0.5, 0.5, "no request completed", transform=ax.transAxes,
                        ha="center", va="center", color="#888888")  # fmt: skip
            layouts = [s for s in dict.fromkeys(part["series"]) if s]
            name = f"{op} @ {label}" + (f" ({', '.join(layouts)})" if len(layouts) > 1 else "")
            ax.set_title(name, fontsize=10, fontweight="bold")
            if len(layouts) > 1:
                ax.text(0.02, 0.96, f"solid: {layouts[0]}; dotted: {', '.join(layouts[1:])}",
                        transform=ax.transAxes, fontsize=7, va="top", color="#555555")  # fmt: skip
            if c == 0:
                ax.set_ylabel("latency ms")
            if r < len(labels) - 1:
                ax.set_xlabel("")
    handles, names = _legend_entries(axes)
    if table["client_bound"].astype(bool).any():
        handles.append(plt.Rectangle((0, 0), 1, 1, color="#d62728", alpha=0.15))
        names.append(BOUND_NOTE)
    if any_idle:
        handles.append(plt.Line2D([], [], marker="x", ls="", color="#d62728", markersize=8))
        names.append(NO_REQUESTS)
    fig.legend(handles, names, loc="upper center", ncol=len(names), frameon=False,
               bbox_to_anchor=(0.5, 1.0))  # fmt: skip
    fig.suptitle(title, y=1.05, fontsize=12)
    fig.tight_layout()
    return _png(fig)


def _sweep_section(table: pd.DataFrame, labels_table: pd.DataFrame | None = None) -> dict:
    """What the templates need for a sweep: rows, and the two charts."""
    if table.empty:
        return {}
    chart_table = labels_table if labels_table is not None else table
    steady = table["clock"] == STEADY_CLOCK
    return {
        "rows": table.to_dict("records"),
        "throughput_chart": sweep_throughput_chart(chart_table),
        "latency_chart": sweep_latency_chart(chart_table),
        "client_bound": int(table["client_bound"].astype(bool).sum()),
        # Locust levels are a load sweep; listing and connection levels are scale points
        "steady": bool(steady.any()),
        "points": bool(table["point"].astype(bool).any()),
        # only Locust measures its generator's CPU: no empty column for the others
        "generator_cpu": bool(table["generator_cpu_pct"].notna().any()),
        "heading": "Load sweep"
        if steady.all()
        else "Scale points"
        if not steady.any()
        else "Load sweep and scale points",
    }


def write_run_report(data: RunData) -> Path:
    summary = summarize(data.results)
    targets = by_target(summary)
    comparison = side_by_side(targets) if len(targets) > 1 else None
    levels = sweep(data.results)
    sweeps = sweeps_by_label([data])
    html = _env.get_template("report.html.j2").render(
        sweep=_sweep_section(levels),
        steady_notes=steady_state_notes(data.results),
        sweep_comparison=sweep_side_by_side(sweeps) if len(sweeps) > 1 else None,
        drift=data.drift,
        title=f"{data.scenario} — {data.name}",
        run=data,
        info=data.info,
        summary=summary.to_dict("records"),
        verdicts=data.verdicts,
        criteria_rows=grouped_verdicts(data.verdicts),
        comparison=comparison,
        per_host=per_host(data.results),
        charts={
            "throughput": throughput_chart(summary) if not summary.empty else None,
            "resources": resources_chart(data.samples),
            "hosts": host_samples_chart(data.samples),
        },
        clocks=CLOCKS,
        unstable_spread=UNSTABLE_SPREAD,
        generated=datetime.now(UTC).isoformat(timespec="seconds"),
    )
    path = data.run_dir / "report.html"
    path.write_text(html)
    return path


def run_summaries(runs: list[RunData], labels: list[str] | None = None) -> dict[str, pd.DataFrame]:
    """Label -> summary: one per run, or one per target of a multi-target run. A run without
    step results keeps its (empty) column, so it is reported, not dropped."""
    summaries: dict[str, pd.DataFrame] = {}
    for i, (run, run_label) in enumerate(zip(runs, run_labels(runs, labels), strict=True)):
        summary = summarize(run.results)
        targets = by_target(summary)
        names = per_target_labels(run_label, list(targets), len(runs) > 1, bool(labels))
        if not targets:
            summaries[run_label] = summary
        for target, part in targets.items():
            label = names[target]
            summaries[label if label not in summaries else f"{label} #{i + 1}"] = part
    return summaries


def write_compare_report(
    runs: list[RunData], out_dir: Path, labels: list[str] | None = None
) -> Path:
    """Several runs side by side: metrics per (step, driver, operation), ratios to the first."""
    given = labels
    summaries = run_summaries(runs, given)
    names = run_labels(runs, given)
    warnings = comparison_warnings(list(summaries), summaries)
    columns, rows = side_by_side(summaries)
    combined = (
        pd.concat([s.assign(target=label) for label, s in summaries.items()], ignore_index=True)
        if summaries
        else pd.DataFrame()
    )
    sweeps = sweeps_by_label(runs, given)
    labelled = (
        pd.concat([t.assign(target=label) for label, t in sweeps.items()], ignore_index=True)
        if sweeps
        else pd.DataFrame()
    )
    html = _env.get_template("compare.html.j2").render(
        title="Comparison of " + ", ".join(names),
        runs=list(zip(runs, names, strict=True)),
        warnings=warnings,
        comparison=(columns, rows),
        sweep=_sweep_section(labelled) if not labelled.empty else {},
        sweep_comparison=sweep_side_by_side(sweeps) if sweeps else None,
        # the bars are the comparison's columns: runs by label, or a run's targets
        chart=throughput_chart(combined, "Throughput side by side", "run / target")
        if not combined.empty
        else None,
        generated=datetime.now(UTC).isoformat(timespec="seconds"),
    )
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / "report.html"
    path.write_text(html)
    return path
