"""The check framework: a registry of checks, the context each one runs in, and its results.

A check is one contract behaviour: a function that sends raw HTTP through ``ctx.http`` and states
what it expects with ``ctx.expect*``. The first unmet expectation fails the check with expected vs
observed; ``ctx.skip(reason)`` skips it. Every error response a check receives must carry
``x-ms-error-code`` and (except on HEAD) Azure's ``<Error>`` XML: the framework verifies that for
every check, so "error shape on every error" is enforced everywhere, not in one place.
"""

from __future__ import annotations

import base64
import hashlib
import itertools
import os
import time
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from email.utils import formatdate
from typing import Any

from azure.storage.extensions import checksums

from harness.http import BlobHttp, Response

PASS, FAIL, SKIP = "pass", "fail", "skip"


@dataclass(frozen=True)
class Check:
    id: str
    group: str  # the operation the behaviour belongs to (matrix row)
    description: str
    func: Callable[[CheckContext], None]
    needs: frozenset[str] = frozenset()  # capabilities, e.g. {"throttle"}


@dataclass
class CheckResult:
    id: str
    group: str
    description: str
    status: str
    expected: str = ""
    observed: str = ""
    duration_s: float = 0.0
    requests: int = 0

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


REGISTRY: dict[str, Check] = {}


def check(
    id: str, group: str, description: str, needs: Iterable[str] = ()
) -> Callable[[Callable[[CheckContext], None]], Callable[[CheckContext], None]]:
    """Register one check function."""

    def register(func: Callable[[CheckContext], None]) -> Callable[[CheckContext], None]:
        if id in REGISTRY:
            raise ValueError(f"duplicate check id {id}")
        REGISTRY[id] = Check(id, group, description, func, frozenset(needs))
        return func

    return register


def register_cases(
    prefix: str,
    group: str,
    cases: Iterable[tuple[str, str, Callable[[CheckContext], None]]],
) -> None:
    """Register a family of table-driven checks: (suffix, description, function)."""
    for suffix, description, func in cases:
        check(f"{prefix}.{suffix}", group, description)(func)


class CheckFailed(Exception):
    def __init__(self, what: str, expected: Any, observed: Any) -> None:
        super().__init__(what)
        self.what = what
        self.expected = expected
        self.observed = observed


class CheckSkipped(Exception):
    pass


