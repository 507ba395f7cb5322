"""One night: (provision) → every scenario × target through the runner → history → regression
analysis → one JUnit file and one summary page → (deprovision, also after a failure).

The runs are ordinary run directories (under ``<night>/runs/``) made by `harness run`'s runner
and renderer; the night adds ``night.json`` (what it ran on), ``junit.xml``, ``night.html`` and
the history's trend page (``history/history.html``).
"""

from __future__ import annotations

import json
import os
import xml.etree.ElementTree as ET
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import yaml
from jinja2 import ChoiceLoader, Environment, FileSystemLoader, select_autoescape

from harness.cli_common import EXIT_BAD_INPUT, EXIT_FAILED, EXIT_OK, new_run_dir
from harness.history.analysis import Analysis, analyse
from harness.history.records import facade_build_of, night_of, run_rows
from harness.history.store import HistoryStore, display
from harness.nightly.hosts import map_onto_lab
from harness.nightly.suite import NightlySuite
from harness.report.html import TEMPLATES as REPORT_TEMPLATES
from harness.runner import RunHook, Runner, git_revision, host_facts
from harness.scenario import Scenario
from harness.targets import INVENTORY_TARGET

_env = Environment(
    loader=ChoiceLoader(
        [FileSystemLoader(Path(__file__).parent / "templates"), FileSystemLoader(REPORT_TEMPLATES)]
    ),
    autoescape=select_autoescape(["html", "j2"]),
)


@dataclass
class RunRecord:
    scenario: str
    target: str
    run_dir: str
    exit_code: int
    passed: bool
    interrupted: bool
    facade_build: str
    tool_versions: dict[str, dict[str, str]]


@dataclass
class Stage:
    """Provisioning, deprovisioning or a night check (conformance, check-latest): what
    happened, and its exit status."""

    name: str
    exit_code: int
    message: str
    report: str = ""  # the stage's own report (e.g. conformance.html), if it writes one
    junit: str = ""  # its JUnit file, merged into the night's


@dataclass
class Night:
    suite: NightlySuite
    night_dir: Path
    history: str
    started_at: str = ""
    runs: list[RunRecord] = field(default_factory=list)
    stages: list[Stage] = field(default_factory=list)
    checks: list[Stage] = field(default_factory=list)  # conformance, check-latest
    hosts: list[dict[str, Any]] = field(default_factory=list)  # the inventory's hosts
    lab_mapping: list[dict[str, Any]] = field(default_factory=list)  # provisioned → lab host
    analysis: Analysis | None = None
    history_error: str = ""
    exit_code: int = EXIT_OK

    @property
    def nights(self) -> set[str]:
        """The history's night values of tonight's runs (one per run: its start time)."""
        out = set()
        for r in self.runs:
            info = json.loads((Path(r.run_dir) / "run.json").read_text())
            out.add(night_of(info["started_at"]))
        return out


class NightHook(RunHook):
    """Stamps every run of the night with the suite and the hosts of its inventory."""

    def __init__(self, night: Night) -> None:
        self.night = night

    def on_finish(self, runner: Runner, run_info: dict[str, Any]) -> None:
        run_info["night"] = {
            "suite": self.night.suite.name,
            "night_dir": str(self.night.night_dir),
            "hosts": [
                {"name": h["name"], "roles": h.get("roles", []), "facts": h.get("facts", {})}
                for h in self.night.hosts
            ],
        }


def run_night(
    suite: NightlySuite,
    suite_file: Path,
    scenarios: list[tuple[str, Scenario]],
    out: Path,
    history: str,
    cache_dir: Path,
    sample_interval: float = 1.0,
    contracts_dir: Path | None = None,
    provisioner: Callable[[str, Path], Stage] | None = None,
    log: Callable[[str], Any] = print,
    lab_inventory: Path | None = None,
    newest: str = "registry",
) -> Night:
    """Run the whole night; ``provisioner(action, inventory_path)`` does provision/deprovision
    when the suite asks for it; ``lab_inventory`` (else the suite's) names `harness lab up`'s
    hosts that stand in for the provisioned ones; ``newest`` is where the suite's
    `check_latest` step takes the newest client versions from (registry or installed)."""
    night = Night(suite, new_run_dir(out.resolve(), suite.name), history)
    night.started_at = datetime.now(UTC).isoformat()
    log(f"night: {night.night_dir}")
    inventory = Path(suite.inventory) if suite.inventory else night.night_dir / "inventory.yaml"
    lab = lab_inventory or (Path(suite.lab_inventory) if suite.lab_inventory else None)
    # With lab hosts standing in, the provisioned inventory is kept beside the one used.
    provisioned = night.night_dir / "provisioned.yaml" if lab else inventory
    try:
        if suite.provision and provisioner:
            stage = provisioner("provision", provisioned)
            night.stages.append(stage)
            if stage.exit_code != EXIT_OK:
                raise _Stop
        if lab is not None:
            inventory = night.night_dir / "inventory.yaml"
            doc = yaml.safe_load(provisioned.read_text()) if provisioned.is_file() else {}
            night.lab_mapping, message = map_onto_lab(doc or {}, lab, inventory)
            log(message)
        if inventory.is_file():
            night.hosts = list((yaml.safe_load(inventory.read_text()) or {}).get("hosts") or [])
        _run_all(night, scenarios, inventory, cache_dir, sample_interval, contracts_dir, log)
        _conformance(night, inventory, log)
        if suite.check_latest:
            _check_latest(night, suite_file, contracts_dir, cache_dir, newest, log)
    except _Stop:
        pass
    finally:
        if suite.provision and provisioner and suite.deprovision and night.stages:
            night.stages.append(provisioner("deprovision", provisioned))
    _record_history(night, log)
    _finish(night, suite_file)
    return night


