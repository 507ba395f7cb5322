"""The pilot exit-criteria document: runs + an optional pilot.yaml -> HTML and PDF a customer
signs, with the SHA-256 of every evidence file embedded (``evidence.json`` attached to the PDF)
so `harness pilot verify` can tell when any of them changed."""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from jinja2 import Environment as Jinja
from jinja2 import FileSystemLoader, select_autoescape
from pydantic import BaseModel, ConfigDict, Field

from harness import validity
from harness.criteria import evaluate, parse
from harness.report import RunData, load_run
from harness.scenario import Criterion, load_model

TEMPLATES = Path(__file__).parent / "templates"
EVIDENCE_FILES = ("results.parquet", "samples.parquet", "run.json", "junit.xml")
CONFORMANCE_FILES = ("conformance.json", "conformance.junit.xml")
MANIFEST = "evidence.json"
UNITS = {
    "throughput_mib_s": "MiB/s",
    "throughput_gbit_s": "Gbit/s",
    "ops_s": "ops/s",
    "duration_s": "s",
    "failed": "failures",
    "retries": "retries",
    "objects": "objects",
    "verified_objects": "objects",
    "bytes": "B",
    "server_busy_share": "(share)",
    "client_cpu_pct_max": "%",
    "client_rss_mib_max": "MiB",
}


def unit_of(expression: str) -> str:
    expr = parse(expression)
    if expr.is_ratio:
        return "×"
    return UNITS.get(expr.kpi, "ms" if expr.kpi.endswith("_ms") else "")


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


class PilotCriterion(Criterion):
    """A scenario criterion plus who owns it and how much it weighs."""

    owner: str = ""
    weight: float = Field(default=1.0, ge=0)


class Signatory(_Model):
    name: str
    role: str


class Pilot(_Model):
    customer: str = "(customer)"
    name: str = "Blob façade pilot"
    scope: str = ""
    start: dt.date | None = None
    end: dt.date | None = None
    criteria: list[PilotCriterion] = Field(default_factory=list)
    # max/min bound of repeats per KPI ("default" for the others)
    stability: dict[str, float] = Field(default_factory=lambda: {"default": 1.2})
    deviations: list[str] = Field(default_factory=list)
    limitations: list[str] = Field(default_factory=list)
    signoff: list[Signatory] = Field(
        default_factory=lambda: [
            Signatory(name="", role="Customer"),
            Signatory(name="", role="Vendor"),
        ]
    )


def load_pilot(path: Path | None) -> Pilot:
    return load_model(path, Pilot, what="a pilot file") if path else Pilot()


@dataclass
class Row:
    name: str
    run: str
    scope: str
    requirement: str
    observed: str
    repeats: str
    status: str
    reason: str
    evidence: str
    link: str
    owner: str = ""
    weight: float = 1.0


def _fmt(value: Any) -> str:
    if value is None or (isinstance(value, float) and value != value):
        return "–"
    value = float(value)
    return f"{value:,.0f}" if value.is_integer() else f"{value:,.4g}"


def _verdicts(run: RunData, pilot: Pilot) -> list[tuple[dict[str, Any], PilotCriterion | None]]:
    if not pilot.criteria:
        return [(v, None) for v in run.verdicts]
    out = []
    for crit in pilot.criteria:
        steps = set(run.results["step"]) if len(run.results) else set()
        if crit.step and crit.step not in steps and "/" not in crit.expect:
            continue  # the criterion is about another run of the pilot
        out += [(v.to_dict(), crit) for v in evaluate([crit], run.results)]
    return out