class RecordingHttp(BlobHttp):
    """BlobHttp that keeps the responses of the running check, for the error-shape invariant."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.seen: list[tuple[str, str, Response]] = []

    def request(self, method: str, *args: Any, **kwargs: Any) -> Response:
        resp = super().request(method, *args, **kwargs)
        self.seen.append((method, str(kwargs.get("query") or ""), resp))
        return resp


_counter = itertools.count()


@dataclass
class CheckContext:
    """What a check gets: the HTTP client, the account, the target's capabilities."""

    http: RecordingHttp
    account: str
    key: str
    target: str
    capabilities: dict[str, Any] = field(default_factory=dict)
    run_id: str = field(default_factory=lambda: os.urandom(3).hex())
    containers: list[str] = field(default_factory=list)
    notes: list[tuple[str, str, str]] = field(default_factory=list)  # (what, expected, observed)

    # ---- naming and fixtures -------------------------------------------------------------
    def name(self, stem: str = "c") -> str:
        """A container name unique to this run and check (3-63 chars of [a-z0-9-])."""
        return f"cf{self.run_id}-{stem[:40]}-{next(_counter)}".lower()

    def container(self, stem: str = "c", **headers: str) -> str:
        """Create a fresh container owned by this check."""
        name = self.name(stem)
        resp = self.http.request("PUT", name, query={"restype": "container"}, headers=headers)
        self.expect_status(resp, 201, f"create container {name}")
        self.containers.append(name)
        return name

    def put_blob(
        self, container: str, blob: str, data: bytes = b"", headers: dict[str, str] | None = None
    ) -> Response:
        resp = self.http.request(
            "PUT",
            container,
            blob,
            body=data,
            headers={"x-ms-blob-type": "BlockBlob", **(headers or {})},
        )
        self.expect_status(resp, 201, f"put blob {blob!r}")
        return resp

    def get(self, container: str, blob: str, **headers: str) -> Response:
        return self.http.request("GET", container, blob, headers=headers)

    def head(self, container: str, blob: str | None = None, **headers: str) -> Response:
        if blob is None:
            return self.http.request(
                "HEAD", container, query={"restype": "container"}, headers=headers
            )
        return self.http.request("HEAD", container, blob, headers=headers)

    def list_blobs(self, container: str, **params: str) -> Response:
        query = {"restype": "container", "comp": "list", **params}
        return self.http.request("GET", container, query=query)

    def put_block(self, container: str, blob: str, block_id: str, data: bytes) -> Response:
        return self.http.request(
            "PUT", container, blob, query={"comp": "block", "blockid": block_id}, body=data
        )

    def put_block_list(
        self,
        container: str,
        blob: str,
        entries: Iterable[tuple[str, str]],
        headers: dict[str, str] | None = None,
    ) -> Response:
        root = ET.Element("BlockList")
        for kind, block_id in entries:
            ET.SubElement(root, kind).text = block_id
        body = ET.tostring(root, encoding="utf-8", xml_declaration=True)
        return self.http.request(
            "PUT",
            container,
            blob,
            query={"comp": "blocklist"},
            body=body,
            headers={"Content-Type": "application/xml", **(headers or {})},
        )

    def cleanup(self) -> None:
        for name in self.containers:
            try:
                self.http.request("DELETE", name, query={"restype": "container"})
            except OSError:
                pass
        self.containers.clear()

    # ---- expectations --------------------------------------------------------------------
    def expect(self, what: str, expected: Any, observed: Any) -> None:
        self.notes.append((what, _short(expected), _short(observed)))
        if expected != observed:
            raise CheckFailed(what, expected, observed)

    def expect_true(self, what: str, ok: bool, expected: Any, observed: Any) -> None:
        self.notes.append((what, _short(expected), _short(observed)))
        if not ok:
            raise CheckFailed(what, expected, observed)

    def expect_status(self, resp: Response, status: int, what: str = "status") -> None:
        observed = f"{resp.status} {resp.error_code or ''}".strip()
        self.expect_true(what, resp.status == status, status, observed)

    def expect_error(self, resp: Response, status: int, code: str, what: str = "error") -> None:
        """Status plus the error code in x-ms-error-code (and in the XML body, checked globally)."""
        self.expect(what, f"{status} {code}", f"{resp.status} {resp.error_code}")

    def expect_header(self, resp: Response, name: str, expected: str | None = None) -> str:
        value = resp.header(name)
        if expected is None:
            self.expect_true(f"header {name}", bool(value), "present", value)
        else:
            self.expect(f"header {name}", expected, value)
        return value or ""

    def expect_no_leak(self, resp: Response, secret: bytes) -> None:
        """A refused request must not carry ``secret`` (a blob's bytes); the evidence is what
        came back: status, code, body size and digest."""
        self.expect_true(
            "no data leaked", secret not in resp.body, "no blob bytes", body_evidence(resp, secret)
        )

    def skip(self, reason: str) -> None:
        raise CheckSkipped(reason)

    def need_target(self, *names: str, reason: str) -> None:
        if self.target not in names:
            self.skip(reason)


def _short(value: Any, limit: int = 160) -> str:
    text = value if isinstance(value, str) else repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


# ---- small helpers shared by check modules ---------------------------------------------------


