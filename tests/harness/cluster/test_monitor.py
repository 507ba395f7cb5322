"""The remote sampling loop's output, parsed into one row per host and sample."""

from __future__ import annotations

from harness.cluster.monitor import parse_block

BLOCK = """\
T 1796160000.250000000
cpu  100 0 50 800 50 0 0 0 0 0
MemTotal:       24683652 kB
MemAvailable:   20000000 kB
NET 1000 2000
DISK 512 1024
""".splitlines()


def test_a_block_gives_every_counter() -> None:
    raw = parse_block(BLOCK)
    assert raw["t_remote"] == 1796160000.25
    assert raw["cpu_total"] == 1000 and raw["cpu_idle"] == 850  # idle + iowait
    assert raw["mem_total"] - raw["mem_available"] == (24683652 - 20000000) * 1024
    assert (raw["net_rx_bytes"], raw["net_tx_bytes"]) == (1000, 2000)
    assert (raw["disk_read_bytes"], raw["disk_write_bytes"]) == (512, 1024)
