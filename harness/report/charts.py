"""The benchmark charts: one table per headline KPI (steps × series, a series a run's target),
shared by the deck (native PowerPoint charts) and `harness charts` (PNG + SVG, matplotlib)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from harness import validity
from harness.report import RunData, load_run, summarize, sweep
from harness.results import moves_payload
from harness.validity import facade_build_of, hardware_of

HEADLINE_KPIS = (
    ("throughput_mib_s", "Throughput", "MiB/s"),
    ("ops_s", "Operations per second", "ops/s"),
    ("p99_ms", "p99 latency", "ms"),
)
DISCLAIMER = "lab result, not independently verified"


@dataclass
class KpiChart:
    kpi: str
    title: str
    unit: str
    table: pd.DataFrame  # index: "step (operation)"; columns: series; values: medians

    def ratios(self) -> pd.DataFrame:
        """Each series over the first (the anchor): the labels on the bars."""
        first = self.table.iloc[:, 0]
        return self.table.div(first.where(first > 0), axis=0)


def series_names(runs: list[RunData], labels: list[str] | None) -> list[list[tuple[str, str]]]:
    """Per run, (target, series name): the label (or run id), with the target when a run has
    several."""
    out = []
    for i, run in enumerate(runs):
        base = labels[i] if labels else run.name
        targets = list(dict.fromkeys(run.results["target"])) if len(run.results) else []
        named = [(t, t if len(runs) == 1 else f"{base} {t}") for t in targets]
        out.append(
            named if len(targets) > 1 else [(t, base if len(runs) > 1 else t) for t in targets]
        )
    return out


def kpi_charts(runs: list[RunData], labels: list[str] | None = None) -> list[KpiChart]:
    charts = []
    names = series_names(runs, labels)
    summaries = [summarize(r.results) for r in runs]
    for kpi, title, unit in HEADLINE_KPIS:
        columns: dict[str, dict[str, float]] = {}
        for summary, named in zip(summaries, names, strict=True):
            for target, series in named:
                part = summary[summary["target"] == target]
                values = {}
                for _, row in part.iterrows():
                    if kpi == "throughput_mib_s" and not moves_payload(str(row["operation"])):
                        continue
                    value = row.get(kpi)
                    if value is not None and value == value:
                        values[f"{row['step']} ({row['operation']})"] = float(value)
                columns[series] = values
        table = pd.DataFrame(columns).dropna(how="all")
        if not table.empty:
            charts.append(KpiChart(kpi, title, unit, table))
    return charts


def sweep_tables(runs: list[RunData], labels: list[str] | None = None) -> dict[str, pd.DataFrame]:
    """Load sweeps: "series / operation" -> rows of users, ops/s, p99 (empty without levels)."""
    out: dict[str, pd.DataFrame] = {}
    for run, named in zip(runs, series_names(runs, labels), strict=True):
        table = sweep(run.results)
        if table.empty:
            continue
        for target, series in named:
            for op, part in table[table["target"] == target].groupby("operation", sort=False):
                out[f"{series} / {op}"] = part[["users", "ops_s", "p99_ms"]].reset_index(drop=True)
    return out


def invalid_notes(runs: list[RunData], chart: KpiChart) -> list[str]:
    """The chart's bars whose run broke a validity rule: "INVALID (cache-bound): step @target"."""
    notes = []
    for run in runs:
        rows = run.results
        if "row_kind" in rows:
            rows = rows[rows["row_kind"] == "step"]
        keys = ["step", "driver", "target", "operation"]
        for (step, driver, target, op), _ in rows.groupby(keys, sort=False):
            if f"{step} ({op})" not in chart.table.index:
                continue
            outcomes = validity.group_rules(run, str(step), str(driver), str(target), chart.kpi, {})
            broken = [o for o in outcomes if not o.ok]
            if broken:
                reasons = ", ".join(dict.fromkeys(o.reason for o in broken))
                notes.append(f"INVALID ({reasons}): {step} @{target}")
    return notes


def fairness(runs: list[RunData]) -> list[str]:
    """What differs between the runs' scenario, dataset and hardware (empty: comparable)."""
    if len(runs) < 2:
        return []
    facets = {
        "scenario": lambda r: r.scenario,
        "dataset": lambda r: ", ".join(
            f"{k}: {v.get('files')} files, {v.get('bytes')} B"
            for k, v in sorted((r.info.get("datasets") or {}).items())
        ),
        "hardware": lambda r: hardware_of(r.info.get("host") or {}),
    }
    out = []
    for facet, of in facets.items():
        values = {r.name: of(r) for r in runs}
        if len(set(values.values())) > 1:
            out.append(f"{facet} differs: " + "; ".join(f"{k} = {v}" for k, v in values.items()))
    return out