class _Stop(Exception):
    """Provisioning failed: nothing runs, deprovisioning still does."""


def _run_all(
    night: Night,
    scenarios: list[tuple[str, Scenario]],
    inventory: Path,
    cache_dir: Path,
    sample_interval: float,
    contracts_dir: Path | None,
    log: Callable[[str], Any],
) -> None:
    from harness.contract.record import CONTRACTS_DIR, ContractRecorder
    from harness.report import render_run

    suite = night.suite
    for ref, sc in scenarios:
        for target in suite.targets or [None]:
            # the inventory target is told its file in the endpoint slot, as `harness run` does
            endpoint = str(inventory.resolve()) if target == INVENTORY_TARGET else suite.endpoint
            hooks: list[RunHook] = [NightHook(night)]
            if suite.contract:
                hooks.append(ContractRecorder(contracts_dir or CONTRACTS_DIR))
            if target == INVENTORY_TARGET:  # extra.link_utilization, as `harness run` adds it
                from harness.cluster.links import LinkUtilization

                hooks.append(LinkUtilization(inventory))
            source = {
                "scenario": ref,
                "overrides": list(suite.set),
                "target": target,
                "endpoint": endpoint,
                "contract": suite.contract,
                "suite": suite.name,
            }
            outcome = Runner(
                sc,
                out=night.night_dir / "runs",
                target=target,
                endpoint=endpoint,
                cache_dir=cache_dir,
                sample_interval=sample_interval,
                source=source,
                hooks=hooks,
            ).run()
            render_run(outcome.run_dir)
            info = json.loads((outcome.run_dir / "run.json").read_text())
            targets = info.get("targets", {})
            record = RunRecord(
                scenario=sc.name,
                target=target or info.get("default_target", ""),
                run_dir=str(outcome.run_dir),
                exit_code=outcome.exit_code,
                passed=bool(info.get("passed")),
                interrupted=outcome.interrupted,
                facade_build=", ".join(
                    f"{name}: {facade_build_of(facts or {})}" for name, facts in targets.items()
                ),
                tool_versions=info.get("tool_versions", {}),
            )
            night.runs.append(record)
            verdict = "PASS" if record.passed else f"FAIL (exit {record.exit_code})"
            log(f"{sc.name} @{record.target}: {verdict}  {outcome.run_dir / 'report.html'}")
            if outcome.interrupted:
                raise _Stop


def _conformance(night: Night, inventory: Path, log: Callable[[str], Any] = print) -> None:
    """The suite's conformance gate, on its target (the inventory's façade when it is one)."""
    step = night.suite.conformance
    if step is None:
        return
    from harness.conformance.cli import locked_contracts_html, run_target
    from harness.conformance.report import gate_verdict, write_outputs

    kind = step.target or (night.suite.targets or ["reference"])[0]
    endpoint = str(inventory.resolve()) if kind == INVENTORY_TARGET else night.suite.endpoint
    out = night.night_dir / "conformance"
    try:
        run = run_target(kind, out / "work", endpoint=endpoint, only=tuple(step.only))
    except Exception as exc:  # a target that does not start fails the gate, the night goes on
        stage = Stage("conformance", EXIT_FAILED, f"conformance @{kind}: {exc}")
    else:
        paths = write_outputs([run], out, locked_contracts_html())
        verdict = gate_verdict([run])
        summary = ", ".join(f"{n} {k}" for k, n in run.summary().items())
        stage = Stage(
            "conformance",
            EXIT_OK if verdict["passed"] else EXIT_FAILED,
            f"conformance @{kind}: {'PASSED' if verdict['passed'] else 'FAILED'} ({summary})",
            report=str(paths["html"]),
            junit=str(paths["junit"]),
        )
    night.checks.append(stage)
    log(stage.message)


