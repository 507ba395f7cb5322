"""Scenario -> plan of executions -> StepResult rows, samples and a run directory.

One execution is one repeat (or warm-up) of one step by one driver against one target. Targets
are started once per run and always stopped, whatever happens (errors, Ctrl-C).

Every execution is bounded by its step's ``timeout`` here, and only here (drivers arm no timer):
the driver runs in a worker thread, and when it overruns, the runner kills the client's processes
(and stops an in-process client at its next progress report), then records the step as failed
with the reason. Downloads are verified against the manifest here too, never by the drivers.

``RunHook`` objects ride along a run (contract recording is one): they hear when the targets
are up, may re-point each step's context before its client runs, see each result, and add to
run.json.

Before the first step every target passes a preflight (TCP connect, one authenticated request):
a wrong port or key ends the run in seconds (exit 2) instead of failing every step after its
timeout. SIGTERM (what a CI timeout sends) is handled as Ctrl-C is: the running client's process
trees and every target are stopped, and the partial results are still written, marked
interrupted (exit 143, 130 for Ctrl-C).

The results table has one schema with three kinds of rows (``row_kind``): "step", one per
execution, "level", the per-level, per-operation rows a load driver reports in
``extra["levels"]`` (``level`` is the level's index), and "host", the per-host rows of a step
with ``hosts:`` (``extra["hosts"]``), whose client ran on an inventory's hosts
(``harness.cluster.remote``): the step row is their exact merge.
"""

from __future__ import annotations

import dataclasses
import json
import os
import platform
import shutil
import signal
import subprocess
import sys
import threading
import time
import traceback
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pandas as pd
import psutil
from rich.markup import escape

from harness import criteria as criteria_mod
from harness import scenario as scenario_mod
from harness.cli_common import run_dir_for
from harness.datasets import Dataset, default_cache_dir, generate_dataset
from harness.drivers.base import Driver, StepContext
from harness.drivers.common import local_dir
from harness.http import BlobHttp
from harness.metrics import Sampler
from harness.paths import ROOT
from harness.probes import FirstObjectProbe
from harness.progress import RunProgress
from harness.results import StepResult, moves_payload
from harness.scenario import Scenario, Step
from harness.targets import Target, make_target
from harness.targets.base import Endpoint
from harness.targets.preflight import PreflightError, preflight
from harness.verify import remote_listing, verify_listing, verify_tree

JSON_COLUMNS = ("errors_by_status", "errors_by_code", "extra")
STEP_ROW, LEVEL_ROW, HOST_ROW = "step", "level", "host"
# How long an overrun step's client gets to wind down once stopped, before it is abandoned.
STOP_GRACE_S = 15.0
# Operations whose result lands in a local directory that can be checked against the manifest.
DOWNLOADS = ("download", "sync-down")
# Operations whose result lands in the container: listed and checked against the manifest.
UPLOADS = ("upload", "sync-up")
EXIT_BAD_INPUT = 2  # a configuration problem, e.g. a target that fails its preflight
EXIT_SIGNAL = {signal.SIGINT: 130, signal.SIGTERM: 143}  # 128 + the signal, as shells report


@dataclass
class Execution:
    step: Step
    target: str
    repeat: int
    warmup: bool

    @property
    def label(self) -> str:
        kind = "warm-up" if self.warmup else "repeat"
        return f"{self.step.name} [{self.step.driver}] @{self.target} {kind} {self.repeat + 1}"


@dataclass
class RunOutcome:
    run_dir: Path
    results: pd.DataFrame
    verdicts: list[criteria_mod.Verdict]
    exit_code: int  # 0 all passed, 1 a step or criterion failed, 2 preflight, 130/143 signal
    interrupted: bool = False
    notes: list[str] = field(default_factory=list)


