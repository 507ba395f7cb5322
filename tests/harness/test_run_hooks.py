"""Run hooks, the step's container created once by the runner, downloads verified by the runner
(never by a driver), and the SDK driver's workloads."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from harness import scenario
from harness.contract.proxy import Call
from harness.contract.record import ContractRecorder, is_harness_call
from harness.datasets import generate_dataset
from harness.drivers.base import Driver, StepContext
from harness.drivers.sdk import SdkAioDriver, SdkDriver
from harness.http import BlobHttp
from harness.results import StepResult
from harness.runner import Execution, RunHook, Runner, run_step
from harness.targets.base import Endpoint
from harness.tools import Tool

SCENARIO = """\
name: hooks
datasets:
  - {name: d, seed: 3, files: [{count: 3, size: 2KiB}]}
steps:
  - {name: probe, driver: DRIVER, operation: list, container: made-by-runner}
"""


class ContainerProbe(Driver):
    """Reports, as its objects, whether the step's container existed when the client started."""

    name = "container-probe"
    operations = ("list",)
    tool = Tool("container-probe", distributions=("pytest",))

    def needs_container(self, ctx: StepContext) -> bool:
        return True

    def run(self, ctx: StepContext) -> StepResult:
        ep = ctx.endpoint
        http = BlobHttp(ep.blob_url, ep.account, ep.key)
        try:
            status = http.request("GET", ctx.container, query={"restype": "container"}).status
        finally:
            http.close()
        return ctx.result(driver=self.name, objects=int(status == 200))


class Trace(RunHook):
    def __init__(self, wants_container: bool) -> None:
        self.events: list[str] = []
        self.wants_container = wants_container

    def on_targets_started(self, runner: Runner) -> None:
        self.events.append(f"started {sorted(runner.targets)}")

    def on_step(self, ex: Execution, ctx: StepContext, driver: Driver) -> bool:
        self.events.append(f"step {ex.step.name} {driver.name}")
        return self.wants_container

    def after_step(
        self, ex: Execution, ctx: StepContext, driver: Driver, result: StepResult
    ) -> None:
        self.events.append(f"after {ex.step.name} ok={result.ok} objects={result.objects}")

    def on_targets_stopping(self, runner: Runner) -> None:
        self.events.append("stopping")

    def on_finish(self, runner: Runner, run_info: dict[str, Any]) -> None:
        self.events.append("finish")
        run_info["trace"] = list(self.events)


def _runner(tmp_path: Path, driver: str, hooks: list[RunHook]) -> Runner:
    (tmp_path / "s.yaml").write_text(SCENARIO.replace("DRIVER", "sdk"))
    sc = scenario.load(tmp_path / "s.yaml")
    sc.steps[0].driver = driver
    return Runner(sc, out=tmp_path / "reports", cache_dir=tmp_path / "cache", hooks=hooks)


def test_hooks_ride_along_and_the_container_is_created_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from harness import runner as runner_mod

    created: list[str] = []
    real_ensure = runner_mod.ensure_container

    def counting(endpoint: Endpoint, container: str) -> None:
        created.append(container)
        real_ensure(endpoint, container)

    monkeypatch.setattr(runner_mod, "ensure_container", counting)
    real = runner_mod.make_driver
    monkeypatch.setattr(
        runner_mod, "make_driver", lambda n: ContainerProbe() if n == "container-probe" else real(n)
    )
    trace = Trace(wants_container=True)
    runner = _runner(tmp_path, "container-probe", [trace])
    outcome = runner.run()
    assert outcome.exit_code == 0, outcome.notes
    # both the driver and the hook asked for the container: it was created once, before the
    # client ran (the client found it: objects == 1)
    assert created == ["made-by-runner"]
    assert trace.events == [
        "started ['reference']",
        "step probe container-probe",
        "after probe ok=True objects=1",
        "stopping",
        "finish",
    ]
    run_info = json.loads((outcome.run_dir / "run.json").read_text())
    assert run_info["trace"] == trace.events
    assert run_info["contract"]["recorded"] is False  # no recorder among the hooks


@pytest.mark.sdk
def test_recorded_step_reaches_its_target_through_the_proxy_and_is_timed_by_it(
    tmp_path: Path,
) -> None:
    recorder = ContractRecorder()
    runner = _runner(tmp_path, "sdk", [recorder])
    outcome = runner.run()
    assert outcome.exit_code == 0, outcome.notes
    calls = recorder.calls()
    # the SDK's own calls of the step, nothing of the runner's container creation
    assert calls and {c.tool for c in calls} == {"sdk"} and {c.step for c in calls} == {"probe"}
    assert not any(c.method == "PUT" and ("restype", "container") in c.query for c in calls)
    row = outcome.results.iloc[0]
    assert row.extra["proxy_calls"] == len(calls)
    assert row.clock == "wall"  # the SDK's own clock is kept: it is not proxy-timed
    assert json.loads((outcome.run_dir / "run.json").read_text())["contract"]["recorded"]