def _criterion_rows(runs: list[RunData], pilot: Pilot, out_dir: Path) -> list[Row]:
    rows = []
    for run in runs:
        report = _relative(run.run_dir / "report.html", out_dir)
        for verdict, crit in _verdicts(run, pilot):
            judged = validity.judge(verdict, run, pilot.stability)
            unit = unit_of(verdict["expression"])
            scope = f"{verdict['step']} @{verdict['target']} [{verdict['driver']}]"
            if verdict.get("operation"):
                scope += f" {verdict['operation']}"
            rows.append(
                Row(
                    name=verdict["criterion"],
                    run=run.name,
                    scope=scope,
                    requirement=f"{verdict['expression']} {unit}".strip(),
                    observed=f"{_fmt(verdict.get('observed'))} {unit}".strip(),
                    repeats=", ".join(_fmt(v) for v in judged.repeats) or "–",
                    status=judged.status,
                    reason=judged.reason,
                    evidence=str(verdict.get("evidence", "")),
                    link=f"{report}#{verdict['step']}",
                    owner=crit.owner if crit else "",
                    weight=crit.weight if crit else 1.0,
                )
            )
        rows += _extra_rows(run, report)
    judged = {r.name for r in rows}
    for crit in pilot.criteria:  # a criterion no run measured is shown, never dropped
        if crit.label not in judged:
            unit = unit_of(crit.expect)
            rows.append(
                Row(
                    name=crit.label,
                    run="–",
                    scope=f"{crit.step or '*'} @{crit.target or '*'} [{crit.driver or '*'}]",
                    requirement=f"{crit.expect} {unit}".strip(),
                    observed="–",
                    repeats="–",
                    status="INVALID",
                    reason="not judged (executed): no run of the pilot measured it",
                    evidence=f"none of {', '.join(r.name for r in runs) or 'no runs'} has its step",
                    link="",
                    owner=crit.owner,
                    weight=crit.weight,
                )
            )
    return rows


def _extra_rows(run: RunData, report: str) -> list[Row]:
    """Contract drift and conformance, as criteria of their own when the run holds them."""
    rows = []
    for tool in run.drift.get("tools") or []:
        lines = list(tool.get("lines") or [])
        rows.append(
            Row(
                name=f"no contract drift for {tool['tool']} {tool.get('version') or ''}".strip(),
                run=run.name,
                scope=f"contract {tool.get('slug') or tool['tool']}",
                requirement="drift lines == 0",
                observed=f"{len(lines)} line(s)",
                repeats="–",
                status="PASS" if not lines else "FAIL",
                reason="",
                evidence=str(tool.get("summary") or ""),
                link=f"{report}#contract",
            )
        )
    return rows


def conformance_rows(directory: Path, out_dir: Path) -> list[Row]:
    """`harness conformance` output (conformance.json): one criterion per target, 100% of the
    contract's checks passing (skipped checks are listed, not counted)."""
    rows = []
    for target in json.loads((directory / "conformance.json").read_text()):
        s = target["summary"]
        judged = s["pass"] + s["fail"]
        share = 100.0 * s["pass"] / judged if judged else 0.0
        failing = [r for r in target["results"] if r.get("status") == "fail"]
        rows.append(
            Row(
                name=f"conformance of {target['target']}: 100% of the contract",
                run=directory.name,
                scope=f"conformance @{target['target']}",
                requirement="passed checks == 100 %",
                observed=f"{share:.1f} %",
                repeats=f"{s['pass']} of {judged} passed, {s['skip']} skipped",
                # A gate that judged nothing proves nothing: INVALID, not PASS.
                status="INVALID" if not judged else "FAIL" if s["fail"] else "PASS",
                reason="" if judged else "not judged (executed): no check ran",
                evidence=f"{s['fail']} failing check(s)"
                + (
                    ": " + ", ".join(str(r.get("id") or r.get("name")) for r in failing[:5])
                    if failing
                    else ""
                ),
                link=_relative(directory / "conformance.html", out_dir),
            )
        )
    return rows


def _utc(iso: str) -> str:
    """An ISO time as the document prints it: `2026-12-01 21:25:16`."""
    return iso[:19].replace("T", " ")


def _relative(path: Path, base: Path) -> str:
    try:
        return str(Path(path).resolve().relative_to(base.resolve()))
    except ValueError:
        return Path(path).resolve().as_uri()


def evidence_hashes(run_dir: Path, info: dict[str, Any]) -> dict[str, str]:
    """name -> SHA-256 of a run's evidence files; the scenario under ``scenario:<path>``."""
    hashes = {
        name: validity.sha256_file(run_dir / name)
        for name in (*EVIDENCE_FILES, *CONFORMANCE_FILES)
        if (run_dir / name).is_file()
    }
    scenario = str((info.get("source") or {}).get("scenario") or "")
    if scenario and Path(scenario).is_file():
        hashes[f"scenario:{scenario}"] = validity.sha256_file(Path(scenario))
    return hashes


def is_run_dir(path: Path) -> bool:
    return (Path(path) / "results.parquet").is_file()


