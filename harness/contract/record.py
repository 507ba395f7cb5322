"""Record a scenario run's calls through the recording proxy; lock or diff contracts per tool."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from harness.contract.model import Contract, Drift, diff, summarize_calls
from harness.contract.proxy import Call, RecordingProxy
from harness.contract.table import to_markdown
from harness.drivers.base import StepContext
from harness.http import BlobHttp
from harness.runner import Execution, Runner, RunOutcome
from harness.targets.base import Endpoint

ROOT = Path(__file__).resolve().parents[2]
CONTRACTS_DIR = ROOT / "fixtures" / "contracts"


class RecordingRunner(Runner):
    """A scenario Runner whose drivers reach each target through a RecordingProxy."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.proxies: dict[str, RecordingProxy] = {}
        self.tools: dict[str, str] = {}  # driver name -> "tool version" key

    def _start_targets(self) -> None:
        super()._start_targets()
        for kind, target in self.targets.items():
            proxy = RecordingProxy(target.endpoint().blob_url)
            proxy.start()
            self.proxies[kind] = proxy

    def _stop_targets(self) -> dict:
        for proxy in self.proxies.values():
            proxy.stop()
        return super()._stop_targets()

    def _context(self, ex: Execution, workdir: Path) -> StepContext:
        ctx = super()._context(ex, workdir)
        self._ensure_container(ctx.endpoint, ctx.container)
        proxy = self.proxies[ex.target]
        proxy.phase = ex.step.operation
        proxy.tool = ex.step.driver
        proxied = proxy.endpoint_for(ctx.endpoint)
        if ctx.source_endpoint is not None:
            ctx.source_endpoint = proxied
        ctx.endpoint = proxied
        return ctx

    def _ensure_container(self, endpoint: Endpoint, container: str) -> None:
        """Create the step's container directly on the target (not recorded): AzCopy does not
        create a missing container at a path-style IP endpoint, and a tool's contract should
        not depend on which tool of a scenario happened to run first."""
        if not endpoint.key:
            return
        http = BlobHttp(endpoint.blob_url, endpoint.account, endpoint.key)
        try:
            http.request("PUT", container, query={"restype": "container"})  # 201 or 409
        finally:
            http.close()

    def calls(self) -> list[Call]:
        return [c for p in self.proxies.values() for c in p.calls]


@dataclass
class Recording:
    outcome: RunOutcome
    contracts: list[Contract]
    calls: list[Call] = field(default_factory=list)


def contracts_from(
    calls: list[Call],
    versions: dict[str, dict[str, str]],
    scenario: str,
    target: str,
    account: str | None,
) -> list[Contract]:
    """One contract per tool: drivers of one library (sdk, sdk-aio) share the library's."""
    by_tool: dict[tuple[str, str], list[Call]] = defaultdict(list)
    for call in calls:
        tool_versions = versions.get(call.tool) or {}
        tool, version = next(iter(tool_versions.items()), (call.tool, "unknown"))
        by_tool[(tool, version)].append(call)
    stamp = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    return [
        Contract(tool, version, summarize_calls(cs, account), scenario, stamp, target)
        for (tool, version), cs in sorted(by_tool.items())
    ]


def record_scenario(
    scenario, out: Path, target: str | None = None, endpoint: str | None = None
) -> Recording:
    """Run ``scenario`` with every driver behind the recording proxy."""
    runner = RecordingRunner(scenario, out=out, target=target, endpoint=endpoint)
    outcome = runner.run()
    versions = {name: driver.versions() for name, driver in runner.drivers.items()}
    account = (
        next((t.endpoint().account for t in runner.targets.values()), None)
        if runner.targets
        else None
    )
    contracts = contracts_from(
        runner.calls(), versions, scenario.name, runner.default_target, account
    )
    return Recording(outcome, contracts, runner.calls())


def lock(contract: Contract, directory: Path = CONTRACTS_DIR) -> tuple[Path, Path]:
    """Write <tool>-<version>.yaml and its Markdown table."""
    yaml_path = contract.save(directory)
    md_path = directory / f"{contract.slug}.md"
    md_path.write_text(to_markdown(contract), encoding="utf-8")
    return yaml_path, md_path


def locked_for(tool: str, version: str, directory: Path = CONTRACTS_DIR) -> Contract | None:
    """The locked contract of this tool version, else the newest locked one of the tool."""
    exact = directory / f"{tool}-{version}.yaml"
    if exact.is_file():
        return Contract.load(exact)
    others = sorted(directory.glob(f"{tool}-*.yaml"), key=lambda p: p.stat().st_mtime)
    return Contract.load(others[-1]) if others else None


def drift_report(
    contracts: list[Contract], directory: Path = CONTRACTS_DIR, partial: bool = False
) -> dict[str, list[Drift]]:
    """tool slug -> drift lines against its locked contract (an unlocked tool is one line)."""
    report: dict[str, list[Drift]] = {}
    for observed in contracts:
        locked = locked_for(observed.tool, observed.version, directory)
        if locked is None:
            report[observed.slug] = [
                Drift("unlocked-tool", observed.tool, f"no contract under {directory}")
            ]
            continue
        lines = diff(locked, observed, partial=partial)
        if locked.version != observed.version:
            lines.insert(
                0, Drift("new-version", observed.tool, f"{locked.version} -> {observed.version}")
            )
        report[observed.slug] = lines
    return report
