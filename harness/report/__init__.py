"""Reports from a run directory: the same tables feed HTML, JUnit and the terminal.

Everything here reads only what a run wrote to disk (results.parquet, samples.parquet,
run.json), so `harness report RUN_DIR` re-renders any past run.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from harness.runner import read_results

GROUP = ["step", "driver", "operation", "target"]


@dataclass
class RunData:
    run_dir: Path
    results: pd.DataFrame
    samples: pd.DataFrame
    info: dict[str, Any]

    @property
    def name(self) -> str:
        return self.run_dir.name

    @property
    def scenario(self) -> str:
        return str(self.info.get("scenario", {}).get("name", self.name))

    @property
    def verdicts(self) -> list[dict[str, Any]]:
        return list(self.info.get("verdicts", []))

    @property
    def passed(self) -> bool:
        return bool(self.info.get("passed"))


def load_run(run_dir: Path) -> RunData:
    run_dir = Path(run_dir)
    if not (run_dir / "results.parquet").is_file():
        raise FileNotFoundError(f"{run_dir}: not a run directory (no results.parquet)")
    samples_path = run_dir / "samples.parquet"
    samples = pd.read_parquet(samples_path) if samples_path.is_file() else pd.DataFrame()
    info = json.loads((run_dir / "run.json").read_text())
    return RunData(run_dir, read_results(run_dir), samples, info)


def summarize(results: pd.DataFrame) -> pd.DataFrame:
    """One row per (step, driver, operation, target): medians and spread of measured repeats.

    Warm-ups are excluded. Row order follows the order steps ran in.
    """
    columns = [
        *GROUP,
        "repeats",
        "ok",
        "objects",
        "bytes",
        "duration_s",
        "throughput_mib_s",
        "throughput_min",
        "throughput_max",
        "throughput_gbit_s",
        "ops_s",
        "failed",
        "verified_objects",
        "p50_ms",
        "p99_ms",
        "client_cpu_pct_max",
        "client_rss_mib_max",
        "error",
    ]
    if results.empty:
        return pd.DataFrame(columns=columns)
    measured = results[~results["warmup"].astype(bool)]
    rows = []
    for key, g in measured.groupby(GROUP, sort=False):
        tp = pd.to_numeric(g["throughput_mib_s"])
        errors = [e for e in g["error"] if isinstance(e, str) and e]
        rows.append(
            {
                **dict(zip(GROUP, key, strict=True)),
                "repeats": len(g),
                "ok": bool(g["ok"].all()),
                "objects": float(g["objects"].median()),
                "bytes": float(g["bytes"].median()),
                "duration_s": float(g["duration_s"].median()),
                "throughput_mib_s": float(tp.median()),
                "throughput_min": float(tp.min()),
                "throughput_max": float(tp.max()),
                "throughput_gbit_s": float(g["throughput_gbit_s"].median()),
                "ops_s": float(g["ops_s"].median()),
                "failed": int(g["failed"].max()),
                "verified_objects": float(g["verified_objects"].median()),
                "p50_ms": _median_or_none(g["p50_ms"]),
                "p99_ms": _median_or_none(g["p99_ms"]),
                "client_cpu_pct_max": _median_or_none(g["client_cpu_pct_max"], agg="max"),
                "client_rss_mib_max": _median_or_none(g["client_rss_mib_max"], agg="max"),
                "error": errors[0] if errors else "",
            }
        )
    return pd.DataFrame(rows, columns=columns)


def _median_or_none(series: pd.Series, agg: str = "median") -> float | None:
    values = pd.to_numeric(series, errors="coerce").dropna()
    if values.empty:
        return None
    return float(values.max() if agg == "max" else values.median())


def side_by_side(
    summaries: dict[str, pd.DataFrame], metrics: tuple[str, ...] = ("throughput_mib_s", "ops_s")
) -> tuple[list[str], list[dict[str, Any]]]:
    """Rows keyed by (step, driver, operation) with each label's metric and its ratio to the
    first label's: labels are run names (several runs) or targets (one multi-target run)."""
    labels = list(summaries)
    keys: list[tuple[str, str, str]] = []
    index: dict[str, dict[tuple[str, str, str], dict[str, Any]]] = {}
    for label, summary in summaries.items():
        index[label] = {}
        for row in summary.to_dict("records"):
            key = (row["step"], row["driver"], row["operation"])
            index[label][key] = row
            if key not in keys:
                keys.append(key)
    rows = []
    for key in keys:
        row: dict[str, Any] = {"step": key[0], "driver": key[1], "operation": key[2]}
        for metric in metrics:
            base = index[labels[0]].get(key, {}).get(metric)
            for label in labels:
                value = index[label].get(key, {}).get(metric)
                row[f"{label}:{metric}"] = value
                ratio = value / base if value is not None and base else None
                row[f"{label}:{metric}:ratio"] = ratio
        rows.append(row)
    return labels, rows


def by_target(summary: pd.DataFrame) -> dict[str, pd.DataFrame]:
    return {str(t): g for t, g in summary.groupby("target", sort=False)}


def render_run(run_dir: Path) -> dict[str, Path]:
    """Write report.html and junit.xml into run_dir; return their paths."""
    from harness.report import html, junit

    data = load_run(run_dir)
    return {"html": html.write_run_report(data), "junit": junit.write_junit(data)}