def build(run_dirs: list[Path], pilot: Pilot, out_dir: Path) -> dict[str, Any]:
    """Everything the document shows, as data (the template only lays it out)."""
    runs = [load_run(d) for d in run_dirs if is_run_dir(d)]
    gates = [Path(d) for d in run_dirs if (Path(d) / "conformance.json").is_file()]
    rows = _criterion_rows(runs, pilot, out_dir)
    rows += [row for gate in gates for row in conformance_rows(gate, out_dir)]
    envs = [validity.environment(r) for r in runs]
    rules = [(r.name, o) for r in runs for o in validity.run_rules(r, pilot.stability)]
    counts = {s: sum(r.status == s for r in rows) for s in ("PASS", "FAIL", "INVALID")}
    overall = "PASS" if rows and counts["PASS"] == len(rows) else "FAIL"
    if overall != "PASS" and counts["INVALID"] and not counts["FAIL"]:
        overall = "INVALID"
    starts = sorted(e.window[0] for e in envs if e.window[0])
    ends = sorted(e.window[1] for e in envs if e.window[1])
    weights = sum(r.weight for r in rows)
    return {
        "pilot": pilot,
        "start": str(pilot.start or (starts[0][:10] if starts else "")),
        "end": str(pilot.end or (ends[-1][:10] if ends else "")),
        "window": tuple(_utc(t) for t in (starts[:1] or [""]) + (ends[-1:] or [""])),
        "rows": rows,
        "counts": counts,
        "overall": overall,
        "weighted": sum(r.weight for r in rows if r.status == "PASS") / weights if weights else 0,
        "rules": rules,
        "rule_names": validity.RULES,
        "broken": [(run, o) for run, o in rules if not o.ok],
        "envs": envs,
        "facades": sorted({f"{t} {b}" for e in envs for t, b in e.facade.items()}),
        "revisions": sorted({e.revision[:12] + (" (dirty)" if e.dirty else "") for e in envs}),
        "hashes": {g.name: evidence_hashes(g, {}) for g in gates}
        | {r.name: evidence_hashes(r.run_dir, r.info) for r in runs},
        "generated": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
    }


def render_html(doc: dict[str, Any]) -> str:
    jinja = Jinja(loader=FileSystemLoader(TEMPLATES), autoescape=select_autoescape())
    return jinja.get_template("pilot.html.j2").render(**doc)


def write(run_dirs: list[Path], out: Path, pilot: Pilot) -> dict[str, Any]:
    """Writes ``out`` (PDF) and the same document as HTML beside it; returns the document."""
    from weasyprint import HTML, Attachment

    out.parent.mkdir(parents=True, exist_ok=True)
    doc = build(run_dirs, pilot, out.parent)
    html = render_html(doc)
    out.with_suffix(".html").write_text(html, encoding="utf-8")
    manifest = json.dumps({"runs": doc["hashes"]}, indent=1, sort_keys=True)
    HTML(string=html, base_url=str(out.parent)).write_pdf(
        out, attachments=[Attachment(string=manifest, name=MANIFEST)]
    )
    return doc


def read_manifest(pdf: Path) -> dict[str, dict[str, str]]:
    """The evidence hashes a pilot PDF carries (ValueError when it carries none)."""
    from pypdf import PdfReader

    attachments = PdfReader(pdf).attachments
    if MANIFEST not in attachments:
        raise ValueError(f"{pdf}: no {MANIFEST} attached: not a pilot document")
    return dict(json.loads(attachments[MANIFEST][0])["runs"])


def verify(pdf: Path, run_dirs: list[Path]) -> list[str]:
    """One line per evidence file: ``OK``, ``CHANGED`` or ``MISSING``; raises ValueError when a
    run directory is not in the document."""
    manifest = read_manifest(pdf)
    lines = []
    for run_dir in run_dirs:
        recorded = manifest.get(Path(run_dir).name)
        if recorded is None:
            raise ValueError(f"{run_dir}: not one of the document's runs ({', '.join(manifest)})")
        for name, sha in recorded.items():
            path = Path(name.removeprefix("scenario:")) if name.startswith("scenario:") else None
            path = path or Path(run_dir) / name
            if not path.is_file():
                lines.append(f"MISSING  {Path(run_dir).name}/{name}")
                continue
            now = validity.sha256_file(path)
            state = "OK     " if now == sha else "CHANGED"
            detail = "" if now == sha else f" (document {sha[:16]}…, now {now[:16]}…)"
            lines.append(f"{state}  {Path(run_dir).name}/{name}{detail}")
    return lines
