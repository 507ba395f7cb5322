"""The `identity` scenario through the one runner: every client with Entra ID tokens from the lab
token service that the target brings up (``options: {identity: true}``), each step's token
requests recorded beside its Blob calls and diffed against the locked contracts; and the
running target refusing bad tokens as Azure does (the bearer conformance checks)."""

from __future__ import annotations

import json
import socket
from pathlib import Path
from typing import Any

import pytest

from harness.cli_common import load_scenario
from harness.conformance.framework import PASS
from harness.conformance.suite import run_checks
from harness.contract.record import CONTRACTS_DIR, ContractRecorder
from harness.identity.lab import BearerEndpoint
from harness.identity.target import IdentityTarget
from harness.runner import Runner
from harness.targets.reference import ReferenceTarget

CLIENTS = ("azcopy", "sdk", "sdk-aio", "boostedblob", "rclone")


@pytest.mark.azcopy
@pytest.mark.sdk
@pytest.mark.boostedblob
@pytest.mark.rclone
def test_harness_run_identity_passes_with_token_calls_in_the_contracts(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    looked_up: list[str] = []
    connects: list[Any] = []
    getaddrinfo, connect = socket.getaddrinfo, socket.socket.connect

    def lookup(host: Any, *args: Any, **kwargs: Any) -> Any:
        looked_up.append(str(host))
        return getaddrinfo(host, *args, **kwargs)

    def record(self: socket.socket, address: Any) -> Any:
        connects.append(address)
        return connect(self, address)

    # the in-process clients (SDK sync and aio, the harness itself); Go and boostedblob
    # subprocesses are held to the target's login proxy, whose refusals are its facts
    monkeypatch.setattr(socket, "getaddrinfo", lookup)
    monkeypatch.setattr(socket.socket, "connect", record)
    scenario = load_scenario("identity", ())
    runner = Runner(
        scenario, out=tmp_path, cache_dir=tmp_path / "cache", hooks=[ContractRecorder()]
    )
    outcome = runner.run()
    info = json.loads((outcome.run_dir / "run.json").read_text())

    assert outcome.exit_code == 0, info.get("first_failure")
    assert {r.driver for r in runner.results if r.ok} == set(CLIENTS)
    assert info["verdicts"] and all(v["passed"] for v in info["verdicts"]), info["verdicts"]
    facts = info["targets"]["reference"]
    # Go and boostedblob: every name and the IMDS address go to a lab proxy, which refused none
    assert facts["tls"] is True and facts["identity"]["refused"] == []
    azcopy = [r for r in runner.results if r.driver == "azcopy"]
    assert azcopy and all(r.extra["proxy_refused"] == 0 for r in azcopy)
    # nothing named was resolved (only loopback literals), nothing dialled the real IMDS
    assert {h for h in looked_up if h not in ("127.0.0.1", "localhost")} == set()
    assert not any(isinstance(a, tuple) and a[0] == "169.254.169.254" for a in connects)

    # every client's token acquisition went through the recording proxy into its contract,
    # and matches what is locked
    tools = {t["tool"]: t for t in info["contract"]["tools"]}
    assert set(tools) == {"azcopy", "azure-storage-blob", "boostedblob", "rclone"}
    assert [t["lines"] for t in tools.values()] == [[]] * 4
    for tool in tools.values():
        locked = (CONTRACTS_DIR / f"{tool['locked']}.yaml").read_text()
        assert "Token: " in locked and "identity" in locked
    token_ops = {
        "azcopy": "Token: managed identity (App Service)",
        "azure-storage-blob": "Token: client credentials v2.0",
        "boostedblob": "Token: managed identity (MSI_ENDPOINT)",
        "rclone": "Token: managed identity (App Service)",
    }
    log = (outcome.run_dir / "targets/reference/identity/token-service.log").read_text()
    for tool, operation in token_ops.items():
        assert operation in (CONTRACTS_DIR / f"{tools[tool]['locked']}.yaml").read_text()
    # the tokens were the lab's managed identity (vm) and service principal (writer)
    assert "GET /msi/token 200" in log and "POST /msi/legacy 200" in log
    assert "/oauth2/v2.0/token 200" in log


@pytest.mark.conformance
def test_the_identity_target_refuses_expired_and_unknown_kid_tokens(tmp_path: Path) -> None:
    """401 InvalidAuthenticationInfo with the tenant's WWW-Authenticate challenge, checked by
    the bearer conformance checks against the target `harness run identity` starts."""
    target = IdentityTarget(ReferenceTarget())
    target.start(tmp_path / "reference")
    try:
        endpoint = target.endpoint()
        bearer = BearerEndpoint(
            target.lab, endpoint.blob_url, endpoint.account, endpoint.key, endpoint.ca_bundle
        )
        run = run_checks(
            endpoint,
            capabilities={"bearer": bearer},
            only=("bearer.valid", "bearer.expired", "bearer.unknown-kid"),
        )
    finally:
        target.stop()
    results = {r.id: r for r in run.results}
    assert set(results) == {"bearer.valid", "bearer.expired", "bearer.unknown-kid"}
    assert {r.id: r.status for r in run.results} == dict.fromkeys(results, PASS)
    for check in ("bearer.expired", "bearer.unknown-kid"):
        assert "401 InvalidAuthenticationInfo" in results[check].expected
