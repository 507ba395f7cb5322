"""Locust: Blob load from a headless master and N local workers, KPIs per level and operation.

Locust runs only in its own processes (see harness.load.process). Options (``ctx.options``):

    mix: {put_block: 70, get_range: 20, list_blobs: 10}   # operation -> weight
    users: 64 | levels: [16, 64, 256, 1024]               # fixed users, or a sweep
    level_duration_s: 20     ramp_s: 5                    # per level; ramp excluded from KPIs
    object_size: 1MiB   block_size: 64KiB   range_size: 64KiB   seed_objects: 16
    arrival_rate: 200                                     # open loop: requests/s, fixed schedule
    max_requests: 100000                                  # count bound (besides the time bound)
    workers: auto                                         # Locust workers (auto = cores)
    workers_on: load                                      # workers on the inventory's load hosts
    master_host: 10.0.0.5                                 # (with workers_on) the master's address
    expect_errors: false                                  # true: errors are KPIs, not a failed step

With ``workers_on: ROLE`` (the ``inventory`` target only) the workers run on that role's hosts
over SSH (``harness.load.remote.SshWorkers``), one per host unless ``workers`` says how many in
all; a worker that ends before the plan does is reported lost (``extra.workers_lost``) and fails
the step and every row.

Rows: ``run_levels`` returns one StepResult per level and operation (``operation`` is the Blob
operation, ``extra.level`` / ``extra.users`` the level, ``extra.client_bound`` the generator
saturation mark). ``run`` returns one summary row over every steady window with those rows in
``extra["levels"]`` (as ``StepResult.to_row()`` dicts), for runners that take one row per step.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

from harness.drivers.base import Driver, StepContext
from harness.http import BlobHttp
from harness.load.histograms import merge, percentiles_ms, read_buckets
from harness.load.kpis import OpKpi, level_kpis, steady_windows
from harness.load.ops import RequestBuilder, seed_blob_names
from harness.load.plan import LoadPlan, plan_from_options
from harness.load.process import LocalWorkers, LocustRun, WorkerEnd, WorkerLauncher, run_locust
from harness.results import StepResult
from harness.tools import Tool

# Read by the driver, or set by the runner for every step: not load-plan options.
DRIVER_OPTIONS = {"expect_errors", "verify", "source_prefix", "workers_on", "master_host"}


class LocustDriver(Driver):
    name = "locust"
    operations = ("load",)
    tool = Tool("locust", distributions=("locust",))
    recorded = False  # its requests are the lab's own (the locustfile), not a client's

    def __init__(self, launcher: WorkerLauncher | None = None) -> None:
        # A remote-host target may hand over a launcher that starts workers on its hosts.
        self.launcher: WorkerLauncher = launcher or LocalWorkers()
        self._pids: list[int] = []

    def prepare(self, ctx: StepContext) -> None:
        if not ctx.endpoint.blob_url.startswith("http"):
            raise ValueError(f"locust needs an http(s) account URL, got {ctx.endpoint.blob_url}")
        if not (ctx.endpoint.key or ctx.endpoint.sas):
            raise ValueError("locust signs every request: the endpoint needs a key or a SAS")
        self._plan(ctx)  # option errors surface before anything starts

    def pids(self) -> list[int]:
        return list(self._pids)

    # ------------------------------------------------------------------ running
    def _inventory(self, ctx: StepContext) -> Path:
        inventory = ctx.endpoint.extra.get("inventory")
        if not inventory:
            raise ValueError(
                "options.workers_on runs workers on an inventory's hosts: it needs the "
                "inventory target (--target inventory --inventory FILE)"
            )
        return Path(inventory)

    def _launcher(self, ctx: StepContext) -> WorkerLauncher:
        role = ctx.options.get("workers_on")
        if not role:
            return self.launcher
        from harness.load.remote import SshWorkers

        master = ctx.options.get("master_host")
        return SshWorkers(self._inventory(ctx), str(role), str(master) if master else None)

    def _plan(self, ctx: StepContext) -> LoadPlan:
        options = {k: v for k, v in ctx.options.items() if k not in DRIVER_OPTIONS}
        role = ctx.options.get("workers_on")
        if role and "workers" not in options:  # one worker per host of the role
            from harness.cluster.inventory import from_file

            hosts = from_file(self._inventory(ctx)).with_role(role)
            if not hosts:
                raise ValueError(f"workers_on: no host of the inventory has the role {role}")
            options["workers"] = len(hosts)
        return plan_from_options(
            options,
            blob_url=ctx.endpoint.blob_url,
            account=ctx.endpoint.account,
            key=ctx.endpoint.key,
            sas=ctx.endpoint.sas.lstrip("?") if ctx.endpoint.sas else None,
            container=ctx.container,
            # Each execution writes under its own prefix: repeats never meet each other's blobs.
            prefix=f"{ctx.prefix}load-{ctx.step}-{'w' if ctx.warmup else 'r'}{ctx.repeat}/",
            out_dir=ctx.workdir / "histograms",
            default_users=ctx.concurrency,
            ca_bundle=str(ctx.endpoint.ca_bundle) if ctx.endpoint.ca_bundle else None,
        )

    def run(self, ctx: StepContext) -> StepResult:
        rows, summary = self._execute(ctx)
        summary.extra["levels"] = [r.to_row() for r in rows]
        return summary

    def run_levels(self, ctx: StepContext) -> list[StepResult]:
        return self._execute(ctx)[0]

    def _execute(self, ctx: StepContext) -> tuple[list[StepResult], StepResult]:
        plan = self._plan(ctx)
        started = time.time()
        self._pids = []
        try:
            seed(plan)
        except Exception as exc:
            return [], ctx.result(driver=self.name, ok=False, error=f"seeding failed: {exc}")
        plan_path = plan.dump(ctx.workdir / "load-plan.json")
        Path(plan.out_dir).mkdir(parents=True, exist_ok=True)
        try:
            launcher = self._launcher(ctx)
        except Exception as exc:
            return [], ctx.result(driver=self.name, ok=False, error=f"workers: {exc}")
        run = run_locust(
            plan,
            plan_path,
            ctx.workdir,
            launcher=launcher,
            # Locust's own bound (the plan's duration and a grace); the step's timeout is the
            # runner's, which stops these processes through pids()
            hard_timeout_s=plan.duration_s + 120,
            on_start=self._pids.extend,
        )
        self._pids = []
        return self._results(ctx, plan, run, started)

    def _results(
        self, ctx: StepContext, plan: LoadPlan, run: LocustRun, started: float
    ) -> tuple[list[StepResult], StepResult]:
        timeline_path = Path(plan.out_dir) / "timeline.json"
        problem = None
        if run.timed_out:
            problem = "Locust did not end within its time bound and was stopped"
        elif not timeline_path.exists():
            problem = f"Locust did not start (exit {run.returncode}):\n{run.log_tail()}"
        if problem and not timeline_path.exists():
            fail = ctx.result(driver=self.name, ok=False, error=problem, started_at=started)
            fail.duration_s = time.time() - started
            return [], fail
        timeline = json.loads(timeline_path.read_text())
        # a worker that ended before the plan did (its end, or the master's when it stopped
        # early) is lost: its share of the load is missing from every second after that
        plan_end = timeline["end"] or run.ended_at
        lost = [w for w in run.workers_ended if w.at < plan_end]
        if lost:
            note = _lost_note(lost, run, timeline["t0"])
            problem = f"{note}; {problem}" if problem else note
        if timeline["end"] is None and not problem:
            # The shape never reached its end: Locust stopped on its own (a worker lost, ...).
            timeline["end"] = run.ended_at
            problem = f"Locust stopped before the plan's end:\n{run.log_tail(8)}"
        buckets = read_buckets(sorted(Path(plan.out_dir).glob("*.jsonl")))
        cores = len(os.sched_getaffinity(0))
        kpis = level_kpis(plan, buckets, timeline["t0"], timeline["end"], run.samples, cores)
        expect_errors = bool(ctx.options.get("expect_errors", False))
        rows = [self._row(ctx, plan, k, expect_errors, problem) for k in kpis]
        # Summary: every steady window of every level and operation, one merged histogram.
        windows = steady_windows(plan, timeline["t0"], timeline["end"])
        inside = [b for b in buckets if any(w.start <= b.second < w.end for w in windows)]
        summary = ctx.result(
            driver=self.name,
            started_at=started,
            duration_s=float(sum(w.seconds for w in windows)),
            clock="steady-window",
            bytes=sum(r.bytes for r in rows),
            objects=sum(r.objects for r in rows),
            failed=sum(r.failed for r in rows),
            concurrency=max(plan.levels),
            **percentiles_ms(merge(b.hist for b in inside)),
        )
        for r in rows:
            for k, v in r.errors_by_status.items():
                summary.errors_by_status[k] = summary.errors_by_status.get(k, 0) + v
            for k, v in r.errors_by_code.items():
                summary.errors_by_code[k] = summary.errors_by_code.get(k, 0) + v
        bound = sorted({r.extra["level"] for r in rows if r.extra["client_bound"]})
        summary.extra.update(
            mode="open-loop" if plan.open_loop else "closed-loop",
            steady_state=_window_note(plan),
            client_bound=bool(bound),
            client_bound_levels=bound,
            generator_cpu_pct_by_level={
                r.extra["level"]: r.extra["generator_cpu_pct"] for r in rows
            },
            workers=plan.workers,
            workers_expected=plan.workers,
            worker_names=run.workers,
            workers_lost=[_lost_row(w, timeline["t0"]) for w in lost],
            master_exit=run.returncode,
            master_bind=run.master_bind,
        )
        summary.ok, summary.error = _verdict(summary, expect_errors, problem)
        bad = [r for r in rows if not r.ok]
        if summary.ok and bad:
            summary.ok = False
            summary.error = "; ".join(
                f"level {r.extra['level']} ({r.concurrency} users) {r.operation}: {r.error}"
                for r in bad[:5]
            )
        summary.client_cpu_pct_max = max(
            (sum(s.cpu_pct.values()) for s in run.samples), default=None
        )
        return rows, summary

    def _row(
        self, ctx: StepContext, plan: LoadPlan, k: OpKpi, expect_errors: bool, problem: str | None
    ) -> StepResult:
        users = k.level.users
        row = ctx.result(
            driver=self.name,
            operation=k.op,
            started_at=k.window.start,
            duration_s=float(k.window.seconds),
            clock="steady-window",
            bytes=k.bytes,
            objects=k.ok,
            failed=k.failed,
            concurrency=users,
            errors_by_status=k.errors_by_status,
            errors_by_code=k.errors_by_code,
            client_cpu_pct_max=k.cpu.max_process_pct,
            **k.latency,
        )
        row.extra.update(
            level=k.level.index,
            users=users,
            mode="open-loop" if plan.open_loop else "closed-loop",
            arrival_rate=plan.arrival_rate,
            latency_from="scheduled start" if plan.open_loop else "request start",
            steady_window={"start": k.window.start, "end": k.window.end, "ramp_s": plan.ramp_s},
            steady_state=_window_note(plan),
            generator_cpu_pct=k.cpu.cpu_pct,
            generator_cpu_pct_max_process=k.cpu.max_process_pct,
            client_bound=k.cpu.client_bound,
        )
        row.ok, row.error = _verdict(row, expect_errors, problem)
        return row


def _lost_row(w: WorkerEnd, t0: float | None) -> dict[str, Any]:
    at_s = round(w.at - t0, 1) if t0 else None
    return {"worker": w.worker, "at": w.at, "at_s": at_s, "exit": w.exit_code}


def _lost_note(lost: list[WorkerEnd], run: LocustRun, t0: float | None) -> str:
    """``1 of 2 Locust worker(s) lost mid-run: h3 worker 1 (pid 42) at +6.2 s (exit 137)``."""

    def one(w: WorkerEnd) -> str:
        when = f"+{w.at - t0:.1f} s" if t0 else time.strftime("%H:%M:%S", time.gmtime(w.at))
        code = "its SSH session ended" if w.exit_code == -1 else f"exit {w.exit_code}"
        return f"{w.worker} at {when} ({code})"

    expected = len(run.workers)
    return f"{len(lost)} of {expected} Locust worker(s) lost mid-run: " + "; ".join(
        one(w) for w in lost
    )


def _window_note(plan: LoadPlan) -> str:
    return (
        f"steady state only: each level's first {plan.ramp_s:g} s (ramp-up) excluded, "
        "whole seconds by request start"
    )


def _verdict(r: StepResult, expect_errors: bool, problem: str | None) -> tuple[bool, str | None]:
    if problem:
        return False, problem
    total = r.objects + r.failed
    if total == 0:
        return False, "no request completed in the steady-state window"
    if r.failed and not expect_errors:
        codes = ", ".join(f"{k}: {v}" for k, v in sorted(r.errors_by_status.items()))
        return False, f"{r.failed} of {total} requests failed ({codes})"
    return True, None


def seed(plan: LoadPlan) -> None:
    """Create the container and, when the mix reads, the objects it reads (same signing)."""
    http = BlobHttp(plan.blob_url, plan.account, plan.key, ca_bundle=plan.ca_bundle)
    sas = plan.sas
    try:
        r = http.request("PUT", plan.container, query=[("restype", "container")], sas=sas)
        if r.status not in (201, 409):
            raise RuntimeError(f"create container {plan.container}: {r.status} {r.error_code}")
        if not plan.needs_seed:
            return
        body = RequestBuilder(plan).object
        for name in seed_blob_names(plan):
            hdrs = {"x-ms-blob-type": "BlockBlob"}
            r = http.request("PUT", plan.container, name, headers=hdrs, body=body, sas=sas)
            if r.status != 201:
                raise RuntimeError(f"seed {name}: {r.status} {r.error_code}")
    finally:
        http.close()


def describe(rows: list[StepResult]) -> list[dict[str, Any]]:
    """A compact per-level table (for logs and the closing note)."""
    return [
        {
            "target": r.target,
            "level": r.extra.get("level"),
            "users": r.concurrency,
            "op": r.operation,
            "ops_s": round(r.ops_s, 1),
            "MiB_s": round(r.throughput_mib_s, 1),
            "p50_ms": r.p50_ms,
            "p99_ms": r.p99_ms,
            "p999_ms": r.p999_ms,
            "max_ms": r.max_ms,
            "failed": r.failed,
            "503": r.errors_by_status.get("503", 0),
            "gen_cpu_pct": r.extra.get("generator_cpu_pct"),
            "client_bound": r.extra.get("client_bound"),
        }
        for r in rows
    ]
