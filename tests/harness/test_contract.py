"""The compatibility contract: shapes, drift detection, and AzCopy against its locked contract."""

from __future__ import annotations

import os
import subprocess
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from harness.contract.model import Contract, diff, merge, path_shape, summarize_calls
from harness.contract.proxy import Call, RecordingProxy
from harness.contract.record import CONTRACTS_DIR, drift_report, run_drift
from harness.contract.table import to_markdown
from harness.drivers import client_versions
from harness.http import BlobHttp
from harness.signing import generate_account_sas
from harness.tools import azcopy_path


def _call(
    method: str,
    path: str,
    query: dict[str, str],
    headers: dict[str, str],
    status: int = 201,
    phase: str = "upload",
) -> Call:
    return Call(method, path, "127.0.0.1:1", list(query.items()), headers, status, phase, "t")


BASE_HEADERS = {"x-ms-version": "2025-07-05", "x-ms-client-request-id": "r", "content-length": "3"}


def _contract(calls: list[Call]) -> Contract:
    return Contract("tool", "1.0", summarize_calls(calls, "devstoreaccount1"))


def test_path_shapes() -> None:
    assert path_shape("/devstoreaccount1", "127.0.0.1:1") == "/"
    assert path_shape("/devstoreaccount1/ct", "127.0.0.1:1") == "/{container}"
    assert path_shape("/devstoreaccount1/ct/a%2Fb", "127.0.0.1:1") == "/{container}/{blob}"
    assert path_shape("/ct/a/b", "acct.blob.lab.test") == "/{container}/{blob}"
    assert path_shape("/ct", "acct.blob.lab.test") == "/{container}"


def test_operations_are_named_and_values_dropped() -> None:
    calls = [
        _call("PUT", "/devstoreaccount1/ct/a", {}, {**BASE_HEADERS, "x-ms-blob-type": "BlockBlob"}),
        _call("PUT", "/devstoreaccount1/ct/b", {}, {**BASE_HEADERS, "x-ms-blob-type": "BlockBlob"}),
        _call("PUT", "/devstoreaccount1/ct/c", {"comp": "block", "blockid": "QQ=="}, BASE_HEADERS),
        _call(
            "GET",
            "/devstoreaccount1/ct",
            {"restype": "container", "comp": "list", "prefix": "p/", "sig": "s"},
            BASE_HEADERS,
            200,
            "list",
        ),
    ]
    ops = {op.operation: op for op in summarize_calls(calls, "devstoreaccount1")}
    assert set(ops) == {"Put Blob", "Put Block", "List Blobs"}
    assert ops["Put Blob"].count == 2
    assert ops["Put Blob"].values == {
        "x-ms-blob-type": ["BlockBlob"],
        "x-ms-version": ["2025-07-05"],
    }
    assert ops["List Blobs"].params == ["<sas>", "comp", "prefix", "restype"]
    assert ops["Put Block"].params == ["blockid", "comp"]


def test_account_information_is_named_on_any_resource_path() -> None:
    # AzCopy's service-to-service copy asks for the account information on the blob URL it is
    # about to write; it is still Get Account Information, not an unnamed call.
    query = {"restype": "account", "comp": "properties"}
    calls = [
        _call("GET", "/devstoreaccount1/ct/a%2Fb.bin", query, BASE_HEADERS, 200, "copy"),
        _call("HEAD", "/devstoreaccount1/ct", query, BASE_HEADERS, 200, "copy"),
        _call("GET", "/devstoreaccount1/", query, BASE_HEADERS, 200, "copy"),
    ]
    ops = summarize_calls(calls, "devstoreaccount1")
    assert {op.operation for op in ops} == {"Get Account Information"}
    assert sum(op.count for op in ops) == 3


