"""Fuzzing the façade: thousands of mutated requests derived from valid signed ones (every
operation, server-side copies from this server included), and raw
garbage over sockets. Whatever arrives, the answer is a 4xx (or 503) with Azure's error shape,
never another 5xx; nothing is written outside the data root; the server stays up and a canary
blob keeps its bytes.

Seeded: ``FUZZ_SEED=<n>`` replays a run; the seed and each failing request are printed."""

from __future__ import annotations

import os
import random
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from facade_raw import Raw, exchange, raw_head

from harness.http import Response, block_id, block_list_xml, encode_query
from tests.conftest import ROOT, RunningServer, start_server, stop_server

MUTATED_REQUESTS = 4000
GARBAGE_REQUESTS = 600
TIME_LIMIT_S = 50.0  # bounds a hung run; the counts above are what the test runs

CANARY_CT, CANARY_BLOB = "canary", "canary.bin"
FUZZ_CT = "fuzz"
METHODS = ["GET", "PUT", "HEAD", "DELETE", "POST", "OPTIONS", "PATCH"]

# Header values the HTTP parser lets through (control characters and over-long heads are framing
# errors, the raw-garbage test's business); "\udcff" is the byte 0xFF on the wire.
VALUES = [
    "",
    " ",
    "0",
    "-1",
    "1" * 30,
    "9" * 4301,
    "bytes=0-",
    "bytes=5-1",
    "bytes=-5",
    "bytes=0-0,2-3",
    "bytes=" + "9" * 4301 + "-",
    "*",
    '"0x1"',
    'W/"x"',
    "Mon, 01 Jan 2024 00:00:00 GMT",
    "Fri, 31 Dec 9999 23:59:59 GMT",
    "not a date",
    "true",
    "false",
    "BlockBlob",
    "PageBlob",
    "AAAA",
    "QR==",
    "x" * 4000,
    "\udcff",
    "a\udcffb\udcfe",
    "\u00e9t\u00e9",
    "%00",
    "../../etc/passwd",
    "<x/>",
    "2009-09-19",
    "2099-01-01",
    "a,b,,c",
    "text/plain; charset=\udcff",
]
HEADER_NAMES = [
    "x-ms-range",
    "Range",
    "If-Range",
    "Content-MD5",
    "x-ms-blob-content-md5",
    "If-Match",
    "If-None-Match",
    "If-Modified-Since",
    "If-Unmodified-Since",
    "x-ms-meta-m",
    "x-ms-meta-",
    "x-ms-meta-1bad",
    "x-ms-blob-content-type",
    "x-ms-blob-content-disposition",
    "x-ms-blob-cache-control",
    "x-ms-blob-content-encoding",
    "x-ms-blob-content-language",
    "Content-Type",
    "Content-Encoding",
    "x-ms-blob-type",
    "x-ms-version",
    "x-ms-date",
    "x-ms-lease-id",
    "x-ms-range-get-content-md5",
    "x-ms-client-request-id",
    "x-ms-blob-content-length",
    "x-ms-access-tier",
    "x-ms-delete-snapshots",
    "x-ms-copy-action",
    "x-ms-requires-sync",
    "Expect",
]
QUERY_NAMES = [
    "comp",
    "restype",
    "blockid",
    "blocklisttype",
    "maxresults",
    "marker",
    "prefix",
    "delimiter",
    "include",
    "snapshot",
    "versionid",
    "timeout",
    "sig",
    "sv",
    "se",
    "sp",
    "sr",
    "rsct",
]
QUERY_VALUES = [
    "list",
    "block",
    "blocklist",
    "metadata",
    "properties",
    "container",
    "service",
    "account",
    "copy",
    "tags",
    "lease",
    "all",
    "uncommitted",
    "0",
    "5001",
    "-3",
    "9" * 4301,
    "QQ==",
    "QR==",
    "\x01",
    "\uffff",
    "a/b",
    "",
    "metadata,bogus",
    "2099-01-01T00:00:00Z",
]
# Path insertions, percent-encoded (a raw space, CR or LF in the request line is framing, and
# %0A/%0D are left to the raw-garbage test for the same reason).
PATH_BITS = [
    "%00",
    "%01",
    "%1F",
    "%FF",
    "%EF%BF%BF",
    "%EF%BF%BE",
    "%2F",
    "%2e%2e",
    "..",
    "/..",
    "/../..",
    "//",
    "%25",
    "%20",
    "+",
    "~",
    "%C0%AF",
    "a" * 300,
    "%2F%2F",
    "/./",
    "%5C..%5C",
]
XML_BODIES = [
    block_list_xml([block_id(0)]),
    block_list_xml([("Committed", block_id(1)), ("Uncommitted", "QR==")]),
    b"<BlockList><Latest>",
    b"<?xml version='1.0'?><!DOCTYPE x [<!ENTITY a SYSTEM 'file:///etc/passwd'>]>"
    b"<BlockList><Latest>&a;</Latest></BlockList>",
    b"<!DOCTYPE l [<!ENTITY a 'aaaaaaaaaa'><!ENTITY b '&a;&a;&a;&a;&a;&a;&a;&a;'>"
    b"<!ENTITY c '&b;&b;&b;&b;&b;&b;&b;&b;'>]><BlockList><Latest>&c;</Latest></BlockList>",
    b"<StorageServiceProperties><Cors/></StorageServiceProperties>",
    b"<Other/>",
    b"\xff\xfe<\x00B\x00",
    b"",
]


