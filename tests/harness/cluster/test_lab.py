"""The lab's own hosts: `lab up` makes namespaces with real sshd, `inventory check` reads their
facts over SSH, failures say which host and why, `lab down` removes everything."""

from __future__ import annotations

import json
import os
import platform
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from harness.cluster.facts import collect
from harness.cluster.lab import PREFIX, SUBNET, Lab, unsupported_reason
from harness.cluster_cli import load
from tests.harness.cluster.conftest import ROOT, harness

pytestmark = pytest.mark.cluster


def _leftovers() -> list[str]:
    netns = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    links = subprocess.run(["ip", "-o", "link", "show"], capture_output=True, text=True).stdout
    return [line for line in (netns + links).splitlines() if f"{PREFIX}-" in line]


def _qdiscs(namespace: str | None = None) -> str:
    where = ["ip", "netns", "exec", namespace] if namespace else []
    return subprocess.run([*where, "tc", "qdisc", "show"], capture_output=True, text=True).stdout


# a cluster-wan layout with its links: the same crash safety as a plain lab
LAYOUTS = {
    "hosts": ["--hosts", "3"],
    "roles-links": ["--roles", "server,client+load,lake", "--link", "lake,server,200mbit"],
}


@pytest.mark.parametrize("layout", list(LAYOUTS))
def test_lab_down_after_a_killed_lab_up(tmp_path: Path, layout: str) -> None:
    # runs before the module's lab exists: one lab per machine (its names carry one prefix)
    reason = unsupported_reason()
    if reason:
        pytest.skip(f"no lab hosts on this machine: {reason}")
    up = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "harness.cli",
            "lab",
            "up",
            *LAYOUTS[layout],
            "--dir",
            str(tmp_path),
        ],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        state = tmp_path / "lab.json"
        for _ in range(400):  # until it has made a namespace, at most ~20 s
            if state.exists() and f'"{PREFIX}-h1"' in state.read_text():
                break
            time.sleep(0.05)
        os.kill(up.pid, signal.SIGKILL)
    finally:
        up.wait(timeout=30)
    assert _leftovers(), "the killed lab up had made something"
    result = harness("lab", "down", "--dir", str(tmp_path))
    assert result.returncode == 0, result.stderr
    assert f"netns {PREFIX}-h1" in result.stdout
    assert _leftovers() == []
    again = harness("lab", "down", "--dir", str(tmp_path))
    assert again.returncode == 0 and "nothing left" in again.stdout


def test_lab_down_removes_the_shaping_a_killed_run_left(tmp_path: Path) -> None:
    """Links shaped on the hosts and never unshaped (what a killed `harness run` leaves) go with
    `lab down`; the controller's own qdiscs were never touched."""
    reason = unsupported_reason()
    if reason:
        pytest.skip(f"no lab hosts on this machine: {reason}")
    try:
        up = harness("lab", "up", *LAYOUTS["roles-links"], "--dir", str(tmp_path))
        assert up.returncode == 0, up.stderr
        inventory = tmp_path / "inventory.yaml"
        assert yaml.safe_load(inventory.read_text())["links"] == [
            {"between": ["lake", "server"], "rate": "200mbit"}
        ]
        shaped = harness("lab", "shape", str(inventory))
        assert shaped.returncode == 0, shaped.stderr
        assert "htb b10b:" in _qdiscs(f"{PREFIX}-h3")  # the lake shapes toward the server
        assert "htb b10b:" in _qdiscs(f"{PREFIX}-h1")
        assert "b10b" not in _qdiscs()  # the controller's side is never shaped
    finally:
        down = harness("lab", "down", "--dir", str(tmp_path))
    assert down.returncode == 0, down.stderr
    assert f"netns {PREFIX}-h3" in down.stdout
    assert _leftovers() == []
    assert "b10b" not in _qdiscs()


def test_check_prints_every_hosts_facts(lab: Path) -> None:
    result = harness("inventory", "check", str(lab))
    assert result.returncode == 0, result.stderr
    assert "2/2 hosts reachable" in result.stdout
    for name in ("h1", "h2"):
        assert f"│ {name} " in result.stdout