def test_a_new_header_or_comp_is_reported_as_drift() -> None:
    before = [
        _call("PUT", "/devstoreaccount1/ct/a", {}, {**BASE_HEADERS, "x-ms-blob-type": "BlockBlob"}),
        _call("HEAD", "/devstoreaccount1/ct/a", {}, BASE_HEADERS, 200, "download"),
    ]
    locked = _contract(before)
    assert diff(locked, _contract(before)) == []

    changed = [
        _call(
            "PUT",
            "/devstoreaccount1/ct/a",
            {},
            {**BASE_HEADERS, "x-ms-blob-type": "BlockBlob", "x-ms-access-tier": "Cool"},
        ),
        _call("PUT", "/devstoreaccount1/ct/a", {"comp": "tags"}, BASE_HEADERS),
        _call(
            "HEAD",
            "/devstoreaccount1/ct/a",
            {},
            {**BASE_HEADERS, "x-ms-version": "2026-02-06"},
            200,
        ),
    ]
    lines = {d.line() for d in diff(locked, _contract(changed))}
    assert "new-header: Put Blob x-ms-access-tier" in lines
    assert "new-value: Put Blob x-ms-access-tier=Cool" in lines
    assert "new-operation: Set Blob Tags (PUT /{container}/{blob})" in lines
    assert "new-value: Get Blob Properties x-ms-version=2026-02-06" in lines

    vanished = diff(locked, _contract(before[:1]))
    assert [d.line() for d in vanished] == ["vanished-operation: Get Blob Properties"]
    assert diff(locked, _contract(before[:1]), partial=True) == []

    # A run that exercised less (no --put-md5, no prefix) drops optional headers and params:
    # only a full diff says so; a partial one still reports what is new.
    md5 = {**BASE_HEADERS, "x-ms-blob-type": "BlockBlob", "x-ms-blob-content-md5": "AA=="}
    full = _contract([_call("PUT", "/devstoreaccount1/ct/a", {"timeout": "30"}, md5)])
    plain = {**BASE_HEADERS, "x-ms-blob-type": "BlockBlob", "x-ms-access-tier": "Hot"}
    less = _contract([_call("PUT", "/devstoreaccount1/ct/a", {}, plain)])
    assert {d.line() for d in diff(full, less)} >= {
        "vanished-header: Put Blob x-ms-blob-content-md5",
        "vanished-param: Put Blob timeout",
    }
    assert [d.line() for d in diff(full, less, partial=True)] == [
        "new-header: Put Blob x-ms-access-tier",
        "new-value: Put Blob x-ms-access-tier=Hot",
    ]


def test_contract_round_trips_through_yaml(tmp_path: Path) -> None:
    contract = _contract(
        [_call("DELETE", "/devstoreaccount1/ct/a", {}, BASE_HEADERS, 202, "remove")]
    )
    loaded = Contract.load(contract.save(tmp_path))
    assert loaded.to_dict() == contract.to_dict()
    assert "| Delete Blob | DELETE /{container}/{blob} | remove |" in to_markdown(loaded)


def test_proxy_forwards_raw_requests_and_records_them(server) -> None:
    with RecordingProxy(server.base_url) as proxy:
        http = BlobHttp(proxy.url + "/" + server.account, server.account, server.key)
        assert http.request("PUT", "ctproxy", query={"restype": "container"}).status == 201
        put = http.request(
            "PUT", "ctproxy", "a b+c%/d", body=b"hello", headers={"x-ms-blob-type": "BlockBlob"}
        )
        assert put.status == 201
        head = http.request("HEAD", "ctproxy", "a b+c%/d")
        assert (head.status, head.header("content-length")) == (200, "5")
        assert http.request("GET", "ctproxy", "a b+c%/d").body == b"hello"
        http.close()
    ops = [op.operation for op in summarize_calls(proxy.calls, server.account)]
    assert ops == ["Create Container", "Put Blob", "Get Blob Properties", "Get Blob"]
    assert proxy.calls[1].raw_path == "/devstoreaccount1/ctproxy/a%20b%2Bc%25/d"


def _locked_azcopy() -> Contract:
    path = CONTRACTS_DIR / f"azcopy-{client_versions()['azcopy']}.yaml"
    assert path.is_file(), f"no locked AzCopy contract at {path}"
    return Contract.load(path)


