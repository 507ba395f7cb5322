"""Locust file for Blob load: one FastHttpUser, a plan-driven LoadTestShape, per-worker histograms.

Run only by ``harness.load.process`` in Locust's own processes (gevent monkey-patches the
interpreter; never import this module from the harness). The plan comes from ``$LOAD_PLAN``.

Modes:
- closed loop (default): each user sends its next request when the previous one is answered;
- open loop (``arrival_rate``): each worker issues its share of requests on a fixed schedule
  (slot k at t0 + k / rate) whether earlier ones are answered or not; latency is measured from
  the scheduled start, so a stalled server shows in the percentiles instead of slowing the load.
"""

from __future__ import annotations

import itertools
import json
import os
import random
import time
from pathlib import Path

import gevent
import locust.runners
from gevent.pool import Pool
from locust import FastHttpUser, LoadTestShape, constant, events, task
from locust.exception import StopUser
from locust.runners import MasterRunner

from harness.http import client_ssl_context
from harness.load.histograms import Recorder
from harness.load.ops import Request, RequestBuilder, UserState, bytes_moved
from harness.load.plan import LoadPlan, open_loop_users

PLAN = LoadPlan.load()
BUILDER = RequestBuilder(PLAN)
OPS, WEIGHTS = zip(*PLAN.mix.items(), strict=True)
TIMELINE = Path(PLAN.out_dir) / "timeline.json"
# Locust warns above 100 spawned users/s per worker; faster spawning starves its heartbeats.
MAX_SPAWN_PER_WORKER_S = 100.0
# A worker busy spawning hundreds of users next to the server on a small machine can miss a few
# 1 s heartbeats; the default of 3 would make the master drop it and end the test early.
locust.runners.HEARTBEAT_LIVENESS = 15


