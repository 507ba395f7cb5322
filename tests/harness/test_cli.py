"""The CLI's commands and exit codes: 0 all passed, 1 a step or criterion failed, 2 bad input."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from harness.cli import main

TINY = """\
name: cli-tiny
description: one SDK upload and list
datasets:
  - name: d
    files:
      - {count: 3, size: 8KiB}
steps:
  - {driver: sdk, operation: upload, dataset: d, prefix: c}
  - {driver: sdk, operation: list, prefix: c}
criteria:
  - {step: sdk-list, expect: objects == 3}
"""


@pytest.fixture
def cli() -> CliRunner:
    return CliRunner()


@pytest.fixture
def tiny(tmp_path: Path) -> Path:
    path = tmp_path / "tiny.yaml"
    path.write_text(TINY)
    return path


def test_help_explains_every_command(cli: CliRunner) -> None:
    result = cli.invoke(main, ["--help"])
    assert result.exit_code == 0
    for command in ("run", "list", "report", "validate", "serve"):
        assert f"  {command} " in result.output
    assert "Exit status: 0 all passed, 1 a step or criterion failed, 2 bad input" in result.output
    run_help = cli.invoke(main, ["run", "--help"]).output
    assert (
        "--target [reference|azurite|url|inventory]" in run_help
        and "AZURE_STORAGE_SAS_TOKEN" in run_help
    )


def test_list_and_validate_shipped(cli: CliRunner) -> None:
    listed = cli.invoke(main, ["list"])
    assert listed.exit_code == 0 and "smoke " in listed.output
    valid = cli.invoke(main, ["validate", "smoke"])
    assert valid.exit_code == 0 and "valid scenario 'smoke', 20 steps" in valid.output


def test_invalid_scenario_exits_2_naming_file_line_field(
    cli: CliRunner, tiny: Path, tmp_path: Path
) -> None:
    tiny.write_text(TINY.replace("count: 3", "count: three"))
    for args in (["validate", str(tiny)], ["run", str(tiny), "--out", str(tmp_path / "out")]):
        result = cli.invoke(main, args)
        assert result.exit_code == 2
        assert (
            f"{tiny}:6: datasets[0].files[0].count: Input should be a valid integer"
            in result.output
        )
    assert not (tmp_path / "out").exists()  # refused before anything ran
    assert cli.invoke(main, ["validate", "no-such"]).exit_code == 2
    assert cli.invoke(main, ["run", "smoke", "--set", "steps.0.concurrency=x"]).exit_code == 2


@pytest.mark.sdk
def test_run_exit_codes_and_report_commands(cli: CliRunner, tiny: Path, tmp_path: Path) -> None:
    out = tmp_path / "reports"
    passed = cli.invoke(main, ["run", str(tiny), "--out", str(out), "--sample-interval", "0.2"])
    assert passed.exit_code == 0, passed.output
    last = passed.output.strip().splitlines()[-1]
    assert last.startswith("report: ")
    report = Path(last.removeprefix("report: "))
    assert report.is_file() and report.parent.parent == out
    assert "verdict: PASS" in passed.output

    failed = cli.invoke(
        main, ["run", str(tiny), "--out", str(out), "--set", "criteria.0.expect=objects == 4"]
    )
    assert failed.exit_code == 1, failed.output
    assert "verdict: FAIL" in failed.output

    runs = sorted(p for p in out.iterdir() if p.is_dir())
    assert len(runs) == 2
    again = cli.invoke(main, ["report", str(runs[0])])
    assert again.exit_code == 0 and f"report: {runs[0] / 'report.html'}" in again.output
    both = cli.invoke(main, ["report", str(runs[0]), str(runs[1]), "--out", str(tmp_path / "c")])
    assert both.exit_code == 1  # one of the two runs failed
    assert (tmp_path / "c" / "report.html").is_file() and "side by side" in both.output
    assert cli.invoke(main, ["report", str(tmp_path)]).exit_code == 2  # not a run directory


def test_url_target_needs_an_endpoint(
    cli: CliRunner, tiny: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("AZURE_STORAGE_CONNECTION_STRING", raising=False)
    result = cli.invoke(main, ["run", str(tiny), "--target", "url"])
    assert result.exit_code == 2 and "--endpoint" in result.output


def test_serve_delegates_to_the_reference_server(cli: CliRunner) -> None:
    result = cli.invoke(main, ["serve", "--help"])
    assert result.exit_code == 0
    assert "--data-root" in result.output and "--max-inflight" in result.output


def test_url_target_without_credentials_says_so_first(
    cli: CliRunner, tiny: Path, tmp_path: Path, shared_server, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("AZURE_STORAGE_CONNECTION_STRING", "AZURE_STORAGE_KEY", "AZURE_STORAGE_SAS_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    args = ["run", str(tiny), "--target", "url", "--endpoint", shared_server.account_url]
    result = cli.invoke(main, [*args, "--out", str(tmp_path), "--no-contract"])
    # The preflight's anonymous request is refused, so the run stops before its first step.
    assert result.exit_code == 2
    assert result.output.startswith(f"warning: no credentials for {shared_server.account_url}")
    assert "NoAuthenticationInformation" in result.output
