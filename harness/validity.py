"""Validity before verdicts: the rules a run must meet before its numbers count (after MLPerf
Storage). The pilot document, the deck and the charts all judge runs through this one module.

Rules, per (step, driver, target) of a run:

- ``warm-up``: the configured warm-up executions ran and are excluded from KPIs;
- ``repeats``: at least the scenario's repeats were measured (and succeeded);
- ``stable``: the repeats agree: max/min of the KPI ≤ a bound (default 1.2, per KPI);
- ``cache``: a read test's dataset is larger than the client host's memory (its page cache),
  unless the run recorded that caches were dropped (run.json ``notes`` or ``host``);
- ``client-saturated``: no judged row had its load generator above 90% CPU;
- ``verified``: every object moved was verified against the manifest;
- ``executed``: every covered execution succeeded (the criterion was judged at all);

and per run, ``environment``: façade build as the target reports it, host facts, tool
versions, the scenario file and its SHA-256, the harness revision and the UTC window.

A verdict that breaks a rule is INVALID naming the rule; PASS or FAIL only on a valid run.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from harness.criteria import PACE_KPIS, parse
from harness.results import moves_payload
from harness.runner import step_rows

DEFAULT_BOUND = 1.2
GIB = 1024**3
READ_OPERATIONS = frozenset({"download", "sync-down"})
VERIFIED_OPERATIONS = frozenset({"upload", "download", "sync-up", "sync-down", "copy"})
RULES = {
    "warm-up": "warm-up executions ran and are excluded from KPIs",
    "repeats": "at least the scenario's repeats were measured",
    "stable": "repeats agree: max/min of the KPI within the bound",
    "cache": "read tests use a dataset larger than the client's page cache (or drop caches)",
    "client-saturated": "no judged step or level had a saturated load generator",
    "verified": "every object moved was verified",
    "executed": "every covered execution succeeded",
    "environment": "façade build, host, tool versions, scenario SHA-256, revision, UTC window",
}
# The word the document prints after INVALID for each rule.
REASONS = {
    "stable": "unstable",
    "cache": "cache-bound",
    "client-saturated": "client-saturated",
    "verified": "unverified",
    "repeats": "too few repeats",
    "warm-up": "no warm-up",
    "executed": "not judged",
    "environment": "environment not recorded",
}


@dataclass
class RuleOutcome:
    rule: str
    scope: str  # "run" or "step @target [driver]"
    ok: bool
    detail: str

    @property
    def reason(self) -> str:
        return REASONS[self.rule]


@dataclass
class Environment:
    run_id: str
    facade: dict[str, str]  # target -> build
    host: dict[str, Any]
    hardware: str
    tools: dict[str, dict[str, str]]
    scenario_file: str
    scenario_sha256: str | None
    revision: str
    dirty: bool
    window: tuple[str, str]


@dataclass
class Judged:
    """One criterion verdict after the validity rules: PASS, FAIL or INVALID (rule named)."""

    verdict: dict[str, Any]
    status: str
    broken: list[RuleOutcome] = field(default_factory=list)
    repeats: list[float] = field(default_factory=list)

    @property
    def reason(self) -> str:
        return ", ".join(f"{o.reason} ({o.rule}): {o.detail}" for o in self.broken)


# The same readings as harness.history.records (facade_build_of, hardware_of), written here
# because harness.history imports harness.report, which reads runs through this module: an
# import of history from here would close a cycle.
def facade_build_of(target_facts: dict[str, Any]) -> str:
    """The build under test, as precise as the target reports it (build, image, revision,
    version)."""
    for key in ("build", "image", "revision", "version"):
        if target_facts.get(key):
            return str(target_facts[key])
    return "unknown"


def hardware_of(host: dict[str, Any]) -> str:
    """What the numbers ran on, without what differs between identical machines: the VM size
    when known, else CPU model, cores and memory."""
    parts = [
        str(host.get("vm_size") or ""),
        str(host.get("cpu_model") or host.get("machine") or "unknown cpu"),
        f"{host.get('cpus_logical', '?')} cpus",
        f"{round(float(host.get('memory_gib') or 0))} GiB",
    ]
    return ", ".join(p for p in parts if p)


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def environment(run: Any) -> Environment:
    """What the run recorded about itself (``run`` is a harness.report.RunData)."""
    info = run.info
    scenario_file = str((info.get("source") or {}).get("scenario") or "")
    path = Path(scenario_file) if scenario_file else None
    sha = sha256_file(path) if path and path.is_file() else None
    git = info.get("git") or {}
    return Environment(
        run_id=run.name,
        facade={name: facade_build_of(f) for name, f in (info.get("targets") or {}).items()},
        host=dict(info.get("host") or {}),
        hardware=hardware_of(info.get("host") or {}),
        tools={k: dict(v) for k, v in (info.get("tool_versions") or {}).items()},
        scenario_file=scenario_file,
        scenario_sha256=sha,
        revision=str(git.get("revision") or ""),
        dirty=bool(git.get("dirty")),
        window=(str(info.get("started_at") or ""), str(info.get("finished_at") or "")),
    )


def environment_rule(env: Environment) -> RuleOutcome:
    missing = []
    if not env.facade or any(b == "unknown" for b in env.facade.values()):
        missing.append("façade build")
    if not env.host.get("cpu_model") or not env.host.get("memory_gib"):
        missing.append("host facts")
    if not env.tools:
        missing.append("tool versions")
    if not env.scenario_sha256:
        missing.append(f"scenario file ({env.scenario_file or 'not named'})")
    if not env.revision:
        missing.append("harness revision")
    if not all(env.window):
        missing.append("UTC window")
    detail = "missing: " + ", ".join(missing) if missing else "all recorded"
    return RuleOutcome("environment", "run", not missing, detail)


def caches_dropped(info: dict[str, Any]) -> bool:
    notes = " ".join(map(str, info.get("notes") or []))
    return bool((info.get("host") or {}).get("caches_dropped")) or "caches dropped" in notes


def _steps_spec(info: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {s["name"]: s for s in (info.get("scenario") or {}).get("steps", [])}


def _extra(rows: pd.DataFrame, key: str) -> list[Any]:
    return [e.get(key) if isinstance(e, dict) else None for e in rows.get("extra", [])]


def group_rules(
    run: Any, step: str, driver: str, target: str, kpi: str, bounds: dict[str, float]
) -> list[RuleOutcome]:
    """The rules for one (step, driver, target) of ``run`` judged on ``kpi``."""
    results = step_rows(run.results)
    rows = results[
        (results["step"] == step) & (results["driver"] == driver) & (results["target"] == target)
    ]
    scope = f"{step} @{target} [{driver}]"
    spec = _steps_spec(run.info).get(step, {})
    warm = rows[rows["warmup"].astype(bool)]
    measured = rows[~rows["warmup"].astype(bool)]
    ok_rows = measured[measured["ok"].astype(bool)]
    out = []
    want_warm = int(spec.get("warmup", 0) or 0)
    out.append(
        RuleOutcome(
            "warm-up",
            scope,
            len(warm) >= want_warm,
            f"{len(warm)} of {want_warm} warm-up run(s), excluded",
        )
    )
    want = int(spec.get("repeats", 1) or 1)
    out.append(
        RuleOutcome("repeats", scope, len(ok_rows) >= want, f"{len(ok_rows)} of {want} measured")
    )
    failed = measured[~measured["ok"].astype(bool)]
    first_error = str(failed.iloc[0]["error"] or "") if len(failed) else ""
    out.append(
        RuleOutcome(
            "executed",
            scope,
            failed.empty,
            f"{len(failed)} failed execution(s)" + (f": {first_error}" if first_error else ""),
        )
    )
    if kpi in PACE_KPIS and len(ok_rows) > 1:
        values = pd.to_numeric(ok_rows[kpi], errors="coerce").dropna()
        values = values[values > 0]
        bound = bounds.get(kpi, bounds.get("default", DEFAULT_BOUND))
        if len(values) > 1:
            spread = float(values.max() / values.min())
            out.append(
                RuleOutcome(
                    "stable",
                    scope,
                    spread <= bound,
                    f"{kpi} max/min {spread:.3f} (bound {bound:g})",
                )
            )
    operation = str(rows.iloc[0]["operation"]) if len(rows) else ""
    if operation in READ_OPERATIONS and kpi in PACE_KPIS:  # a count is no faster from cache
        dataset = (run.info.get("datasets") or {}).get(str(spec.get("dataset") or ""), {})
        size = int(dataset.get("bytes") or 0)
        memory = float((run.info.get("host") or {}).get("memory_gib") or 0) * GIB
        dropped = caches_dropped(run.info)
        out.append(
            RuleOutcome(
                "cache",
                scope,
                dropped or size > memory > 0,
                "caches dropped"
                if dropped
                else f"dataset {size / GIB:.3g} GiB vs client memory {memory / GIB:.3g} GiB",
            )
        )
    if kpi in PACE_KPIS:
        bound_rows = [bool(b) for b in _extra(measured, "client_bound")]
        out.append(
            RuleOutcome(
                "client-saturated",
                scope,
                not any(bound_rows),
                f"{sum(bound_rows)} of {len(bound_rows)} row(s) client-bound",
            )
        )
    if operation in VERIFIED_OPERATIONS:
        if not spec.get("verify", True):
            out.append(RuleOutcome("verified", scope, False, "verify: false in the scenario"))
        else:
            short = ok_rows[ok_rows["verified_objects"] < ok_rows["objects"]]
            out.append(
                RuleOutcome(
                    "verified",
                    scope,
                    short.empty,
                    f"{int(ok_rows['verified_objects'].sum())} of "
                    f"{int(ok_rows['objects'].sum())} object(s) verified",
                )
            )
    return out


def _sides(text: str, names: set[str]) -> list[str]:
    parts = [p for chunk in text.split("/") for p in chunk.split("+")]
    return [p for p in parts if p in names]


def judge(verdict: dict[str, Any], run: Any, bounds: dict[str, float] | None = None) -> Judged:
    """A criterion verdict (run.json shape) of ``run`` after the rules of its rows."""
    bounds = bounds or {}
    kpi = parse(verdict["expression"]).kpi
    results = step_rows(run.results)
    steps = set(results["step"]) if len(results) else set()
    targets = set(results["target"]) if len(results) else set()
    drivers = set(results["driver"]) if len(results) else set()
    vstep, vtarget, vdriver = verdict["step"], verdict["target"], verdict["driver"]
    step_names = [vstep] if vstep in steps else _sides(vstep, steps)
    target_names = [vtarget] if vtarget in targets else _sides(vtarget, targets)
    driver_names = [vdriver] if vdriver in drivers else _sides(vdriver, drivers)
    broken: list[RuleOutcome] = [environment_rule(environment(run))]
    repeats: list[float] = []
    measured = results[~results["warmup"].astype(bool)] if len(results) else results
    covered = measured[
        measured["step"].isin(step_names)
        & measured["target"].isin(target_names)
        & measured["driver"].isin(driver_names)
    ]
    for (step, driver, target), rows in covered.groupby(["step", "driver", "target"], sort=False):
        broken += group_rules(run, str(step), str(driver), str(target), kpi, bounds)
        if not parse(verdict["expression"]).is_ratio and kpi in rows:
            repeats += [float(v) for v in pd.to_numeric(rows[kpi], errors="coerce").dropna()]
    if verdict.get("errored") or covered.empty:
        detail = verdict.get("evidence") or "no measured results matched"
        broken.append(RuleOutcome("executed", "criterion", False, str(detail)))
    broken = [o for o in broken if not o.ok]
    observed = verdict.get("observed")
    if broken:
        status = "INVALID"
    elif observed is None or (isinstance(observed, float) and math.isnan(observed)):
        status = "FAIL"
    else:
        status = "PASS" if verdict["passed"] else "FAIL"
    return Judged(verdict, status, broken, repeats)


def run_rules(run: Any, bounds: dict[str, float] | None = None) -> list[RuleOutcome]:
    """Every rule on every (step, driver, target) of a run, on its headline KPI (MiB/s for
    payload steps, ops/s for the others): what the document lists under validity."""
    outcomes = [environment_rule(environment(run))]
    results = step_rows(run.results)
    if results.empty:
        return outcomes
    for (step, driver, target, op), _ in results.groupby(
        ["step", "driver", "target", "operation"], sort=False
    ):
        kpi = "throughput_mib_s" if moves_payload(str(op)) else "ops_s"
        outcomes += group_rules(run, str(step), str(driver), str(target), kpi, bounds or {})
    return outcomes
