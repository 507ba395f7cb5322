"""Fail fast, name the endpoint: a target that cannot answer an authenticated request ends the
run before its first step (exit 2) with the user's URL, the status and x-ms-error-code, and the
report of that run says so instead of showing empty tables and charts."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import lxml.html
import pytest
from click.testing import CliRunner

from harness.cli import main
from harness.targets.base import Endpoint, free_port
from harness.targets.preflight import PreflightError, preflight
from harness.targets.reference import ReferenceTarget
from reference_server.auth.sas import generate_account_sas
from reference_server.config import DEV_ACCOUNT, DEV_KEY

SCENARIO = """\
name: preflight-check
datasets:
  - name: d
    seed: 3
    files:
      - {count: 2, size: 4KiB}
steps:
  - {name: up, driver: sdk, operation: upload, dataset: d, prefix: p}
  - {name: ls, driver: sdk, operation: list, prefix: p}
criteria:
  - expect: max(failed) == 0
  - {step: ls, expect: objects == 2}
"""
WRONG_KEY = base64.b64encode(b"w" * 64).decode()


@pytest.fixture(scope="module")
def facade(tmp_path_factory: pytest.TempPathFactory):
    target = ReferenceTarget()
    target.start(tmp_path_factory.mktemp("facade"))
    yield target
    target.stop()


def _run(tmp_path: Path, url: str, key: str, *extra: str) -> tuple[int, str, Path]:
    (tmp_path / "s.yaml").write_text(SCENARIO)
    env = {"AZURE_STORAGE_KEY": key, "AZURE_STORAGE_CONNECTION_STRING": ""}
    result = CliRunner(env=env).invoke(
        main,
        ["run", str(tmp_path / "s.yaml"), "--target", "url", "--endpoint", url,
         "--out", str(tmp_path / "reports"), *extra],
        catch_exceptions=False,
    )  # fmt: skip
    (run_dir,) = (tmp_path / "reports").iterdir()
    return result.exit_code, result.output, run_dir


def test_preflight_names_a_closed_port() -> None:
    url = f"http://127.0.0.1:{free_port()}/{DEV_ACCOUNT}"
    with pytest.raises(PreflightError) as caught:
        preflight("url", Endpoint("url", DEV_ACCOUNT, url, key=DEV_KEY), timeout_s=2)
    assert str(caught.value).startswith(f"preflight of target url at {url} failed: TCP connect")
    assert caught.value.status is None


def test_preflight_reports_status_and_error_code(facade: ReferenceTarget) -> None:
    good = facade.endpoint()
    assert preflight("reference", good)["status"] == 200
    bad = Endpoint("reference", DEV_ACCOUNT, good.blob_url, key=WRONG_KEY)
    with pytest.raises(PreflightError) as caught:
        preflight("reference", bad)
    assert (caught.value.status, caught.value.code) == (403, "AuthenticationFailed")
    assert "Get Account Information answered 403 AuthenticationFailed" in str(caught.value)
    # A SAS that authenticates is no configuration error, whatever it covers: Get Account
    # Information answers any valid SAS, as Azure does.
    scoped = generate_account_sas(
        DEV_ACCOUNT,
        DEV_KEY,
        resource_types="o",
        permissions="r",
        expiry=datetime.now(UTC) + timedelta(hours=1),
    ).lstrip("?")
    answer = preflight("reference", Endpoint("reference", DEV_ACCOUNT, good.blob_url, sas=scoped))
    assert answer["ok"] and (answer["status"], answer["code"]) == (200, None)
    anonymous = Endpoint("reference", DEV_ACCOUNT, good.blob_url)
    with pytest.raises(PreflightError, match=r"401 NoAuthenticationInformation.*no credentials"):
        preflight("reference", anonymous)


@pytest.mark.sdk
def test_unreachable_endpoint_ends_the_run_with_exit_2_and_a_report(tmp_path: Path) -> None:
    url = f"http://127.0.0.1:{free_port()}/{DEV_ACCOUNT}"
    code, output, run_dir = _run(tmp_path, url, DEV_KEY)
    assert code == 2, output
    assert f"preflight of target url at {url} failed: TCP connect" in output
    info = json.loads((run_dir / "run.json").read_text())
    assert info["exit_code"] == 2 and info["executions_run"] == 0
    assert info["preflight"]["url"]["url"] == url
    assert info["first_failure"].startswith(f"preflight of target url at {url} failed")
    assert [v["errored"] for v in info["verdicts"]] == [True, True]
    assert info["contract"]["checked"] is False
    page = lxml.html.parse(str(run_dir / "report.html")).getroot()
    first = page.get_element_by_id("first-failure").text_content()
    assert "What failed first:" in first and url in first
    cells = [
        tr.xpath("td")[5].text_content() for tr in page.xpath("//table[@id='criteria']//tbody/tr")
    ]
    assert cells == ["ERROR", "ERROR"]
    assert "This scenario defines no criteria" not in page.text_content()
    assert page.get_element_by_id("drift-status").text_content().strip() == "not checked"
    assert page.xpath("//img") == []  # no empty charts
    assert page.get_element_by_id("no-steps").text_content() == "No step ran."
    assert page.xpath("//table[@id='summary']") == []  # no empty table either
    # the terminal says the same, without an empty summary grid
    assert "no step ran" in output and "what failed first:" in output
    assert "MiB/s" not in output


@pytest.mark.sdk
def test_a_wrong_key_names_the_users_endpoint_not_the_proxys(
    tmp_path: Path, facade: ReferenceTarget
) -> None:
    url = facade.endpoint().blob_url
    code, output, run_dir = _run(tmp_path, url, WRONG_KEY)
    assert code == 2, output
    assert (
        f"preflight of target url at {url} failed: Get Account Information answered 403 "
        "AuthenticationFailed" in output.replace("\n", " ")
    )
    info = json.loads((run_dir / "run.json").read_text())
    assert info["preflight"]["url"]["status"] == 403
    assert info["preflight"]["url"]["code"] == "AuthenticationFailed"


def test_step_errors_name_the_users_endpoint_behind_the_recording_proxy() -> None:
    from harness.runner import _name_user_endpoint

    behind = Endpoint(
        "url",
        DEV_ACCOUNT,
        f"http://127.0.0.1:43635/{DEV_ACCOUNT}",
        origin_url=f"http://127.0.0.1:44255/{DEV_ACCOUNT}",
    )
    error = (
        f"endpoint http://127.0.0.1:43635/{DEV_ACCOUNT} has neither a key nor a SAS; "
        "dial tcp 127.0.0.1:43635: connection refused"
    )
    assert _name_user_endpoint(error, behind) == (
        f"endpoint http://127.0.0.1:44255/{DEV_ACCOUNT} has neither a key nor a SAS; "
        "dial tcp 127.0.0.1:44255: connection refused"
    )
    assert behind.display_url.endswith(":44255/devstoreaccount1")


def test_a_recorded_step_knows_the_users_endpoint(tmp_path: Path) -> None:
    from harness import scenario
    from harness.contract.record import ContractRecorder
    from harness.runner import Runner

    (tmp_path / "s.yaml").write_text(SCENARIO)
    runner = Runner(
        scenario.load(tmp_path / "s.yaml"), out=tmp_path / "reports", hooks=[ContractRecorder()]
    )
    runner.run_dir.mkdir(parents=True)
    try:
        runner._start_targets()
        ex = runner.executions[0]
        ctx = runner._context(ex, tmp_path / "w")
        runner._before_step(ex, ctx, runner._driver(ex.step.driver))
        direct = runner.targets["reference"].endpoint().blob_url
        assert ctx.endpoint.blob_url != direct  # the step talks to the recording proxy
        assert ctx.endpoint.origin_url == ctx.endpoint.display_url == direct
    finally:
        runner._stop_targets()