class _Worker:
    """State of this worker process: recorder, request count bound, open-loop schedule."""

    def __init__(self) -> None:
        self.tag = f"w{os.getpid()}"
        self.recorder: Recorder | None = None
        self.users = itertools.count()
        self.issued = 0
        self.quota: int | None = None
        self.index = 0
        self.rate = 0.0
        self.t0: float | None = None
        self.slot = 0

    def start(self, index: int, workers: int) -> None:
        self.index = index
        self.recorder = Recorder(Path(PLAN.out_dir) / f"{self.tag}.jsonl")
        if PLAN.max_requests is not None:
            self.quota = max(1, PLAN.max_requests // workers)
        if PLAN.arrival_rate:
            self.rate = PLAN.arrival_rate / workers

    def take(self) -> bool:
        """Count one request against the bound; False once this worker's share is used."""
        if self.quota is not None and self.issued >= self.quota:
            return False
        self.issued += 1
        return True

    def next_slot(self) -> float:
        """Scheduled start of this worker's next open-loop request (wall clock)."""
        if self.t0 is None:
            # Workers interleave their schedules instead of firing together.
            self.t0 = time.time() + self.index / (self.rate * PLAN.workers)
        t = self.t0 + self.slot / self.rate
        self.slot += 1
        return t


WORKER = _Worker()


@events.init.add_listener
def _on_init(environment, **_kwargs) -> None:
    if isinstance(environment.runner, MasterRunner):
        return
    WORKER.start(getattr(environment.runner, "worker_index", 0), PLAN.workers)
    gevent.spawn(_flusher)


def _flusher() -> None:
    while True:
        gevent.sleep(1.0)
        if WORKER.recorder:
            WORKER.recorder.flush(time.time())


@events.test_stop.add_listener
def _on_test_stop(environment, **_kwargs) -> None:
    if WORKER.recorder:
        WORKER.recorder.flush()


@events.quitting.add_listener
def _on_quitting(environment, **_kwargs) -> None:
    if WORKER.recorder:
        WORKER.recorder.flush()


class BlobUser(FastHttpUser):
    host = BUILDER.shaper.origin
    wait_time = constant(0)
    network_timeout = PLAN.timeout_s
    connection_timeout = PLAN.timeout_s
    # One connection per closed-loop user; an open-loop user holds several requests at once.
    concurrency = PLAN.per_user_concurrency if PLAN.open_loop else 1
    # FastHttpUser skips certificate checks by default: verify, against the lab CA if any
    insecure = False
    ssl_context_factory = staticmethod(lambda **_: client_ssl_context(PLAN.ca_bundle))

    def on_start(self) -> None:
        n = next(WORKER.users)
        self.state = UserState(f"{WORKER.tag}-{n}", random.Random(f"{WORKER.tag}-{n}"))

    @task
    def one_request(self) -> None:
        if PLAN.open_loop:
            self._open_loop()
        else:
            if not WORKER.take():
                raise StopUser()
            started = time.time()
            self._operation(self._choose(), started, time.perf_counter())

    def _choose(self) -> str:
        return self.state.rng.choices(OPS, WEIGHTS)[0]

    def _open_loop(self) -> None:
        pool = Pool(PLAN.per_user_concurrency)
        while WORKER.take():
            intended = WORKER.next_slot()
            delay = intended - time.time()
            if delay > 0:
                gevent.sleep(delay)
            # Latency counts from the scheduled start: time spent waiting for a free connection
            # because the server is slow is the server's latency, not hidden by the client.
            t0 = time.perf_counter() - max(0.0, time.time() - intended)
            pool.spawn(self._operation, self._choose(), intended, t0)  # blocks when pool is full
        pool.join()
        raise StopUser()

    # ---- one operation (may need a preparatory request, recorded under its own name) ----
    def _operation(self, op: str, started: float, t0: float) -> None:
        st, b = self.state, BUILDER
        if op == "put_block":
            self._send(b.put_block(st), started, t0)
        elif op == "put_block_list":
            if not st.staged:
                self._send(b.put_block(st), started, t0)
                started, t0 = time.time(), time.perf_counter()
            if st.staged and self._send(b.put_block_list(st), started, t0):
                st.own_blobs.append(b.staging_blob(st))
                b.rotate(st)
        elif op == "put_blob":
            name = b.new_blob_name(st)
            if self._send(b.put_blob(name), started, t0):
                st.own_blobs.append(name)
        elif op == "delete_blob":
            if not st.own_blobs:
                name = b.new_blob_name(st)
                if not self._send(b.put_blob(name), started, t0):
                    return
                st.own_blobs.append(name)
                started, t0 = time.time(), time.perf_counter()
            self._send(b.delete_blob(st.own_blobs.pop()), started, t0)
        else:
            self._send(getattr(b, op)(st), started, t0)

    def _send(self, req: Request, started: float, t0: float) -> bool:
        with self.client.request(
            req.method,
            req.target,
            name=req.op,
            data=req.body or None,
            headers=req.headers,
            catch_response=True,
        ) as resp:
            latency = time.perf_counter() - t0
            status = resp.status_code or 0
            ok = status in req.expect
            code = resp.headers.get("x-ms-error-code") if resp.headers else None
            if ok:
                resp.success()
            else:
                resp.failure(f"{status} {code or resp.error or ''}".strip())
        nbytes = bytes_moved(req, len(resp.content or b"")) if ok else 0
        if WORKER.recorder:
            WORKER.recorder.record(
                req.op, started, latency, status=status, ok=ok, nbytes=nbytes, error_code=code
            )
        if not ok and req.block_id in self.state.staged:
            self.state.staged.remove(req.block_id)  # never list a block the server did not keep
        return ok


class PlanShape(LoadTestShape):
    """Users per level from the plan; ends after the last level or once the count bound is hit.

    Writes the level timeline (wall clock) so the KPI code can cut the steady-state windows."""

    def __init__(self) -> None:
        super().__init__()
        self.levels = PLAN.schedule()
        self.t0_wall: float | None = None
        self.ended = False

    def _write(self, end: float | None) -> None:
        TIMELINE.parent.mkdir(parents=True, exist_ok=True)
        TIMELINE.write_text(json.dumps({"t0": self.t0_wall, "end": end}))

    def tick(self) -> tuple[int, float] | None:
        t = self.get_run_time()
        if self.t0_wall is None:
            self.t0_wall = time.time() - t
            self._write(None)
        done = t >= PLAN.duration_s
        if PLAN.max_requests is not None and self.runner is not None:
            done = done or self.runner.stats.total.num_requests >= PLAN.max_requests
        if done:
            if not self.ended:
                self.ended = True
                self._write(time.time())
            return None
        level = next(lv for lv in self.levels if lv.start_s <= t < lv.end_s)
        users = self._users(level.index)
        delta = abs(users - (self._users(level.index - 1) if level.index else 0))
        # Reach the level's users within 3/4 of its ramp (then let it settle), no faster than
        # Locust's per-worker limit.
        spawn_rate = max(1.0, delta / max(0.5, level.ramp_s * 0.75))
        return users, min(spawn_rate, MAX_SPAWN_PER_WORKER_S * PLAN.workers)

    def _users(self, index: int) -> int:
        users = self.levels[index].users
        return open_loop_users(PLAN, users) if PLAN.open_loop else users
