"""Verdicts never say more than was measured: a failed execution is no PASS, an upload is
verified against the manifest, a run that stopped still judges its criteria."""

from __future__ import annotations

import base64
import hashlib
from pathlib import Path

import pandas as pd

from harness import criteria
from harness.datasets import Dataset, ManifestEntry
from harness.results import StepResult
from harness.runner import results_frame
from harness.scenario import Criterion
from harness.verify import verify_listing


def _row(step: str, repeat: int, ok: bool = True, error: str | None = None) -> StepResult:
    return StepResult(
        scenario="s",
        step=step,
        driver="azcopy",
        operation="upload",
        target="url",
        repeat=repeat,
        ok=ok,
        error=error,
        objects=3 if ok else 0,
    )


def test_a_criterion_over_a_failed_execution_is_an_error_with_its_reason() -> None:
    """`failed` stays 0 in a step that failed before transferring: that is no PASS."""
    results = results_frame(
        [
            _row("up", 0, ok=False, error="endpoint refused the connection"),
            _row("up", 1),
            _row("ls", 0),
        ]
    )
    verdicts = criteria.evaluate([Criterion(expect="max(failed) == 0")], results)
    by_step = {v.step: v for v in verdicts}
    up, ls = by_step["up"], by_step["ls"]
    assert not up.passed and up.errored and up.status == "ERROR"
    assert up.observed is None
    assert up.evidence == (
        "not judged: 1 of 2 execution(s) failed (repeat 1): endpoint refused the connection"
    )
    assert ls.passed and ls.status == "PASS"
    assert up.to_dict()["errored"] is True


def test_criteria_of_a_run_that_never_reached_its_steps_are_errors() -> None:
    empty = results_frame([])
    crit = [Criterion(expect="max(failed) == 0"), Criterion(step="up", expect="objects >= 3")]
    verdicts = criteria.evaluate(crit, empty, not_run="preflight failed: 403")
    assert [(v.status, v.evidence) for v in verdicts] == [
        ("ERROR", "not run: preflight failed: 403"),
        ("ERROR", "not run: preflight failed: 403"),
    ]
    # Without a reason it stays what it was: a FAIL for a criterion that matched nothing.
    assert criteria.evaluate(crit, empty)[0].status == "FAIL"


def _dataset(tmp_path: Path, sizes: dict[str, bytes]) -> Dataset:
    entries = [
        ManifestEntry(
            path, len(data), hashlib.md5(data).hexdigest(), hashlib.sha256(data).hexdigest()
        )
        for path, data in sizes.items()
    ]
    return Dataset(name="d", root=tmp_path, files=entries)


def test_verify_listing_catches_short_and_wrong_objects(tmp_path: Path) -> None:
    data = {"a.bin": b"a" * 10, "d/b.bin": b"b" * 20, "c.bin": b"c" * 5, "e.bin": b"e" * 7}
    ds = _dataset(tmp_path, data)

    def md5(b: bytes) -> str:
        return base64.b64encode(hashlib.md5(b).digest()).decode()

    listing = [
        ("p/a.bin", 10, md5(data["a.bin"])),  # right size, right MD5
        ("p/d/b.bin", 19, None),  # short, no MD5 set by the tool
        ("p/c.bin", 5, md5(b"x" * 5)),  # right size, wrong bytes
        ("p/stray", 1, None),
    ]  # e.bin never landed
    check = verify_listing(listing, ds, prefix="p/")
    assert check.objects == 1 and check.bytes == 10
    assert check.mismatched == ["d/b.bin", "c.bin"] and check.missing == ["e.bin"]
    assert check.extra == ["stray"] and check.md5_checked == 2
    assert not check.ok


def test_junit_shows_unjudged_criteria_as_errors(tmp_path: Path) -> None:
    from harness.report import RunData
    from harness.report.junit import build_junit

    verdict = criteria.Verdict("c", "failed == 0", "up", "sdk", "url", None, False, "not run: x")
    verdict.errored = True
    info = {"verdicts": [verdict.to_dict()], "interrupted": True, "interrupted_by": "SIGTERM"}
    data = RunData(tmp_path, results_frame([]), pd.DataFrame(), info)
    suite = build_junit(data).getroot().find("testsuite")
    assert suite is not None and suite.get("errors") == "1" and suite.get("failures") == "0"
    (error,) = suite.iter("error")
    assert error.get("message") == "not run: x" and error.get("type") == "CriterionNotJudged"
    props = {p.get("name"): p.get("value") for p in suite.iter("property")}
    assert props["run_status"] == "interrupted (SIGTERM)"