@dataclass
class Spec:
    """One request before it is signed: what mutations edit."""

    method: str
    path: str
    query: list[tuple[str, str]]
    headers: dict[str, str]
    body: bytes
    notes: list[str] = field(default_factory=list)
    declared_extra: int = 0  # Content-Length beyond the body sent (then the sender half-closes)
    after_signing: dict[str, str | None] = field(default_factory=dict)


@pytest.fixture
def fuzz_server(tmp_path: Path) -> Iterator[tuple[RunningServer, Raw, bytes]]:
    srv = start_server(tmp_path / "data", tmp_path / "server.log")
    raw = Raw(srv)
    canary = os.urandom(64 * 1024)
    try:
        raw.create_container(CANARY_CT)
        raw.create_container(FUZZ_CT)
        assert raw.put_blob(CANARY_CT, CANARY_BLOB, canary).status == 201
        yield srv, raw, canary
    finally:
        raw.close()
        stop_server(srv)


def _base(raw: Raw, rng: random.Random) -> Spec:
    """A valid request of one of the façade's operations on the fuzz container."""
    blob = f"f/{rng.randrange(20)}"
    bpath = raw.path(FUZZ_CT, blob)
    cpath = raw.path(FUZZ_CT)
    body = rng.randbytes(rng.choice([0, 1, 100, 5000]))
    bid = block_id(rng.randrange(4))
    # copy sources on this server only (read from disk): mutations never name another host
    src = {"x-ms-copy-source": f"{raw.account_url}/{FUZZ_CT}/f/{rng.randrange(20)}"}
    choices = [
        Spec("PUT", bpath, [], {**src, "x-ms-blob-type": "BlockBlob"}, b""),
        Spec("PUT", bpath, [], {**src, "x-ms-requires-sync": "true"}, b""),
        Spec("PUT", bpath, [], dict(src), b""),
        Spec(
            "PUT",
            bpath,
            [("comp", "block"), ("blockid", bid)],
            {**src, "x-ms-source-range": f"bytes=0-{rng.randrange(10)}"},
            b"",
        ),
        Spec("PUT", bpath, [], {"x-ms-blob-type": "BlockBlob"}, body),
        Spec("GET", bpath, [], {"x-ms-range": f"bytes={rng.randrange(50)}-"}, b""),
        Spec("HEAD", bpath, [], {}, b""),
        Spec("DELETE", bpath, [], {}, b""),
        Spec("PUT", bpath, [("comp", "block"), ("blockid", bid)], {}, body),
        Spec("PUT", bpath, [("comp", "blocklist")], {}, rng.choice(XML_BODIES)),
        Spec("GET", bpath, [("comp", "blocklist"), ("blocklisttype", "all")], {}, b""),
        Spec("PUT", bpath, [("comp", "properties")], {"x-ms-blob-content-type": "a/b"}, b""),
        Spec("PUT", bpath, [("comp", "metadata")], {"x-ms-meta-k": "v"}, b""),
        Spec("GET", bpath, [("comp", "metadata")], {}, b""),
        Spec(
            "GET",
            cpath,
            [("restype", "container"), ("comp", "list"), ("include", "metadata")],
            {},
            b"",
        ),
        Spec(
            "GET",
            cpath,
            [("restype", "container"), ("comp", "list"), ("delimiter", "/"), ("maxresults", "2")],
            {},
            b"",
        ),
        Spec("GET", cpath, [("restype", "container")], {}, b""),
        Spec("PUT", cpath, [("restype", "container"), ("comp", "metadata")], {}, b""),
        Spec("GET", raw.path(), [("comp", "list")], {}, b""),
        Spec("GET", raw.path(), [("restype", "service"), ("comp", "properties")], {}, b""),
        Spec(
            "PUT",
            raw.path(),
            [("restype", "service"), ("comp", "properties")],
            {},
            rng.choice(XML_BODIES),
        ),
        Spec("GET", raw.path(), [("restype", "account"), ("comp", "properties")], {}, b""),
    ]
    return rng.choice(choices)


