"""TLS in the lab: the lab CA, the façade over https, and clients that trust it."""

from __future__ import annotations

import asyncio
import http.client
import ipaddress
import json
import os
import select
import socket
import ssl
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner
from cryptography import x509
from pydantic import ValidationError

from harness.bench.client import BenchClient, PhaseResult
from harness.bench_cli import bench
from harness.cli import main
from harness.conformance.cli import capabilities_for
from harness.conformance.framework import FAIL, PASS
from harness.conformance.suite import GATE_MAX_INFLIGHT, run_checks
from harness.http import BlobHttp, BlobRequests, client_ssl_context
from harness.lab_proxy import LabProxy, routes_for, virtual_host
from harness.labca import LabCA, default_ca_dir
from harness.paths import ROOT
from harness.runner import read_results, step_rows
from harness.scenario import TargetSpec
from harness.targets import make_target
from harness.targets.base import DEV_ACCOUNT, DEV_KEY, Endpoint, free_port
from harness.targets.reference import ReferenceTarget
from reference_server.cli import build_config, parse_args


def _handshake(cert: Path, key: Path, server_hostname: str, cafile: Path | None) -> bytes:
    """One TLS handshake on loopback with a server holding ``cert``; returns what it sent."""
    server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_ctx.load_cert_chain(cert, key)
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(1)
        listener.settimeout(10)

        def serve() -> None:
            conn, _ = listener.accept()
            try:
                with server_ctx.wrap_socket(conn, server_side=True) as tls:
                    tls.sendall(b"ok")
            except (ssl.SSLError, OSError):
                pass  # the client refused us: its side raises

        thread = threading.Thread(target=serve, daemon=True)
        thread.start()
        client_ctx = ssl.create_default_context(cafile=str(cafile) if cafile else None)
        client_ctx.verify_flags |= ssl.VERIFY_X509_STRICT  # the default from Python 3.13 on
        try:
            with socket.create_connection(listener.getsockname(), timeout=10) as raw:
                with client_ctx.wrap_socket(raw, server_hostname=server_hostname) as tls:
                    return tls.recv(2)
        finally:
            thread.join(10)


def test_lab_ca_is_reused_and_issues_names_and_addresses(tmp_path: Path) -> None:
    ca = LabCA.load_or_create(tmp_path / "ca")
    again = LabCA.load_or_create(tmp_path / "ca")
    assert again.cert == ca.cert  # idempotent: the bundle clients trust does not change
    assert (tmp_path / "ca" / "ca.key").stat().st_mode & 0o077 == 0
    cert_path, key_path = ca.issue(["127.0.0.1", "localhost", "*.blob.lab.test"], tmp_path / "srv")
    assert (cert_path, key_path) == (tmp_path / "srv" / "cert.pem", tmp_path / "srv" / "key.pem")
    cert = x509.load_pem_x509_certificate(cert_path.read_bytes())
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.IPAddress) == [ipaddress.ip_address("127.0.0.1")]
    assert san.get_values_for_type(x509.DNSName) == ["localhost", "*.blob.lab.test"]
    assert cert.issuer == ca.cert.subject


@pytest.mark.parametrize("hostname", ["127.0.0.1", "localhost", "devstoreaccount1.blob.lab.test"])
def test_issued_certificate_verifies_against_the_bundle(tmp_path: Path, hostname: str) -> None:
    ca = LabCA.load_or_create(tmp_path)
    cert, key = ca.issue(["127.0.0.1", "localhost", "*.blob.lab.test"])
    assert _handshake(cert, key, hostname, ca.bundle_path) == b"ok"


def test_certificate_is_refused_without_the_lab_ca_or_for_another_name(tmp_path: Path) -> None:
    ca = LabCA.load_or_create(tmp_path)
    cert, key = ca.issue(["127.0.0.1"])
    other = LabCA.load_or_create(tmp_path / "other")
    with pytest.raises(ssl.SSLCertVerificationError):
        _handshake(cert, key, "127.0.0.1", other.bundle_path)
    with pytest.raises(ssl.SSLCertVerificationError):
        _handshake(cert, key, "localhost", ca.bundle_path)