class StepTimeout(BaseException):
    """Raised in an in-process client at its next progress report once its step overran.

    A BaseException, like asyncio's CancelledError, so a driver's ``except Exception`` does not
    swallow it and the client unwinds."""


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised in the main thread like Ctrl-C's KeyboardInterrupt, so every path that
    stops the clients and targets on Ctrl-C does the same on SIGTERM."""


def _on_sigterm(signum: int, frame: Any) -> None:
    signal.signal(signal.SIGTERM, signal.SIG_IGN)  # the cleanup that follows must finish
    raise Terminated()


class RunHook:
    """Something that rides along a run, e.g. contract recording. Every method is optional."""

    def on_targets_started(self, runner: Runner) -> None:
        """Every target is up (``runner.targets``), before the preflight."""

    def on_step(self, ex: Execution, ctx: StepContext, driver: Driver) -> bool:
        """Before the step's client runs, with the context it will get (a hook may re-point
        ``ctx.endpoint``). True asks the runner to create the step's container on the target
        first (directly, not through ``ctx.endpoint``)."""
        return False

    def after_step(
        self, ex: Execution, ctx: StepContext, driver: Driver, result: StepResult
    ) -> None:
        """The client finished (or was stopped); before the runner verifies its result."""

    def after_host_step(self, ex: Execution, ctx: StepContext, result: StepResult) -> None:
        """A `hosts:` step ended: ``result`` is the merged row, its per-host rows in
        ``result.extra["hosts"]`` (``on_step`` / ``after_step`` are not called: the client ran
        on the hosts, not through ``ctx``)."""

    def on_targets_stopping(self, runner: Runner) -> None:
        """The run is over (or interrupted): the targets are stopped next."""

    def on_finish(self, runner: Runner, run_info: dict[str, Any]) -> None:
        """Add to run.json before it is written."""


def plan(scenario: Scenario, default_target: str) -> list[Execution]:
    """Every execution in order: step by step, target by target, warm-ups before repeats.

    With ``interleave`` the targets alternate within a step instead (warm-ups, then repeat 1 on
    A, B, ..., then repeat 2 on A, B, ...)."""
    executions = []
    for step in scenario.steps:
        targets = step.target or [default_target]
        if scenario.interleave:
            for warmup, count in ((True, step.warmup or 0), (False, step.repeats or 1)):
                executions += [Execution(step, t, i, warmup) for i in range(count) for t in targets]
            continue
        for target in targets:
            executions += [Execution(step, target, i, True) for i in range(step.warmup or 0)]
            executions += [Execution(step, target, i, False) for i in range(step.repeats or 1)]
    return executions


def targets_of(scenario: Scenario, default_target: str) -> list[str]:
    names: list[str] = []
    for step in scenario.steps:
        for name in [*(step.target or [default_target]), step.source_target]:
            if name and name not in names:
                names.append(name)
    return names


def make_driver(name: str) -> Driver:
    from harness.drivers import REGISTRY

    return REGISTRY[name]()


class Runner:
    def __init__(
        self,
        scenario: Scenario,
        out: Path = ROOT / "reports",
        target: str | None = None,
        endpoint: str | None = None,
        cache_dir: Path | None = None,
        sample_interval: float = 1.0,
        progress: RunProgress | None = None,
        source: dict[str, Any] | None = None,
        hooks: Sequence[RunHook] = (),
    ) -> None:
        self.scenario = scenario
        self.hooks = list(hooks)
        self.default_target = target or scenario.target.kind
        self.endpoint_url = endpoint or scenario.target.endpoint
        self.cache_dir = cache_dir or default_cache_dir()
        self.sample_interval = sample_interval
        self.run_dir = run_dir_for(out, scenario.name)
        self.source = source or {}
        self.executions = plan(scenario, self.default_target)
        self.progress = progress
        self.targets: dict[str, Target] = {}
        self.profilers: dict[str, Any] = {}  # target -> py-spy sampling it (options.profile)
        self.drivers: dict[str, Driver] = {}
        self.datasets: dict[str, Dataset] = {}
        self.results: list[StepResult] = []
        self.notes: list[str] = []
        self.preflight: dict[str, dict[str, Any]] = {}  # target -> its preflight outcome
        self.preflight_error: PreflightError | None = None
        self.signal: int | None = None  # the signal that interrupted the run
        self.host_steps: Any = None  # harness.cluster.remote.HostSteps, once a step has hosts

    # ------------------------------------------------------------------ lifecycle
    def run(self) -> RunOutcome:
        self.run_dir.mkdir(parents=True, exist_ok=True)
        started = time.time()
        interrupted = False
        sampler = Sampler(self._server_pids, self._client_pids, self.sample_interval)
        in_main = threading.current_thread() is threading.main_thread()
        previous = signal.signal(signal.SIGTERM, _on_sigterm) if in_main else None
        try:
            self._start_targets()
            self._preflight()  # before datasets are generated: a wrong port fails in seconds
            self._prepare_datasets()
            with sampler:
                progress = self.progress or RunProgress(len(self.executions))
                with progress:
                    for execution in self.executions:
                        self.results.append(self._execute(execution, sampler, progress))
        except KeyboardInterrupt as exc:
            interrupted = True
            self.signal = signal.SIGTERM if isinstance(exc, Terminated) else signal.SIGINT
            who = "SIGTERM" if isinstance(exc, Terminated) else "the user (Ctrl-C)"
            self.notes.append(f"interrupted by {who}: results are partial")
        except PreflightError as exc:
            self.preflight_error = exc
            self.preflight[exc.target] = exc.to_dict()
            self.notes.append(str(exc))
        except Exception as exc:  # a target or dataset that cannot start: recorded, not raised
            self.notes.append(f"run aborted: {exc}")
            (self.run_dir / "error.txt").write_text(traceback.format_exc())
        finally:
            try:
                target_facts = self._stop_targets()
                if interrupted:
                    self._stop_leftovers(started)
            finally:
                if in_main:
                    signal.signal(signal.SIGTERM, previous)
        return self._finish(started, sampler, target_facts, interrupted)

    def _stop_leftovers(self, started: float) -> None:
        """After an interrupt: kill any process this one started during the run that is still
        alive (a client of an earlier step that outlived it), so no child survives the harness."""
        leftovers = []
        for proc in psutil.Process().children(recursive=True):
            try:
                if proc.create_time() >= started - 1:
                    proc.kill()
                    leftovers.append(proc)
            except psutil.Error:
                continue
        psutil.wait_procs(leftovers, timeout=5)
        if leftovers:
            self.notes.append(f"killed {len(leftovers)} leftover child process(es)")

    def _preflight(self) -> None:
        """Every target answers an authenticated request before the first step, or the run
        ends here (PreflightError) naming the target's URL, the status and the error code."""
        for kind, target in self.targets.items():
            if getattr(target, "blob_api", True):  # a static-file server has no account to ask
                self.preflight[kind] = preflight(kind, target.endpoint())

    def _prepare_datasets(self) -> None:
        for name in {s.dataset for s in self.scenario.steps if s.dataset}:
            spec = self.scenario.dataset(name)
            self.datasets[name] = generate_dataset(spec, self.cache_dir, spec.seed)

    def _start_targets(self) -> None:
        spec = self.scenario.target
        for kind in targets_of(self.scenario, self.default_target):
            named = self.scenario.targets.get(kind)  # a named target carries its own spec
            own = kind == spec.kind  # server workers/flags of the scenario apply to its own kind
            if named is not None:
                target = make_target(
                    named.kind, named.endpoint, workers=named.workers, options=named.options
                )
            else:
                target = make_target(
                    kind,
                    endpoint=self.endpoint_url,
                    workers=spec.workers if own else 1,
                    options=spec.options if own else None,
                )
            options = named.options if named is not None else spec.options if own else {}
            if options.get("identity"):  # the lab token service beside it, trusted for tokens
                from harness.identity.target import IdentityTarget

                target = IdentityTarget(target)  # type: ignore[arg-type]
            self.targets[kind] = target  # registered before start so a failed start is stopped
            peer = getattr(target, "serves", None)  # serves the files of another target (nginx)
            if peer:
                if peer not in self.targets:
                    raise ValueError(f"target {kind} serves {peer}: list {peer} before {kind}")
                target.bind(self.targets[peer])
            target.start(self.run_dir / "targets" / kind)
            if options.get("profile"):  # py-spy on the server while the run goes on
                from harness.bench.profile import Profiler

                pids = target.server_pids()
                if pids:
                    self.profilers[kind] = Profiler(pids[0], self.run_dir / "targets" / kind)
        for hook in self.hooks:
            hook.on_targets_started(self)

    def _stop_targets(self) -> dict[str, Any]:
        for hook in self.hooks:
            try:
                hook.on_targets_stopping(self)
            except Exception as exc:
                self.notes.append(f"stopping {type(hook).__name__} failed: {exc}")
        facts: dict[str, Any] = {}
        for kind, target in self.targets.items():
            try:
                facts[kind] = target.facts()
            except Exception as exc:
                facts[kind] = {"error": str(exc)}
            profiler = self.profilers.pop(kind, None)
            if profiler is not None:
                profile = profiler.stop()
                facts[kind]["profile"] = str(profile) if profile else None
            try:
                target.stop()
            except Exception as exc:
                self.notes.append(f"stopping {kind} failed: {exc}")
            if not self.scenario.keep_data:
                shutil.rmtree(self.run_dir / "targets" / kind / "data", ignore_errors=True)
        return facts

    def _server_pids(self) -> dict[str, list[int]]:
        return {kind: t.server_pids() for kind, t in list(self.targets.items())}

    def _client_pids(self) -> list[int]:
        pids: list[int] = []
        for driver in list(self.drivers.values()):
            try:
                pids += [p for p in driver.pids() if p != os.getpid()]
            except Exception:
                pass
        return pids

    # ------------------------------------------------------------------ one execution
    def _driver(self, name: str) -> Driver:
        if name not in self.drivers:
            self.drivers[name] = make_driver(name)
        return self.drivers[name]

    def _context(self, ex: Execution, workdir: Path) -> StepContext:
        step = ex.step
        dataset = self.datasets.get(step.dataset) if step.dataset else None
        endpoint = self.targets[ex.target].endpoint()
        if ex.target in self.scenario.targets:  # results name the target as the scenario does
            endpoint = dataclasses.replace(endpoint, target=ex.target)
        ctx = StepContext(
            scenario=self.scenario.name,
            step=step.name,
            operation=step.operation,
            endpoint=endpoint,
            container=step.container or self.scenario.container,
            workdir=workdir,
            dataset=dataset,
            prefix=step.prefix,
            local_dir=workdir / "local" if step.operation in DOWNLOADS else None,
            concurrency=step.concurrency,
            block_size_mib=step.block_size_mib,
            timeout_s=step.timeout or self.scenario.timeout,
            repeat=ex.repeat,
            warmup=ex.warmup,
            options={"verify": step.verify, **step.options},
        )
        if step.source_step:
            source = self.scenario.step(step.source_step)
            ctx.source_endpoint = ctx.endpoint
            ctx.source_container = source.container
            ctx.options.setdefault("source_prefix", source.prefix)
        if step.source_target:
            source_endpoint = self.targets[step.source_target].endpoint()
            if step.source_target in self.scenario.targets:
                source_endpoint = dataclasses.replace(source_endpoint, target=step.source_target)
            ctx.source_endpoint = source_endpoint
        if step.source_container:
            ctx.source_container = step.source_container
        return ctx

    def _before_step(self, ex: Execution, ctx: StepContext, driver: Driver) -> None:
        """Let the hooks re-point the context, then create the step's container if the
        client or a hook needs it: once, directly on the target (never recorded)."""
        wanted = [hook.on_step(ex, ctx, driver) for hook in self.hooks]
        if driver.needs_container(ctx) or any(wanted):
            self._ensure_container(ex.target, ctx.container)

    def _ensure_container(self, target: str, container: str) -> None:
        ensure_container(self.targets[target].endpoint(), container)

    def _execute(self, ex: Execution, sampler: Sampler, progress: RunProgress) -> StepResult:
        step = ex.step
        tag = "w" if ex.warmup else "r"
        workdir = self.run_dir / "steps" / step.name / ex.target / f"{tag}{ex.repeat}"
        workdir.mkdir(parents=True, exist_ok=True)
        ctx = self._context(ex, workdir)
        total = ctx.dataset.total_bytes if ctx.dataset else 0
        progress.begin(ex.label, total)
        sampler.step = step.name
        t0 = time.time()
        try:
            try:
                driver = self._driver(step.driver)
                if step.hosts is None:
                    self._before_step(ex, ctx, driver)
                elif driver.needs_container(ctx):  # the hosts reach the target directly
                    self._ensure_container(ex.target, ctx.container)
            except Exception as exc:  # a driver that cannot load, a target that refuses setup
                (workdir / "error.txt").write_text(traceback.format_exc())
                result = ctx.result(driver=step.driver, ok=False, started_at=t0)
                result.error = f"{type(exc).__name__}: {exc}"
            else:
                if step.hosts is not None:  # the client runs on the hosts, which verify
                    result = self._run_on_hosts(ex, ctx)
                    for hook in self.hooks:
                        hook.after_host_step(ex, ctx, result)
                else:
                    result = run_bounded(driver, ctx, progress.advance)
                    for hook in self.hooks:
                        hook.after_step(ex, ctx, driver, result)
        except KeyboardInterrupt as exc:  # the step in progress is part of the partial results
            why = "SIGTERM" if isinstance(exc, Terminated) else "Ctrl-C"
            result = ctx.result(driver=step.driver, ok=False, started_at=t0)
            result.error = f"interrupted by {why} mid-step; its client was stopped"
            result.duration_s = time.time() - t0
            self.results.append(result)
            raise
        finally:
            sampler.sample()  # at least one sample inside every step, however short
            sampler.step = ""
        result.driver = result.driver or step.driver
        if result.error:
            result.error = _name_user_endpoint(result.error, ctx.endpoint)
        here = step.hosts is None  # a `hosts:` step was verified on each host
        if here and step.verify and step.operation in DOWNLOADS and ctx.dataset and ctx.local_dir:
            verify_download(ctx, result)
            if not ctx.options.get("keep_downloads"):
                shutil.rmtree(ctx.local_dir, ignore_errors=True)  # datasets can be large
        if here and step.verify and step.operation in UPLOADS and ctx.dataset:
            self._verify_upload(ex, ctx, result)
        cpu, rss = sampler.peaks(t0)
        result.client_cpu_pct_max = result.client_cpu_pct_max or cpu
        result.client_rss_mib_max = result.client_rss_mib_max or rss
        progress.end(escape(_summary(ex, result)), result.ok)
        return result

    def _verify_upload(self, ex: Execution, ctx: StepContext, result: StepResult) -> None:
        verify_upload(self.targets[ex.target].endpoint(), ctx, result)

    def _run_on_hosts(self, ex: Execution, ctx: StepContext) -> StepResult:
        """The step's client on each of its inventory hosts at once, merged into one result."""
        from harness.cluster.remote import HostSteps

        inv = getattr(self.targets[ex.target], "inv", None)
        if inv is None:  # `harness run` refuses this before anything runs
            result = ctx.result(driver=ex.step.driver, ok=False, started_at=time.time())
            result.error = f"hosts: needs the inventory target, not {ex.target}"
            return result
        if self.host_steps is None:
            self.host_steps = HostSteps(inv, self.run_dir.name)
        spec = self.scenario.dataset(ex.step.dataset) if ex.step.dataset else None
        try:
            return self.host_steps.run(ex.step, ctx, spec)
        except Exception as exc:  # the step fails with the reason; the run goes on
            (ctx.workdir / "error.txt").write_text(traceback.format_exc())
            result = ctx.result(driver=ex.step.driver, ok=False, started_at=time.time())
            result.error = f"on hosts {ex.step.hosts}: {type(exc).__name__}: {exc}"
            return result

    # ------------------------------------------------------------------ results
    def first_failure(self) -> str:
        """What failed first, in words: the preflight, the first failed execution, a note."""
        if self.preflight_error is not None:
            return str(self.preflight_error)
        for r in self.results:
            if not r.ok:
                kind = "warm-up" if r.warmup else "repeat"
                return f"{r.step} [{r.driver}] @{r.target} {kind} {r.repeat + 1}: {r.error}"
        return self.notes[0] if self.notes else ""

    def _finish(
        self, started: float, sampler: Sampler, target_facts: dict[str, Any], interrupted: bool
    ) -> RunOutcome:
        results = results_frame(self.results)
        first_failure = self.first_failure()
        # Criteria are judged even when the run stopped early: those whose steps never ran are
        # ERRORs naming why (what failed first).
        stopped = first_failure if len(self.results) < len(self.executions) else ""
        verdicts = criteria_mod.evaluate(self.scenario.criteria, results, not_run=stopped)
        steps = step_rows(results)
        steps_ok = bool(len(steps)) and bool(steps["ok"].all())
        complete = len(self.results) == len(self.executions) and not self.notes
        passed = steps_ok and complete and all(v.passed for v in verdicts)
        exit_code = 0 if passed else 1
        if self.preflight_error is not None:
            exit_code = EXIT_BAD_INPUT
        if interrupted:
            exit_code = EXIT_SIGNAL.get(self.signal or signal.SIGINT, 130)
        write_results(self.run_dir, results)
        samples = with_host_samples(
            pd.DataFrame([s.to_row() for s in sampler.samples]), target_facts
        )
        samples.to_parquet(self.run_dir / "samples.parquet", index=False)
        run_info = {
            "scenario": scenario_mod.dump(self.scenario),
            "source": self.source,
            "default_target": self.default_target,
            "started_at": datetime.fromtimestamp(started, UTC).isoformat(),
            "finished_at": datetime.now(UTC).isoformat(),
            "duration_s": time.time() - started,
            "executions_planned": len(self.executions),
            "executions_run": len(self.results),
            "passed": passed,
            "interrupted": interrupted,
            "interrupted_by": signal.Signals(self.signal).name if self.signal else None,
            "exit_code": exit_code,
            "first_failure": first_failure,
            "preflight": self.preflight,
            "notes": self.notes,
            "verdicts": [v.to_dict() for v in verdicts],
            "tool_versions": self._versions(),
            "host": host_facts(),
            "git": git_revision(),
            "targets": target_facts,
            "datasets": {
                n: {"root": str(d.root), "files": d.count, "bytes": d.total_bytes}
                for n, d in self.datasets.items()
            },
        }
        self._annotate(run_info)
        (self.run_dir / "run.json").write_text(json.dumps(run_info, indent=2, default=str))
        return RunOutcome(self.run_dir, results, verdicts, exit_code, interrupted, self.notes)

    def _annotate(self, run_info: dict[str, Any]) -> None:
        """Add to run.json before it is written: the hooks' findings (e.g. contract drift)."""
        run_info["contract"] = {"recorded": False, "reason": "run without the recording proxy"}
        for hook in self.hooks:
            hook.on_finish(self, run_info)

    def _versions(self) -> dict[str, dict[str, str]]:
        versions = {}
        for name, driver in self.drivers.items():
            try:
                versions[name] = dict(driver.versions())
            except Exception as exc:
                versions[name] = {"error": str(exc)}
        return versions


