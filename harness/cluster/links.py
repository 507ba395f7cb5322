"""WAN links: an inventory's ``links:`` shaped with the kernel's ``tc`` on each host, over SSH.

A link ``{between: [lake, server], rate: 200mbit}`` joins two groups (role names, host names, or
``controller``, the machine running the harness). Every host of one group gets, on the device
that routes to the other group, an htb root qdisc (handle ``b10b:``) with one class per link at
the link's rate and u32 filters matching the peers' addresses: only traffic to the peer group is
shaped, everything else leaves unclassified (htb sends it unshaped). Each end shapes its own
egress, so both directions of a link are limited; the controller's own egress is never shaped
(its qdiscs are left alone), only what the hosts send to it.

Delay needs netem. Where the kernel has it, a link's ``delay`` becomes a netem qdisc under the
link's class; where it does not (``Specified qdisc kind is unknown``), shaping is refused with
that reason instead of silently running without the delay. The same commands run on the lab's
namespaces (their sshd is root) and on real hosts, where the SSH user must be root.

``LinkUtilization`` is the run hook behind the KPI ``extra.link_utilization``: payload
throughput over the rate of the shaped link a step's bytes crossed.
"""

from __future__ import annotations

import ipaddress
import re
import shlex
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from harness.cluster import ssh
from harness.cluster.inventory import Host, Inventory, Link

CONTROLLER = "controller"  # the group of the machine the harness runs on
HANDLE = "b10b"  # our root qdisc: only a root qdisc with this handle is ever replaced or removed
# Root qdiscs a host has by default: replacing them is safe, removing ours restores them.
DEFAULT_QDISCS = {"noqueue", "mq", "fq_codel", "pfifo_fast", "fq", "pfifo", "cake", HANDLE}
RATE_UNITS = {
    "bit": 1, "kbit": 1e3, "mbit": 1e6, "gbit": 1e9, "tbit": 1e12,
    "kibit": 1024, "mibit": 1024**2, "gibit": 1024**3,
    "bps": 8, "kbps": 8e3, "mbps": 8e6, "gbps": 8e9,
}  # fmt: skip


class ShapingError(RuntimeError):
    """A link cannot be shaped as asked (no netem for a delay, a foreign qdisc, tc failed)."""


def rate_bits(rate: str) -> float:
    """tc's rate notation (``200mbit``, ``1gbit``, ``10mbps``) in bits per second."""
    m = re.fullmatch(r"\s*([0-9]+(?:\.[0-9]+)?)\s*([a-z]*)\s*", rate.lower())
    if not m or (m.group(2) or "bit") not in RATE_UNITS:
        raise ValueError(f"rate {rate!r}: expected a number and one of {', '.join(RATE_UNITS)}")
    return float(m.group(1)) * RATE_UNITS[m.group(2) or "bit"]


def members(inv: Inventory, group: str) -> list[Host]:
    """The hosts of a group: a role's hosts, or the host of that name."""
    return [h for h in inv.hosts if group in h.roles or h.name == group]


def in_group(inv: Inventory, group: str, end: str) -> bool:
    """Whether ``end`` (a host name or ``controller``) belongs to ``group``."""
    if end == CONTROLLER:
        return group == CONTROLLER
    return any(h.name == end for h in members(inv, group))


def link_between(inv: Inventory, a: str, b: str) -> tuple[int, Link] | None:
    """The first link joining ``a`` and ``b`` (host names or ``controller``), if any."""
    for i, link in enumerate(inv.links):
        x, y = link.between
        if (in_group(inv, x, a) and in_group(inv, y, b)) or (
            in_group(inv, x, b) and in_group(inv, y, a)
        ):
            return i, link
    return None


def host_of_url(inv: Inventory, url: str) -> str:
    """The inventory host serving an account URL, else ``controller`` (a loopback or local
    endpoint, which the harness's own machine serves)."""
    address = urlsplit(url).hostname or ""
    return next((h.name for h in inv.hosts if h.address == address), CONTROLLER)


