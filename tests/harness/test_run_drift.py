"""`harness run` records each tool's calls and reports drift from its locked contract."""

from __future__ import annotations

import json
from pathlib import Path

import lxml.html
import pytest
import yaml
from click.testing import CliRunner

from harness.cli import main
from harness.drivers import client_versions

pytestmark = [pytest.mark.sdk]

# Files larger than a small max_single_put_size go up as Put Block + Put Block List instead of
# one Put Blob: the same scenario then makes a changed call, as a new client release might.
SCENARIO = """\
name: drift-check
datasets:
  - name: d
    seed: 3
    files:
      - {count: 3, size: 16KiB}
steps:
  - {name: up, driver: sdk, operation: upload, dataset: d, prefix: drift, concurrency: 2}
  - {name: ls, driver: sdk, operation: list, prefix: drift}
"""

# A second scenario the contract is locked from along with the first (as the gate scenarios
# are): the locked contract is the merge of both, and a run of either still sees its drift.
OTHER = """\
name: drift-other
steps:
  - {name: ls-all, driver: sdk, operation: list}
"""


def _run(*args: str) -> tuple[int, str, Path]:
    result = CliRunner().invoke(main, list(args), catch_exceptions=False)
    report = next(
        line.split("report: ", 1)[1] for line in result.output.splitlines() if "report: " in line
    )
    return result.exit_code, result.output, Path(report).parent