def _check_latest(
    night: Night,
    suite_file: Path,
    contracts_dir: Path | None,
    cache_dir: Path,
    newest: str,
    log: Callable[[str], Any],
) -> None:
    """`harness contract check-latest` as a night step: its exit status (1 drift, 2 the
    install failed) is the stage's, its JUnit joins the night's."""
    from harness.contract.latest import RESOLVERS, InstallError, check_latest
    from harness.contract.record import CONTRACTS_DIR
    from harness.nightly.suite import scenario_ref

    wanted = night.suite.check_latest
    scenarios = [scenario_ref(suite_file, s) for s in wanted] if isinstance(wanted, list) else None
    out = night.night_dir / "check-latest"
    try:
        result = check_latest(
            RESOLVERS[newest], contracts_dir or CONTRACTS_DIR, out, cache_dir, scenarios, log=log
        )
    except InstallError as exc:
        stage = Stage("check-latest", EXIT_BAD_INPUT, f"check-latest: install failed: {exc}")
    else:
        drifted = [t.tool for t in result.tools if t.lines]
        verdict = f"drift in {', '.join(drifted) or 'the replay'}" if result.drifted else "no drift"
        versions = ", ".join(f"{t.tool} {t.version}" for t in result.tools)
        stage = Stage(
            "check-latest",
            EXIT_FAILED if result.drifted else EXIT_OK,
            f"check-latest ({versions}): {verdict}",
            junit=str(out / "check-latest.junit.xml"),
        )
    night.checks.append(stage)
    log(stage.message)


def _record_history(night: Night, log: Callable[[str], Any]) -> None:
    """Add the night's complete runs to the history and analyse the whole history."""
    try:
        with HistoryStore(night.history) as store:
            for r in night.runs:
                run_dir = Path(r.run_dir)
                if r.interrupted or not (run_dir / "results.parquet").is_file():
                    continue
                n = store.add(run_rows(run_dir))
                log(f"history: {run_dir.name}: {n} KPI rows")
            rows = store.frame()
    except Exception as exc:  # the night's runs stay on disk; the night fails
        night.history_error = f"history {display(night.history)}: {exc}"
        log(night.history_error)
        return
    night.analysis = analyse(rows)
    from harness.history.page import write_page

    write_page(night.analysis, night.night_dir / "history", display(night.history))


def _finish(night: Night, suite_file: Path) -> None:
    codes = [r.exit_code for r in night.runs] + [s.exit_code for s in night.stages]
    codes += [c.exit_code for c in night.checks]
    if night.history_error:
        codes.append(EXIT_FAILED)
    if night.analysis is not None and night.analysis.confirmed:
        codes.append(EXIT_FAILED)
    if not night.runs and not night.stages:
        codes.append(EXIT_BAD_INPUT)
    night.exit_code = max(codes or [EXIT_OK])
    (night.night_dir / "night.json").write_text(
        json.dumps(night_record(night, suite_file), indent=2, default=str)
    )
    write_junit(night)
    write_summary(night)


def night_record(night: Night, suite_file: Path) -> dict[str, Any]:
    """What the night ran and on what: the record kept beside its runs."""
    a = night.analysis
    return {
        "suite": night.suite.model_dump(),
        "suite_file": str(suite_file),
        "started_at": night.started_at,
        "finished_at": datetime.now(UTC).isoformat(),
        "exit_code": night.exit_code,
        "harness_revision": git_revision(),
        "controller": host_facts(),
        "hosts": night.hosts,
        "stages": [asdict(s) for s in night.stages],
        "lab_mapping": night.lab_mapping,
        "checks": [asdict(c) for c in night.checks],
        "runs": [asdict(r) for r in night.runs],
        "history": display(night.history),
        "history_error": night.history_error,
        "regressions": a.to_json() if a else None,
    }


# ---------------------------------------------------------------------- JUnit
def _regression_cases(night: Night) -> list[tuple[str, str, str | None, str]]:
    """(name, kind, problem, text) per KPI verdict of tonight's scenarios: tonight's A/B
    verdicts and the change points of their series."""
    a = night.analysis
    if a is None:
        return []
    scenarios = {r.scenario for r in night.runs}
    nights = night.nights
    cases = []
    for t in a.tonight:
        if t.night not in nights:
            continue
        v = t.verdict
        problem = (
            "failure" if v.verdict == "worse" else "skipped" if v.verdict == "not judged" else None
        )
        cases.append((f"tonight {t.series}", problem or "pass", problem, t.line()))
    for c in a.changes:
        if c.series.split(" / ", 1)[0] not in scenarios:
            continue
        problem = "failure" if c.kind == "regression" and not c.recovered else None
        cases.append((f"change {c.series} {c.first_night}", problem or "pass", problem, c.line()))
    return cases