def footer(runs: list[RunData]) -> str:
    """Source, date and configuration of the numbers, as public benchmark rules ask."""
    ids = ", ".join(r.name for r in runs)
    dates = sorted({str(r.info.get("started_at", ""))[:10] for r in runs})
    builds = sorted(
        {
            f"{t} {facade_build_of(f)}"
            for r in runs
            for t, f in (r.info.get("targets") or {}).items()
        }
    )
    hardware = sorted({hardware_of(r.info.get("host") or {}) for r in runs})
    return (
        f"Source: run {ids} · {', '.join(dates)} · {'; '.join(hardware)} · "
        f"{', '.join(builds)} · {DISCLAIMER}"
    )


def caption(chart: KpiChart, runs: list[RunData]) -> str:
    return (
        f"{chart.title} ({chart.unit}), median of measured repeats per step; labels: ratio to "
        f"{chart.table.columns[0]}. {footer(runs)}"
    )


def write_charts(run_dirs: list[Path], out: Path, labels: list[str] | None = None) -> list[Path]:
    """One PNG and one SVG per headline KPI (and per load sweep) plus captions.md in ``out``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    runs = [load_run(d) for d in run_dirs]
    unfair = fairness(runs)
    out.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    captions = []
    for chart in kpi_charts(runs, labels):
        table, ratios = chart.table, chart.ratios()
        fig, ax = plt.subplots(figsize=(10, 4.8))
        width = 0.8 / len(table.columns)
        for i, series in enumerate(table.columns):
            xs = [k + i * width for k in range(len(table))]
            bars = ax.bar(xs, table[series].fillna(0), width, label=series)
            texts = [
                f"{v:,.4g}" + (f"\n{r:.2f}×" if i and r == r else "")
                for v, r in zip(table[series].fillna(0), ratios[series], strict=True)
            ]
            ax.bar_label(bars, texts, fontsize=7)
        ax.set_xticks([k + width * (len(table.columns) - 1) / 2 for k in range(len(table))])
        ax.set_xticklabels(table.index, rotation=20, ha="right", fontsize=8)
        ax.set_ylabel(chart.unit)
        title = chart.title + (" — NOT COMPARABLE" if unfair else "")
        ax.set_title(title)
        ax.legend(fontsize=8)
        fig.text(0.01, 0.01, footer(runs), fontsize=6, color="#555")
        fig.tight_layout(rect=(0, 0.04, 1, 1))
        for ext in ("png", "svg"):
            path = out / f"{chart.kpi}.{ext}"
            fig.savefig(path, dpi=150)
            written.append(path)
        plt.close(fig)
        text = caption(chart, runs)
        invalid = invalid_notes(runs, chart)
        if invalid:
            text += " " + "; ".join(invalid) + "."
        if unfair:
            text += " NOT COMPARABLE: " + "; ".join(unfair)
        captions.append(f"![{chart.title}]({chart.kpi}.png)\n\n{text}\n")
    for name, table in sweep_tables(runs, labels).items():
        slug = "sweep-" + "".join(c if c.isalnum() else "-" for c in name).strip("-")
        fig, ax = plt.subplots(figsize=(8, 4.5))
        ax.plot(table["users"], table["ops_s"], marker="o", label="ops/s")
        ax.set_xlabel("concurrent users")
        ax.set_ylabel("ops/s")
        right = ax.twinx()
        right.plot(table["users"], table["p99_ms"], marker="s", color="#b00020", label="p99 ms")
        right.set_ylabel("p99 ms")
        ax.set_title(f"Load sweep: {name}")
        fig.text(0.01, 0.01, footer(runs), fontsize=6, color="#555")
        fig.tight_layout(rect=(0, 0.04, 1, 1))
        for ext in ("png", "svg"):
            written.append(out / f"{slug}.{ext}")
            fig.savefig(written[-1], dpi=150)
        plt.close(fig)
        captions.append(f"![{name}]({slug}.png)\n\nLoad sweep {name}. {footer(runs)}\n")
    (out / "captions.md").write_text("\n".join(captions), encoding="utf-8")
    written.append(out / "captions.md")
    return written