def run_bounded(
    driver: Driver, ctx: StepContext, advance: Callable[[int, int], None] | None = None
) -> StepResult:
    """``prepare`` + ``run`` of the driver in a worker thread, stopped when it overruns
    ``ctx.timeout_s``: the one timer of an execution. ``advance(done, total)`` hears progress."""
    overran = threading.Event()
    outcome: dict[str, Any] = {}

    def report(done: int, total: int) -> None:
        if overran.is_set():
            raise StepTimeout(f"step {ctx.step} overran its timeout")
        if advance is not None:
            advance(done, total)

    ctx.progress = report
    probe = FirstObjectProbe(ctx) if ctx.options.get("probe_first_object") else None

    def work() -> None:
        try:
            driver.prepare(ctx)
            if probe:
                probe.start()
            result = driver.run(ctx)
            if probe:
                result.extra["first_object_s"] = probe.stop()
            outcome["result"] = result
        except BaseException as exc:  # drivers should not raise; if one does, the step fails
            outcome["error"] = exc
            (ctx.workdir / "error.txt").write_text(traceback.format_exc())
        finally:
            if probe:
                probe.stop()

    t0 = time.time()
    worker = threading.Thread(target=work, name=f"step-{ctx.step}", daemon=True)
    worker.start()
    try:
        worker.join(ctx.timeout_s)
    except KeyboardInterrupt:  # Ctrl-C: stop the client too, then let the caller record it
        overran.set()
        stop_client(driver)
        worker.join(STOP_GRACE_S)
        raise
    if worker.is_alive():
        overran.set()
        killed = stop_client(driver)
        worker.join(STOP_GRACE_S)
        return _timed_out(ctx, driver.name, t0, killed, worker.is_alive(), outcome)
    if "result" in outcome:
        return outcome["result"]
    exc = outcome.get("error")
    result = ctx.result(driver=driver.name, ok=False, error=f"{type(exc).__name__}: {exc}")
    result.started_at, result.duration_s = t0, time.time() - t0
    return result


