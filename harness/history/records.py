"""A run directory -> long KPI rows: one row per scenario × step × target × operation × level × KPI.

The value is the median of the measured repeats (warm-ups and failed executions excluded); the
repeats themselves are kept in ``raw_values`` (a JSON list) for the rank test. Every row carries
the dimensions that make two rows comparable (``tool_versions``, ``hardware``) and the ones whose
change a regression is pinned on (``facade_build``, ``harness_revision``).
"""

from __future__ import annotations

import json
import math
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd

from harness.results import moves_payload
from harness.runner import HOST_ROW, LEVEL_ROW, read_results

# KPI -> +1 when up is better (throughput), -1 when up is worse (latency, errors, cost).
KPI_SENSE: dict[str, int] = {
    "throughput_mib_s": 1,
    "throughput_gbit_s": 1,
    "ops_s": 1,
    "duration_s": -1,
    "p50_ms": -1,
    "p90_ms": -1,
    "p99_ms": -1,
    "p999_ms": -1,
    "max_ms": -1,
    "failed": -1,
    "retries": -1,
    "server_busy_share": -1,
    "client_cpu_pct_max": -1,
    "client_rss_mib_max": -1,
    "extra.first_object_s": -1,
    "extra.slowest_writer_s": -1,
    "extra.min_writer_mib_s": 1,
}
# KPIs that mean nothing for an operation that moves no object bodies.
PAYLOAD_KPIS = frozenset({"throughput_mib_s", "throughput_gbit_s"})

# The long format of the history table, in column order (also the CSV of import / export).
COLUMNS: tuple[str, ...] = (
    "run_id",
    "night",
    "scenario",
    "step",
    "target",
    "driver",
    "operation",
    "level",
    "kpi",
    "value",
    "repeats",
    "raw_values",
    "facade_build",
    "tool_versions",
    "hardware",
    "harness_revision",
)
# Level of a step's own row (a load sweep's levels are 0, 1, ...): a key column is never NULL.
STEP_LEVEL = -1


def kpi_sense(kpi: str) -> int:
    """+1 when a rise of ``kpi`` is an improvement, -1 when it is a regression."""
    return KPI_SENSE.get(kpi, 1)


def night_of(iso: str) -> str:
    """An ISO time as the history's sortable UTC text, e.g. ``2026-11-20T01:00:00Z``."""
    stamp = datetime.fromisoformat(iso.replace("Z", "+00:00"))
    if stamp.tzinfo is None:
        stamp = stamp.replace(tzinfo=UTC)
    return stamp.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def hardware_of(host: dict[str, Any]) -> str:
    """What the numbers ran on, without what changes between identical machines (host name,
    free disk): the VM size when the inventory knows it, else CPU model, cores and memory."""
    parts = [
        str(host.get("vm_size") or ""),
        str(host.get("cpu_model") or host.get("machine") or "unknown cpu"),
        f"{host.get('cpus_logical', '?')} cpus",
        f"{round(float(host.get('memory_gib') or 0))} GiB",
    ]
    return ", ".join(p for p in parts if p)


def hardware_of_hosts(hosts: list[dict[str, Any]]) -> str | None:
    """The cluster as the history keys it when its hosts name their VM size (an inventory's
    ``facts`` or a provisioned spec): the sizes and the host count, e.g.
    ``1× Standard_D32as_v5, 2× Standard_L16as_v5 (3 hosts)``; None when no host names one."""
    # measured facts carry it at the top, an inventory's hosts under ``facts``
    named = [h.get("vm_size") or (h.get("facts") or {}).get("vm_size") for h in hosts]
    sizes = Counter(str(size) for size in named if size)
    if not sizes:
        return None
    listed = ", ".join(f"{n}× {size}" for size, n in sorted(sizes.items()))
    return f"{listed} ({len(hosts)} host{'s' if len(hosts) != 1 else ''})"


def facade_build_of(target_facts: dict[str, Any]) -> str:
    """The build under test, as precise as the target reports it (image, revision, version)."""
    for key in ("build", "image", "revision", "version"):
        if target_facts.get(key):
            return str(target_facts[key])
    return "unknown"


