"""Host facts measured over SSH: CPU, memory, kernel, NVMe, NICs, clock offset, versions."""

from __future__ import annotations

import time
from typing import Any

import paramiko

from harness.cluster import ssh
from harness.cluster.inventory import Host

# One shell round trip; each section prints `key<TAB>value` lines. Missing tools print nothing.
FACTS_SCRIPT = r"""
printf 'cpu_model\t%s\n' "$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//')"
printf 'cpu_count\t%s\n' "$(nproc)"
printf 'memory_kib\t%s\n' "$(awk '/MemTotal/ {print $2}' /proc/meminfo)"
printf 'kernel\t%s\n' "$(uname -r)"
for d in /sys/block/nvme*; do [ -e "$d/size" ] && \
  printf 'nvme\t%s %s\n' "${d##*/}" "$(( $(cat "$d/size") * 512 ))"; done
for n in /sys/class/net/*; do [ "${n##*/}" = lo ] && continue
  printf 'nic\t%s %s\n' "${n##*/}" "$(cat "$n/speed" 2>/dev/null || echo unknown)"; done
printf 'python\t%s\n' "$(python3 --version 2>&1 | cut -d' ' -f2)"
command -v azcopy >/dev/null && printf 'azcopy\t%s\n' "$(azcopy --version | cut -d' ' -f3)"
command -v rclone >/dev/null && printf 'rclone\t%s\n' "$(rclone version | head -1 | cut -d' ' -f2)"
true
"""


def parse(text: str) -> dict[str, Any]:
    """The script's lines -> facts (NVMe devices and NICs as lists)."""
    facts: dict[str, Any] = {"nvme": [], "nics": []}
    for line in text.splitlines():
        key, _, value = line.partition("\t")
        if key == "nvme":
            dev, size = value.split()
            facts["nvme"].append({"device": dev, "bytes": int(size)})
        elif key == "nic":
            nic, speed = value.split()
            # /sys reports Mbit/s, or -1 / an error for virtual links
            mbps = int(speed) if speed.lstrip("-").isdigit() and int(speed) > 0 else None
            facts["nics"].append({"name": nic, "speed_mbps": mbps})
        elif key in ("cpu_count", "memory_kib"):
            facts[key] = int(value) if value.isdigit() else None
        elif key:
            facts[key] = value or None
    return facts


def clock_offset(client: paramiko.SSHClient, rounds: int = 5) -> tuple[float, float]:
    """(offset, round trip) in seconds: remote clock minus the controller's, taken at the
    midpoint of the fastest of ``rounds`` round trips (as NTP does). One remote loop answers
    every probe, so no round trip pays for starting a shell or a command."""
    transport = client.get_transport()
    assert transport is not None
    channel = transport.open_session(timeout=10)
    channel.settimeout(10)
    channel.exec_command("while read -r _; do date +%s.%N; done")
    best: tuple[float, float] | None = None
    buffer = b""
    try:
        for _ in range(rounds):
            t0 = time.time()
            channel.sendall(b"\n")
            while b"\n" not in buffer:
                chunk = channel.recv(256)
                if not chunk:
                    raise ssh.HostError("the clock probe ended early")
                buffer += chunk
            t1 = time.time()
            line, _, buffer = buffer.partition(b"\n")
            sample = (float(line) - (t0 + t1) / 2, t1 - t0)
            if best is None or sample[1] < best[1]:
                best = sample
    finally:
        channel.close()
    assert best is not None
    return best


def host_facts(client: paramiko.SSHClient, host: Host) -> dict[str, Any]:
    """Measured facts of ``host``, the inventory's ``facts`` overriding them."""
    result = ssh.run(client, FACTS_SCRIPT, timeout=30)
    if result.exit_code != 0:
        raise ssh.HostError(f"{ssh.where(host)}: facts script failed: {result.stderr.strip()}")
    facts = parse(result.stdout)
    offset, rtt = clock_offset(client)
    facts["clock_offset_s"] = round(offset, 6)
    facts["clock_rtt_s"] = round(rtt, 6)
    facts.update(host.facts)
    return {"name": host.name, "address": host.address, "roles": list(host.roles), **facts}


def collect(inv: Any) -> tuple[list[dict[str, Any]], list[str]]:
    """Facts of every reachable host of ``inv`` and one message per host that failed."""
    facts: list[dict[str, Any]] = []
    errors: list[str] = []
    for host in inv.hosts:
        try:
            client = ssh.connect(inv, host)
        except ssh.HostError as exc:
            errors.append(str(exc))
            continue
        try:
            facts.append(host_facts(client, host))
        except (ssh.HostError, paramiko.SSHException, OSError, ValueError) as exc:
            errors.append(f"{ssh.where(host)}: {exc}")
        finally:
            client.close()
    return facts, errors
