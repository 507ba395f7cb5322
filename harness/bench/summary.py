"""What a bench run's results say beyond its ratio criteria, computed once from the results
table (``results.parquet`` rows, as ``harness.runner.read_results`` returns them) for the
``harness bench`` commands to print:

- ``anchor_note``: whether the anchor of a ratio was measured at its best (``extra.at_best``);
- ``server_cpu``: µs of server CPU per request per workload and target, with the server's RSS
  growth and the client-bound mark;
- ``methodology``: the lab's own overhead — the recording proxy's cost per request and per MiB
  (the same workload with and without it) and Locust's requests/s per generator core against
  the minimal aiohttp server;
- ``listing_goals`` / ``connection_levels``: the scale curves of ``harness bench listing``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import pandas as pd

from harness.criteria import Verdict, parse

LOCUST_PER_CORE_GOAL = 5000.0  # req/s per generator core; below it client-bound levels loom
FIRST_PAGE_GOAL_MS = 50.0
LIST_ALL_GOAL = 20000.0  # blobs/s
FLAT_WITHIN = 2.0  # the largest size's figure within this factor of the smallest's
RSS_GOAL_MIB = 100.0
# a negative cost: the proxied repeats ran faster than the direct ones, the host's noise won
NOISE = " — below this run's noise (more repeats, or an idle host, to price it)"


def _measured(results: pd.DataFrame, kind: str = "step") -> pd.DataFrame:
    if not len(results):
        return results
    rows = results[~results["warmup"].astype(bool)]
    return rows[rows["row_kind"] == kind] if "row_kind" in rows else rows


def _extra(row: Any, key: str) -> Any:
    extra = row["extra"] if isinstance(row["extra"], dict) else {}
    return extra.get(key)


def anchor_note(verdict: Verdict, results: pd.DataFrame) -> str:
    """ "yes: best of 4/16/32 (32)" when every repeat of the ratio's anchor (its denominator)
    was measured at several concurrencies and the best kept, "no: one level (16)" otherwise."""
    expr = parse(verdict.expression)
    rows = _measured(results)
    if not len(rows):
        return "–"
    by_step = expr.denominator in set(rows["step"])
    if by_step:
        mine = rows[rows["step"] == expr.denominator]
    else:
        mine = rows[(rows["step"] == verdict.step) & (rows["target"] == expr.denominator)]
    if not len(mine):
        return "–"
    bests = [_extra(r, "at_best") for _, r in mine.iterrows()]
    unit = "jobs" if mine.iloc[0]["operation"].startswith("disk-") else "in flight"
    if all(bests):
        tried = "/".join(bests[0]["tried"])
        chosen = ",".join(str(b["best"]) for b in bests)
        return f"yes: {chosen} of {tried} {unit}"
    levels = ",".join(str(int(c)) for c in sorted(set(mine["concurrency"])))
    return f"no: only {levels} {unit}"


@dataclass
class CpuRow:
    step: str
    target: str
    us_per_op: float | None
    server_cpu_pct: float | None
    rss_delta_mib: float | None
    client_bound: bool
    note: str = ""


def server_cpu(results: pd.DataFrame, kind: str = "step") -> list[CpuRow]:
    """Per (step, target): the medians over repeats of the server's CPU per request and CPU
    share, the largest RSS growth, client-bound when any repeat was."""
    rows = _measured(results, kind)
    out = []
    if not len(rows):
        return out
    keys = ["step", "target"] if kind == "step" else ["step", "operation", "level", "target"]
    for key, group in rows.groupby(keys, sort=False):
        us = _median([_extra(r, "server_cpu_us_per_op") for _, r in group.iterrows()])
        if us is None:
            continue  # not a request workload (fio, Locust's summary)
        out.append(
            CpuRow(
                str(key[0]) if kind == "step" else _level_label(group.iloc[0]),
                str(key[-1]),
                us,
                _median([_extra(r, "server_cpu_pct") for _, r in group.iterrows()]),
                max((_extra(r, "server_rss_delta_mib") or 0.0 for _, r in group.iterrows())),
                any(bool(_extra(r, "client_bound")) for _, r in group.iterrows()),
                # a full listing counts its blobs as operations: CPU per blob listed
                "per blob listed" if group.iloc[0]["operation"] == "list-all" else "",
            )
        )
    return out


def _level_label(row: Any) -> str:
    """A level row in words: ``listing/list-all flat 10,000`` or ``connections 1,000``."""
    at = [
        str(_extra(row, "layout") or ""),
        *(f"{_extra(row, k):,}" for k in ("blobs", "connections") if _extra(row, k)),
    ]
    name = row["step"] if row["operation"] == row["step"] else f"{row['step']}/{row['operation']}"
    return " ".join([name, *(a for a in at if a)])


def _median(values: list[Any]) -> float | None:
    nums = [float(v) for v in values if v is not None and not _nan(v)]
    return float(pd.Series(nums).median()) if nums else None


def _nan(v: Any) -> bool:
    return isinstance(v, float) and math.isnan(v)


def _per_request(rows: pd.DataFrame) -> tuple[float, float] | None:
    """(median wall s per request, median client CPU s per request) over the repeats."""
    rows = rows[rows["ok"].astype(bool) & (rows["objects"] > 0)]
    if not len(rows):
        return None
    wall = (rows["duration_s"] / rows["objects"]).median()
    cpu = (rows["client_cpu_pct_max"].astype(float) / 100 * rows["duration_s"]) / rows["objects"]
    return float(wall), float(cpu.median())


def methodology(results: pd.DataFrame) -> list[str]:
    """The lab's own overhead, in words: the proxy's cost per request and per MiB, Locust's
    requests/s per generator core (flagged below the goal)."""
    rows = _measured(results)
    lines: list[str] = []
    if not len(rows):
        return lines
    ref = rows[rows["target"] == "reference"]
    for direct, proxied in (("put-small", "put-small-proxied"),):
        a, b = _per_request(ref[ref["step"] == direct]), _per_request(ref[ref["step"] == proxied])
        if a and b:
            wall = (b[0] - a[0]) * 1e6
            lines.append(
                f"contract-recording proxy: {wall:+.0f} µs of wall time and "
                f"{(b[1] - a[1]) * 1e6:+.0f} µs of harness CPU per 1 KiB Put Blob "
                f"({proxied} vs {direct}: {1 / b[0]:,.0f} vs {1 / a[0]:,.0f} ops/s)"
                + (NOISE if wall < 0 else "")
            )
    for direct, proxied in (("put-block", "put-block-proxied"),):
        a = ref[(ref["step"] == direct) & ref["ok"].astype(bool)]["throughput_mib_s"]
        b = ref[(ref["step"] == proxied) & ref["ok"].astype(bool)]["throughput_mib_s"]
        if len(a) and len(b) and a.median() > 0 and b.median() > 0:
            cost_ms = (1 / b.median() - 1 / a.median()) * 1000
            lines.append(
                f"contract-recording proxy: {cost_ms:+.2f} ms per MiB of Put Block "
                f"({proxied} vs {direct}: {b.median():,.1f} vs {a.median():,.1f} MiB/s)"
                + (NOISE if cost_ms < 0 else "")
            )
    levels = _measured(results, "level")
    if len(levels):
        locust = levels[levels["driver"] == "locust"]
        for _, r in locust.iterrows():
            cpu = _extra(r, "generator_cpu_pct")
            if not cpu:
                continue
            per_core = r["ops_s"] / (cpu / 100)
            flag = (
                f" — below {LOCUST_PER_CORE_GOAL:,.0f}: load levels near that rate per core "
                "are client-bound"
                if per_core < LOCUST_PER_CORE_GOAL
                else f" (goal ≥ {LOCUST_PER_CORE_GOAL:,.0f}: met)"
            )
            lines.append(
                f"Locust: {per_core:,.0f} req/s per generator core against {r['target']} "
                f"({r['ops_s']:,.0f} req/s at {cpu:.0f}% CPU, {int(r['concurrency'])} users)"
                f"{flag}"
            )
    return lines


def disk_read(results: pd.DataFrame) -> str | None:
    """The cold fio read of the data root's disk, which no ratio divides by: printed as is."""
    rows = _measured(results)
    mine = rows[rows["operation"] == "disk-read"] if len(rows) else rows
    if not len(mine):
        return None
    value = float(mine["throughput_mib_s"].median())
    note = anchor_note_rows(mine)
    return f"disk read (fio, page cache dropped): {value:,.1f} MiB/s, at its best {note}"