def _kpi_value(row: pd.Series, kpi: str) -> float | None:
    if kpi.startswith("extra."):
        value = (row.get("extra") or {}).get(kpi.removeprefix("extra."))
    else:
        value = row.get(kpi)
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return None if math.isnan(number) else number


def run_rows(run_dir: Path) -> pd.DataFrame:
    """The history rows of one run directory (results.parquet + run.json)."""
    info = json.loads((run_dir / "run.json").read_text())
    results = read_results(run_dir)
    measured = results[(~results["warmup"].astype(bool)) & results["ok"].astype(bool)]
    measured = measured[measured["row_kind"] != HOST_ROW]  # a `hosts:` step's KPIs are its merge
    host = info.get("host") or {}
    versions = info.get("tool_versions") or {}
    targets = info.get("targets") or {}
    common = {
        "run_id": run_dir.name,
        "night": night_of(info["started_at"]),
        "harness_revision": str((info.get("git") or {}).get("revision") or "unknown"),
    }
    # The hardware: the target's own hosts (an inventory target measures them), else the
    # night's hosts (a provisioned inventory), when they name a VM size; else this machine.
    fallback = hardware_of_hosts(list((info.get("night") or {}).get("hosts") or []))
    fallback = fallback or hardware_of(host)
    hardware = {
        name: hardware_of_hosts(list((facts or {}).get("hosts") or [])) or fallback
        for name, facts in targets.items()
    }
    rows: list[dict[str, Any]] = []
    keys = ["scenario", "step", "target", "driver", "operation", "level"]
    measured = measured.assign(
        level=[STEP_LEVEL if pd.isna(v) else int(v) for v in measured["level"]],
        row_kind=measured["row_kind"].fillna("step"),
    )
    # A load step's summary row is the sum of its levels: its per-level rows are the KPIs.
    swept = set(
        measured.loc[measured["row_kind"] == LEVEL_ROW, ["scenario", "step", "target"]].itertuples(
            index=False, name=None
        )
    )
    for key, group in measured.groupby(keys, sort=True, dropna=False):
        fields = dict(zip(keys, key, strict=True))
        if fields["level"] == STEP_LEVEL and key[:3] in swept:
            continue
        for kpi in KPI_SENSE:
            if kpi in PAYLOAD_KPIS and not moves_payload(fields["operation"]):
                continue
            raw = [v for v in (_kpi_value(r, kpi) for _, r in group.iterrows()) if v is not None]
            if not raw:
                continue
            rows.append(
                {
                    **common,
                    "hardware": hardware.get(fields["target"], fallback),
                    **fields,
                    "kpi": kpi,
                    "value": float(pd.Series(raw).median()),
                    "repeats": len(raw),
                    "raw_values": json.dumps(raw),
                    "facade_build": facade_build_of(targets.get(fields["target"]) or {}),
                    "tool_versions": json.dumps(
                        versions.get(fields["driver"]) or {}, sort_keys=True
                    ),
                }
            )
    return normalize(pd.DataFrame(rows, columns=list(COLUMNS)))


def normalize(frame: pd.DataFrame) -> pd.DataFrame:
    """The history's column types (what a CSV import or a database read gives back as text)."""
    frame = frame.reindex(columns=list(COLUMNS))
    text = [c for c in COLUMNS if c not in ("level", "value", "repeats")]
    for column in text:
        frame[column] = frame[column].fillna("").astype(str)
    frame["level"] = pd.to_numeric(frame["level"]).fillna(STEP_LEVEL).astype(int)
    frame["value"] = pd.to_numeric(frame["value"]).astype(float)
    frame["repeats"] = pd.to_numeric(frame["repeats"]).fillna(1).astype(int)
    frame["night"] = [night_of(n) for n in frame["night"]]
    # A row without its repeats (an older result) still has its one value.
    frame["raw_values"] = [
        r if r and r != "[]" else json.dumps([v])
        for r, v in zip(frame["raw_values"], frame["value"], strict=True)
    ]
    return frame