def _mutate(spec: Spec, rng: random.Random) -> None:
    for _ in range(rng.randint(1, 3)):
        kind = rng.choice(["header", "header", "query", "query", "path", "body", "method", "auth"])
        if kind == "header":
            name = (
                rng.choice([*HEADER_NAMES, *spec.headers])
                if spec.headers
                else rng.choice(HEADER_NAMES)
            )
            if name in spec.headers and rng.random() < 0.3:
                del spec.headers[name]
                spec.notes.append(f"drop header {name}")
            else:
                # any other Expect gets aiohttp's own plain 417 (the raw-garbage test sends one)
                spec.headers[name] = "100-continue" if name == "Expect" else rng.choice(VALUES)
                spec.notes.append(f"header {name}={spec.headers[name][:40]!r}")
        elif kind == "query":
            if spec.query and rng.random() < 0.3:
                dropped = spec.query.pop(rng.randrange(len(spec.query)))
                spec.notes.append(f"drop query {dropped[0]}")
            else:
                pair = (rng.choice(QUERY_NAMES), rng.choice(QUERY_VALUES))
                spec.query.append(pair)
                spec.notes.append(f"query {pair[0]}={pair[1][:40]!r}")
        elif kind == "path":
            cut = rng.randrange(1, len(spec.path) + 1)  # a target not starting with / is framing
            bit = rng.choice(PATH_BITS)
            spec.path = spec.path[:cut] + bit + spec.path[cut:]
            spec.notes.append(f"path {spec.path[:80]!r}")
        elif kind == "body":
            choice = rng.random()
            if choice < 0.4:
                spec.body = rng.randbytes(rng.randrange(0, 20000))
            elif choice < 0.7:
                spec.body = rng.choice(XML_BODIES)
            else:
                spec.declared_extra = rng.randint(1, 5000)
            spec.notes.append(f"body {len(spec.body)} bytes (+{spec.declared_extra} declared)")
        elif kind == "method":
            spec.method = rng.choice(METHODS)
            spec.notes.append(f"method {spec.method}")
        else:  # tamper after signing: authentication must refuse it with a code
            name = rng.choice(["Authorization", "x-ms-date", "x-ms-meta-k", "Content-Type"])
            value = rng.choice([None, *VALUES, "SharedKey devstoreaccount1:AAAA", "Bearer x.y.z"])
            spec.after_signing[name] = value
            spec.notes.append(f"after signing {name}={value if value is None else value[:40]!r}")


MAX_TARGET = 8000  # aiohttp refuses request lines over 8,190 bytes: framing, tested apart


