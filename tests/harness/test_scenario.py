"""Scenario schema: errors name file, line and field; overrides; shipped scenarios validate."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from harness import criteria, scenario
from harness.scenario import ScenarioError

GOOD = """\
name: tiny
description: two steps
datasets:
  - name: few
    files:
      - {count: 3, size: 4KiB}
steps:
  - driver: sdk
    operation: upload
    dataset: few
  - name: listing
    driver: sdk
    operation: list
    concurrency: 4
criteria:
  - expect: failed == 0
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "s.yaml"
    path.write_text(text)
    return path


def problems(path: Path, overrides: list[str] | None = None) -> list[str]:
    with pytest.raises(ScenarioError) as info:
        scenario.load(path, overrides)
    return info.value.problems


def test_valid_scenario_resolves_defaults(tmp_path: Path) -> None:
    sc = scenario.load(write(tmp_path, GOOD))
    assert [s.name for s in sc.steps] == ["sdk-upload", "listing"]
    assert sc.container == "tiny"
    assert all(s.container == "tiny" and s.repeats == 1 and s.warmup == 0 for s in sc.steps)
    assert sc.dataset("few").files[0].size == 4096


def test_wrong_type_names_file_line_and_field(tmp_path: Path) -> None:
    path = write(tmp_path, GOOD.replace("concurrency: 4", "concurrency: many"))
    (problem,) = problems(path)
    assert problem.startswith(f"{path}:14: steps[1].concurrency: Input should be a valid integer")


def test_unknown_driver_and_operation_list_the_valid_ones(tmp_path: Path) -> None:
    text = GOOD.replace(
        "  - driver: sdk\n    operation: upload", "  - driver: curl\n    operation: upload"
    )
    text = text.replace("operation: list", "operation: teleport")
    found = problems(write(tmp_path, text))
    assert any(
        ":8: steps[0].driver: unknown driver 'curl'; valid: " in p and "azcopy" in p for p in found
    )
    assert any(
        ":11: steps[1]: driver 'sdk' has no operation 'teleport'; valid: " in p and "upload" in p
        for p in found
    )


def test_cross_field_errors_point_at_their_lines(tmp_path: Path) -> None:
    text = GOOD.replace("    dataset: few", "    dataset: lots").replace(
        "  - expect: failed == 0", "  - expect: failed == 0\n    step: nope"
    )
    found = problems(write(tmp_path, text))
    assert any(":10: steps[0].dataset: unknown dataset 'lots'" in p for p in found)
    assert any(":17: criteria[0].step: unknown step 'nope'" in p for p in found)


def test_bad_criterion_and_bad_yaml(tmp_path: Path) -> None:
    found = problems(write(tmp_path, GOOD.replace("failed == 0", "import os")))
    assert any(":16: criteria[0].expect: cannot parse 'import os'" in p for p in found)
    found = problems(write(tmp_path, GOOD.replace("description: two steps", "description: [oops")))
    # nothing encloses an unclosed flow sequence: the key where it opened is named
    assert found[0].startswith(f"{tmp_path / 's.yaml'}:3: description (line 2): invalid YAML")


def test_bad_indentation_names_the_enclosing_field(tmp_path: Path) -> None:
    # a dataset file entry one column left of its siblings
    text = GOOD.replace("      - {count: 3, size: 4KiB}", "      - {count: 3}\n     - {count: 2}")
    (found,) = problems(write(tmp_path, text))
    assert found.startswith(f"{tmp_path / 's.yaml'}:7: datasets[0].files: invalid YAML")
    # a key indented deeper than its siblings: it ends up in the previous key's value
    text = GOOD.replace("    concurrency: 4", "      concurrency: 4")
    (found,) = problems(write(tmp_path, text))
    assert ":14: steps[1].operation: invalid YAML" in found
    # a key indented shallower than its siblings, inside a list item
    text = GOOD.replace("    concurrency: 4", "   concurrency: 4")
    (found,) = problems(write(tmp_path, text))
    assert ":14: steps[1]: invalid YAML" in found