@dataclass
class Rule:
    """One host's egress toward the peers of one link."""

    host: Host
    link: int
    rate: str
    delay: str | None
    peers: list[str]  # addresses; CONTROLLER stands for the controller as that host sees it

    @property
    def classid(self) -> str:
        return f"{HANDLE}:{10 + self.link:x}"


def rules(inv: Inventory) -> list[Rule]:
    """What each host must shape, link by link (a host never shapes traffic to itself)."""
    out: list[Rule] = []
    for i, link in enumerate(inv.links):
        rate_bits(link.rate)  # a malformed rate is refused before any host is touched
        for side, other in (link.between, link.between[::-1]):
            if side == CONTROLLER:
                continue  # the controller's qdiscs are not the lab's to change
            others = members(inv, other)
            peers = [CONTROLLER] if other == CONTROLLER else [h.address for h in others]
            for host in members(inv, side):
                mine = [p for p in peers if p != host.address]
                for p in mine:
                    if p != CONTROLLER:
                        _ip_address(p, host)
                if mine:
                    out.append(Rule(host, i, link.rate, link.delay, mine))
    return out


def _ip_address(address: str, host: Host) -> None:
    try:
        ipaddress.ip_address(address)
    except ValueError:
        raise ShapingError(
            f"links shape by IP address: a peer of {host.name} has the address {address!r}"
        ) from None


def _must(client: Any, host: Host, command: str) -> str:
    result = ssh.run(client, command, timeout=60)
    if result.exit_code != 0:
        detail = (result.stderr or result.stdout).strip()[-800:]
        raise ShapingError(f"{ssh.where(host)}: `{command[:100]}` failed: {detail}")
    return result.stdout


def _device(client: Any, host: Host, peer: str) -> str:
    out = _must(client, host, f"ip -o route get {shlex.quote(peer)}")
    m = re.search(r"\bdev (\S+)", out)
    if not m:
        raise ShapingError(f"{ssh.where(host)}: no route to {peer}: {out.strip()}")
    return m.group(1)


def _root_kind(client: Any, host: Host, dev: str) -> str:
    """``HANDLE`` when the root qdisc is ours, else the kind of the one there."""
    out = _must(client, host, f"tc qdisc show dev {shlex.quote(dev)} root")
    if f"htb {HANDLE}:" in out:
        return HANDLE
    parts = out.split()
    return parts[1] if len(parts) > 1 else "noqueue"


def _controller_address(client: Any, host: Host) -> str:
    """The controller's address as the host sees it (the SSH connection's client end)."""
    out = _must(client, host, 'echo "$SSH_CLIENT"').split()
    if not out:
        raise ShapingError(f"{ssh.where(host)}: SSH_CLIENT is not set: cannot name the controller")
    return out[0]


