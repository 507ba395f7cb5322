"""HTML reports (jinja2) with matplotlib charts embedded as PNG data URIs: one file to share."""

from __future__ import annotations

import base64
import io
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # no display here or in CI
import matplotlib.pyplot as plt
import pandas as pd
from jinja2 import Environment, FileSystemLoader, select_autoescape

from harness.report import RunData, by_target, side_by_side, summarize

TEMPLATES = Path(__file__).parent / "templates"
_env = Environment(loader=FileSystemLoader(TEMPLATES), autoescape=select_autoescape(["html", "j2"]))


def _fmt(value: Any, digits: int = 1) -> str:
    if value is None or (isinstance(value, float) and pd.isna(value)):
        return "–"
    if isinstance(value, float):
        return f"{value:,.{digits}f}"
    return str(value)


_env.filters["num"] = _fmt


def _png(fig: plt.Figure) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    plt.close(fig)
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()


def throughput_chart(summary: pd.DataFrame, title: str = "Throughput per step and driver") -> str:
    """Median MiB/s per (step, driver) with min–max whiskers; one bar colour per target."""
    labels = list(dict.fromkeys(f"{r.step}\n{r.driver}" for r in summary.itertuples()))
    targets = list(dict.fromkeys(summary["target"]))
    fig, ax = plt.subplots(figsize=(max(6, 1.1 * len(labels) * len(targets)), 4))
    width = 0.8 / max(1, len(targets))
    for t_index, target in enumerate(targets):
        part = summary[summary["target"] == target]
        xs, ys, lo, hi = [], [], [], []
        for r in part.itertuples():
            xs.append(labels.index(f"{r.step}\n{r.driver}") + t_index * width)
            ys.append(r.throughput_mib_s)
            lo.append(r.throughput_mib_s - r.throughput_min)
            hi.append(r.throughput_max - r.throughput_mib_s)
        ax.bar(xs, ys, width, yerr=[lo, hi], capsize=3, label=target)
    ax.set_xticks(
        [i + width * (len(targets) - 1) / 2 for i in range(len(labels))], labels, fontsize=8
    )
    ax.set_ylabel("MiB/s (median of repeats)")
    ax.set_title(title)
    ax.legend(title="target")
    ax.grid(axis="y", alpha=0.3)
    return _png(fig)


def resources_chart(samples: pd.DataFrame) -> str | None:
    """CPU % and RSS MiB over time for the client tree and each local server."""
    if samples.empty:
        return None
    t0 = samples["t"].min()
    fig, (cpu_ax, rss_ax) = plt.subplots(2, 1, figsize=(9, 5), sharex=True)
    for (role, target), part in samples.groupby(["role", "target"], sort=False):
        name = "client" if role == "client" else f"server ({target})"
        cpu_ax.plot(part["t"] - t0, part["cpu_pct"], label=name)
        rss_ax.plot(part["t"] - t0, part["rss_mib"], label=name)
    cpu_ax.set_ylabel("CPU % (100 = 1 core)")
    rss_ax.set_ylabel("RSS MiB")
    rss_ax.set_xlabel("seconds since start")
    cpu_ax.legend(fontsize=8)
    cpu_ax.set_title("CPU and memory over time (psutil, process trees)")
    for ax in (cpu_ax, rss_ax):
        ax.grid(alpha=0.3)
    return _png(fig)


def write_run_report(data: RunData) -> Path:
    summary = summarize(data.results)
    targets = by_target(summary)
    comparison = side_by_side(targets) if len(targets) > 1 else None
    html = _env.get_template("report.html.j2").render(
        title=f"{data.scenario} — {data.name}",
        run=data,
        info=data.info,
        summary=summary.to_dict("records"),
        verdicts=data.verdicts,
        comparison=comparison,
        charts={
            "throughput": throughput_chart(summary) if not summary.empty else None,
            "resources": resources_chart(data.samples),
        },
        generated=datetime.now(UTC).isoformat(timespec="seconds"),
    )
    path = data.run_dir / "report.html"
    path.write_text(html)
    return path


def run_summaries(runs: list[RunData]) -> dict[str, pd.DataFrame]:
    """Label -> summary: one per run, or one per target of a multi-target run."""
    summaries: dict[str, pd.DataFrame] = {}
    for run in runs:
        targets = by_target(summarize(run.results))
        for target, part in targets.items():
            summaries[run.name if len(targets) == 1 else f"{run.name}/{target}"] = part
    return summaries


def write_compare_report(runs: list[RunData], out_dir: Path) -> Path:
    """Several runs side by side: metrics per (step, driver, operation), ratios to the first."""
    summaries = run_summaries(runs)
    labels, rows = side_by_side(summaries)
    combined = (
        pd.concat([s.assign(target=label) for label, s in summaries.items()], ignore_index=True)
        if summaries
        else pd.DataFrame()
    )
    html = _env.get_template("compare.html.j2").render(
        title="Comparison of " + ", ".join(r.name for r in runs),
        runs=runs,
        comparison=(labels, rows),
        chart=throughput_chart(combined, "Throughput side by side") if not combined.empty else None,
        generated=datetime.now(UTC).isoformat(timespec="seconds"),
    )
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / "report.html"
    path.write_text(html)
    return path
