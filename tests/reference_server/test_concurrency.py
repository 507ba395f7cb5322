"""Concurrency promises against real server processes: 1,000 connections held at once, and
concurrent writers to one blob ending with one whole version."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import os
import threading
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import aiohttp
import pytest
from facade_raw import Raw
from test_robustness import launcher  # noqa: F401 - the fixture is used by name
from yarl import URL

from harness.http import BlobRequests, block_id, block_list_xml
from tests.conftest import RunningServer

CONNECTIONS = 1000
BLOCK = 64 * 1024


async def put_blocks_at_once(srv: RunningServer, container: str, blocks: list[bytes]) -> list[int]:
    """One Put Block per connection, all in flight together: each body sends its first half, then
    waits until every request has started before sending the rest, so the server must hold all
    of them open at the same time."""
    started = 0
    all_started = asyncio.Event()

    async def body(data: bytes) -> AsyncIterator[bytes]:
        nonlocal started
        yield data[: len(data) // 2]
        started += 1
        if started == len(blocks):
            all_started.set()
        await all_started.wait()
        yield data[len(data) // 2 :]

    shaper = BlobRequests(srv.account_url, srv.account, srv.key)

    async def put(session: aiohttp.ClientSession, i: int) -> int:
        req = shaper.prepare(
            "PUT",
            container,
            "joined.bin",
            query={"comp": "block", "blockid": block_id(i)},
            # aiohttp would add Content-Type after signing; it is part of the string-to-sign
            headers={"Content-Type": "application/octet-stream"},
            content_length=len(blocks[i]),
        )
        url = URL(req.url, encoded=True)
        async with session.put(url, data=body(blocks[i]), headers=req.headers) as r:
            await r.read()
            return r.status

    connector = aiohttp.TCPConnector(limit=CONNECTIONS, force_close=True)
    timeout = aiohttp.ClientTimeout(total=120)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
        return await asyncio.gather(*(put(session, i) for i in range(len(blocks))))


@pytest.mark.slow
@pytest.mark.parametrize("workers", [1, 2])
def test_thousand_concurrent_put_blocks(launcher, workers: int) -> None:  # noqa: F811
    srv = launcher("--workers", str(workers))
    raw = Raw(srv)
    try:
        ct = raw.create_container()
        blocks = [os.urandom(BLOCK) for _ in range(CONNECTIONS)]
        statuses = asyncio.run(put_blocks_at_once(srv, ct, blocks))
        assert statuses == [201] * CONNECTIONS
        ids = [block_id(i) for i in range(CONNECTIONS)]
        commit = raw.request(
            "PUT", ct, "joined.bin", query={"comp": "blocklist"}, body=block_list_xml(ids)
        )
        assert commit.status == 201, commit.body
        get = raw.request("GET", ct, "joined.bin")
        assert get.status == 200 and get.body == b"".join(blocks)
        assert get.headers["x-ms-blob-committed-block-count"] == str(CONNECTIONS)
    finally:
        raw.close()


WRITERS = 8
ROUNDS = 2


def b64md5(data: bytes) -> str:
    return base64.b64encode(hashlib.md5(data).digest()).decode()


def run_writers(
    srv: RunningServer, write: Callable[[Raw, int], list[tuple[int, str | None]]]
) -> list[tuple[int, str | None]]:
    """``WRITERS`` threads, each its own connection, calling ``write(raw, n)`` ``ROUNDS`` times
    after a common start; returns every (status, error code)."""
    barrier = threading.Barrier(WRITERS)
    results: list[tuple[int, str | None]] = []

    def writer(n: int) -> None:
        raw = Raw(srv)
        try:
            barrier.wait()
            for _ in range(ROUNDS):
                results.extend(write(raw, n))
        finally:
            raw.close()

    threads = [threading.Thread(target=writer, args=(n,)) for n in range(WRITERS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return results


def assert_one_whole_version(
    srv: RunningServer, container: str, name: str, bodies: list[bytes]
) -> None:
    raw = Raw(srv)
    try:
        get = raw.request("GET", container, name)
    finally:
        raw.close()
    assert get.status == 200
    assert sum(get.body == b for b in bodies) == 1  # exactly one writer's body, whole
    assert get.headers["content-md5"] == b64md5(get.body)
    final = Path(srv.data_root, srv.account, container, name)
    assert final.read_bytes() == get.body


@pytest.mark.slow
def test_concurrent_writers_end_with_one_whole_version(launcher) -> None:  # noqa: F811
    """8 writers race Put Blob, then Put Block + Put Block List, on one name each time. Two
    worker processes: the commit lock must hold across processes, not only threads."""
    srv = launcher("--workers", "2")
    raw = Raw(srv)
    ct = raw.create_container()
    raw.close()
    bodies = [os.urandom(4 * 1024 * 1024) for _ in range(WRITERS)]

    def put_blob(raw: Raw, n: int) -> list[tuple[int, str | None]]:
        r = raw.put_blob(ct, "raced.bin", bodies[n], **{"Content-MD5": b64md5(bodies[n])})
        return [(r.status, r.error_code)]

    assert set(run_writers(srv, put_blob)) == {(201, None)}
    assert_one_whole_version(srv, ct, "raced.bin", bodies)

    quarter = len(bodies[0]) // 4

    def by_blocks(raw: Raw, n: int) -> list[tuple[int, str | None]]:
        # writer-specific block IDs: a commit discards every other uncommitted block (as on
        # Azure), so a writer whose blocks were discarded gets 400 InvalidBlockList
        ids = [base64.b64encode(f"w{n}-{i:04d}".encode()).decode() for i in range(4)]
        out = []
        for i, bid in enumerate(ids):
            part = bodies[n][i * quarter : (i + 1) * quarter]
            r = raw.request(
                "PUT", ct, "blocks.bin", query={"comp": "block", "blockid": bid}, body=part
            )
            out.append((r.status, r.error_code))
        r = raw.request(
            "PUT",
            ct,
            "blocks.bin",
            query={"comp": "blocklist"},
            body=block_list_xml(ids),
            headers={"x-ms-blob-content-md5": b64md5(bodies[n])},
        )
        return [*out, (r.status, r.error_code)]

    results = run_writers(srv, by_blocks)
    assert set(results) <= {(201, None), (400, "InvalidBlockList")}, set(results)
    assert_one_whole_version(srv, ct, "blocks.bin", bodies)
