"""Exit criteria: `KPI OP NUMBER` thresholds evaluated on the repeats of a step.

An expression is parsed by a small grammar, never ``eval``::

    failed == 0
    throughput_mib_s >= 400
    p99_ms < 50
    max(failed) == 0            # aggregate over repeats: median (default), min, max, mean, sum
    extra.ServerBusyPercentage <= 1

Each criterion is scoped to a step (and optionally a driver and a target); without a step it
applies to every step. One verdict is produced per (step, driver, target) group it matches.
"""

from __future__ import annotations

import dataclasses
import math
import operator
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
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
_NON_KPI |= {"errors_by_status", "errors_by_code", "started_at", "warmup"}
KPIS: tuple[str, ...] = (
    tuple(f.name for f in dataclasses.fields(StepResult) if f.name not in _NON_KPI) + _DERIVED
)

_NUMBER = r"-?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][-+]?\d+)?"
_NAME = r"[A-Za-z_][A-Za-z0-9_.]*"
_EXPR = re.compile(
    rf"^\s*(?:(?P<agg>[a-z]+)\(\s*(?P<akpi>{_NAME})\s*\)|(?P<kpi>{_NAME}))"
    rf"\s*(?P<op>==|!=|<=|>=|<|>)\s*(?P<value>{_NUMBER}|true|false)\s*$"
)


@dataclass(frozen=True)
class Expression:
    text: str
    aggregate: str
    kpi: str
    op: str
    value: float

    def holds(self, observed: float) -> bool:
        return OPERATORS[self.op](observed, self.value)


def parse(text: str) -> Expression:
    """Parse one expression; ValueError with the reason when it is not valid."""
    match = _EXPR.match(text)
    if not match:
        raise ValueError(
            f"cannot parse {text!r}: expected `KPI OP NUMBER` or `AGG(KPI) OP NUMBER` "
            f"with OP one of {' '.join(OPERATORS)}"
        )
    aggregate = match["agg"] or "median"
    kpi = match["akpi"] or match["kpi"]
    if aggregate not in AGGREGATES:
        raise ValueError(f"unknown aggregate {aggregate!r}; valid: {', '.join(AGGREGATES)}")
    if kpi not in KPIS and not (kpi.startswith("extra.") and len(kpi) > 6):
        raise ValueError(f"unknown KPI {kpi!r}; valid: {', '.join(KPIS)}, extra.<counter>")
    raw = match["value"]
    value = {"true": 1.0, "false": 0.0}.get(raw)
    return Expression(
        text.strip(), aggregate, kpi, match["op"], float(raw) if value is None else value
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

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def _kpi_values(rows: pd.DataFrame, kpi: str) -> pd.Series:
    if kpi.startswith("extra."):
        key = kpi[6:]
        values = [e.get(key) if isinstance(e, dict) else None for e in rows.get("extra", [])]
        return pd.to_numeric(pd.Series(values, dtype=object), errors="coerce")
    return pd.to_numeric(rows[kpi], errors="coerce")


def evaluate(criteria: Iterable[CriterionLike], results: pd.DataFrame) -> list[Verdict]:
    """Verdicts for every criterion over the measured (non-warm-up) rows of ``results``."""
    measured = results[~results["warmup"].astype(bool)] if len(results) else results
    verdicts: list[Verdict] = []
    for crit in criteria:
        expr = parse(crit.expect)
        rows = measured
        for column in ("step", "driver", "target"):
            wanted = getattr(crit, column)
            if wanted is not None and len(rows):
                rows = rows[rows[column] == wanted]
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
                    "no measured results matched",
                )
            )
            continue
        for (step, driver, target), group in rows.groupby(["step", "driver", "target"], sort=False):
            values = _kpi_values(group, expr.kpi).dropna()
            if values.empty:
                verdicts.append(
                    Verdict(
                        crit.label,
                        expr.text,
                        str(step),
                        str(driver),
                        str(target),
                        None,
                        False,
                        f"{expr.kpi} was not measured by {driver}",
                    )
                )
                continue
            observed = AGGREGATES[expr.aggregate](values)
            shown = ", ".join(f"{v:.4g}" for v in values)
            verdicts.append(
                Verdict(
                    crit.label,
                    expr.text,
                    str(step),
                    str(driver),
                    str(target),
                    observed,
                    not math.isnan(observed) and expr.holds(observed),
                    f"{expr.aggregate}({expr.kpi}) = {observed:.4g} over {len(values)} "
                    f"repeat(s) [{shown}]",
                )
            )
    return verdicts