@pytest.mark.azcopy
def test_recorded_azcopy_run_matches_its_locked_contract(server, tmp_path: Path) -> None:
    locked = _locked_azcopy()
    data = tmp_path / "data"
    for i in range(3):
        (data / "small").mkdir(parents=True, exist_ok=True)
        (data / "small" / f"f{i}.bin").write_bytes(os.urandom(1000 + i))
    (data / "large.bin").write_bytes(os.urandom(9 * 1024 * 1024))  # > 8 MiB: blocks
    sas = generate_account_sas(
        server.account,
        server.key,
        permissions="rwdlac",
        expiry=datetime.now(UTC) + timedelta(hours=1),
    )
    env = {
        **os.environ,
        "AZCOPY_LOG_LOCATION": str(tmp_path / "logs"),
        "AZCOPY_JOB_PLAN_LOCATION": str(tmp_path / "plans"),
        "AZCOPY_CONCURRENCY_VALUE": "4",
    }
    with RecordingProxy(server.base_url) as proxy:
        http = BlobHttp(server.account_url, server.account, server.key)
        assert http.request("PUT", "azc", query={"restype": "container"}).status == 201
        http.close()
        url = f"{proxy.url}/{server.account}/azc/run"
        steps = [
            (
                "upload",
                [
                    "copy",
                    f"{data}/*",
                    f"{url}?{sas}",
                    "--recursive",
                    "--put-md5",
                    "--from-to=LocalBlob",
                ],
            ),
            (
                "download",
                [
                    "copy",
                    f"{url}/*?{sas}",
                    str(tmp_path / "down"),
                    "--recursive",
                    "--check-md5=FailIfDifferent",
                    "--from-to=BlobLocal",
                ],
            ),
            ("remove", ["remove", f"{url}?{sas}", "--recursive", "--from-to=BlobTrash"]),
        ]
        for phase, argv in steps:
            proxy.phase = phase
            done = subprocess.run(
                [str(azcopy_path()), *argv], env=env, capture_output=True, text=True, timeout=120
            )
            assert done.returncode == 0, done.stdout[-2000:]
    observed = Contract(locked.tool, locked.version, summarize_calls(proxy.calls, server.account))
    assert (tmp_path / "down" / "large.bin").read_bytes() == (data / "large.bin").read_bytes()
    drift = [d.line() for d in diff(locked, observed, partial=True)]
    assert drift == []
    assert drift_report([observed], partial=True) == {observed.slug: []}


def _gate_contract() -> Contract:
    """A contract locked from two scenarios: Put Blob in both, Put Block only in one."""
    put = _call(
        "PUT", "/devstoreaccount1/ct/a", {}, {**BASE_HEADERS, "x-ms-blob-type": "BlockBlob"}
    )
    block = _call(
        "PUT", "/devstoreaccount1/ct/b", {"comp": "block", "blockid": "QQ=="}, BASE_HEADERS
    )
    gate = Contract(
        "tool", "1.0", summarize_calls([put, block], "devstoreaccount1", "gate"), "gate"
    )
    smoke = Contract("tool", "1.0", summarize_calls([put], "devstoreaccount1", "smoke"), "smoke")
    return merge([gate, smoke])


def test_contracts_of_several_scenarios_merge_into_one() -> None:
    merged = _gate_contract()
    assert merged.scenarios == ["gate", "smoke"]
    ops = merged.by_name()
    assert ops["Put Blob"].count == 2
    assert ops["Put Blob"].scenarios == {"gate": ["upload"], "smoke": ["upload"]}
    assert ops["Put Block"].scenarios == {"gate": ["upload"]}
    table = to_markdown(merged)
    assert "Recorded from scenarios `gate`, `smoke`" in table
    assert (
        "| Put Block | PUT /{container}/{blob}?comp=block | upload | gate (upload) | 1 |" in table
    )
    with pytest.raises(ValueError):
        merge([merged, Contract("other", "1.0", [])])


def test_a_gate_run_diffs_against_its_part_of_a_merged_contract(tmp_path: Path) -> None:
    merge_locked = _gate_contract()
    merge_locked.save(tmp_path)
    put = _call(
        "PUT", "/devstoreaccount1/ct/a", {}, {**BASE_HEADERS, "x-ms-blob-type": "BlockBlob"}
    )
    block = _call(
        "PUT", "/devstoreaccount1/ct/b", {"comp": "block", "blockid": "QQ=="}, BASE_HEADERS
    )
    # Unchanged: each scenario of the merged contract is clean on its own.
    for scenario, calls in (("gate", [put, block]), ("smoke", [put])):
        observed = Contract("tool", "1.0", summarize_calls(calls, "devstoreaccount1", scenario))
        [tool] = run_drift([observed], scenario, tmp_path)["tools"]
        assert tool["lines"] == [] and tool["partial"] and tool["scoped"], tool
    # Changed: a new header, a new value, and an operation the gate made that is gone.
    tiered = {**BASE_HEADERS, "x-ms-blob-type": "BlockBlob", "x-ms-access-tier": "Cool"}
    changed = [_call("PUT", "/devstoreaccount1/ct/a", {}, tiered)]
    observed = Contract("tool", "1.0", summarize_calls(changed, "devstoreaccount1", "gate"))
    [tool] = run_drift([observed], "gate", tmp_path)["tools"]
    assert tool["lines"] == [
        "new-header: Put Blob x-ms-access-tier",
        "new-value: Put Blob x-ms-access-tier=Cool",
        "vanished-operation: Put Block",
    ]
    # A scenario the contract was not locked from only hears of what is new.
    [tool] = run_drift([observed], "other", tmp_path)["tools"]
    assert not tool["scoped"] and "vanished-operation: Put Block" not in tool["lines"]