def _wire(raw: Raw, spec: Spec) -> bytes:
    while spec.query and len(spec.path) + len(encode_query(spec.query)) > MAX_TARGET:
        spec.notes.append(f"(dropped query {spec.query.pop()[0]} to fit the request line)")
    prepared = raw.prepare(
        spec.method,
        raw_path=spec.path,
        query=spec.query,
        headers=spec.headers,
        content_length=len(spec.body) + spec.declared_extra,
    )
    if spec.after_signing:
        headers = {k: v for k, v in prepared.headers.items() if k not in spec.after_signing}
        headers |= {k: v for k, v in spec.after_signing.items() if v is not None}
        prepared = type(prepared)(prepared.method, prepared.url, prepared.target, headers)
    return raw_head(prepared) + spec.body


def shape_problem(method: str, r: Response | None) -> str | None:
    """What is wrong with an answer, or None: no 5xx but 503, and every error in Azure's
    shape (x-ms-error-code, and an <Error> body with the same code unless HEAD or 304)."""
    if r is None:
        return "no answer"
    # 501 NotImplemented is the contract's answer to operations outside it (README), in
    # Azure's shape; any other 5xx but 503 is a server fault
    if r.status >= 500 and r.status != 503 and (r.status, r.error_code) != (501, "NotImplemented"):
        return f"{r.status} {r.error_code}"
    if r.status >= 400 or r.status == 304:
        if not r.error_code:
            return f"{r.status} without x-ms-error-code: {r.body[:120]!r}"
        if method != "HEAD" and r.status != 304 and r.body_error_code() != r.error_code:
            return f"{r.status} {r.error_code} without its <Error> body: {r.body[:120]!r}"
    return None


def _outside_root_snapshot(srv: RunningServer) -> tuple[list[str], str]:
    """What sits beside the data root, and the worktree's status (the server's cwd)."""
    beside = sorted(os.listdir(srv.data_root.parent))
    status = subprocess.run(
        ["git", "-C", str(ROOT), "status", "--porcelain", "--ignored"],
        capture_output=True,
        text=True,
        timeout=30,
    ).stdout
    return beside, status


def _check_survivors(srv: RunningServer, raw: Raw, canary: bytes, before: tuple) -> None:
    assert srv.process.poll() is None, "the server died"
    assert "internal error" not in srv.log(), "a request failed inside the server (see its log)"
    got = raw.request("GET", CANARY_CT, CANARY_BLOB)
    assert got.status == 200 and got.body == canary, "the canary blob changed"
    assert _outside_root_snapshot(srv) == before, "files appeared outside the data root"
    for dirpath, dirnames, filenames in os.walk(srv.data_root):
        for name in dirnames + filenames:
            assert not os.path.islink(os.path.join(dirpath, name)), "a symlink in the data root"


def _seed() -> int:
    seed = int(os.environ.get("FUZZ_SEED") or random.SystemRandom().randrange(1 << 32))
    print(f"fuzz seed {seed} (replay with FUZZ_SEED={seed})")
    return seed


@pytest.mark.slow
def test_mutated_signed_requests_get_4xx_with_azure_error_shape(fuzz_server) -> None:
    srv, raw, canary = fuzz_server
    seed = _seed()
    rng = random.Random(seed)
    before = _outside_root_snapshot(srv)
    failures: list[str] = []
    statuses: dict[int, int] = {}
    deadline = time.monotonic() + TIME_LIMIT_S
    sent = 0
    for i in range(MUTATED_REQUESTS):
        if time.monotonic() > deadline:
            break
        spec = _base(raw, rng)
        _mutate(spec, rng)
        data = _wire(raw, spec)
        r = exchange(srv.port, data, method=spec.method, half_close=spec.declared_extra > 0)
        sent += 1
        if r is not None:
            statuses[r.status] = statuses.get(r.status, 0) + 1
        problem = shape_problem(spec.method, r)
        if problem == "no answer" and spec.declared_extra:
            problem = None  # the body never came: closing without an answer is all there is
        if problem:
            failures.append(f"#{i} {problem}\n  {'; '.join(spec.notes)}\n  {data[:300]!r}")
            print(failures[-1])
    print(f"sent {sent} mutated requests; statuses {dict(sorted(statuses.items()))}")
    assert sent >= MUTATED_REQUESTS // 2, f"only {sent} requests in {TIME_LIMIT_S} s"
    assert not failures, f"seed {seed}: {len(failures)} bad answers, first:\n" + "\n".join(
        failures[:5]
    )
    _check_survivors(srv, raw, canary, before)