def test_unknown_field_is_refused(tmp_path: Path) -> None:
    found = problems(write(tmp_path, GOOD.replace("    concurrency: 4", "    concurency: 4")))
    assert any(":14: steps[1].concurency: Extra inputs are not permitted" in p for p in found)


def test_overrides_by_index_and_by_name(tmp_path: Path) -> None:
    path = write(tmp_path, GOOD)
    sc = scenario.load(path, ["repeats=3", "steps.listing.concurrency=7", "steps.0.prefix=x"])
    assert sc.steps[1].concurrency == 7 and sc.steps[0].prefix == "x/"
    assert all(s.repeats == 3 for s in sc.steps)
    found = problems(path, ["steps.1.concurrency=lots"])
    assert "steps[1].concurrency: Input should be a valid integer" in found[0]
    assert problems(path, ["steps.9.concurrency=1"])[0].startswith("--set steps.9.concurrency=1")


def test_every_shipped_scenario_validates() -> None:
    shipped = {p.stem for p in scenario.shipped_scenarios()}
    assert {
        "smoke",
        "azcopy-gate",
        "sdk-gate",
        "boostedblob-gate",
        "rclone-gate",
        "compare-azurite",
    } <= shipped
    for name in shipped:
        scenario.load(name)
    smoke = scenario.load("smoke")
    assert {s.driver for s in smoke.steps} == {"azcopy", "sdk", "sdk-aio", "boostedblob", "rclone"}


def test_unknown_scenario_name_lists_the_shipped_ones() -> None:
    with pytest.raises(ScenarioError, match="smoke"):
        scenario.load("no-such-scenario")


# ------------------------------------------------------------------ criteria


def rows(step: str, values: list[dict]) -> pd.DataFrame:
    base = {
        "step": step,
        "driver": "sdk",
        "target": "reference",
        "warmup": False,
        "failed": 0,
        "throughput_mib_s": 0.0,
        "p99_ms": None,
        "extra": {},
    }
    return pd.DataFrame([{**base, **v} for v in values])


class Crit:
    def __init__(
        self,
        expect: str,
        step: str | None = None,
        driver: str | None = None,
        target: str | None = None,
    ) -> None:
        self.expect, self.step, self.driver, self.target = expect, step, driver, target
        self.label = expect


def test_criteria_use_the_median_of_measured_repeats() -> None:
    df = rows("up", [{"throughput_mib_s": v} for v in (100.0, 500.0, 450.0)])
    df = pd.concat([df, rows("up", [{"throughput_mib_s": 1.0, "warmup": True}])])
    (v,) = criteria.evaluate([Crit("throughput_mib_s >= 400")], df)
    assert v.passed and v.observed == 450.0 and "3 repeat(s)" in v.evidence
    (v,) = criteria.evaluate([Crit("min(throughput_mib_s) >= 400")], df)
    assert not v.passed and v.observed == 100.0


def test_criteria_scope_missing_kpis_and_extra_counters() -> None:
    df = pd.concat(
        [
            rows("a", [{"failed": 2, "extra": {"ServerBusyPercentage": 0.5}}]),
            rows("b", [{"failed": 0}]),
        ]
    )
    verdicts = criteria.evaluate([Crit("failed == 0")], df)
    assert [(v.step, v.passed, v.observed) for v in verdicts] == [
        ("a", False, 2.0),
        ("b", True, 0.0),
    ]
    (v,) = criteria.evaluate([Crit("p99_ms < 50", step="b")], df)
    assert not v.passed and v.observed is None and "not measured" in v.evidence
    (v,) = criteria.evaluate([Crit("extra.ServerBusyPercentage <= 1", step="a")], df)
    assert v.passed and v.observed == 0.5
    (v,) = criteria.evaluate([Crit("failed == 0", step="a", driver="azcopy")], df)
    assert not v.passed and v.evidence == "no measured results matched"


@pytest.mark.parametrize(
    "text",
    [
        "failed",
        "failed = 0",
        "__import__('os') == 0",
        "bogus < 1",
        "avg(failed) == 0",
        "failed == 0 or 1",
    ],
)
def test_criteria_parser_refuses_anything_else(text: str) -> None:
    with pytest.raises(ValueError):
        criteria.parse(text)
