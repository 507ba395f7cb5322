"""Record a scenario run's calls through the recording proxy; lock or diff contracts per tool."""

from __future__ import annotations

import dataclasses
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from harness.contract.model import Contract, Drift, diff, merge, summarize_calls
from harness.contract.proxy import Call, RecordingProxy, timing_of
from harness.contract.table import to_markdown
from harness.datasets import default_cache_dir
from harness.drivers.base import Driver, StepContext
from harness.labca import LabCA
from harness.metrics import latency_summary
from harness.paths import ROOT
from harness.results import StepResult
from harness.runner import Execution, RunHook, Runner, RunOutcome
from harness.scenario import Scenario
from harness.targets.base import Endpoint
from harness.targets.reference import TLS_NAMES

CONTRACTS_DIR = ROOT / "fixtures" / "contracts"
# The lab's own calls around a tool (the first-object probe) are made with the Python SDK: an
# SDK call during the step of a driver that is not itself SDK-based is not that tool's.
SDK_USER_AGENT = "azsdk-python-"


def is_harness_call(call: Call, tool_agent: str = "") -> bool:
    """Whether ``call``, made during a step of a tool whose requests carry ``tool_agent``, is
    the lab's own (an SDK call around a non-SDK tool)."""
    return not tool_agent.startswith(SDK_USER_AGENT) and call.headers.get(
        "user-agent", ""
    ).startswith(SDK_USER_AGENT)


def _proxy_tls(endpoint: Endpoint, directory: Path) -> tuple[Path, Path] | None:
    """A certificate from the target's lab CA for an https target, so the tools under test speak
    https to the recording proxy as they would to the target (None: plain http to the proxy)."""
    ca = LabCA.of_bundle(endpoint.ca_bundle) if endpoint.ca_bundle else None
    if ca is None or not endpoint.blob_url.startswith("https:"):
        return None
    # the lab virtual hosts too: AzCopy by lab name reaches the proxy through a lab proxy
    return ca.issue(list(TLS_NAMES), directory)


def _identity_proxy(endpoint: Endpoint, directory: Path) -> RecordingProxy | None:
    """A recording proxy in front of the target's token service (``identity: true``), so the
    clients' token acquisition is part of their contract; None without one."""
    identity = endpoint.extra.get("identity")
    ca = LabCA.of_bundle(endpoint.ca_bundle) if endpoint.ca_bundle else None
    if not identity or ca is None:
        return None
    tls = ca.issue(["127.0.0.1", "localhost"], directory)
    return RecordingProxy(
        identity["authority"], ca_bundle=endpoint.ca_bundle, tls=tls, service="identity"
    )


def _through(endpoint: Endpoint, proxy: RecordingProxy) -> Endpoint:
    """``endpoint`` whose OAuth settings name ``proxy`` instead of the token service."""
    identity = endpoint.extra["identity"]
    env = {k: v.replace(identity["authority"], proxy.url) for k, v in identity["env"].items()}
    extra = {**endpoint.extra, "identity": {**identity, "authority": proxy.url, "env": env}}
    return dataclasses.replace(endpoint, extra=extra)


