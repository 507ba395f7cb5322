"""JUnit XML: one testcase per (step, driver, target) and one per criterion verdict."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

from harness.report import RunData, summarize
from harness.results import moves_payload


def build_junit(data: RunData) -> ET.ElementTree:
    summary = summarize(data.results)
    suites = ET.Element("testsuites", name=data.scenario)
    suite = ET.SubElement(
        suites, "testsuite", name=data.scenario, timestamp=str(data.info.get("started_at", ""))
    )
    props = ET.SubElement(suite, "properties")
    for name, value in (
        ("run_dir", str(data.run_dir)),
        ("git", str(data.info.get("git", {}).get("revision"))),
        ("targets", ",".join(data.info.get("targets", {}))),
        # A run a signal stopped is marked so (its results are partial), with what failed first.
        ("run_status", _run_status(data.info)),
        ("first_failure", str(data.info.get("first_failure") or "")),
    ):
        ET.SubElement(props, "property", name=name, value=value)
    tests = failures = errors = 0
    total_time = 0.0
    for row in summary.to_dict("records"):
        tests += 1
        seconds = float(row["duration_s"]) * int(row["repeats"])
        total_time += seconds
        case = ET.SubElement(
            suite,
            "testcase",
            classname=f"{data.scenario}.steps",
            name=f"{row['step']} [{row['driver']}] @{row['target']}",
            time=f"{seconds:.3f}",
        )
        out = ET.SubElement(case, "system-out")
        rate = (
            f"{row['throughput_mib_s']:.2f} MiB/s"
            if moves_payload(row["operation"])
            else f"{row['ops_s']:.1f} objects/s"
        )
        out.text = (
            f"{row['operation']}: {row['objects']:.0f} objects"
            + (f", {row['bytes']:.0f} bytes" if moves_payload(row["operation"]) else "")
            + f", {rate} median of {row['repeats']} repeat(s), {row['failed']} failed"
        )
        if not row["ok"]:
            failures += 1
            ET.SubElement(
                case, "failure", message=row["error"] or "step failed", type="StepFailed"
            ).text = row["error"]
    for verdict in data.verdicts:
        tests += 1
        scope = f"{verdict['step']}/{verdict['driver']}/{verdict['target']}"
        case = ET.SubElement(
            suite,
            "testcase",
            classname=f"{data.scenario}.criteria",
            name=f"{verdict['criterion']} ({scope})",
            time="0",
        )
        ET.SubElement(case, "system-out").text = verdict["evidence"]
        if verdict.get("errored"):  # not judged: a covered step failed, or nothing ran
            errors += 1
            ET.SubElement(
                case, "error", message=verdict["evidence"], type="CriterionNotJudged"
            ).text = verdict["expression"]
        elif not verdict["passed"]:
            failures += 1
            ET.SubElement(
                case, "failure", message=verdict["evidence"], type="CriterionFailed"
            ).text = verdict["expression"]
    for note in data.info.get("notes", []):
        tests += 1
        failures += 1
        case = ET.SubElement(
            suite, "testcase", classname=f"{data.scenario}.run", name="run completed", time="0"
        )
        ET.SubElement(case, "failure", message=note, type="RunIncomplete")
    for element in (suite, suites):
        element.set("tests", str(tests))
        element.set("failures", str(failures))
        element.set("errors", str(errors))
        element.set("time", f"{total_time:.3f}")
    ET.indent(suites)
    return ET.ElementTree(suites)


def _run_status(info: dict) -> str:
    if info.get("interrupted"):
        return f"interrupted ({info.get('interrupted_by') or 'SIGINT'})"
    return "passed" if info.get("passed") else "failed"


def write_junit(data: RunData) -> Path:
    path = data.run_dir / "junit.xml"
    build_junit(data).write(path, encoding="utf-8", xml_declaration=True)
    return path
