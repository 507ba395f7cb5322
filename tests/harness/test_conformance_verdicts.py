"""Conformance evidence states what was received, and the gate's outputs agree with its exit
status: with --allow-fail a target's failures are findings in JUnit and HTML, not failures."""

from __future__ import annotations

from pathlib import Path

import lxml.html
import pytest
from click.testing import CliRunner

from harness.conformance.cli import run_target
from harness.conformance.framework import FAIL, PASS, CheckResult
from harness.conformance.report import build_junit, gate_verdict, render_html
from harness.conformance.suite import ConformanceRun


def _run(target: str, statuses: list[str], version: str) -> ConformanceRun:
    results = [
        CheckResult(
            f"put-blob.c{i}",
            "Put Blob",
            f"behaviour {i}",
            status,
            expected="status: 201",
            observed="status: 500 InternalError" if status == FAIL else "status: 201",
        )
        for i, status in enumerate(statuses)
    ]
    return ConformanceRun(target, f"http://127.0.0.1:1/{target}", results, {"version": version})


def test_allowed_failures_are_findings_in_junit_not_failures() -> None:
    runs = [_run("reference", [PASS, PASS], "0.4.0"), _run("azurite", [PASS, FAIL], "3.37.0")]
    suites = build_junit(runs, allow_fail=["azurite"]).getroot()
    by_name = {s.get("name"): s for s in suites.iter("testsuite")}
    azurite = by_name["conformance@azurite"]
    assert azurite.get("failures") == "0" and azurite.get("skipped") == "1"
    assert list(suites.iter("failure")) == []
    (finding,) = azurite.iter("skipped")
    assert finding.get("message") == (
        "finding: behaviour 1: expected status: 201; observed status: 500 InternalError"
    )
    props = {p.get("name"): p.get("value") for p in azurite.iter("property")}
    assert props["allow_fail"] == "true" and props["version"] == "3.37.0"
    # Without --allow-fail the same failure is a <failure>, as the exit status says.
    strict = build_junit(runs).getroot()
    assert [f.get("type") for f in strict.iter("failure")] == ["ContractViolation"]


def test_html_shows_the_gate_verdict_the_allow_fail_note_and_versions() -> None:
    runs = [_run("reference", [PASS, PASS], "0.4.0"), _run("azurite", [FAIL, FAIL], "3.37.0")]
    page = lxml.html.fromstring(render_html(runs, allow_fail=["azurite"]))
    assert page.get_element_by_id("gate-verdict").text_content().strip() == "PASS"
    note = page.get_element_by_id("allow-fail").text_content()
    assert "--allow-fail azurite" in note and "azurite: 2" in note
    assert [td.text_content() for td in page.xpath("//td[@data-col='version']")] == [
        "0.4.0",
        "3.37.0",
    ]
    strict = lxml.html.fromstring(render_html(runs))
    assert strict.get_element_by_id("gate-verdict").text_content().strip() == "FAIL"
    assert gate_verdict(runs) == {
        "passed": False,
        "failed_targets": ["azurite"],
        "allow_fail": [],
        "findings": {},
    }


@pytest.mark.conformance
def test_denied_requests_show_what_was_received(tmp_path: Path) -> None:
    """`no data leaked` states the status, code, body size and digest that came back."""
    run = run_target("reference", tmp_path / "ref", only=("shared-key.anonymous",))
    (result,) = run.results
    assert result.status == PASS
    leak = next(p for p in result.observed.split("; ") if p.startswith("no data leaked: "))
    assert leak.startswith("no data leaked: 401 NoAuthenticationInformation, ")
    assert "-byte body sha256:" in leak and leak.endswith("without the blob bytes")


def test_no_conformance_evidence_is_a_fixed_literal() -> None:
    """The observed value of every expectation in the checks is computed, never a constant."""
    import ast

    checks = Path(__file__).parents[2] / "harness" / "conformance" / "checks"
    literals = []
    for path in sorted(checks.glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Attribute)
                and node.func.attr in ("expect", "expect_true")
                and node.args
                and isinstance(node.args[-1], ast.Constant)
            ):
                literals.append(f"{path.name}:{node.lineno}")
    assert literals == []


@pytest.mark.conformance
def test_the_command_prints_the_gate_verdict(tmp_path: Path) -> None:
    from harness.cli import main

    args = ["conformance", "--only", "put-blob.status", "--out", str(tmp_path)]
    result = CliRunner().invoke(main, [*args, "--allow-fail", "reference"])
    assert result.exit_code == 0, result.output
    assert "conformance gate PASSED" in result.output
    assert (tmp_path / "conformance.junit.xml").is_file()