def stop_client(driver: Driver) -> list[int]:
    """Kill the driver's client process trees (never this process); the pids killed."""
    try:
        pids = [p for p in driver.pids() if p != os.getpid()]
    except Exception:
        return []
    procs: list[psutil.Process] = []
    for pid in pids:
        try:
            root = psutil.Process(pid)
            procs += [root, *root.children(recursive=True)]
        except psutil.Error:
            continue
    for proc in procs:
        try:
            proc.kill()
        except psutil.Error:
            pass
    psutil.wait_procs(procs, timeout=5)
    return [p.pid for p in procs]


def _timed_out(
    ctx: StepContext,
    driver_name: str,
    t0: float,
    killed: list[int],
    abandoned: bool,
    outcome: dict[str, Any],
) -> StepResult:
    how = f"killed client process(es) {', '.join(map(str, killed))}" if killed else ""
    if abandoned:
        how = (how + "; " if how else "") + (
            f"the in-process client did not stop within {STOP_GRACE_S:g} s and was left "
            "to finish in the background"
        )
    error = f"timed out: the step overran its timeout of {ctx.timeout_s:g} s and was stopped"
    result = outcome.get("result")
    if isinstance(result, StepResult):  # what the client did before it was stopped
        result.extra["error_after_stop"] = result.error
    else:
        result = ctx.result(driver=driver_name, started_at=t0)
    result.ok, result.error = False, error + (f" ({how})" if how else "")
    result.duration_s = time.time() - t0
    result.extra["timed_out"] = True
    result.extra["timeout_s"] = ctx.timeout_s
    return result


