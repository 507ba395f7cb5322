"""The conformance gate: 100% on the reference façade, and the framework's own behaviour."""

from __future__ import annotations

from pathlib import Path

import lxml.html
import pytest

from harness.conformance.cli import run_target
from harness.conformance.framework import FAIL, PASS, SKIP, error_shape_problem
from harness.conformance.report import build_junit, render_html, write_outputs
from harness.conformance.suite import load_checks
from harness.http import Response


def test_at_least_150_independent_checks_grouped_by_operation() -> None:
    checks = load_checks()
    assert len(checks) >= 150
    assert len({c.id for c in checks}) == len(checks)
    groups = {c.group for c in checks}
    for group in (
        "List Blobs",
        "Put Block List",
        "Get Blob Ranges",
        "Conditional Reads",
        "Conditional Writes",
        "Auth Shared Key",
        "Auth Account SAS",
        "Throttling",
    ):
        assert group in groups


def test_error_shape_rule() -> None:
    xml = b'<?xml version="1.0"?><Error><Code>BlobNotFound</Code><Message>m</Message></Error>'
    ok = Response(
        404, "", {"x-ms-error-code": "BlobNotFound", "content-type": "application/xml"}, xml
    )
    assert error_shape_problem("GET", ok) is None
    no_code = Response(404, "", {"content-type": "application/xml"}, xml)
    assert "without x-ms-error-code" in (error_shape_problem("GET", no_code) or "")
    plain = Response(
        500, "", {"x-ms-error-code": "InternalError", "content-type": "text/plain"}, b"oops"
    )
    assert error_shape_problem("GET", plain)
    assert error_shape_problem("HEAD", Response(404, "", {"x-ms-error-code": "X"}, b"")) is None


@pytest.mark.conformance
def test_gate_passes_100_percent_on_reference(tmp_path: Path) -> None:
    run = run_target("reference", tmp_path / "reference")
    failed = [
        f"{r.id}: expected {r.expected} | observed {r.observed}"
        for r in run.results
        if r.status != PASS
    ]
    assert not failed, "\n".join(failed)
    assert run.count(SKIP) == 0
    assert len(run.results) >= 150

    paths = write_outputs([run], tmp_path / "out")
    junit = build_junit([run]).getroot()
    suite = junit.find("testsuite")
    assert suite is not None and suite.get("failures") == "0"
    assert int(suite.get("tests") or 0) == len(run.results)
    html = paths["html"].read_text()
    assert "List Blobs" in html and "throttle.server-busy" in html


@pytest.mark.conformance
def test_a_broken_expectation_is_reported_with_expected_and_observed(tmp_path: Path) -> None:
    run = run_target("reference", tmp_path / "reference", only=("put-blob.status",))
    assert [r.status for r in run.results] == [PASS]
    html = render_html([run])
    assert "put-blob.status" in html
    # The same check against a port where nothing listens fails with the reason, not a crash.
    from harness.conformance.suite import run_checks
    from harness.targets.base import Endpoint, free_port
    from reference_server.config import DEV_ACCOUNT, DEV_KEY

    dead = Endpoint(
        "url", DEV_ACCOUNT, f"http://127.0.0.1:{free_port()}/{DEV_ACCOUNT}", key=DEV_KEY
    )
    broken = run_checks(dead, only=("put-blob.status",))
    assert broken.results[0].status == FAIL
    assert "ConnectionRefusedError" in broken.results[0].observed
    # an operation with no passing check reads "1 fail 0/1" in the matrix, not "1 fail /1"
    matrix = lxml.html.fromstring(render_html([broken]))
    cell = next(
        td for td in matrix.iter("td") if "fail" in td.text_content() and "/" in td.text_content()
    )
    assert cell.text_content().strip() == "1 fail 0/1"


def test_an_only_that_matches_no_check_is_bad_input(tmp_path: Path) -> None:
    from click.testing import CliRunner

    from harness.cli import main

    result = CliRunner().invoke(main, ["conformance", "--only", "put-blbo", "--out", str(tmp_path)])
    assert result.exit_code == 2  # not 0 after running nothing
    assert "--only put-blbo: no check matches; groups: " in result.output
    assert "Put Blob" in result.output and not list(tmp_path.iterdir())
