"""Exit criteria: `KPI OP NUMBER` thresholds evaluated on the repeats of a step.

An expression is parsed by a small grammar, never ``eval``::

    failed == 0
    throughput_mib_s >= 400
    p99_ms < 50
    max(failed) == 0            # aggregate over repeats: median (default), min, max, mean, sum
    extra.ServerBusyPercentage <= 1
    ratio(throughput_mib_s, reference/azurite) >= 3   # one target's aggregate over another's
    ratio(max(ops_s), reference/nginx) >= 0.7
    ratio(duration_s, relay-down+relay-up/s2s) >= 1   # steps: their aggregates add up

Each criterion is scoped to a step (and optionally a driver and a target); without a step it
applies to every step. One verdict is produced per (step, driver, target) group it matches.
A ratio names its two sides itself: two targets (one verdict per (step, driver) that ran on
both, observed = the numerator target's aggregate over the denominator's: a benchmark's goal
against an anchor target), or two sets of steps joined by ``+`` (one verdict; the aggregates
of a side's steps add up, e.g. the durations of a download and then an upload).

Load steps (steps with per-level rows, ``row_kind == "level"``) are judged per operation over
their levels: every level must hold, the verdict shows the worst one. Levels where the load
generator was the bottleneck (``extra.client_bound``) say nothing about the server's pace, so
criteria on rates and latencies skip them (the evidence names them); error counts still include
them, since an error the server returned is the server's whatever the generator's load.

A KPI of an execution that failed (``ok`` false) says nothing: a step that failed before it
transferred anything still shows ``failed == 0``. So a criterion covering a failed execution is
an ERROR (``errored``), never a PASS, with the step's error as its evidence; a criterion whose
steps never ran (the run stopped before them) is an ERROR too.
"""

from __future__ import annotations

import dataclasses
import math
import operator
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, Protocol

import pandas as pd

from harness.results import StepResult

AGGREGATES: dict[str, Callable[[pd.Series], float]] = {
    "median": lambda s: float(s.median()),
    "min": lambda s: float(s.min()),
    "max": lambda s: float(s.max()),
    "mean": lambda s: float(s.mean()),
    "sum": lambda s: float(s.sum()),
}
OPERATORS: dict[str, Callable[[float, float], bool]] = {
    "==": operator.eq,
    "!=": operator.ne,
    "<=": operator.le,
    ">=": operator.ge,
    "<": operator.lt,
    ">": operator.gt,
}
# Numeric KPIs a criterion may name: StepResult fields plus the derived ones of to_row().
_DERIVED = ("throughput_mib_s", "throughput_gbit_s", "ops_s", "server_busy_share")
_NON_KPI = {"scenario", "step", "driver", "operation", "target", "error", "extra"}
_NON_KPI |= {"errors_by_status", "errors_by_code", "started_at", "warmup", "row_kind", "level"}
_NON_KPI |= {"host"}  # which client host a row is of: a label, not a figure
KPIS: tuple[str, ...] = (
    tuple(f.name for f in dataclasses.fields(StepResult) if f.name not in _NON_KPI) + _DERIVED
)

_NUMBER = r"-?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][-+]?\d+)?"
_NAME = r"[A-Za-z_][A-Za-z0-9_.]*"
_TARGET = r"[A-Za-z0-9][A-Za-z0-9_-]*"
_AGG_KPI = rf"(?:(?P<agg>[a-z]+)\(\s*(?P<akpi>{_NAME})\s*\)|(?P<kpi>{_NAME}))"
_SIDE = rf"{_TARGET}(?:\s*\+\s*{_TARGET})*"  # one target or step, or steps joined by +
_RATIO = rf"ratio\(\s*{_AGG_KPI}\s*,\s*(?P<num>{_SIDE})\s*/\s*(?P<den>{_SIDE})\s*\)"
_EXPR = re.compile(
    rf"^\s*(?:{_RATIO}|{_AGG_KPI.replace('?P<', '?P<r')})"
    rf"\s*(?P<op>==|!=|<=|>=|<|>)\s*(?P<value>{_NUMBER}|true|false)\s*$"
)


# KPIs set by the pace of the load: a client-bound level measured the generator, not the server.
PACE_KPIS = {
    "duration_s", "throughput_mib_s", "throughput_gbit_s", "ops_s",
    "p50_ms", "p90_ms", "p99_ms", "p999_ms", "max_ms",
}  # fmt: skip


