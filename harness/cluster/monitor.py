"""Per-host monitoring over SSH: CPU, memory, network and disk counters of every host, sampled
by one remote shell loop per host and read by a controller thread.

Times are the controller's: each host's clock offset (``facts.clock_offset``) is taken out.
In the lab's namespaces /proc/net/dev is the namespace's own (per-host network bytes), while
CPU and disk counters are the shared machine's.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

import paramiko

from harness.cluster import ssh
from harness.cluster.facts import clock_offset
from harness.cluster.inventory import Host

MAX_SAMPLES = 86_400  # the remote loop ends by itself after this many, even if never told
DISK = r"^(nvme[0-9]+n[0-9]+|[sv]d[a-z]+|xvd[a-z]+)$"
# Prints one block per interval (or at once when a line arrives on stdin); exits on EOF.
LOOP = r"""
i=0
while [ $i -lt {max} ]; do
  i=$((i+1))
  printf 'T %s\n' "$(date +%s.%N)"
  head -1 /proc/stat
  grep -E '^(MemTotal|MemAvailable):' /proc/meminfo
  awk 'NR>2 {{sub(":", " "); if ($1 != "lo") {{rx+=$2; tx+=$10}}}}
       END {{print "NET", rx+0, tx+0}}' /proc/net/dev
  awk '$3 ~ /{disk}/ {{r+=$6; w+=$10}} END {{print "DISK", r*512, w*512}}' /proc/diskstats
  echo END
  read -r -t {interval} _ || [ $? -gt 128 ] || exit 0
done
"""


def parse_block(lines: list[str]) -> dict[str, float]:
    """One block of the loop's output -> raw counters."""
    out: dict[str, float] = {}
    for line in lines:
        parts = line.split()
        if not parts:
            continue
        if parts[0] == "T":
            out["t_remote"] = float(parts[1])
        elif parts[0] == "cpu":
            ticks = [int(x) for x in parts[1:9]]
            out["cpu_total"] = sum(ticks)
            out["cpu_idle"] = ticks[3] + ticks[4]  # idle + iowait
        elif parts[0] == "MemTotal:":
            out["mem_total"] = int(parts[1]) * 1024
        elif parts[0] == "MemAvailable:":
            out["mem_available"] = int(parts[1]) * 1024
        elif parts[0] == "NET":
            out["net_rx_bytes"], out["net_tx_bytes"] = float(parts[1]), float(parts[2])
        elif parts[0] == "DISK":
            out["disk_read_bytes"], out["disk_write_bytes"] = float(parts[1]), float(parts[2])
    return out


class HostMonitor:
    """Samples one host every ``interval`` seconds until ``stop``; rows in ``samples``."""

    def __init__(self, client: paramiko.SSHClient, host: Host, interval: float = 1.0) -> None:
        self.host = host
        self.interval = interval
        self.offset, _ = clock_offset(client)
        transport = client.get_transport()
        assert transport is not None
        self.channel = transport.open_session(timeout=10)
        self.channel.settimeout(max(10.0, 3 * interval))
        script = LOOP.format(max=MAX_SAMPLES, interval=max(1, round(interval)), disk=DISK)
        self.channel.exec_command(script)
        self.samples: list[dict[str, Any]] = []
        self.error: str | None = None
        self._prev: dict[str, float] | None = None
        self._ended = threading.Event()
        self._thread = threading.Thread(target=self._read, name=f"monitor-{host.name}", daemon=True)
        self._thread.start()

    def _read(self) -> None:
        buffer = b""
        block: list[str] = []
        try:
            while True:
                chunk = self.channel.recv(4096)
                if not chunk:
                    return
                buffer += chunk
                while b"\n" in buffer:
                    line, _, buffer = buffer.partition(b"\n")
                    text = line.decode(errors="replace")
                    if text == "END":
                        self._add(parse_block(block))
                        block = []
                    else:
                        block.append(text)
        except (OSError, paramiko.SSHException, ValueError) as exc:
            if not self._ended.is_set():
                self.error = f"{ssh.where(self.host)}: monitoring stopped: {exc}"
        finally:
            self._ended.set()

    def _add(self, raw: dict[str, float]) -> None:
        prev, self._prev = self._prev, raw
        cpu = None
        if prev is not None and raw["cpu_total"] > prev["cpu_total"]:
            busy = (raw["cpu_total"] - raw["cpu_idle"]) - (prev["cpu_total"] - prev["cpu_idle"])
            cpu = 100.0 * busy / (raw["cpu_total"] - prev["cpu_total"])
        self.samples.append(
            {
                "t": raw["t_remote"] - self.offset,  # on the controller's clock
                "host": self.host.name,
                "cpu_percent": cpu,
                "mem_used_bytes": raw["mem_total"] - raw["mem_available"],
                "net_rx_bytes": raw["net_rx_bytes"],
                "net_tx_bytes": raw["net_tx_bytes"],
                "disk_read_bytes": raw["disk_read_bytes"],
                "disk_write_bytes": raw["disk_write_bytes"],
            }
        )

    def stop(self, timeout: float = 10.0) -> None:
        """Take one last sample now, then end the remote loop (EOF on its stdin)."""
        before = len(self.samples)
        try:
            self.channel.sendall(b"\n")
            deadline = time.monotonic() + timeout
            while len(self.samples) == before and not self._ended.is_set():
                if time.monotonic() > deadline:
                    break
                time.sleep(0.05)
            self.channel.shutdown_write()
        except (OSError, paramiko.SSHException):
            pass
        self._ended.set()
        self._thread.join(timeout)
        self.channel.close()


def write_samples(monitors: list[HostMonitor], path: Path) -> Path | None:
    """Every host's samples as one table with a ``host`` column (parquet)."""
    import pandas as pd

    rows = [row for m in monitors for row in m.samples]
    if not rows:
        return None
    path.parent.mkdir(parents=True, exist_ok=True)
    pd.DataFrame(rows).sort_values(["t", "host"]).to_parquet(path, index=False)
    return path
