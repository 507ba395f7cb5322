"""The bearer conformance checks: they pass on the reference façade trusting the lab tenant,
skip with a reason where no bearer configuration exists, and fail on a façade that grants what
it should not."""

from __future__ import annotations

from pathlib import Path

import pytest
from identity_fixtures import start_bearer_facade

from harness.conformance.cli import run_target
from harness.conformance.framework import FAIL, PASS, SKIP
from harness.conformance.suite import run_checks
from harness.identity.lab import LAB_ROLES, READER, BearerEndpoint, LabIdentity
from harness.labca import LabCA
from harness.targets.base import Endpoint

GROUPS = ("Auth Bearer", "Auth User Delegation SAS")


def test_reference_passes_every_bearer_check(tmp_path: Path) -> None:
    run = run_target("reference", tmp_path, only=GROUPS)
    assert len(run.results) >= 18
    failed = [(r.id, r.expected, r.observed) for r in run.results if r.status != PASS]
    assert failed == []


def test_a_target_without_bearer_skips_with_a_reason(tmp_path: Path) -> None:
    endpoint = Endpoint(
        "url", "devstoreaccount1", "http://127.0.0.1:9/devstoreaccount1", key="a2V5"
    )
    run = run_checks(endpoint, only=GROUPS)
    assert {r.status for r in run.results} == {SKIP}
    assert "no bearer configuration trusting the lab tenant" in run.results[0].observed


def test_a_facade_granting_a_role_too_many_fails_the_no_role_check(
    tmp_path: Path, lab_identity: LabIdentity, lab_ca: LabCA
) -> None:
    roles = [*LAB_ROLES, ("norole", READER, "account")]
    facade, servers = start_bearer_facade(tmp_path, lab_identity, lab_ca, roles)
    try:
        bearer = BearerEndpoint(
            lab_identity, facade.account_url, facade.account, facade.key, facade.ca_bundle
        )
        endpoint = Endpoint("url", facade.account, facade.account_url, key=facade.key,
                            ca_bundle=facade.ca_bundle)  # fmt: skip
        run = run_checks(endpoint, capabilities={"bearer": bearer}, only=("bearer.",))
    finally:
        for server in servers:
            server.stop()
    status = {r.id: r.status for r in run.results}
    assert status["bearer.no-role"] == FAIL
    assert status["bearer.valid"] == PASS and status["bearer.expired"] == PASS
    assert status["bearer.over-http"] == SKIP  # no http listener was named


def test_auth_cost_bench_measures_both_schemes(tmp_path: Path) -> None:
    from harness.identity.bench import measure

    results = measure(tmp_path, requests=40, warmup=5)
    assert results["shared_key"]["requests"] == results["bearer"]["requests"] == 40
    assert results["shared_key"]["server_cpu_us"] > 0 and results["bearer"]["server_cpu_us"] > 0
    assert results["ratio_server_cpu"] == (
        results["bearer"]["server_cpu_us"] / results["shared_key"]["server_cpu_us"]
    )


@pytest.mark.azurite
def test_azurite_findings(tmp_path: Path, lab_identity: LabIdentity, lab_ca: LabCA) -> None:
    """Azurite with ``--oauth basic`` over https: it takes well-formed tokens of the right
    audience and tenant shape, but does not verify signatures and knows no roles."""
    from harness.targets.azurite import AzuriteTarget

    cert, key = lab_ca.issue(["127.0.0.1", "localhost"], tmp_path / "tls")
    target = AzuriteTarget(extra_args=["--oauth", "basic", "--cert", str(cert), "--key", str(key)])
    target.ca_bundle = lab_ca.bundle_path
    target.start(tmp_path / "azurite")
    try:
        endpoint = target.endpoint()
        bearer = BearerEndpoint(
            lab_identity, endpoint.blob_url, endpoint.account, endpoint.key, lab_ca.bundle_path
        )
        run = run_checks(endpoint, capabilities={"bearer": bearer}, only=GROUPS)
    finally:
        target.stop()
    observed = {r.id: r.observed for r in run.results}
    status = {r.id: r.status for r in run.results}
    assert status["bearer.valid"] == status["user-delegation.valid"] == PASS
    # findings: forged or unsigned tokens, another tenant's, and principals without a role get
    # the blob; refusals are 403 AuthenticationFailed without the bearer challenge
    for forged in ("tampered-payload", "unknown-kid", "alg-none", "hs256-public-key",
                   "other-tenant", "no-role", "other-container"):  # fmt: skip
        assert (status[f"bearer.{forged}"], observed[f"bearer.{forged}"]) == (
            FAIL, "error: 200 None"
        )  # fmt: skip
    assert observed["bearer.expired"] == "error: 403 AuthenticationFailed"