def anchor_note_rows(rows: pd.DataFrame) -> str:
    bests = [_extra(r, "at_best") for _, r in rows.iterrows()]
    if all(bests):
        return (
            f"yes: {','.join(str(b['best']) for b in bests)} of {'/'.join(bests[0]['tried'])} jobs"
        )
    return "no: one level"


@dataclass
class ScalePoint:
    layout: str
    blobs: int
    first_page_ms: float | None
    blobs_s: float | None
    put_p50_ms: float | None
    rss_delta_mib: float
    ok: bool


def scale_points(results: pd.DataFrame) -> list[ScalePoint]:
    """One point per (layout, blob count) of the listing levels, medians over repeats."""
    levels = _measured(results, "level")
    if not len(levels):
        return []
    mine = levels[levels["operation"].isin(["list-first-page", "list-all", "put-blob-full"])]
    keys: dict[tuple[str, int], dict[str, list[Any]]] = {}
    for _, r in mine.iterrows():
        key = (str(_extra(r, "layout")), int(_extra(r, "blobs") or 0))
        slot = keys.setdefault(key, {"first": [], "all": [], "put": [], "rss": [], "ok": []})
        slot["ok"].append(bool(r["ok"]))
        slot["rss"].append(_extra(r, "server_rss_delta_mib") or 0.0)
        if r["operation"] == "list-first-page":
            slot["first"].append(r["p50_ms"])
        elif r["operation"] == "list-all":
            slot["all"].append(r["ops_s"])
        else:
            slot["put"].append(r["p50_ms"])
    return [
        ScalePoint(
            layout,
            blobs,
            _median(v["first"]),
            _median(v["all"]),
            _median(v["put"]),
            max(v["rss"], default=0.0),
            all(v["ok"]),
        )
        for (layout, blobs), v in sorted(keys.items())
    ]