def build_junit(night: Night) -> ET.ElementTree:
    """One file for the night: each run's testsuite (steps, criteria) as `harness run` writes
    it, a provisioning suite, and one testcase per KPI regression verdict."""
    from harness.report import load_run
    from harness.report.junit import build_junit as run_junit

    root = ET.Element("testsuites", name=f"nightly {night.suite.name}")
    for r in night.runs:
        try:
            run_root = run_junit(load_run(Path(r.run_dir))).getroot()
        except (FileNotFoundError, ValueError) as exc:
            run_root = ET.Element("testsuites")
            suite = ET.SubElement(run_root, "testsuite", name=r.scenario, tests="1", failures="1")
            case = ET.SubElement(suite, "testcase", classname=f"{r.scenario}.run", name="run")
            ET.SubElement(case, "failure", message=str(exc), type="RunIncomplete")
        for suite in run_root.findall("testsuite"):
            suite.set("name", f"{r.scenario}@{r.target}")
            root.append(suite)
    for c in night.checks:
        # a check's own JUnit (one testcase per conformance check, per tool) as it wrote it
        path = Path(c.junit) if c.junit else None
        own = ET.parse(path).getroot().findall("testsuite") if path and path.is_file() else []
        if own:
            root.extend(own)
            continue
        suite = ET.SubElement(root, "testsuite", name=c.name)
        case = ET.SubElement(suite, "testcase", classname=f"nightly.{c.name}", name=c.name)
        ET.SubElement(case, "system-out").text = c.message
        if c.exit_code != EXIT_OK:
            ET.SubElement(case, "failure", message=c.message, type=f"{c.name}Failed")
        _count(suite)
    if night.stages:
        suite = ET.SubElement(root, "testsuite", name="provisioning")
        for s in night.stages:
            case = ET.SubElement(suite, "testcase", classname="nightly.provisioning", name=s.name)
            ET.SubElement(case, "system-out").text = s.message
            if s.exit_code != EXIT_OK:
                ET.SubElement(case, "failure", message=s.message, type=f"{s.name}Failed")
        _count(suite)
    suite = ET.SubElement(root, "testsuite", name="regressions")
    if night.history_error:
        case = ET.SubElement(suite, "testcase", classname="nightly.regressions", name="history")
        ET.SubElement(case, "error", message=night.history_error, type="HistoryError")
    for name, _, problem, text in _regression_cases(night):
        case = ET.SubElement(suite, "testcase", classname="nightly.regressions", name=name)
        ET.SubElement(case, "system-out").text = text
        if problem == "failure":
            ET.SubElement(case, "failure", message=text, type="Regression")
        elif problem == "skipped":
            ET.SubElement(case, "skipped", message=text)
    _count(suite)
    _count(root, suites=True)
    ET.indent(root)
    return ET.ElementTree(root)


def _count(element: ET.Element, suites: bool = False) -> None:
    if suites:
        children = element.findall("testsuite")
        for key in ("tests", "failures", "errors", "skipped"):
            element.set(key, str(sum(int(s.get(key, "0")) for s in children)))
        return
    cases = element.findall("testcase")
    element.set("tests", str(len(cases)))
    element.set("failures", str(sum(1 for c in cases if c.find("failure") is not None)))
    element.set("errors", str(sum(1 for c in cases if c.find("error") is not None)))
    element.set("skipped", str(sum(1 for c in cases if c.find("skipped") is not None)))


def write_junit(night: Night) -> Path:
    path = night.night_dir / "junit.xml"
    build_junit(night).write(path, encoding="utf-8", xml_declaration=True)
    return path


# ---------------------------------------------------------------------- summary page
def write_summary(night: Night) -> Path:
    a = night.analysis
    cases = _regression_cases(night)

    def rel(path: str | Path) -> str:
        return os.path.relpath(path, night.night_dir)  # the page links work when moved whole

    html = _env.get_template("nightly.html.j2").render(
        title=f"Nightly {night.suite.name}",
        night=night,
        generated=datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        runs=[{**asdict(r), "report": rel(Path(r.run_dir) / "report.html")} for r in night.runs],
        checks=[{**asdict(c), "report": rel(c.report) if c.report else ""} for c in night.checks],
        cases=cases,
        judged=[c for c in cases if c[2] != "skipped"],
        # Not-judged series are many on a young history: counted with their reasons, once.
        skipped=[c for c in cases if c[2] == "skipped"],
        skipped_reasons=sorted(
            {
                t.verdict.reason
                for t in (a.tonight if a else [])
                if t.verdict.verdict == "not judged"
            }
        ),
        analysis=a,
        history_page="history/history.html" if a else None,
        history=display(night.history),
        revision=git_revision(),
        controller=host_facts(),
    )
    path = night.night_dir / "night.html"
    path.write_text(html)
    return path