def verify_upload(endpoint: Endpoint, ctx: StepContext, result: StepResult) -> None:
    """List what landed (on ``endpoint``, the target itself, not a recording proxy) and compare
    names, sizes and, where the tool set it, Content-MD5 with the manifest."""
    assert ctx.dataset
    if not result.ok or result.verified_objects:
        return  # a failed upload is failed already; a driver that verified itself counts
    try:
        listing = remote_listing(endpoint, ctx.container, ctx.prefix)
    except (OSError, ValueError) as exc:
        result.ok = False
        result.error = f"upload verification could not list {ctx.container}/{ctx.prefix}: {exc}"
        return
    check = verify_listing(listing, ctx.dataset, ctx.prefix)
    result.verified_objects, result.verified_bytes = check.objects, check.bytes
    result.extra["verify_md5_checked"] = check.md5_checked
    if not check.ok:
        result.ok = False
        result.failed += len(check.missing) + len(check.mismatched)
        result.error = f"upload verification failed: {check.summary()}"


def verify_download(ctx: StepContext, result: StepResult) -> None:
    """Compare what a download or sync-down left in ``ctx.local_dir`` with the manifest, byte
    for byte: ``verified_*`` count the matches; a missing or different file fails the step."""
    assert ctx.dataset and ctx.local_dir
    if not result.ok:
        return
    check = verify_tree(ctx.local_dir, ctx.dataset)
    result.verified_objects, result.verified_bytes = check.objects, check.bytes
    result.extra["verify_missing"] = len(check.missing)
    result.extra["verify_mismatched"] = len(check.mismatched)
    result.extra["verify_extra"] = len(check.extra)
    if not check.ok:
        result.ok = False
        result.failed += len(check.missing) + len(check.mismatched)
        result.error = f"verification failed: {check.summary()}"


