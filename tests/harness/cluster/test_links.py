"""WAN links: an inventory's `links` shaped with tc htb on the lab's hosts over SSH. Measured:
a 100 Mbit/s link delivers about its rate in both directions, traffic to an unshaped group
is not limited, removal restores the full rate, and a delay without netem is refused."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from harness.cluster.inventory import Host, Inventory, Link
from harness.cluster.lab import PREFIX, SUBNET
from harness.cluster.links import (
    CONTROLLER,
    HANDLE,
    LinkUtilization,
    Shaper,
    ShapingError,
    host_of_url,
    link_between,
    rate_bits,
    rules,
)
from harness.drivers.base import StepContext
from harness.results import StepResult
from harness.targets.base import Endpoint
from tests.harness.cluster.conftest import harness, with_links

MBIT = 1e6
# Receives one connection; prints the bytes and the seconds from the first byte to EOF.
RECEIVE = """
import socket, sys, time
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind((sys.argv[1], 5201)); s.listen(1); s.settimeout(30)
c, _ = s.accept(); c.settimeout(30); n = 0; t0 = None
while True:
    b = c.recv(1 << 20)
    if not b:
        break
    t0 = t0 or time.monotonic()
    n += len(b)
print(n, time.monotonic() - t0)
"""
SEND = """
import socket, sys, time
for _ in range(50):
    try:
        c = socket.create_connection((sys.argv[1], 5201), timeout=5); break
    except OSError:
        time.sleep(0.1)
buf = b"x" * (1 << 20)
for _ in range(int(sys.argv[2])):
    c.sendall(buf)
