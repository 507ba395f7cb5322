"""`harness provision` / `deprovision` through the real azure-mgmt clients against the fake ARM
(https on loopback with a lab-CA certificate; a static token, no DefaultAzureCredential)."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner, Result

from harness.cli import main
from harness.labca import LabCA
from harness.provision.fake_arm import Failure, FakeArmServer, quota_failure

SUB = "00000000-0000-0000-0000-0000000000aa"
RG = f"/subscriptions/{SUB}/resourcegroups/lab-night"


@pytest.fixture
def arm(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeArmServer]:
    monkeypatch.setenv("LAB_CA_DIR", str(tmp_path / "ca"))
    with FakeArmServer(tmp_path / "ca") as server:
        monkeypatch.setenv("HARNESS_ARM_URL", server.url)
        monkeypatch.setenv("HARNESS_ARM_TOKEN", "test-token")
        monkeypatch.setenv("HARNESS_ARM_POLL_S", "0")
        yield server


@pytest.fixture
def spec(tmp_path: Path) -> Path:
    key = tmp_path / "id_ed25519"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)], check=True)
    path = tmp_path / "spec.yaml"
    path.write_text(
        yaml.safe_dump(
            {
                "name": "night",
                "subscription": SUB,
                "location": "eastus",
                "resource_group": "lab-night",
                "controller_cidr": "198.51.100.7/32",
                "ssh": {"public_key_file": f"{key}.pub", "private_key_file": str(key)},
                "vms": [
                    {"name": "srv", "role": "server", "size": "Standard_L16as_v5", "count": 2},
                    {"name": "cli", "role": "client", "size": "Standard_D32as_v5"},
                ],
            },
            sort_keys=False,
        )
    )
    return path


def invoke(arm: FakeArmServer, *args: str) -> Result:
    return CliRunner().invoke(main, [*args, "--ca-bundle", str(arm.ca_bundle)])


def provision(arm: FakeArmServer, spec: Path, out: Path) -> Result:
    return invoke(arm, "provision", str(spec), "--out", str(out), "--no-wait-ssh")


def puts(arm: FakeArmServer, since: int = 0) -> list[str]:
    return [c.short() for c in arm.arm.calls[since:] if c.method == "PUT" and c.status < 300]


EXPECTED_PUTS = [
    "PUT resourcegroups/lab-night",
    "PUT networksecuritygroups/night-nsg",
    "PUT virtualnetworks/night-vnet",
    "PUT proximityplacementgroups/night-ppg",
    *(
        f"PUT {kind}/{name}{suffix}"
        for name in ("srv-0", "srv-1", "cli-0")
        for kind, suffix in (
            ("publicipaddresses", "-ip"),
            ("networkinterfaces", "-nic"),
            ("virtualmachines", ""),
        )
    ),
]


def test_provision_writes_the_inventory_with_the_expected_calls(
    arm: FakeArmServer, spec: Path, tmp_path: Path
) -> None:
    out = tmp_path / "inventory" / "night.yaml"
    result = provision(arm, spec, out)
    assert result.exit_code == 0, result.output
    assert f"inventory: {out} (3 hosts)" in result.output
    assert puts(arm) == EXPECTED_PUTS
    assert arm.arm.calls[0].short() == "GET resourcegroups/lab-night"  # tag check comes first
    assert {c.api_version for c in arm.arm.calls if c.method == "PUT"} != {""}

    inv = yaml.safe_load(out.read_text())
    assert set(inv) == {"name", "hosts", "endpoints", "links"}
    assert [(h["name"], h["roles"], h["facts"]["vm_size"]) for h in inv["hosts"]] == [
        ("srv-0", ["server"], "Standard_L16as_v5"),
        ("srv-1", ["server"], "Standard_L16as_v5"),
        ("cli-0", ["client"], "Standard_D32as_v5"),
    ]
    host = inv["hosts"][0]
    assert host["address"] == host["facts"]["public_address"]
    assert host["facts"]["private_address"].startswith("10.20.0.")
    assert host["facts"]["accelerated_networking"] is True
    assert host["user"] == "azureuser" and host["port"] == 22

    resources = arm.arm.resources
    rule = resources[f"{RG}/providers/microsoft.network/networksecuritygroups/night-nsg"]
    (ssh,) = rule["properties"]["securityRules"]
    assert ssh["properties"]["sourceAddressPrefix"] == "198.51.100.7/32"
    assert ssh["properties"]["destinationPortRange"] == "22"
    vm = resources[f"{RG}/providers/microsoft.compute/virtualmachines/srv-0"]
    props = vm["properties"]
    assert props["storageProfile"]["osDisk"]["deleteOption"] == "Delete"
    assert props["networkProfile"]["networkInterfaces"][0]["properties"]["deleteOption"] == "Delete"
    assert props["proximityPlacementGroup"]["id"].endswith("/proximityPlacementGroups/night-ppg")
    key = (tmp_path / "id_ed25519.pub").read_text().strip()
    assert props["osProfile"]["linuxConfiguration"]["ssh"]["publicKeys"][0]["keyData"] == key
    # Every resource carries the lab's tag: what deprovision keys on.
    assert all(r["tags"].get("made-by") == "blob-facade-lab" for r in resources.values())


def test_rerun_is_idempotent(arm: FakeArmServer, spec: Path, tmp_path: Path) -> None:
    first, second = tmp_path / "a.yaml", tmp_path / "b.yaml"
    assert provision(arm, spec, first).exit_code == 0
    before = {k: v["properties"].get("vmId") for k, v in arm.arm.resources.items()}
    n = len(arm.arm.calls)
    result = provision(arm, spec, second)
    assert result.exit_code == 0, result.output
    assert "srv-0: exists (Standard_L16as_v5), left as it is" in result.output
    # The shared resources are PUT again (ARM's create-or-update); no VM, NIC or IP is.
    assert puts(arm, n) == EXPECTED_PUTS[:4]
    assert {k: v["properties"].get("vmId") for k, v in arm.arm.resources.items()} == before
    assert yaml.safe_load(first.read_text()) == yaml.safe_load(second.read_text())


def test_quota_error_is_clear_and_a_rerun_completes(
    arm: FakeArmServer, spec: Path, tmp_path: Path
) -> None:
    arm.arm.failures.append(quota_failure("srv-1"))
    out = tmp_path / "inv.yaml"
    result = provision(arm, spec, out)
    assert result.exit_code == 3, result.output
    assert "provision failed: VM srv-1: Azure answered 409 OperationNotAllowed" in result.output
    assert "raise the family's vCPU quota" in result.output
    assert not out.exists()
    assert not arm.arm.paths("virtualmachines")[1:]  # srv-0 only; srv-1 and cli-0 never made
    # The quota raised, the same command completes what is missing.
    result = provision(arm, spec, out)
    assert result.exit_code == 0, result.output
    assert len(arm.arm.paths("virtualmachines")) == 3


def test_conflict_fails_with_the_resource_and_code(
    arm: FakeArmServer, spec: Path, tmp_path: Path
) -> None:
    arm.arm.failures.append(
        Failure("PUT", "/networksecuritygroups/night-nsg", 409, "Conflict", "Another operation")
    )
    result = provision(arm, spec, tmp_path / "inv.yaml")
    assert result.exit_code == 1, result.output
    assert "network security group: Azure answered 409 Conflict: Another operation" in result.output
    assert not arm.arm.paths("virtualmachines")


def test_transient_503_is_retried_by_the_sdk(
    arm: FakeArmServer, spec: Path, tmp_path: Path
) -> None:
    arm.arm.failures.append(
        Failure("PUT", "/virtualmachines/cli-0", 503, "ServiceUnavailable", "try again")
    )
    result = provision(arm, spec, tmp_path / "inv.yaml")
    assert result.exit_code == 0, result.output
    vm_puts = [c.status for c in arm.arm.calls if c.short() == "PUT virtualmachines/cli-0"]
    assert vm_puts == [503, 201]


def test_deprovision_deletes_only_the_tagged_group(
    arm: FakeArmServer, spec: Path, tmp_path: Path
) -> None:
    assert provision(arm, spec, tmp_path / "inv.yaml").exit_code == 0
    result = invoke(arm, "deprovision", str(spec))
    assert result.exit_code == 0, result.output
    assert "resource group lab-night: deleted with everything in it" in result.output
    assert arm.arm.resources == {}
    assert [c.short() for c in arm.arm.calls if c.method == "DELETE"] == [
        "DELETE resourcegroups/lab-night"
    ]
    # Already gone: success, nothing deleted.
    result = invoke(arm, "deprovision", str(spec))
    assert result.exit_code == 0
    assert "does not exist, nothing to delete" in result.output


def test_an_untagged_group_is_never_used_nor_deleted(
    arm: FakeArmServer, spec: Path, tmp_path: Path
) -> None:
    arm.arm.resources[RG] = {"id": RG, "name": "lab-night", "tags": {"owner": "someone"}}
    for command in (["deprovision", str(spec)], ["provision", str(spec), "--out", "x.yaml"]):
        result = invoke(arm, *command)
        assert result.exit_code == 2, result.output
        assert "exists without the tag made-by=blob-facade-lab" in result.output
    assert RG in arm.arm.resources
    assert [c.method for c in arm.arm.calls] == ["GET", "GET"]


def test_spec_errors_name_file_line_and_field(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(
        "name: n\nsubscription: s\nlocation: eastus\nresource_group: rg\n"
        "controller_cidr: 0.0.0.0/0\nvms:\n  - {name: srv, role: server, size: L16}\n"
    )
    result = CliRunner().invoke(main, ["provision", str(path), "--out", "x.yaml"])
    assert result.exit_code == 2
    assert "bad.yaml:5: controller_cidr:" in result.output
    assert "opens SSH to" in result.output
    assert "bad.yaml:7: vms[0].size:" in result.output


def test_the_shipped_lasv5_spec_and_suite_validate() -> None:
    from harness.nightly.suite import load_suite, scenario_ref
    from harness.provision.spec import load_spec
    from harness.scenario import load

    suites = Path(__file__).resolve().parents[3] / "scenarios" / "suites"
    spec = load_spec(suites / "lasv5.provision.yaml")
    assert [(n, g.size) for n, g in spec.vm_names()][::2] == [
        ("srv-0", "Standard_L16as_v5"),
        ("srv-2", "Standard_L16as_v5"),
        ("cli-1", "Standard_D32as_v5"),
    ]
    suite = load_suite(suites / "nightly-lasv5.yaml")
    assert suite.repeats == 5 and suite.targets == ["url"]
    for name in suite.scenarios:  # each a shipped scenario that validates with 5 repeats
        assert load(scenario_ref(suites / "nightly-lasv5.yaml", name), ["repeats=5"]).repeats == 5


def test_the_controller_address_from_the_environment_is_the_only_ssh_source(
    arm: FakeArmServer, spec: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HARNESS_CONTROLLER_CIDR", "192.0.2.44")
    assert provision(arm, spec, tmp_path / "inv.yaml").exit_code == 0
    nsg = arm.arm.resources[f"{RG}/providers/microsoft.network/networksecuritygroups/night-nsg"]
    (rule,) = nsg["properties"]["securityRules"]
    assert rule["properties"]["sourceAddressPrefix"] == "192.0.2.44/32"
    monkeypatch.setenv("HARNESS_CONTROLLER_CIDR", "0.0.0.0/0")
    result = provision(arm, spec, tmp_path / "inv.yaml")
    assert result.exit_code == 2 and "opens SSH to 4294967296 addresses" in result.output


def test_an_unreachable_endpoint_is_a_clear_failure(
    arm: FakeArmServer, spec: Path, tmp_path: Path
) -> None:
    # The fake's certificate checked against another CA: no answer at all, exit 1, one line.
    bundle = LabCA.load_or_create(tmp_path / "other-ca").bundle_path
    result = CliRunner().invoke(
        main, ["deprovision", str(spec), "--ca-bundle", str(bundle)], catch_exceptions=False
    )
    assert result.exit_code == 1
    assert "deprovision failed: deleting resource group lab-night: ServiceRequestError" in (
        result.output
    )
    assert arm.arm.calls == []
