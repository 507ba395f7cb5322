"""Nothing waits forever: slow and idle clients are closed by the timeouts, a connection flood
sheds the oldest idle connections, stalled uploads do not fill the in-flight budget, and what
the HTTP layer refuses (malformed framing) still carries Azure's error shape."""

from __future__ import annotations

import http.client
import resource
import socket
import subprocess
import sys
import time
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from facade_raw import Raw
from raw_sockets import assert_azure_error, closed_by_server, read_response, wait_closed

from reference_server.connections import FD_RESERVE
from tests.conftest import ROOT, RunningServer, free_port, start_server, stop_server

MIB = 1024 * 1024
PUT_BLOB = {"x-ms-blob-type": "BlockBlob"}


@pytest.fixture
def launcher(tmp_path: Path) -> Iterator[Callable[..., RunningServer]]:
    started: list[RunningServer] = []

    def launch(*args: str) -> RunningServer:
        srv = start_server(
            tmp_path / f"data-{len(started)}", tmp_path / f"s{len(started)}.log", *args
        )
        started.append(srv)
        return srv

    yield launch
    for srv in started:
        if srv.process.poll() is None:
            stop_server(srv)


def wait_listening(srv: RunningServer, limit_s: float = 30) -> None:
    deadline = time.monotonic() + limit_s
    while "listening on" not in srv.log():
        assert srv.process.poll() is None and time.monotonic() < deadline, srv.log()
        time.sleep(0.05)


def connect(srv: RunningServer) -> socket.socket:
    return socket.create_connection(("127.0.0.1", srv.port), timeout=10)


def stalled_upload(
    raw: Raw, container: str, blob: str, size: int = MIB, sent: int = 16
) -> socket.socket:
    """A signed Put Blob of ``size`` bytes whose client sends ``sent`` bytes of the body (all
    ``x``) and then nothing."""
    req = raw.prepare("PUT", container, blob, headers=PUT_BLOB, content_length=size)
    sock = connect(raw.server)
    sock.sendall(req.head() + b"x" * sent)
    return sock


def serve_normally(raw: Raw, container: str, name: str) -> None:
    data = name.encode() * 1000
    assert raw.put_blob(container, name, data).status == 201
    got = raw.request("GET", container, name)
    assert (got.status, got.body) == (200, data)
    listing = raw.request("GET", container, query={"restype": "container", "comp": "list"})
    assert listing.status == 200 and name in [e.text for e in listing.xml().iter("Name")]


# ------------------------------------------------------------------------------- slow clients
def test_slow_clients_are_closed_while_a_normal_client_is_served(launcher) -> None:
    """300 slow connections at once (idle TCP, slowloris heads, stalled signed uploads): a
    normal client is served throughout; the head and body timeouts close the slow ones and
    abort their uploads, while idle connections wait for the (longer) keep-alive timeout."""
    srv = launcher(
        "--head-timeout", "1", "--body-timeout", "1", "--body-stall", "0.5",
        "--keepalive-timeout", "60",
    )  # fmt: skip
    raw = Raw(srv)
    ct = raw.create_container()
    idle = [connect(srv) for _ in range(100)]
    slowloris = [connect(srv) for _ in range(100)]
    head = raw.prepare("GET", ct, "x").head()
    for sock in slowloris:
        sock.sendall(head[:1])
    stalled = [stalled_upload(raw, ct, f"stalled-{i}") for i in range(100)]
    try:
        serve_normally(raw, ct, "during")
        # slowloris: one more byte of the head every 0.2 s, until the server hangs up
        sent, deadline = 1, time.monotonic() + 30
        while not all(closed_by_server(s) for s in slowloris):
            assert time.monotonic() < deadline, "slowloris heads never closed"
            for sock in slowloris:
                try:
                    sock.send(head[sent : sent + 1])
                except OSError:
                    pass
            sent = min(sent + 1, len(head) - 3)  # never complete the head
            serve_normally(raw, ct, f"loris-{sent}")
            time.sleep(0.2)
        wait_closed(stalled, "stalled uploads")
        serve_normally(raw, ct, "after")
        # the stalled uploads were aborted: no blob, no staging file left behind
        for i in (0, 99):
            assert raw.request("HEAD", ct, f"stalled-{i}").status == 404
        assert not [p for p in (srv.data_root / ".staging").iterdir() if p.name.startswith("up-")]
        # idle connections are still open (keep-alive 60 s) and are served when they speak
        assert not any(closed_by_server(s) for s in idle)
        for sock in idle[:5]:
            sock.sendall(raw.prepare("GET", ct, "after").head())
            assert read_response(sock)[0] == 200
    finally:
        for sock in idle + slowloris + stalled:
            sock.close()
        raw.close()
    assert "Traceback" not in srv.log(), srv.log()