def test_facts_are_the_hosts_own(lab: Path) -> None:
    inv = load(lab)
    facts, errors = collect(inv)
    assert errors == []
    by_name = {f["name"]: f for f in facts}
    assert by_name["h1"]["roles"] == ["server"] and by_name["h2"]["roles"] == ["client", "load"]
    for f in facts:
        # the namespaces share this machine's kernel and CPUs, but each has its own NIC
        assert f["kernel"] == platform.release()
        assert f["cpu_count"] == len(os.sched_getaffinity(0)) or f["cpu_count"] == os.cpu_count()
        assert [n["name"] for n in f["nics"]] == ["eth0"]
        assert isinstance(f["clock_offset_s"], float) and f["clock_rtt_s"] > 0
        assert f["python"] == platform.python_version() or f["python"]


def test_inventory_facts_override_measured_ones(lab: Path, tmp_path: Path) -> None:
    data = yaml.safe_load(lab.read_text())
    data["hosts"][0]["facts"] = {"cpu_model": "AMD EPYC 9V74 (declared)"}
    path = _beside(lab, tmp_path, data)
    facts, _ = collect(load(path))
    assert facts[0]["cpu_model"] == "AMD EPYC 9V74 (declared)"


def _beside(lab: Path, tmp_path: Path, data: dict) -> Path:
    """``data`` as an inventory whose relative paths still point into the lab directory."""
    data["known_hosts"] = str(lab.parent / "known_hosts")
    for host in data["hosts"]:
        host["key_file"] = str(lab.parent / "lab_key")
    path = tmp_path / "inventory.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def test_unreachable_and_misconfigured_hosts_fail_one_line_each(lab: Path, tmp_path: Path) -> None:
    data = yaml.safe_load(lab.read_text())
    data["hosts"][1]["port"] = 2222  # nothing listens there
    wrong = tmp_path / "wrong_key"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(wrong)], check=True)
    data["hosts"].append({**data["hosts"][0], "name": "h1-wrong-key", "key_file": str(wrong)})
    path = _beside(lab, tmp_path, data)
    data = yaml.safe_load(path.read_text())
    data["hosts"][2]["key_file"] = str(wrong)
    path.write_text(yaml.safe_dump(data))
    result = harness("inventory", "check", str(path))
    assert result.returncode == 1
    assert "1/3 hosts reachable" in result.stdout
    errors = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 2, result.stderr
    assert f"h2 (root@{SUBNET}.12:2222): cannot connect: Connection refused" in errors[0]
    assert f"h1-wrong-key (root@{SUBNET}.11:22): authentication failed" in errors[1]
    assert "Traceback" not in result.stderr


def test_a_host_behind_a_jump_host(lab: Path, tmp_path: Path) -> None:
    data = yaml.safe_load(lab.read_text())
    data["hosts"][1]["jump"] = "h1"  # h2 reached through a tunnel on h1's connection
    data["hosts"].append({**data["hosts"][0], "name": "h9", "address": f"{SUBNET}.99"})
    data["hosts"][2]["jump"] = "h1"  # no such lab host: h1 cannot reach it
    result = harness("inventory", "check", str(_beside(lab, tmp_path, data)))
    assert result.returncode == 1
    assert "2/3 hosts reachable" in result.stdout and "│ h2 " in result.stdout
    assert f"h9 (root@{SUBNET}.99:22): jump host h1 cannot reach it" in result.stderr


def test_a_changed_host_key_is_refused(lab: Path, tmp_path: Path) -> None:
    data = yaml.safe_load(lab.read_text())
    path = _beside(lab, tmp_path, data)
    other = (lab.parent / "hosts" / "h2" / "ssh_host_ed25519_key.pub").read_text().split()
    # h1 claims h2's key: a man in the middle, as far as the controller can tell
    (tmp_path / "known_hosts").write_text(f"{SUBNET}.11 {other[0]} {other[1]}\n")
    data = yaml.safe_load(path.read_text())
    data["known_hosts"] = str(tmp_path / "known_hosts")
    data["hosts"] = data["hosts"][:1]
    path.write_text(yaml.safe_dump(data))
    result = harness("inventory", "check", str(path))
    assert result.returncode == 1
    assert f"h1 (root@{SUBNET}.11:22): SSH failed" in result.stderr


def test_lab_state_records_what_it_made(lab: Path) -> None:
    state = json.loads((lab.parent / "lab.json").read_text())
    assert state["namespaces"] == [f"{PREFIX}-h1", f"{PREFIX}-h2"]
    assert f"{PREFIX}-br" in state["links"]
    assert Lab(lab.parent).state_path.exists()