@dataclass
class Shaper:
    """Applies and removes the shaping of an inventory's links on its hosts."""

    inv: Inventory
    applied: list[dict[str, Any]] = field(default_factory=list)  # one entry per host and device

    def apply(self) -> list[dict[str, Any]]:
        """Shape every link (replacing an earlier shaping of ours); returns what was shaped."""
        by_host: dict[str, list[Rule]] = {}
        for rule in rules(self.inv):
            by_host.setdefault(rule.host.name, []).append(rule)
        try:
            for name, host_rules in by_host.items():
                self._apply_host(self.inv.host(name), host_rules)
        except BaseException:
            self.remove()  # never leave a half-shaped cluster behind
            raise
        return self.applied

    def _apply_host(self, host: Host, host_rules: list[Rule]) -> None:
        client = ssh.connect(self.inv, host)
        try:
            controller = None
            by_dev: dict[str, list[tuple[Rule, list[str]]]] = {}
            for rule in host_rules:
                if CONTROLLER in rule.peers:
                    controller = controller or _controller_address(client, host)
                peers = [controller if p == CONTROLLER else p for p in rule.peers]
                by_dev.setdefault(_device(client, host, str(peers[0])), []).append(
                    (rule, [str(p) for p in peers])
                )
            for dev, dev_rules in by_dev.items():
                kind = _root_kind(client, host, dev)
                if kind not in DEFAULT_QDISCS:
                    raise ShapingError(
                        f"{ssh.where(host)}: {dev} has a root qdisc {kind!r} the lab did not "
                        "make; it is left alone (remove it to shape links there)"
                    )
                d = shlex.quote(dev)
                # recorded before it is made: a failure below still removes it
                entry: dict[str, Any] = {"host": host.name, "dev": dev, "links": []}
                self.applied.append(entry)
                _must(client, host, f"tc qdisc replace dev {d} root handle {HANDLE}: htb")
                for rule, peers in dev_rules:
                    _must(
                        client,
                        host,
                        f"tc class add dev {d} parent {HANDLE}: classid {rule.classid} htb "
                        f"rate {shlex.quote(rule.rate)} ceil {shlex.quote(rule.rate)} "
                        "quantum 65536",
                    )
                    if rule.delay:
                        self._delay(client, host, d, rule)
                    for peer in peers:
                        _must(
                            client,
                            host,
                            f"tc filter add dev {d} parent {HANDLE}: protocol ip prio 1 u32 "
                            f"match ip dst {shlex.quote(peer)}/32 flowid {rule.classid}",
                        )
                    entry["links"].append(
                        {
                            "link": rule.link,
                            "between": self.inv.links[rule.link].between,
                            "rate": rule.rate,
                            "delay": rule.delay,
                            "delay_by": "netem" if rule.delay else None,
                            "classid": rule.classid,
                            "peers": peers,
                        }
                    )
        finally:
            client.close()

    def _delay(self, client: Any, host: Host, dev: str, rule: Rule) -> None:
        handle = f"{0x20 + rule.link:x}"
        result = ssh.run(
            client,
            f"tc qdisc add dev {dev} parent {rule.classid} handle {handle}: "
            f"netem delay {shlex.quote(str(rule.delay))}",
        )
        if result.exit_code != 0:
            raise ShapingError(
                f"links[{rule.link}].delay {rule.delay}: {ssh.where(host)} has no netem "
                f"({result.stderr.strip()}); this lab adds no delay without it: drop `delay` "
                "from the link or use a kernel with sch_netem"
            )

    def remove(self) -> list[str]:
        """Remove our root qdisc wherever it is (applied by this shaper or an earlier one);
        returns ``host:dev`` of each removal. Unreachable hosts are skipped."""
        removed: list[str] = []
        ends = {end for link in self.inv.links for end in link.between}
        hosts = {h.name for end in ends for h in members(self.inv, end)}
        for name in sorted(hosts):
            host = self.inv.host(name)
            try:
                client = ssh.connect(self.inv, host)
            except ssh.HostError:
                continue
            try:
                out = ssh.run(client, "tc qdisc show").stdout
                for dev in re.findall(rf"qdisc htb {HANDLE}: dev (\S+) root", out):
                    ssh.run(client, f"tc qdisc del dev {shlex.quote(dev)} root")
                    removed.append(f"{name}:{dev}")
            finally:
                client.close()
        self.applied = []
        return removed


# Operations whose payload crosses the path between the controller (or a copy's source) and
# the step's target; a load step's requests come from its generators and are left out.
MOVING_OPERATIONS = ("copy", "upload", "download", "sync-up", "sync-down")


