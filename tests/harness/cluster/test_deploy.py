"""`harness deploy`: the checkout's tracked files over SFTP into each host's work directory,
an environment that imports the release itself, and nothing done the second time."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from harness.cluster.deploy import revision
from harness.cluster.lab import SUBNET
from tests.harness.cluster.conftest import ROOT, harness

pytestmark = pytest.mark.cluster


def test_deploy_ships_the_tracked_files_once(lab: Path) -> None:
    first = harness("deploy", str(lab), timeout=300)
    assert first.returncode == 0, first.stderr
    rev = revision()
    hosts = yaml.safe_load(lab.read_text())["hosts"]
    for host in hosts:
        release = Path(host["work_dir"]) / "releases" / rev
        assert f"{host['name']}: " in first.stdout
        # byte for byte the checkout's tracked file, and the `current` link points at it
        shipped = (release / "harness" / "cluster" / "deploy.py").read_bytes()
        assert shipped == (ROOT / "harness" / "cluster" / "deploy.py").read_bytes()
        assert (Path(host["work_dir"]) / "current").resolve() == release
        # only tracked files: nothing of the controller's venv or caches
        assert not (release / ".venv").exists() and not (release / ".git").exists()
    again = harness("deploy", str(lab), timeout=300)
    assert again.returncode == 0, again.stderr
    assert again.stdout.count(": up to date ") == len(hosts), again.stdout


def test_deploy_reports_a_host_it_cannot_reach(lab: Path, tmp_path: Path) -> None:
    data = yaml.safe_load(lab.read_text())
    data["hosts"][1]["port"] = 2222
    for key in ("known_hosts",):
        data[key] = str(lab.parent / data[key])
    for host in data["hosts"]:
        host["key_file"] = str(lab.parent / host["key_file"])
    path = tmp_path / "inventory.yaml"
    path.write_text(yaml.safe_dump(data))
    result = harness("deploy", str(path), timeout=300)
    assert result.returncode == 1
    assert f"error: h2 (root@{SUBNET}.12:2222): cannot connect" in result.stderr