def ensure_container(endpoint: Endpoint, container: str) -> None:
    """Create ``container`` unless it exists (201 or 409), with the endpoint's key or SAS.
    Another answer is left to the client, whose own error then says what went wrong."""
    sas = endpoint.sas.lstrip("?") if endpoint.sas else None
    if not (endpoint.key or sas):
        return
    http = BlobHttp(endpoint.blob_url, endpoint.account, endpoint.key, ca_bundle=endpoint.ca_bundle)
    try:
        http.request("PUT", container, query={"restype": "container"}, sas=sas)
    finally:
        http.close()


def run_step(driver: Driver, ctx: StepContext) -> StepResult:
    """One execution outside a scenario (the gate tests), as the runner makes it: the container
    created first if the client needs it, bounded by ``ctx.timeout_s``, a download verified
    unless ``options.verify`` is false. The download directory is kept."""
    if driver.needs_container(ctx):
        ensure_container(ctx.endpoint, ctx.container)
    if ctx.operation in DOWNLOADS:
        ctx.local_dir = local_dir(ctx)
    result = run_bounded(driver, ctx)
    if ctx.operation in DOWNLOADS and ctx.dataset and ctx.options.get("verify", True):
        verify_download(ctx, result)
    return result


def run_job(job_path: Path, start: Callable[[], bool] | None = None) -> int:
    """One execution of a `hosts:` step on this host (``harness remote-step JOB``), from the job
    the controller wrote (``harness.cluster.remote``): the dataset generated here from its spec
    and seed, the host's share picked, the tool checked, then ``run_step`` and, for an upload,
    ``verify_upload``. ``start`` (when given) is the start barrier: called once everything is
    ready, the client runs only if it returns True, so every host's client starts at once.
    Writes its StepResult as ``result.json`` beside JOB, also when the step failed; returns 0
    once it is written."""
    from harness.cluster.remote import HOST_ENV, share_dataset
    from harness.tools import ToolMissing

    job = json.loads(job_path.read_text())
    workdir = Path(job["workdir"])
    dataset = None
    if job["dataset"]:
        dataset = generate_dataset(job["dataset"]["spec"], Path(job["cache_dir"]))
        if job["dataset"]["share"]:
            dataset = share_dataset(dataset, *job["dataset"]["share"])

    def endpoint_of(data: dict[str, Any]) -> Endpoint:
        return Endpoint(
            **{**data, "ca_bundle": Path(data["ca_bundle"]) if data["ca_bundle"] else None}
        )

    source = job["source_endpoint"]
    ctx = StepContext(
        scenario=job["scenario"],
        step=job["step"],
        operation=job["operation"],
        endpoint=endpoint_of(job["endpoint"]),
        container=job["container"],
        workdir=workdir,
        dataset=dataset,
        prefix=job["prefix"],
        concurrency=job["concurrency"],
        block_size_mib=job["block_size_mib"],
        timeout_s=job["timeout_s"],
        repeat=job["repeat"],
        warmup=job["warmup"],
        options=job["options"],
        source_endpoint=endpoint_of(source) if source else None,
        source_container=job["source_container"],
    )
    driver = make_driver(job["driver"])
    t0 = time.time()
    try:
        if driver.tool.find is not None:
            driver.tool.path()  # the host has the step's tool, or the step fails naming it
    except ToolMissing as exc:
        result = ctx.result(driver=driver.name, ok=False, started_at=t0)
        result.error = (
            f"{driver.tool.name} is missing on this host ({str(exc).split(';')[0]}); install "
            f"it there or name it in {Path(job['cache_dir']).parent / HOST_ENV} "
            "(LAB_AZCOPY=PATH, LAB_RCLONE=PATH)"
        )
    else:
        if start is not None and not start():
            result = ctx.result(driver=driver.name, ok=False, started_at=t0)
            result.error = "the controller went away before the start"
            return _write_job_result(workdir, job["host"], result)
        t0 = time.time()
        with Sampler(dict, driver.pids) as sampler:
            result = run_step(driver, ctx)
            sampler.sample()  # at least one sample inside the step, however short
        result.started_at = result.started_at or t0  # not every driver stamps its start
        if ctx.options.get("verify", True) and ctx.operation in UPLOADS and dataset:
            verify_upload(ctx.endpoint, ctx, result)
        if ctx.operation in DOWNLOADS and ctx.local_dir and not ctx.options.get("keep_downloads"):
            shutil.rmtree(ctx.local_dir, ignore_errors=True)  # verified; datasets can be large
        cpu, rss = sampler.peaks(t0)
        result.client_cpu_pct_max = result.client_cpu_pct_max or cpu
        result.client_rss_mib_max = result.client_rss_mib_max or rss
        result.extra["versions"] = driver.versions()
    return _write_job_result(workdir, job["host"], result)