def body_evidence(resp: Response, secret: bytes) -> str:
    """What a response carried, as evidence: status, error code, body length and digest, and
    whether ``secret`` (a blob's bytes that must not leak) was in the body."""
    digest = hashlib.sha256(resp.body).hexdigest()[:12]
    leaked = "CONTAINS the blob bytes" if secret in resp.body else "without the blob bytes"
    return (
        f"{resp.status} {resp.error_code or '(no x-ms-error-code)'}, {len(resp.body)}-byte "
        f"body sha256:{digest} {leaked}"
    )


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def md5_b64(data: bytes) -> str:
    return b64(hashlib.md5(data).digest())


def crc64_b64(data: bytes) -> str:
    """Azure Storage's CRC-64 (CRC-64/NVME) as the Python SDK computes it for
    ``validate_content="crc64"`` (its C extension): 8 bytes little-endian, base64."""
    return b64(checksums.crc64.compute(data, 0).to_bytes(8, "little"))


def block_id(n: int, width: int = 8) -> str:
    """Base64 of a fixed-width number: all IDs of one blob must have the same length."""
    return b64(str(n).zfill(width).encode())


def http_date(offset_s: float = 0.0) -> str:
    return formatdate(time.time() + offset_s, usegmt=True)


def children(elem: ET.Element | None) -> list[str]:
    return [c.tag for c in elem] if elem is not None else []


def is_subsequence(order: list[str], tags: list[str]) -> bool:
    """True when ``order``'s elements present in ``tags`` appear in that relative order."""
    positions = [tags.index(t) for t in order if t in tags]
    return positions == sorted(positions)


def error_shape_problem(method: str, resp: Response) -> str | None:
    """Why an error response does not have Azure's shape, or None when it does."""
    if resp.status < 400:
        return None
    if not resp.error_code:
        return f"{resp.status} without x-ms-error-code"
    if method == "HEAD":
        return None
    ctype = resp.header("content-type") or ""
    if "xml" not in ctype:
        return f"{resp.status} {resp.error_code}: Content-Type {ctype!r}, not application/xml"
    try:
        root = ET.fromstring(resp.body)
    except ET.ParseError:
        return f"{resp.status} {resp.error_code}: body is not XML: {resp.body[:80]!r}"
    if root.tag != "Error" or children(root)[:2] != ["Code", "Message"]:
        return f"{resp.status}: <{root.tag}> children {children(root)}, want <Error><Code><Message>"
    if root.findtext("Code") != resp.error_code:
        return f"body Code {root.findtext('Code')!r} != x-ms-error-code {resp.error_code!r}"
    return None


def run_one(chk: Check, ctx: CheckContext) -> CheckResult:
    """Run one check in its context; never raises."""
    ctx.notes.clear()
    ctx.http.seen.clear()
    started = time.perf_counter()
    result = CheckResult(chk.id, chk.group, chk.description, PASS)
    try:
        missing = [n for n in chk.needs if not ctx.capabilities.get(n)]
        if missing:
            ctx.skip(f"target {ctx.target} does not offer {', '.join(missing)}")
        chk.func(ctx)
        for method, _query, resp in ctx.http.seen:
            problem = error_shape_problem(method, resp)
            if problem:
                raise CheckFailed("error response shape", "x-ms-error-code + <Error> XML", problem)
        result.expected = "; ".join(f"{w}: {e}" for w, e, _ in ctx.notes[-3:])
        result.observed = "; ".join(f"{w}: {o}" for w, _, o in ctx.notes[-3:])
    except CheckFailed as exc:
        result.status = FAIL
        result.expected = f"{exc.what}: {_short(exc.expected)}"
        result.observed = f"{exc.what}: {_short(exc.observed)}"
    except CheckSkipped as exc:
        result.status = SKIP
        result.observed = str(exc)
    except Exception as exc:  # a crash in a check is a failure of that check, not of the run
        result.status = FAIL
        result.expected = "a completed exchange"
        result.observed = f"{type(exc).__name__}: {exc}"
    finally:
        ctx.cleanup()
        if result.status == FAIL:
            ctx.http.close()  # a half-read exchange must not poison the next check's connection
    result.duration_s = time.perf_counter() - started
    result.requests = len(ctx.http.seen)
    return result
