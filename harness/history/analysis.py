"""History rows -> comparable KPI series -> change points and tonight's A/B verdict.

A series is one scenario × step × target × driver × operation × level × KPI, over nights. It
is cut wherever a comparability dimension changes (the client tool's versions, the hardware):
numbers from another AzCopy or another VM size start a new series, and the analysis says so.
The façade build and the harness revision do not cut a series: their changes are what a change
point is pinned on.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from harness.history.detect import ABConfig, ABVerdict, DetectorConfig, ab_verdict, change_points
from harness.history.records import STEP_LEVEL, kpi_sense

SERIES_KEY = ["scenario", "step", "target", "driver", "operation", "level", "kpi"]
COMPARABLE = ["tool_versions", "hardware"]


def step_label(key: dict[str, Any]) -> str:
    level = "" if key["level"] == STEP_LEVEL else f" level {key['level']}"
    return (
        f"{key['scenario']} / {key['step']}{level} @{key['target']} "
        f"[{key['driver']} {key['operation']}]"
    )


def series_label(key: dict[str, Any]) -> str:
    return f"{step_label(key)} {key['kpi']}"


@dataclass
class Change:
    series: str
    kpi: str
    kind: str  # "regression" or "improvement"
    relative: float
    interval: tuple[float, float]
    p_value: float
    before: float
    after: float
    first_night: str
    first_run: str
    previous_night: str
    builds: list[str]  # "façade 0.1.0 → 0.1.1", "harness abc → def"
    recovered: str | None = None  # night a later change brought the level back
    method: str = "e-divisive"  # or "newest nights" (the fixed split of the newest 3 nights)

    def line(self) -> str:
        low, high = self.interval
        builds = "; ".join(self.builds) or "no build or revision change there"
        first = "first bad night" if self.kind == "regression" else "from night"
        kind = "RECOVERED" if self.recovered else self.kind.upper()
        text = (
            f"{kind:<11} {self.series}: {self.relative:+.1%} "
            f"[{low:+.1%}, {high:+.1%}] ({self.before:,.4g} → {self.after:,.4g}), "
            f"{first} {self.first_night} (run {self.first_run}), p={self.p_value:.3g}"
            + (f" ({self.method} test)" if self.method != "e-divisive" else "")
            + f"; {builds}"
        )
        return text + (f"; back to its level from {self.recovered}" if self.recovered else "")


@dataclass
class NewSeries:
    step: str  # every KPI of this step, target and level starts anew
    night: str
    what: str  # "azcopy 10.32.2 → 10.33.0" / "hardware ... → ..."
    kpis: list[str] = field(default_factory=list)

    def line(self) -> str:
        return (
            f"NEW SERIES  {self.step} ({len(self.kpis)} KPIs): from {self.night}, {self.what} "
            "(not compared with before)"
        )


@dataclass
class Tonight:
    series: str
    kpi: str
    night: str
    verdict: ABVerdict

    def line(self) -> str:
        v = self.verdict
        return f"TONIGHT     {self.series}: {v.verdict.upper()} vs last nights, {v.reason}"


@dataclass
class Series:
    key: dict[str, Any]
    label: str
    nights: list[str]
    runs: list[str]
    values: np.ndarray
    raw: list[list[float]]
    builds: list[str]
    harness: list[str]
    changes: list[Change] = field(default_factory=list)


@dataclass
class Analysis:
    series: list[Series]
    changes: list[Change]
    new_series: list[NewSeries]
    tonight: list[Tonight]

    @property
    def regressions(self) -> list[Change]:
        """Regressions still open: not brought back to their level by a later change."""
        return [c for c in self.changes if c.kind == "regression" and not c.recovered]

    @property
    def improvements(self) -> list[Change]:
        return [c for c in self.changes if c.kind == "improvement"]

    @property
    def recovered(self) -> list[Change]:
        return [c for c in self.changes if c.recovered]

    @property
    def worse_tonight(self) -> list[Tonight]:
        return [t for t in self.tonight if t.verdict.verdict == "worse"]

    @property
    def confirmed(self) -> bool:
        """A regression the exit status reports: an open change point for the worse, or
        tonight worse than the last nights by the rank test."""
        return bool(self.regressions or self.worse_tonight)

    def to_json(self) -> dict[str, Any]:
        return {
            "changes": [asdict(c) for c in self.changes],
            "new_series": [asdict(n) for n in self.new_series],
            "tonight": [
                {"series": t.series, "kpi": t.kpi, "night": t.night, **asdict(t.verdict)}
                for t in self.tonight
            ],
            "series": len(self.series),
            "regressions": len(self.regressions) + len(self.worse_tonight),
        }


def _describe_cut(before: pd.Series, after: pd.Series) -> str:
    parts = []
    if before["tool_versions"] != after["tool_versions"]:
        old, new = json.loads(before["tool_versions"]), json.loads(after["tool_versions"])
        for tool in sorted(set(old) | set(new)):
            if old.get(tool) != new.get(tool):
                parts.append(f"{tool} {old.get(tool, '—')} → {new.get(tool, '—')}")
    if before["hardware"] != after["hardware"]:
        parts.append(f"hardware {before['hardware']} → {after['hardware']}")
    return ", ".join(parts)


def _changes_at(s: Series, i: int) -> list[str]:
    out = []
    if s.builds[i - 1] != s.builds[i]:
        out.append(f"façade {s.builds[i - 1]} → {s.builds[i]}")
    if s.harness[i - 1] != s.harness[i]:
        out.append(f"harness {s.harness[i - 1][:12]} → {s.harness[i][:12]}")
    return out


def _mark_recoveries(s: Series, sense: int, tolerance: float = 0.03) -> None:
    """A regression is recovered once a later level is within ``tolerance`` of the level
    before it, or better: a fixed build no longer fails the night."""
    for i, change in enumerate(s.changes):
        if change.kind != "regression":
            continue
        for later in s.changes[i + 1 :]:
            back = (later.after - change.before) / abs(change.before) if change.before else 0.0
            if back * sense >= -tolerance:
                change.recovered = later.first_night
                break


def analyse(
    rows: pd.DataFrame,
    since: str | None = None,
    detector: DetectorConfig | None = None,
    ab: ABConfig | None = None,
) -> Analysis:
    """Every series of ``rows``: its change points (reported from night ``since`` on) and
    the A/B verdict of its newest night."""
    all_series: list[Series] = []
    changes: list[Change] = []
    new_series: list[NewSeries] = []
    tonight: list[Tonight] = []
    # One point per run: a run measured each series once (its repeats are in raw_values).
    ordered = rows.sort_values(["night", "run_id"], kind="stable")
    for key_values, group in ordered.groupby(SERIES_KEY, sort=True):
        key = dict(zip(SERIES_KEY, key_values, strict=True))
        label = series_label(key)
        group = group.reset_index(drop=True)
        dims = group[COMPARABLE].astype(str).agg("\x1f".join, axis=1)
        starts = [0] + [i for i in range(1, len(group)) if dims[i] != dims[i - 1]]
        for a, b in zip(starts, [*starts[1:], len(group)], strict=True):
            if a:
                what = _describe_cut(group.iloc[a - 1], group.iloc[a])
                cut = NewSeries(step_label(key), group["night"][a], what)
                same = [
                    n
                    for n in new_series
                    if (n.step, n.night, n.what) == (cut.step, cut.night, what)
                ]
                (same[0] if same else cut).kpis.append(key["kpi"])
                if not same:
                    new_series.append(cut)
            part = group.iloc[a:b]
            s = Series(
                key=key,
                label=label,
                nights=list(part["night"]),
                runs=list(part["run_id"]),
                values=part["value"].to_numpy(dtype=float),
                raw=[json.loads(r) for r in part["raw_values"]],
                builds=list(part["facade_build"]),
                harness=list(part["harness_revision"]),
            )
            sense = kpi_sense(key["kpi"])
            for cp in change_points(s.values, detector, s.raw):
                change = Change(
                    series=label,
                    kpi=key["kpi"],
                    kind="improvement" if cp.relative * sense > 0 else "regression",
                    relative=cp.relative,
                    interval=cp.interval,
                    p_value=cp.p_value,
                    before=cp.before_mean,
                    after=cp.after_mean,
                    first_night=s.nights[cp.index],
                    first_run=s.runs[cp.index],
                    previous_night=s.nights[cp.index - 1],
                    builds=_changes_at(s, cp.index),
                    method=cp.method,
                )
                s.changes.append(change)
                if since is None or change.first_night >= since:
                    changes.append(change)
            _mark_recoveries(s, sense)
            all_series.append(s)
        last = all_series[-1]
        if len(last.raw) > 1 and (since is None or last.nights[-1] >= since):
            # Tonight against the level it should have now: the nights since the last change.
            start = max([0, *(last.nights.index(c.first_night) for c in last.changes)])
            verdict = ab_verdict(last.raw[-1], last.raw[start:-1], kpi_sense(key["kpi"]), ab)
            tonight.append(Tonight(label, key["kpi"], last.nights[-1], verdict))
    return Analysis(all_series, changes, new_series, tonight)