def _write_job_result(workdir: Path, host: str, result: StepResult) -> int:
    from harness.cluster.remote import RESULT_FILE

    result.host = host
    out = workdir / RESULT_FILE
    partial = out.with_suffix(".tmp")
    partial.write_text(json.dumps(dataclasses.asdict(result), default=str))
    partial.rename(out)  # the controller never reads half a result
    return 0


def _name_user_endpoint(text: str, endpoint: Endpoint) -> str:
    """``text`` with a loopback proxy's address replaced by the URL the user gave."""
    if not endpoint.origin_url:
        return text
    proxy, origin = urlsplit(endpoint.blob_url), urlsplit(endpoint.origin_url)
    text = text.replace(f"{proxy.scheme}://{proxy.netloc}", f"{origin.scheme}://{origin.netloc}")
    return text.replace(proxy.netloc, origin.netloc)


def _summary(ex: Execution, r: StepResult) -> str:
    if moves_payload(r.operation):
        text = (
            f"{ex.label}: {r.objects} objects, {r.bytes / 2**20:.1f} MiB in {r.duration_s:.2f}s "
            f"({r.throughput_mib_s:.1f} MiB/s, {r.ops_s:.1f} ops/s)"
        )
    else:
        text = f"{ex.label}: {r.objects} objects in {r.duration_s:.2f}s ({r.ops_s:.1f} ops/s)"
    return text + (f" — {r.error}" if r.error else "")