def test_sdk_calls_are_the_labs_own_only_around_a_non_sdk_tool() -> None:
    sdk_call = Call("GET", "/a/c", "h", [], {"user-agent": "azsdk-python-storage-blob/12"}, 200)
    azcopy_call = Call("PUT", "/a/c/b", "h", [], {"user-agent": "AzCopy/10.32.2"}, 201)
    assert is_harness_call(sdk_call, "")  # e.g. the first-object probe during an AzCopy step
    assert not is_harness_call(sdk_call, SdkDriver.user_agent)
    assert not is_harness_call(azcopy_call, "")


class WrongDownloader(Driver):
    """Downloads every file of the dataset but corrupts the first one."""

    name = "wrong-downloader"
    operations = ("download",)
    tool = Tool("wrong-downloader", distributions=("pytest",))

    def run(self, ctx: StepContext) -> StepResult:
        assert ctx.dataset is not None and ctx.local_dir is not None
        for i, entry in enumerate(ctx.dataset.files):
            body = (ctx.dataset.root / entry.path).read_bytes()
            path = ctx.local_dir / entry.path
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(b"x" + body[1:] if i == 0 else body)
        return ctx.result(driver=self.name, objects=ctx.dataset.count)


def _download_ctx(tmp_path: Path, **options: Any) -> StepContext:
    spec = {"name": "d", "seed": 3, "files": [{"count": 3, "size": 2048}]}
    dataset = generate_dataset(spec, tmp_path / "cache")
    endpoint = Endpoint("reference", "acct", "http://127.0.0.1:9/acct", key=None)
    return StepContext(
        scenario="s",
        step="down",
        operation="download",
        endpoint=endpoint,
        container="ct",
        workdir=tmp_path / "w",
        dataset=dataset,
        options=options,
    )


def test_downloads_are_verified_by_the_runner_not_the_driver(tmp_path: Path) -> None:
    ctx = _download_ctx(tmp_path)
    result = run_step(WrongDownloader(), ctx)
    assert not result.ok and result.error.startswith("verification failed: ")
    assert (result.verified_objects, result.failed) == (2, 1)
    assert result.extra["verify_mismatched"] == 1
    assert ctx.local_dir == ctx.workdir / "download" and ctx.local_dir.is_dir()  # kept

    unchecked = run_step(WrongDownloader(), _download_ctx(tmp_path / "2", verify=False))
    assert unchecked.ok and unchecked.verified_objects == 0


def _upload_ctx(tmp_path: Path, **options: Any) -> StepContext:
    ctx = _download_ctx(tmp_path, **options)
    ctx.operation = "upload"
    ctx.endpoint = Endpoint("reference", "acct", "http://127.0.0.1:9/acct", key="a2V5")
    return ctx


def test_checkpoint_is_a_workload_of_the_sync_sdk_driver_only(tmp_path: Path) -> None:
    SdkDriver().prepare(_upload_ctx(tmp_path, workload="checkpoint"))
    with pytest.raises(ValueError, match=r"sdk-aio has no workload 'checkpoint'; valid: none"):
        SdkAioDriver().prepare(_upload_ctx(tmp_path, workload="checkpoint"))
    with pytest.raises(ValueError, match=r"sdk has no workload 'restore'; valid: checkpoint"):
        SdkDriver().prepare(_upload_ctx(tmp_path, workload="restore"))
    listing = _upload_ctx(tmp_path, workload="checkpoint")
    listing.operation = "list"
    with pytest.raises(ValueError, match="checkpoint workload saves a dataset: operation upload"):
        SdkDriver().prepare(listing)


@pytest.mark.azcopy
def test_a_recorded_azcopy_upload_to_an_ip_host_gets_its_container_from_the_runner_alone(
    tmp_path: Path,
) -> None:
    (tmp_path / "s.yaml").write_text(
        "name: az-ip\ndatasets:\n  - {name: d, seed: 3, files: [{count: 3, size: 2KiB}]}\n"
        "steps:\n  - {name: up, driver: azcopy, operation: upload, dataset: d, container: new-ct}\n"
    )
    recorder = ContractRecorder()
    runner = Runner(
        scenario.load(tmp_path / "s.yaml"),
        out=tmp_path / "reports",
        cache_dir=tmp_path / "cache",
        hooks=[recorder],
    )
    outcome = runner.run()
    assert outcome.exit_code == 0, (outcome.notes, list(outcome.results.error))
    calls = recorder.calls()
    # AzCopy cannot create a container at an IP host; nothing but AzCopy went through the proxy
    assert calls and all(c.headers["user-agent"].startswith("AzCopy") for c in calls)
    assert not [c for c in calls if ("restype", "container") in c.query and c.method == "PUT"]
    row = outcome.results.iloc[0]
    assert (row.objects, row.verified_objects) == (3, 3) and row.clock == "proxy"