def test_idle_connections_close_after_the_keepalive_timeout(launcher) -> None:
    srv = launcher("--keepalive-timeout", "1")
    raw = Raw(srv)
    ct = raw.create_container()
    idle = [connect(srv) for _ in range(100)]
    used = connect(srv)  # idle again after one request
    used.sendall(raw.prepare("GET", ct, query={"restype": "container"}).head())
    assert read_response(used)[0] == 200
    try:
        wait_closed([*idle, used], "idle connections")
        serve_normally(raw, ct, "fresh")
    finally:
        for sock in [*idle, used]:
            sock.close()
        raw.close()


def test_idle_flood_beyond_the_connection_limit_sheds_the_oldest(launcher) -> None:
    srv = launcher("--max-connections", "50", "--keepalive-timeout", "60")
    raw = Raw(srv)
    ct = raw.create_container()
    raw.close()
    flood = [connect(srv) for _ in range(200)]
    try:
        # the server accepts in arrival order: each one past the limit closes the oldest idle
        wait_closed(flood[:150], "oldest idle connections")
        raw = Raw(srv)
        serve_normally(raw, ct, "newcomer")
        assert sum(not closed_by_server(s) for s in flood[150:]) >= 45
    finally:
        for sock in flood:
            sock.close()
        raw.close()


def test_at_the_connection_limit_the_longest_stalled_upload_makes_room(launcher) -> None:
    """No idle connection to shed: a newcomer closes the upload stalled the longest."""
    srv = launcher("--max-connections", "20", "--body-stall", "0.5", "--body-timeout", "60")
    raw = Raw(srv)
    ct = raw.create_container()
    raw.close()  # its connection would be the idle one shed first
    staging = srv.data_root / ".staging"
    # 2 MiB and a bit of a 4 MiB body: each upload is in its handler once a batch is in staging
    held = [stalled_upload(raw, ct, f"held-{i}", 4 * MIB, 2 * MIB + 16) for i in range(20)]
    try:
        deadline = time.monotonic() + 30
        while len(list(staging.glob("up-*"))) < len(held):
            assert time.monotonic() < deadline, "the held uploads never reached the handler"
            time.sleep(0.02)
        # until the bodies have stalled past --body-stall, a newcomer finds nothing to shed
        # and is closed itself; then it sheds the longest-stalled upload and is served
        raw = Raw(srv)
        while True:
            try:
                status = raw.request("GET", ct, query={"restype": "container"}).status
                break
            except (ConnectionError, http.client.HTTPException):
                raw.close()
                assert time.monotonic() < deadline, "never room for a newcomer"
                time.sleep(0.1)
        assert status == 200
        serve_normally(raw, ct, "newcomer")
        closed = [closed_by_server(s) for s in held]
        assert closed[0] and sum(closed) <= 3, closed  # the oldest first, one per newcomer
        assert raw.request("HEAD", ct, "held-0").status == 404
    finally:
        for sock in held:
            sock.close()
        raw.close()


def test_the_descriptor_limit_bounds_connections_too(tmp_path: Path) -> None:
    """With ``ulimit -n`` 4,700, more idle connections than descriptors: the façade keeps the
    count under its descriptor budget (shedding the oldest) instead of failing accept(2), so a
    new client is still served."""
    port, log_path = free_port(), tmp_path / "server.log"
    argv = [sys.executable, "-m", "reference_server", "--data-root", str(tmp_path / "data")]
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(
            [*argv, "--port", str(port), "--keepalive-timeout", "60"],
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=ROOT,
            preexec_fn=lambda: resource.setrlimit(resource.RLIMIT_NOFILE, (4700, 4700)),
        )
    srv = RunningServer(port, tmp_path / "data", proc, log_path)
    flood: list[socket.socket] = []
    try:
        wait_listening(srv)
        budget = 4700 - FD_RESERVE
        assert f"max_connections lowered to {budget}" in srv.log()
        flood = [connect(srv) for _ in range(4800)]
        wait_closed(flood[: 4800 - budget], "connections over the descriptor budget")
        raw = Raw(srv)
        serve_normally(raw, raw.create_container(), "newcomer")
        raw.close()
    finally:
        for sock in flood:
            sock.close()
        stop_server(srv)
    assert "Traceback" not in srv.log()