class LinkUtilization:
    """Run hook (``harness.runner.RunHook``'s methods): after each step whose bytes crossed a
    shaped link, ``extra.link_utilization`` = payload bits / duration / link rate, with
    ``extra.link`` (the link's ends and rate) and ``extra.link_rate_bit_s``.

    The path of a step: a copy goes from its source's host to its target's host (server-side
    copy: the target pulls), every other operation between the controller (for a `hosts:`
    step, each client host: ``after_host_step``) and the target's host; only a host's egress
    is shaped, so an upload from the controller crosses no link.

    A step with ``options.relay_of: STEP`` finishes a relay that STEP began (download to the
    client, then upload): its utilization is the path's, its bytes over the two steps'
    durations (same repeat) at the rate of the link STEP crossed, and ``extra.link_path`` names
    both steps."""

    def __init__(self, inventory: Path) -> None:
        from harness.cluster.inventory import from_file

        self.inv = from_file(inventory)
        # (step, repeat, warm-up, client) -> the duration and link of a row that crossed one
        self.seen: dict[tuple[str, int, bool, str], tuple[float, dict[str, Any]]] = {}

    def on_targets_started(self, runner: Any) -> None:
        pass

    def on_step(self, ex: Any, ctx: Any, driver: Any) -> bool:
        return False

    def on_targets_stopping(self, runner: Any) -> None:
        pass

    def on_finish(self, runner: Any, run_info: dict[str, Any]) -> None:
        run_info["links"] = [link.model_dump() for link in self.inv.links]

    def after_step(self, ex: Any, ctx: Any, driver: Any, result: Any) -> None:
        if ctx.operation not in MOVING_OPERATIONS or not self.inv.links:
            return
        self._path(ctx, result.bytes, result.duration_s, result.ok, CONTROLLER, result.extra)

    def after_host_step(self, ex: Any, ctx: Any, result: Any) -> None:
        """A `hosts:` step: each host row's path runs between that host (the client) and the
        target's host, its utilization its own bytes over its own time; the step row's is the
        hosts' bytes over the merged time when every host crossed the same link."""
        if ctx.operation not in MOVING_OPERATIONS or not self.inv.links:
            return
        rows = result.extra.get("hosts") or []
        crossed = [
            self._path(ctx, r["bytes"], r["duration_s"], r["ok"], str(r["host"]), r["extra"])
            for r in rows
        ]
        if rows and len({c["index"] if c else None for c in crossed}) == 1:
            self._path(ctx, result.bytes, result.duration_s, result.ok, result.host, result.extra)

    def _path(
        self, ctx: Any, size: int, duration: float, ok: bool, client: str, extra: dict[str, Any]
    ) -> dict[str, Any] | None:
        """Put the link fields of one row (a step's, or one host's of a `hosts:` step, whose
        ``client`` names the host) into ``extra``; returns the link it crossed, if any."""
        to = host_of_url(self.inv, ctx.endpoint.display_url)
        source = ctx.source_endpoint if ctx.operation == "copy" else None
        frm = host_of_url(self.inv, source.display_url) if source is not None else client
        ends = frm.split(",")  # a step row of several hosts: each host crossed the same link
        # the payload's sender: the controller's own egress is never shaped, so an upload
        # from it crosses no shaped link
        sender = to if ctx.operation in ("download", "sync-down") else frm
        found = link_between(self.inv, ends[0], to) if sender != CONTROLLER else None
        key = (ctx.step, ctx.repeat, ctx.warmup, client)
        link = None
        if found is not None:
            i, shaped = found
            link = {"index": i, "between": shaped.between, "rate": shaped.rate}
            self.seen[key] = (duration, link)
            _put(extra, size, duration, link, f"{frm} -> {to}")
        relay_of = ctx.options.get("relay_of")
        first = self.seen.get((str(relay_of), ctx.repeat, ctx.warmup, client)) if relay_of else None
        if first is not None and ok:
            before, relay_link = first
            through = "the client" if client == CONTROLLER else client
            path = f"{relay_of}+{ctx.step} (through {through})"
            _put(extra, size, before + duration, relay_link, path)
        return link


def _put(
    extra: dict[str, Any], size: int, duration: float, link: dict[str, Any], path: str
) -> None:
    rate = rate_bits(link["rate"])
    if duration <= 0 or not size:
        return
    extra["link_utilization"] = round(size * 8 / duration / rate, 4)
    extra["link"] = link
    extra["link_rate_bit_s"] = rate
    extra["link_path"] = path
