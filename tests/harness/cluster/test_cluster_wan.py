"""`cluster-wan` on the lab: the lake façade on the `lake` host, links shaped at 200 Mbit/s
while the inventory target runs, and extra.link_utilization for S2S (the edge pulls from the
lake over its link) beside the client relay on a client host (download over the lake's link to
that host, then upload to the edge), on the step rows and the host rows."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pandas as pd
import pytest

from harness.cluster.lab import PREFIX, SUBNET
from harness.runner import host_rows, step_rows
from tests.harness.cluster.conftest import harness, with_links

pytestmark = pytest.mark.cluster

RATE = 200e6
LINKS = [
    {"between": ["lake", "server"], "rate": "200mbit"},
    {"between": ["lake", "client"], "rate": "200mbit"},
]


def test_s2s_and_the_client_relay_over_a_shaped_link(wan_lab: Path, tmp_path: Path) -> None:
    inventory = with_links(wan_lab, LINKS, "wan")
    out = tmp_path / "reports"
    result = harness(
        "run", "cluster-wan", "--target", "inventory", "--inventory", str(inventory),
        "--out", str(out), "--cache-dir", str(tmp_path / "cache"),
        timeout=900,
    )  # fmt: skip
    (run_dir,) = out.iterdir()
    info = json.loads((run_dir / "run.json").read_text())
    results = pd.read_parquet(run_dir / "results.parquet")
    rows = {r["step"]: r for _, r in step_rows(results).iterrows()}
    assert all(r["ok"] for r in rows.values()), info["first_failure"]
    extra = {step: json.loads(r["extra"]) for step, r in rows.items()}

    s2s, down, relay = extra["s2s"], extra["relay-down"], extra["relay-up"]
    assert s2s["link_path"] == "h4 -> h1" and s2s["link_rate_bit_s"] == RATE
    # the link bounds what crosses it: payload bits over time never exceed its rate by much
    assert 0.5 < s2s["link_utilization"] <= 1.05, s2s
    assert s2s["link_utilization"] == round(
        rows["s2s"]["bytes"] * 8 / rows["s2s"]["duration_s"] / RATE, 4
    )
    # the relay ran on the first client host (h2), its download over the lake → client link
    assert rows["relay-down"]["host"] == "h2" and rows["relay-up"]["host"] == "h2"
    assert down["link_path"] == "h2 -> h4" and down["link"]["between"] == ["lake", "client"]
    assert 0.5 < down["link_utilization"] <= 1.05, down
    # the relay path: the same bytes over the download's and the upload's time
    assert relay["link_path"] == "relay-down+relay-up (through h2)"
    both = rows["relay-down"]["duration_s"] + rows["relay-up"]["duration_s"]
    assert relay["link_utilization"] == round(rows["relay-up"]["bytes"] * 8 / both / RATE, 4)
    assert relay["link_utilization"] < s2s["link_utilization"]
    assert "link_utilization" not in extra["seed-lake"]  # the controller's egress is unshaped
    # the host rows carry their own path and utilization (one host: the step's own)
    hosts = {
        (r["step"], r["host"]): json.loads(r["extra"]) for _, r in host_rows(results).iterrows()
    }
    assert set(hosts) == {("relay-down", "h2"), ("relay-up", "h2")}
    assert hosts["relay-down", "h2"]["link_path"] == "h2 -> h4"
    assert hosts["relay-down", "h2"]["link_utilization"] == down["link_utilization"]
    assert hosts["relay-up", "h2"]["link_path"] == relay["link_path"]
    assert hosts["relay-up", "h2"]["link_utilization"] == relay["link_utilization"]
    assert rows["relay-down"]["verified_objects"] == 40  # verified byte for byte on h2

    verdicts = {v["criterion"]: v for v in info["verdicts"]}
    goal = verdicts["S2S fills the shaped link"]
    assert goal["observed"] == pytest.approx(s2s["link_utilization"])
    assert goal["passed"] == (s2s["link_utilization"] >= 0.9)
    for name in (
        "zero failed transfers",
        "every shard copied server-side",
        "S2S uses the link better than the client relay",
        "S2S faster than the client relay",
    ):
        assert verdicts[name]["passed"], verdicts[name]
    assert result.returncode == (0 if goal["passed"] else 1), result.stdout[-3000:]

    targets = info["targets"]
    assert targets["lake"]["role"] == "lake" and targets["lake"]["servers"] == ["h4"]
    assert targets["lake"]["endpoint"] == f"http://{SUBNET}.14:10000/devstoreaccount1"
    shaped = {
        (e["host"], link["link"]) for e in targets["inventory"]["links"] for link in e["links"]
    }
    # the lake shapes toward the edge and both clients; each end shapes its own egress
    assert shaped == {("h4", 0), ("h4", 1), ("h1", 0), ("h2", 1), ("h3", 1)}
    assert {link["delay_by"] for e in targets["inventory"]["links"] for link in e["links"]} == {
        None
    }
    assert "links unshaped on h1:eth0, h2:eth0, h3:eth0, h4:eth0" in targets["inventory"]["notes"]
    qdiscs = subprocess.run(
        ["ip", "netns", "exec", f"{PREFIX}-h4", "tc", "qdisc", "show", "dev", "eth0"],
        capture_output=True,
        text=True,
    ).stdout
    assert "htb" not in qdiscs, qdiscs  # removed at stop