def listing_goals(points: list[ScalePoint]) -> list[tuple[str, str, bool]]:
    """(goal, evidence, met) for the issue's listing goals, per layout."""
    goals: list[tuple[str, str, bool]] = []
    for layout in sorted({p.layout for p in points}):
        mine = sorted((p for p in points if p.layout == layout), key=lambda p: p.blobs)
        firsts = [p.first_page_ms for p in mine if p.first_page_ms is not None]
        rates = [p.blobs_s for p in mine if p.blobs_s is not None]
        if firsts:
            worst = max(firsts)
            goals.append(
                (
                    f"{layout}: first page < {FIRST_PAGE_GOAL_MS:g} ms",
                    f"worst {worst:.1f} ms",
                    worst < FIRST_PAGE_GOAL_MS,
                )
            )
        if rates:
            low = min(rates)
            goals.append(
                (
                    f"{layout}: full listing ≥ {LIST_ALL_GOAL:,.0f} blobs/s",
                    f"lowest {low:,.0f} blobs/s",
                    low >= LIST_ALL_GOAL,
                )
            )
        if len(mine) > 1 and firsts and rates and len(firsts) == len(rates) == len(mine):
            grow = firsts[-1] / firsts[0] if firsts[0] else math.inf
            drop = rates[0] / rates[-1] if rates[-1] else math.inf
            span = f"{mine[0].blobs:,} → {mine[-1].blobs:,} blobs"
            goals.append(
                (
                    f"{layout}: flat within {FLAT_WITHIN:g}× ({span})",
                    f"first page ×{grow:.2f}, blobs/s ÷{drop:.2f}",
                    grow <= FLAT_WITHIN and drop <= FLAT_WITHIN,
                )
            )
    return goals


def rss_goal(results: pd.DataFrame) -> tuple[str, str, bool] | None:
    """Server RSS growth through every measured phase of the run, against +100 MiB."""
    deltas = []
    for kind in ("step", "level"):
        rows = _measured(results, kind)
        for _, r in rows.iterrows():
            value = _extra(r, "server_rss_delta_mib")
            if value is not None:
                where = r["step"] if kind == "step" else _level_label(r)
                deltas.append((float(value), where))
    if not deltas:
        return None
    worst, where = max(deltas)
    return (
        f"server RSS within +{RSS_GOAL_MIB:g} MiB",
        f"max +{worst:.1f} MiB ({where})",
        worst <= RSS_GOAL_MIB,
    )