@pytest.fixture(scope="module")
def workspace(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    base = tmp_path_factory.mktemp("drift")
    (base / "s.yaml").write_text(SCENARIO)
    (base / "other.yaml").write_text(OTHER)
    contracts = base / "contracts"
    locked = CliRunner().invoke(
        main,
        [
            "contract",
            "record",
            str(base / "s.yaml"),
            str(base / "other.yaml"),
            "--dir",
            str(contracts),
            "--out",
            str(base),
        ],
        catch_exceptions=False,
    )
    assert locked.exit_code == 0, locked.output
    return {"scenario": base / "s.yaml", "contracts": contracts, "out": base / "reports"}


def _args(ws: dict[str, Path], *extra: str) -> list[str]:
    return [
        "run",
        str(ws["scenario"]),
        "--out",
        str(ws["out"]),
        "--contracts",
        str(ws["contracts"]),
        *extra,
    ]


def test_an_unchanged_run_reports_no_drift(workspace: dict[str, Path]) -> None:
    slug = f"azure-storage-blob-{client_versions()['azure-storage-blob']}"
    assert (workspace["contracts"] / f"{slug}.yaml").is_file()
    code, output, run_dir = _run(*_args(workspace))
    assert code == 0, output
    assert f"no drift against {slug}" in output
    contract = json.loads((run_dir / "run.json").read_text())["contract"]
    [tool] = contract["tools"]
    assert contract["recorded"] and contract["drifted"] == 0
    assert tool["slug"] == tool["locked"] == slug and tool["lines"] == []
    assert tool["locked_from"] == "drift-check, drift-other" and tool["scoped"]
    assert tool["calls"] > 0
    ops = {
        op["operation"]: op
        for op in yaml.safe_load((workspace["contracts"] / f"{slug}.yaml").read_text())[
            "operations"
        ]
    }
    assert ops["Put Blob"]["scenarios"] == {"drift-check": ["up"]}
    assert ops["List Blobs"]["scenarios"] == {"drift-check": ["ls"], "drift-other": ["ls-all"]}


def test_a_changed_call_is_a_drift_line_in_the_summary_run_json_and_report(
    workspace: dict[str, Path],
) -> None:
    # The contract was locked from two scenarios; this run is one of them, so the operation it
    # no longer makes (Put Blob) is still reported as vanished.
    code, output, run_dir = _run(
        *_args(workspace, "--set", "steps.up.options.max_single_put_size=4096")
    )
    assert code == 0, output  # drift is reported, not a failed run
    expected = {
        "new-operation: Put Block (PUT /{container}/{blob})",
        "new-operation: Put Block List (PUT /{container}/{blob})",
        "vanished-operation: Put Blob",
    }
    for line in expected:
        assert line in output
    [tool] = json.loads((run_dir / "run.json").read_text())["contract"]["tools"]
    assert expected <= set(tool["lines"])
    doc = lxml.html.parse(str(run_dir / "report.html")).getroot()
    shown = {li.text_content() for li in doc.get_element_by_id("drift").iter("li")}
    assert expected <= shown
    assert doc.get_element_by_id("drift-status").text_content().strip() == "1 tool(s)"


def test_no_contract_runs_without_the_proxy(workspace: dict[str, Path]) -> None:
    code, output, run_dir = _run(*_args(workspace, "--no-contract"))
    assert code == 0, output
    assert "calls not recorded" in output
    info = json.loads((run_dir / "run.json").read_text())
    assert info["contract"]["recorded"] is False and info["source"]["contract"] is False


# A copy whose source is another target (hydrate: lake -> edge). The source must stay the lake
# itself, not the edge's recording proxy, or AzCopy lists a container the edge does not have.
CROSS_TARGET = """\
name: cross-target-copy
targets:
  lake: {kind: reference}
datasets:
  - name: d
    seed: 5
    files:
      - {count: 3, size: 16KiB}
steps:
  - {name: seed, driver: sdk, operation: upload, dataset: d, target: lake, container: lake-src}
  - name: pull
    driver: azcopy
    operation: copy
    source_target: lake
    source_container: lake-src
    container: edge-dst
  - {name: check, driver: sdk, operation: download, dataset: d, container: edge-dst}
criteria:
  - {step: pull, expect: objects == 3}
  - {step: check, expect: verified_objects == 3}
"""


@pytest.mark.azcopy
def test_a_copy_from_another_target_is_recorded_at_its_destination(tmp_path: Path) -> None:
    (tmp_path / "s.yaml").write_text(CROSS_TARGET)
    code, output, run_dir = _run("run", str(tmp_path / "s.yaml"), "--out", str(tmp_path))
    assert code == 0, output
    info = json.loads((run_dir / "run.json").read_text())
    assert all(v["passed"] for v in info["verdicts"]), info["verdicts"]
    azcopy = next(t for t in info["contract"]["tools"] if t["tool"] == "azcopy")
    assert azcopy["calls"] > 0  # the Put Blob From URL calls reached the edge's proxy


def test_drift_leaves_out_the_operations_of_steps_that_failed(workspace: dict[str, Path]) -> None:
    """`up` fails before its first Put Blob: that is no vanished operation of the SDK."""
    code, output, run_dir = _run(*_args(workspace, "--set", "steps.up.container=Not_A_Name"))
    assert code == 1, output
    contract = json.loads((run_dir / "run.json").read_text())["contract"]
    assert contract["checked"] is True and contract["steps"] == ["ls"]
    [tool] = contract["tools"]
    assert tool["partial"] and tool["scoped"]
    assert not [line for line in tool["lines"] if line.startswith("vanished-")], tool["lines"]
    assert "vanished-operation" not in output


def test_only_steps_keeps_the_operations_of_completed_steps() -> None:
    from harness.contract.model import Contract, Operation
    from harness.contract.record import only_steps

    ops = [
        Operation("Put Blob", "PUT", "/{container}/{blob}", scenarios={"s": ["up"]}),
        Operation("List Blobs", "GET", "/{container}", scenarios={"s": ["ls"], "o": ["x"]}),
        Operation("Get Blob", "GET", "/{container}/{blob}", scenarios={"o": ["get"]}),
    ]
    kept = only_steps(Contract("sdk", "1", ops, "s, o"), "s", {"ls"})
    assert [op.operation for op in kept.operations] == ["List Blobs", "Get Blob"]