@pytest.mark.parametrize("trickle", [False, True], ids=["stalled", "trickling"])
def test_stalled_signed_uploads_do_not_make_others_get_503(launcher, trickle: bool) -> None:
    """Bodies that send nothing, or a byte now and then, leave the in-flight budget after
    --body-stall: other clients are served, and such an upload whose client resumes still
    completes."""
    srv = launcher("--max-inflight", "8", "--body-stall", "2", "--body-timeout", "60")
    raw = Raw(srv)
    ct = raw.create_container()
    # 2 MiB and a bit of each 4 MiB body: the server writes a first batch to staging, which
    # shows that all 8 requests hold a place in the budget before anything else is sent
    size, sent = 4 * MIB, [2 * MIB + 16] * 8
    held = [stalled_upload(raw, ct, f"held-{i}", size, sent[i]) for i in range(8)]
    staging = srv.data_root / ".staging"
    try:
        deadline = time.monotonic() + 30
        while len(list(staging.glob("up-*"))) < len(held):
            assert time.monotonic() < deadline, "the held uploads never reached the handler"
            time.sleep(0.02)
        statuses: list[int] = []
        # the budget is full, then the bodies stall out of it; the limit only bounds a hung test
        while 503 not in statuses or statuses[-1] == 503:
            assert time.monotonic() < deadline, f"never full, then free: {statuses[-20:]}"
            statuses.append(raw.request("GET", ct, query={"restype": "container"}).status)
            if trickle:  # one byte per upload every turn: progress, but no real progress
                for i, sock in enumerate(held):
                    sock.sendall(b"x")
                    sent[i] += 1
            time.sleep(0.02)
        assert statuses[0] == 503 and statuses[-1] == 200
        for i in range(20):  # and it stays so: the budget is free for requests making progress
            assert raw.put_blob(ct, f"other-{i}", b"x" * 1000).status == 201
        assert not any(closed_by_server(s) for s in held)
        for i, sock in enumerate(held):  # the clients resume: every upload completes
            sock.sendall(bytes([i]) * (size - sent[i]))
            assert read_response(sock)[0] == 201
        got = raw.request("GET", ct, "held-3")
        assert got.body == b"x" * sent[3] + bytes([3]) * (size - sent[3])
    finally:
        for sock in held:
            sock.close()
        raw.close()


# ---------------------------------------------------------------------------- framing errors
FRAMING_CASES = {
    "duplicate-content-length": (
        b"PUT /devstoreaccount1/ct/b HTTP/1.1\r\nHost: h\r\nContent-Length: 1\r\n"
        b"Content-Length: 2\r\n\r\nab",
        400,
        "InvalidHeaderValue",
    ),
    "request-line-over-8190": (
        b"GET /devstoreaccount1/" + b"a" * 9000 + b" HTTP/1.1\r\nHost: h\r\n\r\n",
        414,
        "RequestUrlFailedToParse",
    ),
    "missing-host": (b"GET /devstoreaccount1/ct HTTP/1.1\r\n\r\n", 400, "MissingRequiredHeader"),
    "header-over-8190": (
        b"GET /devstoreaccount1 HTTP/1.1\r\nHost: h\r\nx-ms-meta-a: " + b"a" * 9000 + b"\r\n\r\n",
        431,
        "InvalidHeaderValue",
    ),
    "bad-method": (b"G@T /devstoreaccount1 HTTP/1.1\r\nHost: h\r\n\r\n", 400, "InvalidHttpVerb"),
    "bad-version": (
        b"GET /devstoreaccount1 HTTQ/1.1\r\nHost: h\r\n\r\n",
        400,
        "RequestUrlFailedToParse",
    ),
    "bad-chunk-size": (
        b"PUT /devstoreaccount1/ct/b HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"zz\r\nab\r\n0\r\n\r\n",
        400,
        "InvalidInput",
    ),
    "asterisk-target": (b"OPTIONS * HTTP/1.1\r\nHost: h\r\n\r\n", 400, "InvalidUri"),
}


@pytest.mark.parametrize("case", sorted(FRAMING_CASES))
def test_framing_errors_carry_the_azure_error_shape(shared_server, case: str) -> None:
    data, status, code = FRAMING_CASES[case]
    with socket.create_connection(("127.0.0.1", shared_server.port), timeout=10) as sock:
        sock.sendall(data)
        got_status, headers, body = read_response(sock)
    assert got_status == status
    assert_azure_error(got_status, headers, body, code)
    if case == "duplicate-content-length":
        assert ET.fromstring(body).findtext("HeaderName") == "Content-Length"
    if case == "missing-host":
        assert ET.fromstring(body).findtext("HeaderName") == "Host"


def test_newline_in_the_path_gets_an_azure_error(raw: Raw, container: str) -> None:
    """%0A decodes to a newline, which the catch-all route once failed to match (aiohttp's
    plain-text 404): now the request reaches the façade and its error carries the code."""
    resp = raw.request("GET", container, "no\nsuch")
    assert resp.status >= 400 and resp.error_code
    assert resp.xml().findtext("Code") == resp.error_code
    assert "%0A" in raw.prepare("GET", container, "no\nsuch").target


@pytest.mark.parametrize("pause_s", [0, 0.2])
def test_body_framing_error_after_the_head_is_400_invalid_input(
    raw: Raw, container: str, pause_s: float
) -> None:
    """A chunked body that goes wrong after its head was parsed (before or after the handler
    began reading it): 400, never a handler left waiting for the rest."""
    req = raw.prepare(
        "PUT",
        container,
        "chunked",
        headers={**PUT_BLOB, "Transfer-Encoding": "chunked", "Content-Length": None},
    )
    with socket.create_connection(("127.0.0.1", raw.server.port), timeout=10) as sock:
        sock.sendall(req.head() + b"4\r\nabcd\r\n")
        time.sleep(pause_s)  # with a pause, the handler is reading the body by now
        sock.sendall(b"zz\r\n")
        status, headers, body = read_response(sock)
    assert status == 400
    assert_azure_error(status, headers, body, "InvalidInput")
    assert raw.request("HEAD", container, "chunked").status == 404
