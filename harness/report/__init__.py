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

from harness.results import UNSTABLE_SPREAD, moves_payload
from harness.runner import host_rows, level_rows, read_results, step_rows

GROUP = ["step", "driver", "operation", "target"]
SWEEP_GROUP = ["step", "driver", "target", "operation", "level"]
SWEEP_COLUMNS = [
    *SWEEP_GROUP,
    "users",
    "repeats",
    "ok",
    "ops_s",
    "throughput_mib_s",
    "p50_ms",
    "p90_ms",
    "p99_ms",
    "p999_ms",
    "max_ms",
    "objects",
    "failed",
    "errors",
    "server_busy_share",
    "generator_cpu_pct",
    "client_bound",
    "steady_s",
    "mode",
    "error",
    "clock",
    "x",
    "x_label",
    "series",
    "point",
]
STEADY_CLOCK = "steady-window"  # Locust levels; other level rows are scale points, timed once


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

    @property
    def drift(self) -> dict[str, Any]:
        """run.json's contract section: whether calls were recorded, and drift lines per tool."""
        return dict(self.info.get("contract") or {"recorded": False})


def load_run(run_dir: Path) -> RunData:
    run_dir = Path(run_dir)
    if not (run_dir / "results.parquet").is_file():
        raise FileNotFoundError(f"{run_dir}: not a run directory (no results.parquet)")
    samples_path = run_dir / "samples.parquet"
    samples = pd.read_parquet(samples_path) if samples_path.is_file() else pd.DataFrame()
    info = json.loads((run_dir / "run.json").read_text())
    return RunData(run_dir, read_results(run_dir), samples, info)