c.close()
"""


def _inventory() -> Inventory:
    hosts = [
        Host(name="e1", address="10.0.0.1", roles=["server"]),
        Host(name="c1", address="10.0.0.2", roles=["client", "load"]),
        Host(name="l1", address="10.0.0.3", roles=["lake"]),
    ]
    links = [
        Link(between=["lake", "server"], rate="200mbit"),
        Link(between=["lake", CONTROLLER], rate="1gbit"),
    ]
    return Inventory(name="t", hosts=hosts, links=links)


def test_rates_in_tc_units() -> None:
    assert rate_bits("200mbit") == 200e6
    assert rate_bits("1gbit") == 1e9
    assert rate_bits("10mbps") == 80e6
    with pytest.raises(ValueError, match="rate '20 furlongs'"):
        rate_bits("20 furlongs")


def test_each_end_shapes_its_egress_to_the_other_group_only() -> None:
    inv = _inventory()
    got = {(r.host.name, r.link, tuple(r.peers)) for r in rules(inv)}
    # the lake shapes toward the servers and toward the controller; the server toward the
    # lake; the controller's own qdiscs are never touched; the client shapes nothing
    assert got == {
        ("l1", 0, ("10.0.0.1",)),
        ("e1", 0, ("10.0.0.3",)),
        ("l1", 1, (CONTROLLER,)),
    }
    assert link_between(inv, "e1", "l1") == (0, inv.links[0])
    assert link_between(inv, CONTROLLER, "l1") == (1, inv.links[1])
    assert link_between(inv, "c1", "l1") is None
    assert host_of_url(inv, "http://10.0.0.3:10000/devstoreaccount1") == "l1"
    assert host_of_url(inv, "http://127.0.0.1:4242/devstoreaccount1") == CONTROLLER


def _ctx(
    step: str, operation: str, host: str, source: str | None = None, **options: object
) -> StepContext:
    def ep(address: str) -> Endpoint:
        return Endpoint("t", "acct", f"http://{address}:10000/acct")

    ctx = StepContext(
        scenario="s", step=step, operation=operation, endpoint=ep(host), container="c",
        workdir=Path("."), options=dict(options),
    )  # fmt: skip
    ctx.source_endpoint = ep(source) if source else None
    return ctx


def test_link_utilization_is_payload_over_the_link_rate_of_the_path(tmp_path: Path) -> None:
    inv = tmp_path / "inv.yaml"
    inv.write_text(
        "name: t\nhosts:\n"
        "  - {name: e1, address: 10.0.0.1, roles: [server]}\n"
        "  - {name: l1, address: 10.0.0.3, roles: [lake]}\n"
        "links:\n  - {between: [lake, server], rate: 200mbit}\n"
        "  - {between: [lake, controller], rate: 100mbit}\n"
    )
    hook = LinkUtilization(inv)
    mib100 = 100 << 20

    def run(ctx: StepContext, seconds: float) -> StepResult:
        result = ctx.result(driver="azcopy", bytes=mib100, duration_s=seconds)
        hook.after_step(None, ctx, None, result)
        return result

    s2s = run(_ctx("s2s", "copy", "10.0.0.1", source="10.0.0.3"), 5.0)
    assert s2s.extra["link_utilization"] == round(mib100 * 8 / 5.0 / 200e6, 4)
    assert s2s.extra["link_path"] == "l1 -> e1" and s2s.extra["link"]["index"] == 0
    down = run(_ctx("down", "download", "10.0.0.3"), 10.0)  # lake -> controller, 100 Mbit/s
    assert down.extra["link_utilization"] == round(mib100 * 8 / 10.0 / 100e6, 4)
    # the controller's egress is unshaped: its upload crosses no link of its own, but it ends
    # the relay that the download began: the path's bytes over both steps' time
    up = run(_ctx("up", "upload", "10.0.0.1", relay_of="down"), 2.0)
    assert up.extra["link_utilization"] == round(mib100 * 8 / 12.0 / 100e6, 4)
    assert up.extra["link_path"] == "down+up (through the client)"
    seed = run(_ctx("seed", "upload", "10.0.0.3"), 1.0)
    assert "link_utilization" not in seed.extra
    lan = run(_ctx("verify", "download", "10.0.0.1"), 1.0)  # server -> controller: no link
    assert "link_utilization" not in lan.extra


def test_link_utilization_of_hosts_steps_per_host_and_merged(tmp_path: Path) -> None:
    """A `hosts:` step: each host row's path is that host <-> the target's host, its own bytes
    over its own time; the step row's the hosts' bytes over the merged time; a relay through a
    client host is per host."""
    from harness.results import merge_host_results

    inv = tmp_path / "inv.yaml"
    inv.write_text(
        "name: t\nhosts:\n"
        "  - {name: e1, address: 10.0.0.1, roles: [server]}\n"
        "  - {name: c1, address: 10.0.0.2, roles: [client]}\n"
        "  - {name: c2, address: 10.0.0.4, roles: [client]}\n"
        "  - {name: l1, address: 10.0.0.3, roles: [lake]}\n"
        "links:\n  - {between: [lake, client], rate: 100mbit}\n"
    )
    hook = LinkUtilization(inv)
    mib = 1 << 20

    def run(ctx: StepContext, spans: dict[str, tuple[float, float]]) -> StepResult:
        rows = []
        for host, (start, seconds) in spans.items():
            row = ctx.result(driver="azcopy", bytes=50 * mib, duration_s=seconds, started_at=start)
            row.host = host
            rows.append(row)
        merged = merge_host_results(ctx.result(driver="azcopy"), rows)
        hook.after_host_step(None, ctx, merged)
        return merged

    down = run(_ctx("down", "download", "10.0.0.3"), {"c1": (100.0, 4.0), "c2": (100.5, 5.0)})
    c1, c2 = (row["extra"] for row in down.extra["hosts"])
    assert c1["link_path"] == "c1 -> l1" and c2["link_path"] == "c2 -> l1"
    assert c1["link_utilization"] == round(50 * mib * 8 / 4.0 / 100e6, 4)
    assert c2["link_utilization"] == round(50 * mib * 8 / 5.0 / 100e6, 4)
    # the step row: both hosts' bytes from the first start to the last end (5.5 s)
    assert down.extra["link_path"] == "c1,c2 -> l1"
    assert down.extra["link_utilization"] == round(100 * mib * 8 / 5.5 / 100e6, 4)
    # the upload to the edge crosses no link; each host's relay is its own two legs
    up = run(
        _ctx("up", "upload", "10.0.0.1", relay_of="down"),
        {"c1": (110.0, 1.0), "c2": (110.0, 2.0)},
    )
    c1, c2 = (row["extra"] for row in up.extra["hosts"])
    assert c1["link_path"] == "down+up (through c1)"
    assert c1["link_utilization"] == round(50 * mib * 8 / 5.0 / 100e6, 4)
    assert c2["link_utilization"] == round(50 * mib * 8 / 7.0 / 100e6, 4)
    assert up.extra["link_path"] == "down+up (through c1,c2)"
    assert up.extra["link_utilization"] == round(100 * mib * 8 / 7.5 / 100e6, 4)
    # a server host's download from the edge crosses no link: nothing on any row
    lan = run(_ctx("lan", "download", "10.0.0.1"), {"c1": (120.0, 1.0)})
    assert "link_utilization" not in lan.extra
    assert "link_utilization" not in lan.extra["hosts"][0]["extra"]


def test_a_link_names_groups_the_inventory_has() -> None:
    with pytest.raises(ValueError, match=r"links\[0\]\.between: 'edge' is neither"):
        Inventory(
            name="t",
            hosts=[Host(name="a", address="10.0.0.1")],
            links=[Link(between=["edge", "controller"], rate="1gbit")],
        )


def _rate(src: str, dst_ns: str | None, dst_addr: str, mib: int) -> float:
    """Bits per second of ``mib`` MiB sent from namespace ``src`` to ``dst_addr`` (a receiver
    in namespace ``dst_ns``, or on the controller when None)."""
    wrap = ["ip", "netns", "exec", dst_ns] if dst_ns else []
    receiver = subprocess.Popen(
        [*wrap, sys.executable, "-c", RECEIVE, dst_addr], stdout=subprocess.PIPE, text=True
    )
    try:
        subprocess.run(
            ["ip", "netns", "exec", src, sys.executable, "-c", SEND, dst_addr, str(mib)],
            check=True,
            timeout=60,
        )
        out, _ = receiver.communicate(timeout=60)
    finally:
        receiver.kill()
    nbytes, seconds = out.split()
    assert int(nbytes) == mib << 20
    return int(nbytes) * 8 / float(seconds)


def _shaped_bytes(ns: str) -> int:
    """Bytes the lab's htb classes (under HANDLE) on ``ns``'s eth0 have sent: the kernel's own
    count of what it shaped."""
    out = subprocess.run(
        ["ip", "netns", "exec", ns, "tc", "-s", "class", "show", "dev", "eth0"],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    total, ours = 0, False
    for line in out.splitlines():
        if line.startswith("class "):
            ours = f" {HANDLE}:" in line
        elif ours and line.strip().startswith("Sent "):
            total += int(line.split()[1])
    return total


@pytest.mark.cluster
def test_a_shaped_link_carries_its_peers_traffic_and_other_traffic_is_not_shaped(
    wan_lab: Path,
) -> None:
    # The kernel's counters say what went through the link's class (at its configured rate);
    # the rates measured here are printed, not judged: timing belongs to the benchmarks.
    inv_path = with_links(
        wan_lab, [{"between": ["lake", "server"], "rate": "100mbit"}], "links-100"
    )
    lake, server, client = f"{PREFIX}-h4", f"{PREFIX}-h1", f"{PREFIX}-h2"
    result = harness("lab", "shape", str(inv_path))
    assert result.returncode == 0, result.stderr
    assert f"h4 eth0: lake <-> server at 100mbit to {SUBNET}.11" in result.stdout
    assert f"h1 eth0: lake <-> server at 100mbit to {SUBNET}.14" in result.stdout
    try:
        classes = subprocess.run(
            ["ip", "netns", "exec", lake, "tc", "class", "show", "dev", "eth0"],
            capture_output=True, text=True, check=True,
        ).stdout  # fmt: skip
        assert "rate 100Mbit" in classes, classes
        lake_before, server_before = _shaped_bytes(lake), _shaped_bytes(server)
        down = _rate(lake, server, f"{SUBNET}.11", 12)  # lake -> server
        up = _rate(server, lake, f"{SUBNET}.14", 12)  # server -> lake
        lake_shaped, server_shaped = _shaped_bytes(lake), _shaped_bytes(server)
        other = _rate(lake, client, f"{SUBNET}.12", 12)  # lake -> a client: no link
        lake_after_other = _shaped_bytes(lake)
    finally:
        off = harness("lab", "shape", "--off", str(inv_path))
    print(f"measured: down {down / MBIT:.0f}, up {up / MBIT:.0f}, other {other / MBIT:.0f} Mbit/s")
    assert lake_shaped - lake_before >= 12 << 20  # every byte to the server went through it
    assert server_shaped - server_before >= 12 << 20  # and back the other way
    assert lake_after_other - lake_shaped < 1 << 20  # traffic to the client is not classified
    assert off.stdout.strip() == "links: unshaped h1:eth0, h4:eth0"
    qdiscs = subprocess.run(
        ["ip", "netns", "exec", lake, "tc", "qdisc", "show", "dev", "eth0"],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    assert f"{HANDLE}:" not in qdiscs


@pytest.mark.cluster
def test_a_delay_without_netem_is_refused_and_nothing_stays_shaped(wan_lab: Path) -> None:
    from harness.cluster.inventory import from_file

    inv_path = with_links(
        wan_lab, [{"between": ["lake", "server"], "rate": "1gbit", "delay": "20ms"}], "delay"
    )
    shaper = Shaper(from_file(inv_path))
    try:
        applied = shaper.apply()
    except ShapingError as exc:
        assert re.search(r"links\[0\]\.delay 20ms: h\d .* has no netem", str(exc)), exc
    else:  # a kernel with netem: the delay is applied by it, and the facts say so
        shaper.remove()
        assert {link["delay_by"] for a in applied for link in a["links"]} == {"netem"}
    qdiscs = subprocess.run(
        ["ip", "netns", "exec", f"{PREFIX}-h4", "tc", "qdisc", "show", "dev", "eth0"],
        capture_output=True,
        text=True,
    ).stdout
    assert "htb" not in qdiscs, qdiscs


def test_lab_up_refuses_unknown_roles_and_links_before_making_anything(tmp_path: Path) -> None:
    bad_role = harness("lab", "up", "--roles", "server,edge", "--dir", str(tmp_path / "a"))
    assert bad_role.returncode == 2
    assert "edge: roles are server, client, load, lake" in bad_role.stderr
    bad_link = harness(
        "lab", "up", "--roles", "server,lake", "--link", "lake,edge,1gbit",
        "--dir", str(tmp_path / "b"),
    )  # fmt: skip
    assert bad_link.returncode == 2
    assert "'lake,edge,1gbit': expected A,B,RATE" in bad_link.stderr
    bad_rate = harness(
        "lab", "up", "--roles", "server,lake", "--link", "lake,server,fast",
        "--dir", str(tmp_path / "c"),
    )  # fmt: skip
    assert bad_rate.returncode == 2 and "rate 'fast'" in bad_rate.stderr
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()