@dataclass(frozen=True)
class Expression:
    text: str
    aggregate: str
    kpi: str
    op: str
    value: float
    numerator: str = ""  # for ratio(KPI, NUMERATOR/DENOMINATOR): the two targets
    denominator: str = ""

    @property
    def is_ratio(self) -> bool:
        return bool(self.numerator)

    def holds(self, observed: float) -> bool:
        return OPERATORS[self.op](observed, self.value)


def parse(text: str) -> Expression:
    """Parse one expression; ValueError with the reason when it is not valid."""
    match = _EXPR.match(text)
    if not match:
        raise ValueError(
            f"cannot parse {text!r}: expected `KPI OP NUMBER`, `AGG(KPI) OP NUMBER` or "
            f"`ratio(KPI, TARGET/TARGET) OP NUMBER` with OP one of {' '.join(OPERATORS)}"
        )
    ratio = match["num"] is not None
    prefix = "" if ratio else "r"
    aggregate = match[f"{prefix}agg"] or "median"
    kpi = match[f"{prefix}akpi"] or match[f"{prefix}kpi"]
    if aggregate not in AGGREGATES:
        raise ValueError(f"unknown aggregate {aggregate!r}; valid: {', '.join(AGGREGATES)}")
    if kpi not in KPIS and not (kpi.startswith("extra.") and len(kpi) > 6):
        raise ValueError(f"unknown KPI {kpi!r}; valid: {', '.join(KPIS)}, extra.<counter>")
    raw = match["value"]
    value = {"true": 1.0, "false": 0.0}.get(raw)
    num, den = (re.sub(r"\s+", "", match[g] or "") for g in ("num", "den"))
    if ratio and num == den:
        raise ValueError(f"cannot parse {text!r}: a ratio needs two different sides")
    return Expression(
        text.strip(),
        aggregate,
        kpi,
        match["op"],
        float(raw) if value is None else value,
        num,
        den,
    )


class CriterionLike(Protocol):
    expect: str
    step: str | None
    driver: str | None
    target: str | None

    @property
    def label(self) -> str: ...


@dataclass
class Verdict:
    criterion: str  # the criterion's label
    expression: str
    step: str
    driver: str
    target: str
    observed: float | None
    passed: bool
    evidence: str  # what the verdict was computed from, in words
    operation: str = ""  # the Blob operation of a load step's verdict ("" for a whole step)
    # Not judged: a covered execution failed, or nothing ran (``passed`` is then False).
    errored: bool = False
    # A judged row had its client above 90% CPU (``extra.client_bound``): the number measured
    # the client as much as the server.
    client_bound: bool = False
    # A ratio's two targets and their aggregates (None where not measured): what was divided.
    sides: dict[str, float | None] = field(default_factory=dict)

    @property
    def status(self) -> str:
        return "PASS" if self.passed else "ERROR" if self.errored else "FAIL"

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def _kpi_values(rows: pd.DataFrame, kpi: str) -> pd.Series:
    if kpi.startswith("extra."):
        key = kpi[6:]
        values = [e.get(key) if isinstance(e, dict) else None for e in rows.get("extra", [])]
        return pd.to_numeric(pd.Series(values, dtype=object), errors="coerce")
    return pd.to_numeric(rows[kpi], errors="coerce")


def evaluate(
    criteria: Iterable[CriterionLike], results: pd.DataFrame, not_run: str = ""
) -> list[Verdict]:
    """Verdicts for every criterion over the measured (non-warm-up) rows of ``results``.

    ``not_run`` says why a criterion may match no rows (e.g. the preflight error of a run that
    stopped before its first step): such a criterion is an ERROR with that reason."""
    measured = results[~results["warmup"].astype(bool)] if len(results) else results
    if "row_kind" in measured:
        steps = measured[measured["row_kind"] == "step"]
        levels = measured[measured["row_kind"] == "level"]
    else:
        steps, levels = measured, measured.iloc[0:0]
    verdicts: list[Verdict] = []
    for crit in criteria:
        expr = parse(crit.expect)
        if expr.is_ratio:
            verdicts += _judge_ratio(crit, expr, steps, not_run)
            continue
        rows, level_rows = steps, levels
        for column in ("step", "driver", "target"):
            wanted = getattr(crit, column)
            if wanted is not None and len(rows):
                rows = rows[rows[column] == wanted]
            if wanted is not None and len(level_rows):
                level_rows = level_rows[level_rows[column] == wanted]
        if not len(rows):
            verdicts.append(
                Verdict(
                    crit.label,
                    expr.text,
                    crit.step or "*",
                    crit.driver or "*",
                    crit.target or "*",
                    None,
                    False,
                    f"not run: {not_run}" if not_run else "no measured results matched",
                    errored=bool(not_run),
                )
            )
            continue
        for (step, driver, target), group in rows.groupby(["step", "driver", "target"], sort=False):
            failed = _failed_executions(crit.label, expr, group)
            if failed is not None:
                verdicts.append(failed)
                continue
            mine = level_rows[
                (level_rows["step"] == step)
                & (level_rows["driver"] == driver)
                & (level_rows["target"] == target)
            ]
            if len(mine) and _kpi_values(mine, expr.kpi).notna().any():
                verdicts += _judge_levels(crit.label, expr, mine)
                continue
            verdicts.append(_judge_repeats(crit.label, expr, group))
    return verdicts


