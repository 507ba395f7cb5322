"""Inventories: validation with file:line: field errors, credentials by reference, the lab
range guard, and `inventory check` on a bad file."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from harness.cluster import ssh
from harness.cluster.inventory import Credential, Host, Inventory
from harness.cluster_cli import load
from harness.scenario import ScenarioError
from tests.harness.cluster.conftest import ROOT, harness

BAD = """\
name: x
hosts:
  - name: a
    address: 10.0.0.1
    port: nope
    roles: [server, gpu]
  - name: a
    address: 10.0.0.2
    jump: zz
credentials:
  k: {env: X, value: inline-secret}
"""


def test_errors_name_file_line_and_field(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(BAD)
    with pytest.raises(ScenarioError) as exc:
        load(path)
    problems = exc.value.problems
    assert any(
        p.endswith(
            ":5: hosts[0].port: Input should be a valid integer, unable to parse "
            "string as an integer"
        )
        for p in problems
    ), problems
    assert any(":6: hosts[0].roles[1]: Input should be 'server'" in p for p in problems)
    # an inline secret is not a field: credentials are references only
    assert any(":11: credentials.k.value: Extra inputs are not permitted" in p for p in problems)


def test_cross_references_are_checked(tmp_path: Path) -> None:
    path = tmp_path / "dup.yaml"
    path.write_text(
        BAD.replace("port: nope", "port: 22")
        .replace(", gpu", "")
        .replace(", value: inline-secret", "")
    )
    with pytest.raises(ScenarioError) as exc:
        load(path)
    text = "\n".join(exc.value.problems)
    assert "hosts[1].name: 'a' is used by another host" in text
    assert "hosts[1].jump: no other host named 'zz'" in text


def test_credentials_resolve_from_env_or_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LAB_TEST_KEY", "s3cret")
    assert Credential(env="LAB_TEST_KEY").resolve(tmp_path) == "s3cret"
    (tmp_path / "key.txt").write_text("from-file\n")
    assert Credential(file=Path("key.txt")).resolve(tmp_path) == "from-file"
    monkeypatch.delenv("LAB_TEST_KEY")
    with pytest.raises(ValueError, match="LAB_TEST_KEY is not set"):
        Credential(env="LAB_TEST_KEY").resolve(tmp_path)
    with pytest.raises(ValueError, match="exactly one"):
        Credential(env="A", file=Path("b"))


def test_shipped_inventories_validate() -> None:
    files = sorted((ROOT / "inventory").glob("*.yaml"))
    assert files, "inventory/ ships examples"
    for path in files:
        inv = load(path)
        assert inv.with_role("server"), path


def test_the_real_cluster_links_example_shapes_the_lake_toward_edge_and_relay(
    tmp_path: Path,
) -> None:
    """inventory/lasv5.yaml's commented `links:` (it needs root on the hosts) is a valid one."""
    from harness.cluster.links import rules

    text = (ROOT / "inventory" / "lasv5.yaml").read_text()
    example = re.search(r"^# links:\n((?:#   .*\n)+)", text, re.M)
    assert example, "lasv5.yaml carries a commented links: example"
    block = "links:\n" + re.sub(r"^# ?", "", example.group(1), flags=re.M)
    path = tmp_path / "lasv5.yaml"
    path.write_text(text.replace("links: []\n", block))
    inv = load(path)
    assert [(link.between, link.rate, link.delay) for link in inv.links] == [
        (["lake", "server"], "10gbit", "20ms"),
        (["lake", "client"], "10gbit", "20ms"),
    ]
    shaped = {(r.host.name, r.link, tuple(r.peers)) for r in rules(inv)}
    assert shaped == {
        ("cli2", 0, ("10.40.1.11", "10.40.1.12")),
        ("srv1", 0, ("10.40.1.22",)),
        ("srv2", 0, ("10.40.1.22",)),
        ("cli2", 1, ("10.40.1.21",)),  # never toward itself
        ("cli1", 1, ("10.40.1.22",)),
    }


def test_check_exits_2_on_a_bad_file(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(BAD)
    result = harness("inventory", "check", str(path))
    assert result.returncode == 2
    assert (
        f"{path}:5: hosts[0].port" in result.stderr or "bad.yaml:5: hosts[0].port" in result.stderr
    )


def test_lab_addresses_are_refused_without_the_lab_bridge(monkeypatch: pytest.MonkeyPatch) -> None:
    # with no bridge of that name the kernel would route the lab range off the machine
    monkeypatch.setattr(ssh, "LAB_BRIDGE", "bflab-none")
    inv = Inventory(name="x", hosts=[Host(name="h1", address="10.213.0.11")])
    with pytest.raises(ssh.HostError, match="lab bridge bflab-none is not up"):
        ssh.connect(inv, inv.hosts[0])


def test_a_missing_key_file_is_named_before_connecting(tmp_path: Path) -> None:
    inv = Inventory(name="x", hosts=[Host(name="h1", address="10.213.0.11", key_file="nokey")])
    inv.base_dir = tmp_path
    with pytest.raises(ssh.HostError, match=f"h1 .*: key_file {tmp_path}/nokey does not exist"):
        ssh.connect(inv, inv.hosts[0])


def test_conformance_gives_the_inventory_target_the_reference_capabilities() -> None:
    """The inventory target starts the reference façade with the gate's flags, so it offers
    what the reference does; behind a VIP (a cluster it did not start) nothing is assumed."""
    from harness.conformance.cli import capabilities_for
    from harness.conformance.suite import GATE_MAX_INFLIGHT
    from harness.targets import make_target

    args = {"args": ["--max-inflight", str(GATE_MAX_INFLIGHT)]}
    lab = make_target("inventory", endpoint=str(ROOT / "inventory" / "lab.yaml"), options=args)
    assert lab.extra_args == ["--max-inflight", "4"]  # type: ignore[attr-defined]
    assert capabilities_for("inventory", lab) == capabilities_for("reference")
    assert capabilities_for("inventory", lab) == {"throttle": 4, "file_tree_names": True}
    vip = make_target("inventory", endpoint=str(ROOT / "inventory" / "lasv5.yaml"))
    assert capabilities_for("inventory", vip) == {}
    assert capabilities_for("url") == {}