def grouped_verdicts(verdicts: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Verdicts for reading: a criterion that held on several steps becomes one row naming them
    (``count`` > 1); every failed verdict keeps its own row, so each failure shows its evidence.

    Order follows the first appearance of each criterion; rows carry ``observed_text``."""
    groups: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for v in verdicts:
        groups.setdefault((v["criterion"], v.get("expression", "")), []).append(v)
    out: list[dict[str, Any]] = []
    for (name, expression), group in groups.items():
        passed = [v for v in group if v["passed"]]
        singles = [v for v in group if not v["passed"]] + (passed if len(passed) < 2 else [])
        out += [{**v, "count": 1, "observed_text": _observed(v["observed"])} for v in singles]
        if len(passed) < 2:
            continue
        values = [float(v["observed"]) for v in passed if v["observed"] is not None]
        low, high = (min(values), max(values)) if values else (None, None)
        several_targets = len({v["target"] for v in passed}) > 1
        scopes = [
            f"{v['step']}"
            + (f" ({v['operation']})" if v.get("operation") else "")
            + (f" @{v['target']}" if several_targets else "")
            for v in passed
        ]
        steps = list(dict.fromkeys(v["step"] for v in passed))
        if len(steps) == 1:  # a load step judged per operation (and target)
            unit = "operations" if not several_targets else "operations × targets"
            what = f"{steps[0]} ({len(passed)} {unit})"
        else:
            what = f"{len(steps)} steps" + (
                f" ({len(passed)} results)" if len(steps) < len(passed) else ""
            )
            what = ("all " if len(passed) == len(group) else "the other ") + what
        out.append(
            {
                "criterion": name,
                "expression": expression,
                "step": what,
                "driver": _joined((v["driver"] for v in passed), "drivers"),
                "target": _joined((v["target"] for v in passed), "targets"),
                "operation": "",
                "observed": low if low == high else None,
                "observed_text": _observed(low)
                if low == high
                else f"{_observed(low)}–{_observed(high)}",
                "passed": True,
                "count": len(passed),
                "evidence": f"{expression} held on each of: " + ", ".join(scopes),
            }
        )
    return out


def _observed(value: Any) -> str:
    if value is None or value != value:
        return "–"
    value = float(value)
    return f"{value:,.0f}" if value.is_integer() else f"{value:,.3f}"


def _joined(values: Any, plural: str, most: int = 3) -> str:
    distinct = list(dict.fromkeys(str(v) for v in values))
    return ", ".join(distinct) if len(distinct) <= most else f"{len(distinct)} {plural}"


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
        "retries",
        "verified_objects",
        "p50_ms",
        "p99_ms",
        "client_cpu_pct_max",
        "client_rss_mib_max",
        "clock",
        "latency_clock",
        "spread",
        "unstable",
        "error",
    ]
    results = step_rows(results)
    if results.empty:
        return pd.DataFrame(columns=columns)
    measured = results[~results["warmup"].astype(bool)]
    rows = []
    for key, g in measured.groupby(GROUP, sort=False):
        payload = moves_payload(key[GROUP.index("operation")])
        # List and remove move no bodies: their bytes over time is no throughput (NaN = "–").
        tp = pd.to_numeric(g["throughput_mib_s"]) if payload else pd.Series([float("nan")])
        gbit = pd.to_numeric(g["throughput_gbit_s"]) if payload else tp
        errors = [e for e in g["error"] if isinstance(e, str) and e]
        spread = _spread(g["duration_s"])
        rows.append(
            {
                **dict(zip(GROUP, key, strict=True)),
                "repeats": len(g),
                "ok": bool(g["ok"].all()),
                "objects": float(g["objects"].median()),
                "bytes": float(g["bytes"].median()) if payload else float("nan"),
                "duration_s": float(g["duration_s"].median()),
                "throughput_mib_s": float(tp.median()),
                "throughput_min": float(tp.min()),
                "throughput_max": float(tp.max()),
                "throughput_gbit_s": float(gbit.median()),
                "ops_s": float(g["ops_s"].median()),
                "failed": int(g["failed"].max()),
                "retries": int(pd.to_numeric(g["retries"]).fillna(0).max()),
                "verified_objects": float(g["verified_objects"].median()),
                "p50_ms": _median_or_none(g["p50_ms"]),
                "p99_ms": _median_or_none(g["p99_ms"]),
                "client_cpu_pct_max": _median_or_none(g["client_cpu_pct_max"], agg="max"),
                "client_rss_mib_max": _median_or_none(g["client_rss_mib_max"], agg="max"),
                "clock": _labels(g, "clock", "wall"),
                "latency_clock": _labels(g, "latency_clock", "client")
                if _median_or_none(g["p50_ms"]) is not None
                or _labels(g, "latency_clock", "") == "per-host"  # see the per-host rows
                else "",
                "spread": spread,
                "unstable": spread is not None and spread > UNSTABLE_SPREAD,
                "error": errors[0] if errors else "",
            }
        )
    return pd.DataFrame(rows, columns=columns)


def _spread(durations: pd.Series) -> float | None:
    """Slowest over fastest repeat (None with fewer than two timed repeats)."""
    values = pd.to_numeric(durations, errors="coerce").dropna()
    values = values[values > 0]
    return float(values.max() / values.min()) if len(values) > 1 else None


def _labels(g: pd.DataFrame, column: str, default: str) -> str:
    """The distinct values of a text column (runs written before it existed: ``default``)."""
    if column not in g:
        return default
    values = [v for v in g[column] if isinstance(v, str) and v]
    return "+".join(dict.fromkeys(values)) or default


def _median_or_none(series: pd.Series, agg: str = "median") -> float | None:
    values = pd.to_numeric(series, errors="coerce").dropna()
    if values.empty:
        return None
    return float(values.max() if agg == "max" else values.median())


def per_host(results: pd.DataFrame) -> list[dict[str, Any]]:
    """The steps that ran on inventory hosts (``hosts:``), each execution with its merged
    figures (first / last done across hosts) and one row per host, in the order they ran."""
    hosts = host_rows(results)
    if hosts.empty:
        return []
    steps = step_rows(results)
    out = []
    for _, step in steps[steps["step"].isin(set(hosts["step"]))].iterrows():
        mine = hosts[
            (hosts["step"] == step["step"])
            & (hosts["target"] == step["target"])
            & (hosts["repeat"] == step["repeat"])
            & (hosts["warmup"] == step["warmup"])
        ]
        extra = step["extra"] if isinstance(step["extra"], dict) else {}
        payload = moves_payload(str(step["operation"]))
        rows = []
        for _, r in mine.iterrows():
            done = (r["extra"] or {}).get("done_s") if isinstance(r["extra"], dict) else None
            rows.append(
                {
                    "host": r["host"],
                    "ok": bool(r["ok"]),
                    "objects": int(r["objects"]),
                    "verified_objects": int(r["verified_objects"]),
                    "mib": r["bytes"] / 2**20 if payload else float("nan"),
                    "duration_s": float(r["duration_s"]),
                    "done_s": done,
                    "throughput_mib_s": float(r["throughput_mib_s"]) if payload else float("nan"),
                    "ops_s": float(r["ops_s"]),
                    "p50_ms": r["p50_ms"],
                    "p99_ms": r["p99_ms"],
                    "max_ms": r["max_ms"],
                    "cpu": r["client_cpu_pct_max"],
                    "error": r["error"] if isinstance(r["error"], str) else "",
                }
            )
        out.append(
            {
                "step": step["step"],
                "driver": step["driver"],
                "target": step["target"],
                "repeat": int(step["repeat"]) + 1,
                "warmup": bool(step["warmup"]),
                "ok": bool(step["ok"]),
                "share": str((step["extra"] or {}).get("share") or ""),
                "first_done_s": extra.get("first_done_s"),
                "last_done_s": extra.get("last_done_s"),
                "hosts": rows,
            }
        )
    return out


def sweep(results: pd.DataFrame) -> pd.DataFrame:
    """The sweep table: one row per (step, driver, target, operation, level) of load steps,
    medians over measured repeats (percentiles of each repeat come from merged histograms)."""
    rows = level_rows(results)
    if rows.empty:
        return pd.DataFrame(columns=SWEEP_COLUMNS)
    rows = rows[~rows["warmup"].astype(bool)]
    out = []
    for key, g in rows.groupby(SWEEP_GROUP, sort=False):
        extras = [e if isinstance(e, dict) else {} for e in g["extra"]]
        errors: dict[str, int] = {}
        for by_status in g["errors_by_status"]:
            for status, n in (by_status or {}).items():
                errors[status] = errors.get(status, 0) + int(n)
        cpu = [e.get("generator_cpu_pct") for e in extras if e.get("generator_cpu_pct") is not None]
        failed = [e for e in g["error"] if isinstance(e, str) and e]
        out.append(
            {
                **dict(zip(SWEEP_GROUP, key, strict=True)),
                "users": int(g["concurrency"].max()),
                "repeats": len(g),
                "ok": bool(g["ok"].all()),
                "ops_s": float(g["ops_s"].median()),
                "throughput_mib_s": float(g["throughput_mib_s"].median())
                if moves_payload(str(key[SWEEP_GROUP.index("operation")]))
                else float("nan"),
                **{c: _median_or_none(g[c]) for c in ("p50_ms", "p90_ms", "p99_ms")},
                "p999_ms": _median_or_none(g["p999_ms"]),
                "max_ms": _median_or_none(g["max_ms"], agg="max"),
                "objects": int(g["objects"].sum()),
                "failed": int(g["failed"].sum()),
                "errors": errors,
                "server_busy_share": float(g["server_busy_share"].median()),
                "generator_cpu_pct": max(cpu) if cpu else None,
                "client_bound": any(bool(e.get("client_bound")) for e in extras),
                "steady_s": float(g["duration_s"].median()),
                "mode": str(extras[0].get("mode", "")),
                "error": failed[0] if failed else "",
                "clock": str(g["clock"].iloc[0]),
                **level_point(extras[0], int(g["concurrency"].max())),
            }
        )
    table = pd.DataFrame(out, columns=SWEEP_COLUMNS)
    # Grouped for reading: target by target, operation by operation (in order of appearance).
    order = {c: {v: i for i, v in enumerate(dict.fromkeys(table[c]))} for c in ("step", "target")}
    ops = {v: i for i, v in enumerate(dict.fromkeys(table["operation"]))}
    keys = [
        (order["step"][r.step], order["target"][r.target], ops[r.operation], int(r.level))
        for r in table.itertuples()
    ]
    return table.iloc[sorted(range(len(table)), key=keys.__getitem__)].reset_index(drop=True)


def level_point(extra: dict[str, Any], users: int) -> dict[str, Any]:
    """Where a level sits on its curve: ``x`` and its axis name, the ``series`` it belongs to
    within its target (a listing layout) and, for scale points, a ``point`` to print."""
    if extra.get("blobs") is not None:
        layout = str(extra.get("layout") or "")
        x, name, noun = float(extra["blobs"]), "blobs in the container", "blobs"
    elif extra.get("connections") is not None:
        layout, x, name = "", float(extra["connections"]), "connections opened at once"
        noun = "connections"
    else:
        return {"x": float(users), "x_label": "concurrent users", "series": "", "point": ""}
    point = " ".join(p for p in (layout, f"{x:,.0f}", noun) if p)
    return {"x": x, "x_label": name, "series": layout, "point": point}


def steady_state_notes(results: pd.DataFrame) -> list[str]:
    """How each load step's KPIs were windowed, in words (one line per step and target)."""
    notes = []
    steps = step_rows(results)
    levels = level_rows(results)
    for (step, target), g in levels.groupby(["step", "target"], sort=False):
        extra = next((e for e in g["extra"] if isinstance(e, dict)), {})
        seconds = pd.to_numeric(g["duration_s"]).median()
        mine = steps[(steps["step"] == step) & (steps["target"] == target)]
        workers = next(
            (e.get("workers") for e in mine["extra"] if isinstance(e, dict) and e.get("workers")),
            None,
        )
        clock = str(g["clock"].iloc[0]) if "clock" in g else STEADY_CLOCK
        if clock != STEADY_CLOCK:  # scale points (listing, connections): no window to speak of
            points = [level_point(e if isinstance(e, dict) else {}, 1)["point"] for e in g["extra"]]
            notes.append(
                f"{step} @{target}: each point timed once, {clock} clock (no warm-up, no steady "
                f"window): {', '.join(dict.fromkeys(p for p in points if p))}; "
                f"median {seconds:.3g} s per point."
            )
            continue
        text = f"{step} @{target}: {extra.get('steady_state') or 'steady window'}"
        text += f"; {seconds:g} s measured per level; {extra.get('mode', 'closed-loop')}"
        if extra.get("arrival_rate"):
            text += f" at {extra['arrival_rate']:g} requests/s (latency from scheduled start)"
        if workers:
            text += f"; {workers} Locust worker(s)"
        notes.append(text + ".")
    return notes


def sweep_side_by_side(sweeps: dict[str, pd.DataFrame]) -> tuple[list[str], list[dict[str, Any]]]:
    """Sweep rows keyed by (step, operation, users) with each label's ops/s, p99 and
    client-bound mark, and the ops/s ratio to the first label's."""
    labels = list(sweeps)
    keys: list[tuple[str, str, int]] = []
    index: dict[str, dict[tuple[str, str, int], dict[str, Any]]] = {}
    for label, table in sweeps.items():
        index[label] = {}
        for row in table.to_dict("records"):
            key = (row["step"], row["operation"], int(row["users"]))
            index[label][key] = row
            if key not in keys:
                keys.append(key)
    rows = []
    for key in keys:
        row: dict[str, Any] = {"step": key[0], "operation": key[1], "users": key[2]}
        base = index[labels[0]].get(key, {}).get("ops_s")
        for label in labels:
            mine = index[label].get(key, {})
            for metric in ("ops_s", "throughput_mib_s", "p99_ms", "client_bound"):
                row[f"{label}:{metric}"] = mine.get(metric)
            value = mine.get("ops_s")
            row[f"{label}:ops_s:ratio"] = value / base if value is not None and base else None
        rows.append(row)
    return labels, rows


def run_labels(runs: list[RunData], labels: list[str] | None = None) -> list[str]:
    """One column label per run: the given ``--label``, else the run's target(s); a label two
    runs share gets the run's position (``reference #2``), so no run is merged into another."""
    given = list(labels or [])
    base = [
        given[i] if i < len(given) else "+".join(run.info.get("targets") or []) or run.scenario
        for i, run in enumerate(runs)
    ]
    return [f"{label} #{i + 1}" if base.count(label) > 1 else label for i, label in enumerate(base)]


def per_target_labels(
    run_label: str, targets: list[str], several_runs: bool, labelled: bool
) -> dict[str, str]:
    """Target -> column label inside one run: the run's label when it has one target, else the
    target (prefixed by the run's label when runs are compared under given labels)."""
    if len(targets) == 1 and several_runs:
        return {targets[0]: run_label}
    return {t: f"{run_label}/{t}" if labelled else str(t) for t in targets}


def sweeps_by_label(
    runs: list[RunData], labels: list[str] | None = None
) -> dict[str, pd.DataFrame]:
    """Label -> sweep: one per run, or one per target of a multi-target run."""
    out: dict[str, pd.DataFrame] = {}
    for i, (run, run_label) in enumerate(zip(runs, run_labels(runs, labels), strict=True)):
        table = sweep(run.results)
        targets = [str(t) for t in dict.fromkeys(table["target"])]
        names = per_target_labels(run_label, targets, len(runs) > 1, bool(labels))
        for target, label in names.items():
            key = label if label not in out else f"{label} #{i + 1}"
            out[key] = table[table["target"] == target]
    return out


def comparison_warnings(labels: list[str], summaries: dict[str, pd.DataFrame]) -> list[str]:
    """Why a column of a comparison is blank: a run with no step results, or one that shares
    no (step, driver, operation) with the first, so nothing of it can be compared."""

    def keys(table: pd.DataFrame) -> set[tuple[str, str, str]]:
        return {(r["step"], r["driver"], r["operation"]) for r in table.to_dict("records")}

    if not labels:
        return []
    first = keys(summaries[labels[0]])
    warnings = []
    for label in labels:
        mine = keys(summaries[label])
        if not mine:
            warnings.append(f"{label}: no step results (the run failed before any step ran?)")
        elif label != labels[0] and first and not mine & first:
            warnings.append(
                f"{label} shares no steps with {labels[0]}: its rows stand alone, with no ratios"
            )
    return warnings


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
        base_row = index[labels[0]].get(key, {})
        for label in labels:
            row[f"{label}:unstable"] = bool(index[label].get(key, {}).get("unstable"))
        for metric in metrics:
            base = base_row.get(metric)
            for label in labels:
                value = index[label].get(key, {}).get(metric)
                row[f"{label}:{metric}"] = value
                # no ratio from unstable repeats: a median of bimodal timings compares nothing
                unstable = row[f"{label}:unstable"] or row[f"{labels[0]}:unstable"]
                ratio = value / base if value is not None and base and not unstable else None
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
