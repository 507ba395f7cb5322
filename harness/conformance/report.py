"""Conformance outputs: the operation × check matrix as HTML and JUnit, JSON, a terminal summary."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from collections import Counter, defaultdict
from collections.abc import Iterable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from jinja2 import ChoiceLoader, Environment, FileSystemLoader, select_autoescape
from rich.console import Console
from rich.table import Table

from harness.conformance.framework import FAIL, PASS, SKIP
from harness.conformance.suite import ConformanceRun

TEMPLATES = Path(__file__).parent / "templates"
SHARED_TEMPLATES = Path(__file__).parents[1] / "report" / "templates"

_env = Environment(
    loader=ChoiceLoader([FileSystemLoader(TEMPLATES), FileSystemLoader(SHARED_TEMPLATES)]),
    autoescape=select_autoescape(["html", "j2"]),
)


def gate_verdict(runs: list[ConformanceRun], allow_fail: Iterable[str] = ()) -> dict[str, Any]:
    """The gate's verdict: it fails when a check fails on a target not in ``allow_fail``;
    the failures of an allowed target are findings."""
    allowed = set(allow_fail)
    failed = [run.target for run in runs if not run.ok and run.target not in allowed]
    findings = {run.target: run.count(FAIL) for run in runs if run.target in allowed}
    return {
        "passed": not failed,
        "failed_targets": failed,
        "allow_fail": sorted(allowed & {run.target for run in runs}),
        "findings": findings,
    }


def render_html(
    runs: list[ConformanceRun], contracts_html: str = "", allow_fail: Iterable[str] = ()
) -> str:
    groups = list(dict.fromkeys(r.group for run in runs for r in run.results))
    checks_by_group: dict[str, list[str]] = defaultdict(list)
    descriptions: dict[str, str] = {}
    for run in runs:
        for r in run.results:
            if r.id not in descriptions:
                checks_by_group[r.group].append(r.id)
                descriptions[r.id] = r.description
    counts = {
        run.target: {
            g: Counter({"total": 0, PASS: 0, FAIL: 0, SKIP: 0})
            + Counter([r.status for r in run.results if r.group == g])
            + Counter({"total": sum(1 for r in run.results if r.group == g)})
            for g in groups
        }
        for run in runs
    }
    return _env.get_template("matrix.html.j2").render(
        runs=runs,
        targets=[run.target for run in runs],
        groups=groups,
        checks_by_group=checks_by_group,
        descriptions=descriptions,
        counts={t: {g: dict(c) for g, c in per.items()} for t, per in counts.items()},
        index={run.target: {r.id: r for r in run.results} for run in runs},
        generated=datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        contracts=contracts_html,
        verdict=gate_verdict(runs, allow_fail),
    )


def build_junit(runs: list[ConformanceRun], allow_fail: Iterable[str] = ()) -> ET.ElementTree:
    """One testsuite per target, one testcase per check (classname = operation).

    A failed check of a target in ``allow_fail`` is a finding, not a failure: a ``<skipped
    message="finding: ...">`` with expected vs observed, so a CI reading the JUnit agrees with
    the command's exit status."""
    allowed = set(allow_fail)
    suites = ET.Element("testsuites", name="conformance")
    for run in runs:
        summary = run.summary()
        findings = run.target in allowed
        suite = ET.SubElement(
            suites,
            "testsuite",
            name=f"conformance@{run.target}",
            tests=str(summary["total"]),
            failures="0" if findings else str(summary[FAIL]),
            skipped=str(summary[SKIP] + (summary[FAIL] if findings else 0)),
            errors="0",
            time=f"{run.duration_s:.3f}",
            timestamp=datetime.fromtimestamp(run.started_at, UTC).isoformat(),
        )
        props = ET.SubElement(suite, "properties")
        ET.SubElement(props, "property", name="endpoint", value=run.endpoint)
        ET.SubElement(props, "property", name="version", value=str(run.facts.get("version", "")))
        ET.SubElement(props, "property", name="allow_fail", value=str(findings).lower())
        for r in run.results:
            case = ET.SubElement(
                suite,
                "testcase",
                classname=f"conformance.{r.group}",
                name=r.id,
                time=f"{r.duration_s:.3f}",
            )
            if r.status == FAIL and findings:
                ET.SubElement(
                    case,
                    "skipped",
                    message=f"finding: {r.description}: expected {r.expected}; "
                    f"observed {r.observed}",
                )
            elif r.status == FAIL:
                ET.SubElement(
                    case, "failure", message=r.description, type="ContractViolation"
                ).text = f"expected: {r.expected}\nobserved: {r.observed}"
            elif r.status == SKIP:
                ET.SubElement(case, "skipped", message=r.observed)
            else:
                ET.SubElement(case, "system-out").text = r.observed
    tree = ET.ElementTree(suites)
    ET.indent(tree)
    return tree


def write_outputs(
    runs: list[ConformanceRun],
    out: Path,
    contracts_html: str = "",
    allow_fail: Iterable[str] = (),
) -> dict[str, Path]:
    """conformance.html, conformance.junit.xml and conformance.json in ``out``."""
    out.mkdir(parents=True, exist_ok=True)
    paths = {
        "html": out / "conformance.html",
        "junit": out / "conformance.junit.xml",
        "json": out / "conformance.json",
    }
    allow_fail = list(allow_fail)
    paths["html"].write_text(render_html(runs, contracts_html, allow_fail), encoding="utf-8")
    build_junit(runs, allow_fail).write(paths["junit"], encoding="utf-8", xml_declaration=True)
    paths["json"].write_text(
        json.dumps([run.to_dict() for run in runs], indent=1), encoding="utf-8"
    )
    return paths


def print_summary(
    runs: list[ConformanceRun], console: Console | None = None, show: int = 40
) -> None:
    """Per-operation counts per target, then the failing checks with expected vs observed."""
    console = console or Console()
    groups = list(dict.fromkeys(r.group for run in runs for r in run.results))
    table = Table(title="Conformance", title_justify="left")
    table.add_column("operation")
    for run in runs:
        table.add_column(run.target, justify="right")
    for g in groups:
        cells = []
        for run in runs:
            rs = [r for r in run.results if r.group == g]
            fails = sum(r.status == FAIL for r in rs)
            skips = sum(r.status == SKIP for r in rs)
            passed = sum(r.status == PASS for r in rs)
            text = f"{passed}/{len(rs)}"
            if fails:
                text = f"[red]{fails} fail[/red] " + text
            if skips:
                text += f" [yellow]{skips} skip[/yellow]"
            cells.append(text)
        table.add_row(g, *cells)
    table.add_row(
        "[bold]total[/bold]",
        *[f"[bold]{run.count(PASS)}/{len(run.results)}[/bold]" for run in runs],
    )
    console.print(table)
    for run in runs:
        bad = [r for r in run.results if r.status != PASS]
        for r in bad[:show]:
            colour = "red" if r.status == FAIL else "yellow"
            console.print(
                f"[{colour}]{r.status.upper()}[/{colour}] {run.target} {r.id}: "
                f"expected {r.expected} | observed {r.observed}",
                highlight=False,
                soft_wrap=True,
            )
        if len(bad) > show:
            console.print(f"... {len(bad) - show} more not shown (see the HTML report)")
