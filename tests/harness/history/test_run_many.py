"""`harness run A B C`: every scenario checked first, each run in its own directory, the exit
status the worst of them."""

from __future__ import annotations

from pathlib import Path

from click.testing import CliRunner

from harness.cli import main

TINY = """\
name: {name}
description: one small SDK upload and list
repeats: 1
warmup: 0
datasets:
  - name: d
    files:
      - {{count: 2, size: 4KiB}}
steps:
  - {{driver: sdk, operation: upload, dataset: d, prefix: c}}
  - {{driver: sdk, operation: list, prefix: c}}
criteria:
  - {{step: sdk-list, expect: objects == {expect}}}
"""


def _scenario(tmp_path: Path, name: str, expect: int) -> str:
    path = tmp_path / f"{name}.yaml"
    path.write_text(TINY.format(name=name, expect=expect))
    return str(path)


def test_several_scenarios_each_run_and_the_worst_exit_wins(tmp_path: Path) -> None:
    good, bad = _scenario(tmp_path, "many-good", 2), _scenario(tmp_path, "many-bad", 3)
    out = tmp_path / "out"
    args = ["run", good, bad, "--out", str(out), "--no-contract", "--sample-interval", "0.5"]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 1, result.output
    runs = sorted(p.name.split("-", 1)[1] for p in out.iterdir())
    assert runs == ["many-bad", "many-good"]
    assert result.output.count("report: ") == 2
    lines = result.output.splitlines()
    assert any(x.startswith("many-good: exit 0 (") for x in lines)
    assert any(x.startswith("many-bad: exit 1 (") for x in lines)


def test_an_invalid_scenario_among_several_runs_none(tmp_path: Path) -> None:
    good = _scenario(tmp_path, "many-good", 2)
    broken = tmp_path / "broken.yaml"
    broken.write_text(TINY.format(name="broken", expect=2).replace("count: 2", "count: two"))
    out = tmp_path / "out"
    result = CliRunner().invoke(main, ["run", good, str(broken), "--out", str(out)])
    assert result.exit_code == 2
    assert "broken.yaml" in result.output and not out.exists()