class ContractRecorder(RunHook):
    """A run hook that records the clients' calls: each recorded driver (``Driver.recorded``)
    reaches its target through a RecordingProxy, and run.json gets the drift of each tool's
    calls from its locked contract (``contracts_dir``)."""

    def __init__(self, contracts_dir: Path = CONTRACTS_DIR) -> None:
        self.contracts_dir = contracts_dir
        self.proxies: dict[str, RecordingProxy] = {}
        self.identity_proxies: dict[str, RecordingProxy] = {}  # target -> its token service's
        self.account: str | None = None
        self.agents: dict[str, str] = {}  # driver name -> the User-Agent its requests carry
        self._step_first_call = 0

    def on_targets_started(self, runner: Runner) -> None:
        for kind, target in runner.targets.items():
            endpoint = target.endpoint()
            self.account = self.account or endpoint.account
            tls = _proxy_tls(endpoint, runner.run_dir / "targets" / kind / "proxy-tls")
            proxy = RecordingProxy(endpoint.blob_url, ca_bundle=endpoint.ca_bundle, tls=tls)
            proxy.start()
            self.proxies[kind] = proxy
            identity = _identity_proxy(endpoint, runner.run_dir / "targets" / kind / "id-tls")
            if identity is not None:
                identity.start()
                self.identity_proxies[kind] = identity

    def on_step(self, ex: Execution, ctx: StepContext, driver: Driver) -> bool:
        if not driver.recorded:
            return False
        proxy = self.proxies[ex.target]
        proxy.phase, proxy.tool, proxy.step = ex.step.operation, driver.name, ex.step.name
        self.agents[driver.name] = driver.user_agent
        self._step_first_call = len(proxy.calls)
        # Only the destination goes through the proxy. A copy's source stays as it is: it may
        # be another target (a lake), and its reads are mostly the façade's own fetches of the
        # source URL, not calls of the tool under test.
        ctx.endpoint = dataclasses.replace(
            proxy.endpoint_for(ctx.endpoint), origin_url=ctx.endpoint.display_url
        )
        identity = self.identity_proxies.get(ex.target)
        if identity is not None:  # token requests of this step, labelled like its Blob calls
            identity.phase, identity.tool, identity.step = proxy.phase, proxy.tool, proxy.step
            ctx.endpoint = _through(ctx.endpoint, identity)
        # The container exists before the client runs: AzCopy does not create a missing one at
        # a path-style IP endpoint, and a tool's contract should not depend on which tool of a
        # scenario happened to run first.
        return True

    def after_step(
        self, ex: Execution, ctx: StepContext, driver: Driver, result: StepResult
    ) -> None:
        proxy = self.proxies.get(ex.target)
        if proxy is None or not driver.recorded:
            return
        calls = proxy.calls[self._step_first_call :]
        own = [c for c in calls if not is_harness_call(c, driver.user_agent)]
        apply_proxy_timing(result, own, driver.proxy_timed)

    def on_targets_stopping(self, runner: Runner) -> None:
        for proxy in [*self.proxies.values(), *self.identity_proxies.values()]:
            proxy.stop()

    def calls(self) -> list[Call]:
        proxies = [*self.proxies.values(), *self.identity_proxies.values()]
        return [c for p in proxies for c in p.calls]

    def tool_calls(self) -> list[Call]:
        """The recorded calls without the lab's own."""
        return [c for c in self.calls() if not is_harness_call(c, self.agents.get(c.tool, ""))]

    def on_finish(self, runner: Runner, run_info: dict[str, Any]) -> None:
        ran = completed_steps(runner)
        if not ran:
            run_info["contract"] = {
                "recorded": bool(self.proxies),
                "checked": False,
                "reason": "no step completed, so there are no calls to compare",
            }
            return
        complete = len(ran) == len({ex.step.name for ex in runner.executions})
        contracts = contracts_from(
            self.tool_calls(),
            run_info.get("tool_versions", {}),
            runner.scenario.name,
            runner.default_target,
            self.account,
        )
        run_info["contract"] = run_drift(
            contracts, runner.scenario.name, self.contracts_dir, None if complete else ran
        )


def completed_steps(runner: Runner) -> set[str]:
    """Steps whose every planned execution ran and succeeded: only their calls are expected of
    the tools (a failed or skipped step made few calls, or none)."""
    planned = Counter(ex.step.name for ex in runner.executions)
    ran = Counter(r.step for r in runner.results if r.ok)
    return {name for name, n in planned.items() if ran[name] == n}


def apply_proxy_timing(result: StepResult, calls: list[Call], proxy_timed: bool) -> None:
    """Time a step by what the recording proxy saw of it: per-request latency where the client
    gave none, and, for a driver whose own clock is coarse (``proxy_timed``), the span from
    first request to last response."""
    timing = timing_of(calls)
    if timing is None:
        return
    result.extra["proxy_calls"] = len(calls)
    result.extra["proxy_span_s"] = round(timing.span_s, 6)
    if result.p50_ms is None:
        for key, value in latency_summary(timing.latencies_ms).items():
            setattr(result, key, value)
        result.latency_clock = "proxy"
    if proxy_timed and result.ok and timing.span_s > 0:
        result.extra["wall_duration_s"] = result.duration_s
        result.duration_s = timing.span_s
        result.clock = "proxy"


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
    """One contract per tool from the tools' calls (the lab's own left out, see
    ``ContractRecorder.tool_calls``): drivers of one library (sdk, sdk-aio) share its contract."""
    by_tool: dict[tuple[str, str], list[Call]] = defaultdict(list)
    for call in calls:
        tool_versions = versions.get(call.tool) or {}
        tool, version = next(iter(tool_versions.items()), (call.tool, "unknown"))
        by_tool[(tool, version)].append(call)
    stamp = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    return [
        Contract(tool, version, summarize_calls(cs, account, scenario), scenario, stamp, target)
        for (tool, version), cs in sorted(by_tool.items())
    ]


def record_scenario(
    scenario: Scenario, out: Path, target: str | None = None, endpoint: str | None = None
) -> Recording:
    """Run ``scenario`` with every recorded driver behind the recording proxy."""
    recorder = ContractRecorder()
    runner = Runner(
        scenario,
        out=out,
        target=target,
        endpoint=endpoint,
        cache_dir=default_cache_dir(),
        hooks=[recorder],
    )
    outcome = runner.run()
    versions = {name: driver.versions() for name, driver in runner.drivers.items()}
    contracts = contracts_from(
        recorder.tool_calls(), versions, scenario.name, runner.default_target, recorder.account
    )
    return Recording(outcome, contracts, recorder.calls())


