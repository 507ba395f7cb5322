"""Run boostedblob's CLI against a lab endpoint: ``python -m harness.drivers.boostedblob_cli ARGS``.

boostedblob only speaks to ``https://<account>.blob.core.windows.net``. Every request it makes
goes out through one method, ``RawRequest.raw_execute``; this module rewrites the URL there to
the endpoint in ``LAB_BBB_ENDPOINT`` before any connection is opened, so no lab name is ever
resolved. For a path-style endpoint (``http://127.0.0.1:PORT/<account>``) the request keeps
virtual-host addressing through the Host header (``<account>.blob.lab.test``), so the canonical
resource boostedblob signed with Shared Key (``/<account>/<container>/<blob>``) still matches.

It also times every request and writes counters as JSON to ``LAB_BBB_STATS`` at exit.
Environment: ``LAB_BBB_ENDPOINT`` (required), ``LAB_BBB_STATS``, ``LAB_BBB_CHUNK_SIZE`` (bytes
per block when uploading), ``LAB_BBB_CA_BUNDLE`` (the lab CA an https endpoint is verified
against); credentials are boostedblob's own (``AZURE_STORAGE_ACCOUNT_KEY``).
"""

from __future__ import annotations

import atexit
import contextlib
import dataclasses
import json
import os
import sys
import time
import urllib.parse
from collections import Counter
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import boostedblob.globals as bbb_globals
import boostedblob.request as bbb_request
from boostedblob.cli import run_bbb
from boostedblob.globals import config

from harness.http import client_ssl_context
from harness.lab_proxy import virtual_host

AZURE_SUFFIX = ".blob.core.windows.net"


@dataclasses.dataclass
class Stats:
    requests: int = 0
    retries: int = 0
    bytes_up: int = 0
    bytes_down: int = 0
    blobs_written: int = 0
    blobs_read: set[str] = dataclasses.field(default_factory=set)
    blobs_deleted: int = 0
    latencies_ms: list[float] = dataclasses.field(default_factory=list)
    errors: list[tuple[int, str | None]] = dataclasses.field(default_factory=list)

    def dump(self, path: str) -> None:
        doc = dataclasses.asdict(self)
        doc["blobs_read"] = len(self.blobs_read)
        doc["methods"] = dict(_methods)
        with open(path, "w") as fh:
            json.dump(doc, fh)


STATS = Stats()
_methods: Counter = Counter()


def rewrite(url: str, endpoint: str) -> tuple[str, str | None]:
    """(URL to connect to, Host header or None) for a boostedblob URL and a lab endpoint."""
    parts = urllib.parse.urlsplit(url)
    host = parts.hostname or ""
    if not host.endswith(AZURE_SUFFIX):
        return url, None
    account = host[: -len(AZURE_SUFFIX)]
    target = urllib.parse.urlsplit(endpoint)
    path_style = target.path.strip("/") != ""
    new = parts._replace(scheme=target.scheme, netloc=target.netloc)
    if not path_style:
        return urllib.parse.urlunsplit(new), None
    # keep virtual-host addressing: same path, account named by the Host header
    port = f":{target.port}" if target.port else ""
    return urllib.parse.urlunsplit(new), virtual_host(account) + port


def trust(ca_bundle: str) -> None:
    """Make boostedblob's aiohttp session verify https against ``ca_bundle`` (the lab CA)."""
    context = client_ssl_context(ca_bundle)

    def create_session() -> aiohttp.ClientSession:
        # boostedblob's own session settings, with the lab CA in the connector's SSL context
        connector = aiohttp.TCPConnector(limit=1024, ttl_dns_cache=60, ssl=context)
        headers = {"User-Agent": bbb_globals.config.user_agent}
        return aiohttp.ClientSession(connector=connector, trust_env=True, headers=headers)

    bbb_globals._create_session = create_session


def install(endpoint: str) -> None:
    """Patch boostedblob in this process so its requests reach ``endpoint``."""
    original = bbb_request.RawRequest.raw_execute

    @contextlib.asynccontextmanager
    async def raw_execute(self: bbb_request.RawRequest) -> AsyncIterator[Any]:
        url, host = rewrite(self.url, endpoint)
        headers = dict(self.headers)
        if host:
            headers["Host"] = host
        request = dataclasses.replace(self, url=url, headers=headers)
        started = time.perf_counter()
        async with original(request) as resp:
            STATS.requests += 1
            STATS.latencies_ms.append((time.perf_counter() - started) * 1000)
            _methods[self.method] += 1
            if resp.status >= 400:
                STATS.errors.append((resp.status, resp.headers.get("x-ms-error-code")))
            elif self.method == "PUT":
                comp = self.params.get("comp")
                if comp in (None, "block"):  # payload, not the block list XML
                    STATS.bytes_up += len(self.data or b"")
                if comp in (None, "blocklist"):
                    STATS.blobs_written += 1
            elif (
                self.method == "GET" and "comp" not in self.params and "restype" not in self.params
            ):
                STATS.bytes_down += int(resp.headers.get("Content-Length") or 0)
                STATS.blobs_read.add(urllib.parse.urlsplit(self.url).path)
            elif self.method == "DELETE":
                # `bbb rm -r` also deletes the prefix itself, usually a 404: count only blobs.
                STATS.blobs_deleted += 1
            yield resp

    bbb_request.RawRequest.raw_execute = raw_execute  # type: ignore[method-assign]

    async def no_dns_check(hostname: str) -> bool:
        return False  # the real check resolves the account's Azure name in DNS

    bbb_request._bad_hostname_check = no_dns_check
    if chunk := os.environ.get("LAB_BBB_CHUNK_SIZE"):
        config.chunk_size = int(chunk)


def main(argv: list[str]) -> int:
    endpoint = os.environ.get("LAB_BBB_ENDPOINT")
    if not endpoint:
        print("LAB_BBB_ENDPOINT is not set", file=sys.stderr)
        return 2
    install(endpoint)
    if ca_bundle := os.environ.get("LAB_BBB_CA_BUNDLE"):
        trust(ca_bundle)
    if stats_path := os.environ.get("LAB_BBB_STATS"):
        atexit.register(STATS.dump, stats_path)
    try:
        run_bbb(argv)
    except Exception as exc:
        print(f"boostedblob failed: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