def results_frame(results: list[StepResult]) -> pd.DataFrame:
    """StepResult rows as one table (dict columns kept as dicts in memory).

    A load step's per-level rows (``extra["levels"]``, StepResult.to_row dicts) become rows of
    their own with ``row_kind`` "level" right after their step's row, which keeps its summary."""
    columns = [
        *StepResult(scenario="", step="", driver="", operation="", target="").to_row(),
        "row_kind",
        "level",
    ]
    rows: list[dict[str, Any]] = []
    for result in results:
        row = result.to_row()
        levels = row["extra"].pop("levels", None) or []
        hosts = row["extra"].pop("hosts", None) or []
        rows.append({**row, "row_kind": STEP_ROW, "level": None})
        for level in levels:
            extra = level.get("extra") or {}
            rows.append({**level, "row_kind": LEVEL_ROW, "level": extra.get("level")})
        rows += [{**host, "row_kind": HOST_ROW, "level": None} for host in hosts]
    frame = pd.DataFrame(rows, columns=columns)
    frame["level"] = pd.array(frame["level"], dtype="Int64")  # no level on step rows
    return frame


def step_rows(results: pd.DataFrame) -> pd.DataFrame:
    """The one-row-per-execution part of a results table."""
    if "row_kind" not in results:
        return results
    return results[results["row_kind"] == STEP_ROW]


def host_rows(results: pd.DataFrame) -> pd.DataFrame:
    """The per-host rows of `hosts:` steps (empty when the run had none)."""
    if "row_kind" not in results:
        return results.iloc[0:0]
    return results[results["row_kind"] == HOST_ROW]


def level_rows(results: pd.DataFrame) -> pd.DataFrame:
    """The per-level, per-operation rows of load steps (empty when the run had none)."""
    if "row_kind" not in results:
        return results.iloc[0:0]
    return results[results["row_kind"] == LEVEL_ROW]


def with_host_samples(samples: pd.DataFrame, target_facts: dict[str, Any]) -> pd.DataFrame:
    """The controller's samples (``host`` "controller") and every inventory host's over SSH
    (``role`` "host", ``cpu_pct`` the host's CPU, network / disk / memory counters in their own
    columns) as one table; host rows carry the step the controller ran at that moment."""
    samples = samples.assign(host="controller")
    parts = [samples]
    for kind, facts in target_facts.items():
        path = facts.get("host_samples") if isinstance(facts, dict) else None
        if not path or not Path(path).is_file():
            continue
        hosts = pd.read_parquet(path).rename(columns={"cpu_percent": "cpu_pct"})
        hosts = hosts.assign(role="host", target=kind).sort_values("t")
        if not samples.empty:
            steps = samples[["t", "step"]].sort_values("t")
            hosts = pd.merge_asof(hosts, steps, on="t", direction="backward")
        hosts["step"] = hosts["step"].fillna("") if "step" in hosts else ""
        parts.append(hosts)
    parts = [p for p in parts if not p.empty]
    return pd.concat(parts, ignore_index=True) if len(parts) > 1 else samples


def write_results(run_dir: Path, results: pd.DataFrame) -> Path:
    table = results.copy()
    for col in JSON_COLUMNS:
        table[col] = [json.dumps(v or {}, sort_keys=True, default=str) for v in table[col]]
    path = run_dir / "results.parquet"
    table.to_parquet(path, index=False)
    return path


def read_results(run_dir: Path) -> pd.DataFrame:
    """results.parquet with its JSON-encoded dict columns decoded."""
    table = pd.read_parquet(run_dir / "results.parquet")
    for col in JSON_COLUMNS:
        if col in table:
            table[col] = [json.loads(v) if isinstance(v, str) and v else {} for v in table[col]]
    if "row_kind" not in table:  # runs written before level rows existed
        table["row_kind"] = STEP_ROW
        table["level"] = pd.array([None] * len(table), dtype="Int64")
    return table


def host_facts() -> dict[str, Any]:
    cpu_model = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu_model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem = psutil.virtual_memory()
    return {
        "hostname": platform.node(),
        "os": platform.platform(),
        "kernel": platform.release(),
        "machine": platform.machine(),
        "cpu_model": cpu_model,
        "cpus_logical": psutil.cpu_count(logical=True),
        "cpus_physical": psutil.cpu_count(logical=False),
        "memory_gib": round(mem.total / 2**30, 2),
        "python": sys.version.split()[0],
        "disk_free_gib": round(shutil.disk_usage(ROOT).free / 2**30, 2),
    }


def git_revision() -> dict[str, Any]:
    def git(*args: str) -> str | None:
        try:
            out = subprocess.run(
                ["git", *args], cwd=ROOT, capture_output=True, text=True, timeout=10, check=False
            )
        except OSError:
            return None
        return out.stdout.strip() if out.returncode == 0 else None

    status = git("status", "--porcelain")
    return {
        "revision": git("rev-parse", "HEAD"),
        "dirty": bool(status) if status is not None else None,
    }
