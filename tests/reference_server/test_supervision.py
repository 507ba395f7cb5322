"""``--workers N`` supervision, proven with kill -9: workers never outlive their supervisor, one
façade per data root, and no crash exposes a half-written blob or sweeps a live upload."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import psutil
import pytest
from facade_raw import Raw
from raw_sockets import closed_by_server, read_response

from tests.conftest import ROOT, RunningServer, free_port, start_server, stop_server, wait_until

MIB = 1024 * 1024
PUT_BLOB = {"x-ms-blob-type": "BlockBlob"}
BODY = os.urandom(8 * MIB)


@pytest.fixture
def launcher(tmp_path: Path) -> Iterator[Callable[..., RunningServer]]:
    """Starts façades on one data root; every one still running is stopped at the end."""
    started: list[RunningServer] = []

    def launch(*args: str) -> RunningServer:
        srv = start_server(tmp_path / "data", tmp_path / f"server-{len(started)}.log", *args)
        started.append(srv)
        # the port answers once the first worker listens; the line follows once all of them do
        wait_until(lambda: "listening on" in srv.log(), "every worker to listen")
        return srv

    yield launch
    for srv in started:
        if srv.process.poll() is None:
            stop_server(srv)


def workers_of(srv: RunningServer) -> list[psutil.Process]:
    procs = psutil.Process(srv.process.pid).children()
    return [p for p in procs if "spawn_main" in " ".join(p.cmdline())]


def partial_upload(raw: Raw, container: str, blob: str) -> socket.socket:
    """A signed Put Blob whose client has sent half of the body so far."""
    req = raw.prepare("PUT", container, blob, headers=PUT_BLOB, content_length=len(BODY))
    sock = socket.create_connection(("127.0.0.1", raw.server.port), timeout=30)
    sock.sendall(req.head() + BODY[: len(BODY) // 2])
    return sock


def partial_bodies(srv: RunningServer) -> dict[str, int]:
    """Staging files of request bodies -> the pid of the worker writing each (``up-<pid>-``)."""
    staging = srv.data_root / ".staging"
    return {p.name: int(p.name.split("-")[1]) for p in staging.glob("up-*")}


def second_server(srv: RunningServer) -> subprocess.CompletedProcess[str]:
    """Another façade on the same data root (another port): it must refuse to start."""
    argv = [sys.executable, "-m", "reference_server", "--data-root", str(srv.data_root)]
    argv += ["--port", str(free_port()), "--workers", "2"]
    return subprocess.run(argv, cwd=ROOT, capture_output=True, text=True, timeout=60)


def test_second_server_refuses_a_live_data_root_and_the_live_one_keeps_its_upload(
    launcher,
) -> None:
    srv = launcher("--workers", "2")
    raw = Raw(srv)
    ct = raw.create_container()
    sock = partial_upload(raw, ct, "in-flight")
    try:
        wait_until(lambda: len(partial_bodies(srv)) == 1, "the partial body in staging")
        second = second_server(srv)
        assert second.returncode != 0
        assert f"is in use by another reference façade (pid {srv.process.pid})" in second.stderr
        # nothing was swept under the live server: its upload completes
        sock.sendall(BODY[len(BODY) // 2 :])
        assert read_response(sock)[0] == 201
        assert raw.request("GET", ct, "in-flight").body == BODY
    finally:
        sock.close()
        raw.close()


def test_supervisor_kill_takes_its_workers_down_and_exposes_no_partial_blob(launcher) -> None:
    srv = launcher("--workers", "2")
    raw = Raw(srv)
    ct = raw.create_container()
    old = os.urandom(MIB)
    assert raw.put_blob(ct, "old", old).status == 201
    workers = workers_of(srv)
    assert len(workers) == 2
    socks = [partial_upload(raw, ct, name) for name in ("new", "old")]
    try:
        wait_until(lambda: len(partial_bodies(srv)) == 2, "both partial bodies in staging")
        srv.process.send_signal(signal.SIGKILL)
        srv.process.wait()
        # its workers are still ending their requests: a new server must not sweep under them
        second = second_server(srv)
        assert second.returncode != 0 and "workers of a previous" in second.stderr, second.stderr
    finally:
        for sock in socks:  # the clients give up: the workers abort the uploads and exit
            sock.close()
        raw.close()
    _, alive = psutil.wait_procs(workers, timeout=30)
    assert not alive, alive
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", srv.port), timeout=5).close()

    srv = launcher("--workers", "2")
    raw = Raw(srv)
    try:
        assert raw.request("GET", ct, "new").status == 404
        assert raw.request("GET", ct, "old").body == old
        listing = raw.request("GET", ct, query={"restype": "container", "comp": "list"})
        assert [e.text for e in listing.xml().iter("Name")] == ["old"]
        assert partial_bodies(srv) == {}
        assert not (srv.data_root / srv.account / ct / "new").exists()
    finally:
        raw.close()


def test_worker_killed_mid_upload_is_replaced_and_its_leftovers_swept(launcher) -> None:
    """kill -9 of one of two workers mid-upload: the supervisor starts another and deletes the
    dead one's partial bodies; uploads on the other worker complete, none is half visible."""
    srv = launcher("--workers", "2")
    raw = Raw(srv)
    ct = raw.create_container()
    names = [f"b{i}" for i in range(8)]  # connections spread over both workers
    socks = [partial_upload(raw, ct, name) for name in names]
    try:
        wait_until(lambda: len(partial_bodies(srv)) == len(names), "every partial body")
        owners = set(partial_bodies(srv).values())
        if len(owners) < 2:
            pytest.skip(f"the kernel put every connection on one worker: {partial_bodies(srv)}")
        victim = min(owners)
        os.kill(victim, signal.SIGKILL)
        wait_until(lambda: victim not in partial_bodies(srv).values(), "the dead worker's sweep")
        wait_until(lambda: len(workers_of(srv)) == 2, "a replacement worker")
        statuses = []
        for sock in socks:
            if closed_by_server(sock):
                statuses.append(None)
                continue
            sock.sendall(BODY[len(BODY) // 2 :])
            statuses.append(read_response(sock)[0])
        assert None in statuses and 201 in statuses and set(statuses) == {None, 201}
        for name, status in zip(names, statuses, strict=True):
            got = raw.request("GET", ct, name)
            assert (got.status, got.body) == ((200, BODY) if status == 201 else (404, got.body))
    finally:
        for sock in socks:
            sock.close()
        raw.close()