def merge_recordings(recordings: list[Recording]) -> list[Contract]:
    """One contract per tool version from several scenario recordings: what the tool did in
    each, merged (counts added, headers united, scenarios and steps kept per operation)."""
    by_slug: dict[str, list[Contract]] = defaultdict(list)
    for rec in recordings:
        for c in rec.contracts:
            by_slug[c.slug].append(c)
    return [merge(cs) for _, cs in sorted(by_slug.items())]


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


def only_steps(locked: Contract, scenario: str, steps: set[str]) -> Contract:
    """``locked`` without the operations that, in ``scenario``, only steps outside ``steps``
    made: those are not expected of a run in which those steps did not complete."""
    kept = [
        op
        for op in locked.operations
        if scenario not in op.scenarios or set(op.scenarios[scenario]) & steps
    ]
    return dataclasses.replace(locked, operations=kept)


def drift_report(
    contracts: list[Contract],
    directory: Path = CONTRACTS_DIR,
    partial: bool = False,
    scenario: str | None = None,
    ran_steps: set[str] | None = None,
) -> dict[str, list[Drift]]:
    """tool slug -> drift lines against its locked contract (an unlocked tool is one line).

    ``ran_steps`` (with ``scenario``): the steps that completed; operations only other steps of
    the scenario made are not expected."""
    report: dict[str, list[Drift]] = {}
    for observed in contracts:
        locked = locked_for(observed.tool, observed.version, directory)
        if locked is not None and scenario and ran_steps is not None:
            locked = only_steps(locked, scenario, ran_steps)
        if locked is None:
            report[observed.slug] = [
                Drift("unlocked-tool", observed.tool, f"no contract under {directory}")
            ]
            continue
        lines = diff(locked, observed, partial=partial, scenario=scenario)
        if locked.version != observed.version:
            lines.insert(
                0, Drift("new-version", observed.tool, f"{locked.version} -> {observed.version}")
            )
        report[observed.slug] = lines
    return report


def run_drift(
    contracts: list[Contract],
    scenario: str,
    directory: Path = CONTRACTS_DIR,
    ran_steps: set[str] | None = None,
) -> dict[str, Any]:
    """run.json's ``contract`` section: per tool, its drift lines from the locked contract, or
    the one line "no drift against <tool>-<version>".

    The diff is full when the contract was locked from this scenario alone. When it was
    locked from several, this one among them, the run exercised part of the tool's usage:
    vanished headers and parameters are not reported, but an operation the contract records
    for this scenario that the run no longer made is. A contract locked from other scenarios
    only gets new operations, headers, parameters and values reported.

    ``ran_steps``, for a run in which some steps failed or never ran: the steps that completed.
    The diff is then partial, and only the operations those steps made are expected."""
    tools = []
    for observed in contracts:
        locked = locked_for(observed.tool, observed.version, directory)
        partial = locked is not None and (locked.scenarios != [scenario] or ran_steps is not None)
        scoped = partial and locked is not None and scenario in locked.scenarios
        lines = [
            d.line()
            for d in drift_report(
                [observed],
                directory,
                partial=partial,
                scenario=scenario if scoped else None,
                ran_steps=ran_steps if scoped else None,
            )[observed.slug]
        ]
        tools.append(
            {
                "tool": observed.tool,
                "version": observed.version,
                "slug": observed.slug,
                "locked": locked.slug if locked else None,
                "locked_from": locked.scenario if locked else None,
                "partial": partial,
                "scoped": scoped,
                "calls": sum(op.count for op in observed.operations),
                "operations": len(observed.operations),
                "lines": lines,
                "summary": (
                    f"{observed.slug}: {len(lines)} drift line(s) against "
                    f"{locked.slug if locked else 'no locked contract'}"
                    if lines
                    else f"no drift against {locked.slug if locked else observed.slug}"
                ),
            }
        )
    return {
        "recorded": True,
        "checked": True,
        "steps": sorted(ran_steps) if ran_steps is not None else "all",
        "directory": str(directory),
        "drifted": sum(1 for t in tools if t["lines"]),
        "tools": tools,
        "note": (
            "Client calls went through a loopback recording proxy (one extra local hop in the "
            "measurements; `harness run --no-contract` measures without it) and were diffed "
            f"against the contracts locked in {directory}. A partial diff (the run exercised "
            "part of the usage a contract was locked from) does not report vanished headers "
            "or parameters, and reports vanished operations only among those the contract "
            "records for this scenario. Locust steps are not recorded: their requests are the "
            "lab's own."
        ),
    }