def _failed_executions(label: str, expr: Expression, group: pd.DataFrame) -> Verdict | None:
    """An ERROR verdict when an execution of this (step, driver, target) failed, else None."""
    if "ok" not in group:  # a table without outcomes (hand-made): nothing to say
        return None
    ok = group["ok"].astype(bool)
    if ok.all():
        return None
    bad = group[~ok]
    first = bad.iloc[0]
    error = str(first.get("error") or "") or "no error recorded"
    repeats = ", ".join(str(int(r) + 1) for r in bad.get("repeat", range(len(bad))))
    return Verdict(
        label,
        expr.text,
        str(first["step"]),
        str(first["driver"]),
        str(first["target"]),
        None,
        False,
        f"not judged: {len(bad)} of {len(group)} execution(s) failed (repeat {repeats}): {error}",
        errored=True,
    )


def _judge_repeats(label: str, expr: Expression, group: pd.DataFrame) -> Verdict:
    """One (step, driver, target): the aggregate of its repeats against the threshold."""
    step, driver, target = (str(group.iloc[0][c]) for c in ("step", "driver", "target"))
    values = _kpi_values(group, expr.kpi).dropna()
    if values.empty:
        return Verdict(
            label,
            expr.text,
            step,
            driver,
            target,
            None,
            False,
            f"{expr.kpi} was not measured by {driver}",
        )
    observed = AGGREGATES[expr.aggregate](values)
    shown = ", ".join(f"{v:.4g}" for v in values)
    return Verdict(
        label,
        expr.text,
        step,
        driver,
        target,
        observed,
        not math.isnan(observed) and expr.holds(observed),
        f"{expr.aggregate}({expr.kpi}) = {observed:.4g} over {len(values)} repeat(s) [{shown}]",
    )


def _judge_ratio(
    crit: CriterionLike, expr: Expression, steps: pd.DataFrame, not_run: str
) -> list[Verdict]:
    """A ratio of two targets: one verdict per (step, driver) that ran on them. A ratio of
    steps (each side one step or several joined by ``+``, whose aggregates add up, e.g. the
    durations of a download and an upload): one verdict."""
    sides = (expr.numerator.split("+"), expr.denominator.split("+"))
    names = [*sides[0], *sides[1]]
    by_step = bool(len(steps)) and set(names) <= set(steps["step"])
    side_column = "step" if by_step else "target"
    rows = steps
    for column in ("step", "driver", "target"):
        wanted = getattr(crit, column)
        if column != side_column and wanted is not None and len(rows):
            rows = rows[rows[column] == wanted]
    if len(rows):
        rows = rows[rows[side_column].isin(names)]
    pair = f"{expr.numerator}/{expr.denominator}"
    if not len(rows):
        why = f"not run: {not_run}" if not_run else f"no measured results of {' or '.join(names)}"
        scope = (pair, crit.driver or "*", crit.target or "*") if by_step else None
        step, driver, target = scope or (crit.step or "*", crit.driver or "*", pair)
        return [
            Verdict(
                crit.label, expr.text, step, driver, target, None, False, why,
                errored=bool(not_run),
            )
        ]  # fmt: skip
    if not by_step and crit.step is None:
        # Unscoped, a ratio of targets judges the steps that ran on both of them.
        both = rows.groupby("step")["target"].transform("nunique") == 2
        rows = rows[both] if both.any() else rows
    verdicts = []
    # steps: one verdict over their rows (they may run on different targets, a download from
    # the lake and an upload to the edge; a criterion's ``target`` narrows them)
    groups = [(("", ""), rows)] if by_step else rows.groupby(["step", "driver"], sort=False)
    for key, group in groups:
        if by_step:
            step = pair
            driver, target = (
                "/".join(dict.fromkeys(map(str, group[c]))) for c in ("driver", "target")
            )
        else:
            (step, driver), target = (str(k) for k in key), pair
        failed = _failed_executions(crit.label, expr, group)
        if failed is not None:
            verdicts.append(dataclasses.replace(failed, step=step, driver=driver, target=target))
            continue
        values: dict[str, float | None] = {}
        shown: list[str] = []
        for side in sides:
            total: float | None = 0.0
            parts = []
            for name in side:
                series = _kpi_values(group[group[side_column] == name], expr.kpi).dropna()
                if series.empty:
                    total = None
                    parts.append(f"{name}: {expr.kpi} not measured")
                    continue
                agg = AGGREGATES[expr.aggregate](series)
                total = None if total is None else total + agg
                listed = ", ".join(f"{v:.4g}" for v in series)
                parts.append(f"{name} {agg:.4g} over {len(series)} [{listed}]")
            values["+".join(side)] = total
            shown.append(" + ".join(parts))
        num, den = values.values()
        observed = num / den if num is not None and den else None
        evidence = f"{expr.aggregate}({expr.kpi}): {shown[0]} / {shown[1]}"
        evidence += f" = {observed:.3g}" if observed is not None else ": no ratio"
        bound = sorted(set(group[_client_bound(group)][side_column]))
        if bound:
            evidence += f"; client-bound: {', '.join(bound)}"
        verdicts.append(
            Verdict(
                crit.label,
                expr.text,
                step,
                driver,
                target,
                observed,
                observed is not None and expr.holds(observed),
                evidence,
                client_bound=bool(bound),
                sides=values,
            )
        )
    return verdicts


