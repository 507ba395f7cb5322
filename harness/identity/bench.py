"""``python -m harness.identity.bench``: what bearer validation costs the façade per request,
against Shared Key, in one run.

The reference façade (https, trusting the lab token service) serves the same 1 KiB Get Blob
``--requests`` times per scheme over one keep-alive connection, in alternating rounds, after a
warm-up that also fills its key cache. The cost is the façade process's CPU time (its threads'
scheduler run time on Linux, else user + system) per request, so the client's own signing and
the network do not count; the ratio is bearer / Shared Key.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path
from typing import Any

import psutil

from harness.http import BlobHttp
from harness.identity.lab import BearerReference

BLOB = b"x" * 1024
ROUNDS = 4


def _cpu_s(pid: int) -> float:
    """The process's CPU time. Linux: the sum of its threads' scheduler run times (ns), since
    user + system come in 10 ms ticks and a short round of cached-token requests (a few ms)
    would often read as 0; elsewhere psutil's user + system."""
    try:
        tasks = Path(f"/proc/{pid}/task").iterdir()
        return sum(int((t / "schedstat").read_text().split()[0]) for t in tasks) / 1e9
    except (OSError, ValueError, IndexError):
        times = psutil.Process(pid).cpu_times()
        return times.user + times.system


def _run(http: BlobHttp, pid: int, count: int, headers: dict[str, str] | None) -> dict[str, float]:
    sign = headers is None
    started_cpu, started = _cpu_s(pid), time.perf_counter()
    for _ in range(count):
        resp = http.request("GET", "bench", "blob", headers=headers or {}, sign=sign)
        if resp.status != 200:
            raise RuntimeError(f"Get Blob answered {resp.status} {resp.error_code}")
    wall, cpu = time.perf_counter() - started, _cpu_s(pid) - started_cpu
    return {"requests": count, "server_cpu_us": cpu / count * 1e6, "wall_us": wall / count * 1e6}


def measure(workdir: Path, requests: int = 2000, warmup: int = 200) -> dict[str, Any]:
    """Per-request façade CPU and wall time for Shared Key and bearer, and their ratios."""
    bearer = BearerReference(workdir)
    endpoint = bearer.start()
    try:
        https = bearer.targets[0]
        pid = https.server.process.pid
        http = BlobHttp(endpoint.url, endpoint.account, endpoint.key, ca_bundle=endpoint.ca_bundle)
        http.request("PUT", "bench", query={"restype": "container"})
        http.request("PUT", "bench", "blob", body=BLOB, headers={"x-ms-blob-type": "BlockBlob"})
        token = {"Authorization": f"Bearer {endpoint.identity.mint('reader')}"}
        schemes = {"shared_key": None, "bearer": token}
        for headers in schemes.values():
            _run(http, pid, warmup, headers)  # keep-alive, caches (the JWKS fetch) warm
        # alternating rounds, so a burst of load from elsewhere on the host hits both schemes
        rounds = [
            {name: _run(http, pid, requests // ROUNDS, h) for name, h in schemes.items()}
            for _ in range(ROUNDS)
        ]
        http.close()
        results: dict[str, Any] = {}
        for name in schemes:
            parts = [r[name] for r in rounds]
            results[name] = {
                "requests": sum(p["requests"] for p in parts),
                "server_cpu_us": sum(p["server_cpu_us"] for p in parts) / ROUNDS,
                "wall_us": sum(p["wall_us"] for p in parts) / ROUNDS,
            }
    finally:
        bearer.stop()
    sk, br = results["shared_key"], results["bearer"]
    results["ratio_server_cpu"] = br["server_cpu_us"] / sk["server_cpu_us"]
    results["ratio_wall"] = br["wall_us"] / sk["wall_us"]
    results["extra_server_cpu_us"] = br["server_cpu_us"] - sk["server_cpu_us"]
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--warmup", type=int, default=200)
    parser.add_argument("--json", type=Path, help="also write the numbers here")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="auth-bench-") as tmp:
        results = measure(Path(tmp), args.requests, args.warmup)
    for name in ("shared_key", "bearer"):
        r = results[name]
        print(
            f"{name:10s} {r['requests']} Get Blob: façade CPU {r['server_cpu_us']:.0f} µs/request, "
            f"wall {r['wall_us']:.0f} µs/request"
        )
    print(
        f"bearer / Shared Key: façade CPU {results['ratio_server_cpu']:.2f}x "
        f"({results['extra_server_cpu_us']:+.0f} µs), wall {results['ratio_wall']:.2f}x"
    )
    if args.json:
        args.json.write_text(json.dumps(results, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