def _garbage(raw: Raw, rng: random.Random) -> tuple[bytes, bool]:
    """Bytes that are not a well-formed request, and whether they end unfinished (then the
    sender half-closes, and no answer is expected)."""
    kind = rng.randrange(9)
    if kind == 8:  # a truncated head
        valid = raw.prepare("GET", FUZZ_CT, "g").head()
        return valid[: rng.randrange(1, len(valid) - 4)], True
    return _garbage_head(raw, rng, kind), False


def _garbage_head(raw: Raw, rng: random.Random, kind: int) -> bytes:
    host = f"Host: 127.0.0.1:{raw.server.port}\r\n".encode()
    valid = raw.prepare("GET", FUZZ_CT, "g", query={"restype": "container"}).head()
    if kind == 0:  # random bytes, ended like a head so the parser judges them at once
        return rng.randbytes(rng.randint(1, 2000)) + b"\r\n\r\n"
    if kind == 1:  # a valid head with random bytes flipped
        data = bytearray(valid)
        for _ in range(rng.randint(1, 8)):
            data[rng.randrange(len(data))] = rng.randrange(256)
        return bytes(data)
    if kind == 2:  # a request line over aiohttp's 8,190-byte limit
        return b"GET /" + b"a" * rng.randint(8200, 20000) + b" HTTP/1.1\r\n" + host + b"\r\n"
    if kind == 3:  # duplicate Content-Length
        return (
            b"PUT /devstoreaccount1/fuzz/x HTTP/1.1\r\n"
            + host
            + (b"Content-Length: 1\r\nContent-Length: 2\r\n\r\nab")
        )
    if kind == 4:  # no Host
        return b"GET /devstoreaccount1/fuzz?restype=container HTTP/1.1\r\n\r\n"
    if kind == 5:  # %0A / %0D in the path
        bit = rng.choice([b"%0A", b"%0D", b"%0D%0A"])
        return b"GET /devstoreaccount1/fuzz/a" + bit + b"b HTTP/1.1\r\n" + host + b"\r\n"
    if kind == 6:  # a control character or junk in a header
        junk = bytes([rng.choice([0, 1, 8, 11, 12, 27, 127])])
        return valid.replace(b"x-ms-version: ", b"x-ms-version: " + junk, 1)
    # an Expect other than 100-continue
    return valid.replace(b"\r\n\r\n", b"\r\nExpect: 200-ok\r\n\r\n", 1)


@pytest.mark.slow
def test_raw_garbage_over_sockets_gets_azure_error_shape_or_nothing(fuzz_server) -> None:
    srv, raw, canary = fuzz_server
    seed = _seed()
    rng = random.Random(seed)
    before = _outside_root_snapshot(srv)
    failures: list[str] = []
    answered: dict[int, int] = {}
    unanswered = 0
    deadline = time.monotonic() + TIME_LIMIT_S
    for i in range(GARBAGE_REQUESTS):
        if time.monotonic() > deadline:
            break
        data, unfinished = _garbage(raw, rng)
        r = exchange(srv.port, data, half_close=unfinished, timeout_s=2)
        if r is None:
            unanswered += 1
            continue  # not a request: closing (or awaiting the rest) is a fine answer
        answered[r.status] = answered.get(r.status, 0) + 1
        problem = shape_problem("GET", r)
        if problem:
            failures.append(f"#{i} {problem}\n  {data[:300]!r}")
            print(failures[-1])
    print(f"garbage: {unanswered} closed unanswered; answers {dict(sorted(answered.items()))}")
    assert not failures, f"seed {seed}: {len(failures)} bad answers, first:\n" + "\n".join(
        failures[:5]
    )
    _check_survivors(srv, raw, canary, before)