def test_default_ca_dir_follows_lab_ca_dir(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("LAB_CA_DIR", str(tmp_path / "ca"))
    assert default_ca_dir() == tmp_path / "ca"
    monkeypatch.delenv("LAB_CA_DIR")
    monkeypatch.delenv("HARNESS_CACHE_DIR", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert default_ca_dir() == tmp_path / "xdg" / "blob-facade-lab" / "lab-ca"


# ---------------------------------------------------------------- the façade over https

CONTAINER = "tls-tests"


@pytest.fixture(scope="module")
def ca(tmp_path_factory: pytest.TempPathFactory) -> LabCA:
    return LabCA.load_or_create(tmp_path_factory.mktemp("lab-ca"))


@pytest.fixture(scope="module")
def tls_endpoint(ca: LabCA, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Endpoint]:
    """A `tls: true` reference target: https with a certificate from the module's lab CA."""
    target = make_target("reference", options={"tls": True})
    assert isinstance(target, ReferenceTarget)
    target.ca_dir = ca.directory
    target.start(tmp_path_factory.mktemp("tls-target"))
    try:
        yield target.endpoint()
    finally:
        target.stop()


def _client(endpoint: Endpoint, ca_bundle: Path | None) -> BlobHttp:
    return BlobHttp(endpoint.blob_url, endpoint.account, endpoint.key, ca_bundle=ca_bundle)


def test_tls_target_endpoint_is_https_with_the_lab_ca(tls_endpoint: Endpoint, ca: LabCA) -> None:
    assert tls_endpoint.blob_url.startswith("https://127.0.0.1:")
    assert tls_endpoint.ca_bundle == ca.bundle_path
    assert tls_endpoint.connection_string.startswith("DefaultEndpointsProtocol=https;")


def test_raw_client_round_trip_over_one_keep_alive_connection(tls_endpoint: Endpoint) -> None:
    http = _client(tls_endpoint, tls_endpoint.ca_bundle)
    try:
        assert http.request("PUT", CONTAINER, query={"restype": "container"}).status in (201, 409)
        conn = http.connection()
        sock = conn.sock
        data = os.urandom(70_000)
        put = http.request(
            "PUT", CONTAINER, "dir/raw.bin", body=data, headers={"x-ms-blob-type": "BlockBlob"}
        )
        assert put.status == 201, put.body
        got = http.request("GET", CONTAINER, "dir/raw.bin")
        assert (got.status, got.body) == (200, data)
        # keep-alive: the handshake is paid once, not per operation
        assert http.connection() is conn and conn.sock is sock
    finally:
        http.close()


def test_client_without_the_lab_ca_is_refused(tls_endpoint: Endpoint) -> None:
    http = _client(tls_endpoint, None)  # system CAs only: verification on, lab CA unknown
    with pytest.raises(ssl.SSLCertVerificationError, match="certificate verify failed"):
        http.request("GET", query={"comp": "list"})
    http.close()


@pytest.mark.conformance
def test_conformance_passes_over_https(ca: LabCA, tmp_path: Path) -> None:
    # the gate's own reference settings (in-flight limit, capabilities), served over https
    target = ReferenceTarget(
        extra_args=["--max-inflight", str(GATE_MAX_INFLIGHT)], tls=True, ca_dir=ca.directory
    )
    target.start(tmp_path)
    try:
        run = run_checks(target.endpoint(), capabilities=capabilities_for("reference"))
    finally:
        target.stop()
    failed = [(r.id, r.observed) for r in run.results if r.status == FAIL]
    assert len(run.results) >= 150 and not failed
    # the hand-written requests (limits, throttling) went over TLS too, and were judged
    assert {"limits.block-size", "throttle.server-busy"} <= {
        r.id for r in run.results if r.status == PASS
    }


def test_lab_proxy_tunnels_https_to_the_virtual_host(tls_endpoint: Endpoint) -> None:
    """AzCopy's path: CONNECT <account>.blob.lab.test:443 through the lab proxy, TLS inside
    verified for that name, virtual-host addressing at the façade."""
    with LabProxy(routes_for(tls_endpoint)) as proxy:
        host = virtual_host(tls_endpoint.account)
        shaper = BlobRequests(f"https://{host}", tls_endpoint.account, tls_endpoint.key)
        conn = http.client.HTTPSConnection(
            "127.0.0.1",
            proxy.port,
            timeout=30,
            context=client_ssl_context(tls_endpoint.ca_bundle),
        )
        conn.set_tunnel(host, 443)
        try:
            for method, query in (("PUT", {"restype": "container"}), ("GET", {"comp": "list"})):
                req = shaper.prepare(
                    method, "tls-proxied" if method == "PUT" else None, query=query
                )
                conn.request(method, req.target, headers=req.headers)
                resp = conn.getresponse()
                body = resp.read()
                assert resp.status in ((201, 409) if method == "PUT" else (200,)), body
            assert b"<Name>tls-proxied</Name>" in body
        finally:
            conn.close()
        assert proxy.forwarded == 1 and proxy.refused == []


def test_bench_client_round_trip_over_https(tls_endpoint: Endpoint) -> None:
    client = BenchClient(tls_endpoint, list)
    names = [f"bench/{i}" for i in range(8)]

    async def run() -> tuple[PhaseResult, PhaseResult]:
        await client.ensure_container(CONTAINER)
        put = await client.put_small(CONTAINER, names, 3000, 4)
        return put, await client.get_small(CONTAINER, names, 4)

    put, get = asyncio.run(run())
    assert (put.ops, put.errors, get.ops, get.errors) == (8, [], 8, [])
    assert get.bytes == 8 * 3000


def test_server_flags_need_cert_and_key_together(tmp_path: Path, ca: LabCA) -> None:
    cert, _ = ca.issue(["127.0.0.1"], tmp_path / "srv")
    cmd = [sys.executable, "-m", "reference_server", "--data-root", str(tmp_path / "d")]
    alone = subprocess.run(
        [*cmd, "--tls-cert", str(cert)], capture_output=True, text=True, timeout=60
    )
    assert alone.returncode == 1 and "--tls-cert and --tls-key go together" in alone.stderr
    other_key = LabCA.load_or_create(tmp_path / "other").issue(["x.test"], tmp_path / "o")[1]
    mismatched = subprocess.run(
        [*cmd, "--tls-cert", str(cert), "--tls-key", str(other_key)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert mismatched.returncode == 1 and "cannot load --tls-cert/--tls-key" in mismatched.stderr


def _announced(proc: subprocess.Popen[str], timeout_s: float = 60) -> str:
    """The first line the server prints, waiting at most ``timeout_s``."""
    assert proc.stdout is not None
    ready, _, _ = select.select([proc.stdout], [], [], timeout_s)
    return proc.stdout.readline().strip() if ready else ""


@pytest.mark.parametrize("workers", [1, 2])
def test_harness_serve_announces_and_serves_https(tmp_path: Path, ca: LabCA, workers: int) -> None:
    cert, key = ca.issue(["127.0.0.1"], tmp_path / "srv")
    port = free_port()
    args = ["--data-root", str(tmp_path / "d"), "--port", str(port), "--workers", str(workers)]
    args += ["--tls-cert", str(cert), "--tls-key", str(key)]
    proc = subprocess.Popen(
        [sys.executable, "-m", "harness.cli", "serve", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        cwd=ROOT,
    )
    try:
        assert _announced(proc) == f"listening on https://127.0.0.1:{port}"
        endpoint = Endpoint("reference", DEV_ACCOUNT, f"https://127.0.0.1:{port}/{DEV_ACCOUNT}")
        endpoint.key = DEV_KEY
        http = _client(endpoint, ca.bundle_path)
        # several connections, so with two workers both are likely to answer: each has TLS
        for i in range(4):
            assert (
                http.request("PUT", f"serve-{i}-tls", query={"restype": "container"}).status == 201
            )
            http.close()
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def test_scenario_tls_option_is_validated() -> None:
    ok = TargetSpec.model_validate({"kind": "reference", "options": {"tls": True}})
    assert ok.options["tls"] is True
    with pytest.raises(ValidationError, match=r"options\.tls: must be true or false"):
        TargetSpec.model_validate({"options": {"tls": "yes"}})
    with pytest.raises(ValidationError, match="only the reference target serves https"):
        TargetSpec.model_validate({"kind": "azurite", "options": {"tls": True}})


@pytest.mark.slow
def test_bench_tls_tiny_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A smoke of `harness bench tls`: both schemes measured through the runner, every ratio
    judged (a tiny run on a shared host may miss a goal: exit 0 or 1, never a crash)."""
    monkeypatch.setenv("LAB_CA_DIR", str(tmp_path / "ca"))
    args = ["tls", "--size", "4MiB", "--block-size", "1MiB", "--concurrency", "4"]
    args += ["--small-ops", "20", "--small-concurrency", "4", "--repeats", "1", "--workers", "1"]
    result = CliRunner(env={"COLUMNS": "200"}).invoke(bench, [*args, "--out", str(tmp_path)])
    assert result.exit_code in (0, 1), result.output + repr(result.exception)
    (run_dir,) = tmp_path.glob("*-bench-tls")
    info = json.loads((run_dir / "run.json").read_text())
    assert info["targets"]["tls"]["tls"] is True and info["targets"]["reference"]["tls"] is False
    rows = step_rows(read_results(run_dir)).to_dict("records")
    by = {(r["target"], r["step"]): r for r in rows}
    steps = ("put-block", "get-blob", "put-small", "get-small")
    assert set(by) == {(t, s) for t in ("reference", "tls") for s in steps}
    for r in rows:
        assert r["ok"] and r["failed"] == 0, r
    for target in ("reference", "tls"):  # every byte of each workload moved, on both schemes
        assert by[(target, "put-block")]["bytes"] == by[(target, "get-blob")]["bytes"] == 4 * 2**20
        assert by[(target, "get-small")]["bytes"] == 20 * 1024
    judged = {v["criterion"]: v for v in info["verdicts"]}
    assert len(judged) == 4 and all(v["observed"] > 0 for v in judged.values())
    assert "Put Block throughput over https" in result.output


def test_server_config_takes_the_pair_from_yaml_and_flags(tmp_path: Path, ca: LabCA) -> None:
    cert, key = ca.issue(["127.0.0.1"], tmp_path / "srv")
    (tmp_path / "s.yaml").write_text(f"tls_cert: {cert}\ntls_key: {key}\n")
    from_yaml = build_config(parse_args(["--config", str(tmp_path / "s.yaml")]))
    assert (from_yaml.tls_cert, from_yaml.tls_key, from_yaml.scheme) == (cert, key, "https")
    plain = build_config(parse_args([]))
    assert (plain.tls_cert, plain.scheme) == (None, "http")


TLS_SCENARIO = """\
name: tls-run
target: {kind: reference, options: {tls: true}}
datasets:
  - name: d
    files:
      - {count: 3, size: 8KiB}
steps:
  - {driver: sdk, operation: upload, dataset: d, prefix: t}
  - {driver: sdk, operation: download, dataset: d, prefix: t}
criteria:
  - {step: sdk-download, expect: verified_objects == 3}
"""


@pytest.mark.sdk
def test_scenario_with_tls_target_runs_over_https(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LAB_CA_DIR", str(tmp_path / "ca"))
    scenario = tmp_path / "tls.yaml"
    scenario.write_text(TLS_SCENARIO)
    out = tmp_path / "reports"
    result = CliRunner().invoke(main, ["run", str(scenario), "--out", str(out)])
    assert result.exit_code == 0, result.output
    (run_dir,) = (p for p in out.iterdir() if p.is_dir())
    info = json.loads((run_dir / "run.json").read_text())
    assert info["targets"]["reference"]["tls"] is True
    assert info["preflight"]["reference"]["status"] == 200  # reached over https, CA trusted
    log = (run_dir / "targets" / "reference" / "server.log").read_text()
    assert "listening on https://127.0.0.1:" in log
    # the contract recorder sat in between, serving https from the same lab CA
    assert (run_dir / "targets" / "reference" / "proxy-tls" / "cert.pem").is_file()
    contract = info["contract"]
    assert contract["recorded"] and contract["drifted"] == 0
    assert [t["calls"] for t in contract["tools"]] and all(
        t["calls"] > 0 for t in contract["tools"]
    )