def _client_bound(rows: pd.DataFrame) -> pd.Series:
    return pd.Series(
        [bool(e.get("client_bound")) if isinstance(e, dict) else False for e in rows["extra"]],
        index=rows.index,
        dtype=bool,
    )


def _judge_levels(label: str, expr: Expression, rows: pd.DataFrame) -> list[Verdict]:
    """A load step: one verdict per operation; every judged level must hold, the worst shows."""
    verdicts = []
    first = rows.iloc[0]
    step, driver, target = str(first["step"]), str(first["driver"]), str(first["target"])
    skip_bound = expr.kpi in PACE_KPIS
    for op, part in rows.groupby("operation", sort=False):
        judged: list[tuple[int, float, int]] = []  # (users, aggregate over repeats, repeats)
        skipped: list[str] = []
        bound = _client_bound(part)
        for _, level in part.groupby("level", sort=True):
            users = int(level["concurrency"].max())
            if skip_bound and bound[level.index].any():
                cpu = [e.get("generator_cpu_pct") for e in level["extra"]]
                shown = max((c for c in cpu if c is not None), default=None)
                skipped.append(f"{users} users" + (f" (generator CPU {shown:g}%)" if shown else ""))
                continue
            values = _kpi_values(level, expr.kpi).dropna()
            if not values.empty:
                judged.append((users, AGGREGATES[expr.aggregate](values), len(values)))
        note = f"; skipped client-bound level(s): {', '.join(skipped)}" if skipped else ""
        if not judged:
            reason = (
                "every level was client-bound: no measurement of the server to judge"
                if skipped
                else f"{expr.kpi} was not measured at any level"
            )
            verdicts.append(
                Verdict(label, expr.text, step, driver, target, None, False, reason + note, op)
            )
            continue
        failing = [j for j in judged if math.isnan(j[1]) or not expr.holds(j[1])]
        worst = failing[0] if failing else _worst(expr, judged)
        per_level = ", ".join(f"{u}: {v:.4g}" for u, v, _ in judged)
        evidence = (
            f"{'failing' if failing else 'worst'} level {worst[0]} users: "
            f"{expr.aggregate}({expr.kpi}) = {worst[1]:.4g} over {worst[2]} repeat(s); "
            f"per level (users: value) {per_level}{note}"
        )
        verdicts.append(
            Verdict(label, expr.text, step, driver, target, worst[1], not failing, evidence, op)
        )
    return verdicts


def _worst(expr: Expression, judged: list[tuple[int, float, int]]) -> tuple[int, float, int]:
    """The level closest to breaking the threshold: the highest value under an upper bound,
    the lowest under a lower bound."""
    if expr.op in ("<", "<="):
        return max(judged, key=lambda j: j[1])
    if expr.op in (">", ">="):
        return min(judged, key=lambda j: j[1])
    return max(judged, key=lambda j: abs(j[1] - expr.value))
