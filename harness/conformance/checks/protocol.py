"""Protocol-wide behaviour: error shape, versioning headers, tolerance of unknown input, limits,
and 503 ServerBusy with Retry-After over the in-flight limit."""

from __future__ import annotations

import socket
import time
from collections.abc import Callable
from email.utils import formatdate

from harness.conformance.checks.service import RFC1123
from harness.conformance.framework import CheckContext, block_id, check, children, register_cases
from harness.http import Response

ERRORS = "Errors"
VERSIONING = "Versioning"
TOLERANCE = "Tolerance"
LIMITS = "Limits"
THROTTLE = "Throttling"

MIB = 1024 * 1024


# ---- Error shape ------------------------------------------------------------------------------


def _error_case(
    make: Callable[[CheckContext], Response], status: int
) -> Callable[[CheckContext], None]:
    def run(ctx: CheckContext) -> None:
        resp = make(ctx)
        ctx.expect_status(resp, status)
        ctx.expect_true(
            "content-type",
            "application/xml" in (resp.header("content-type") or ""),
            "application/xml",
            resp.header("content-type"),
        )
        root = resp.xml()
        ctx.expect("shape", ("Error", ["Code", "Message"]), (root.tag, children(root)[:2]))
        ctx.expect("Code = x-ms-error-code", resp.error_code, root.findtext("Code"))
        ctx.expect_true(
            "Message", bool(root.findtext("Message")), "non-empty", root.findtext("Message")
        )
        ctx.expect_header(resp, "x-ms-request-id")

    return run


def _with_blob(ctx: CheckContext, headers: dict[str, str]) -> Response:
    """GET a fresh 1-byte blob with ``headers``."""
    ct = ctx.container()
    ctx.put_blob(ct, "b", b"x")
    return ctx.get(ct, "b", **headers)


register_cases(
    "error-shape",
    ERRORS,
    [
        (
            "400",
            "a 400 has <Error><Code><Message>, x-ms-error-code and x-ms-request-id",
            _error_case(lambda ctx: ctx.http.request("PUT", ctx.container(), "b", body=b"x"), 400),
        ),
        (
            "403",
            "a 403 has the error shape",
            _error_case(
                lambda ctx: ctx.http.request(
                    "GET", ctx.container(), "b", date=formatdate(time.time() - 3600, usegmt=True)
                ),
                403,
            ),
        ),
        (
            "404",
            "a 404 has the error shape",
            _error_case(lambda ctx: ctx.get(ctx.container(), "nope"), 404),
        ),
        (
            "409",
            "a 409 has the error shape",
            _error_case(
                lambda ctx: ctx.http.request(
                    "PUT", ctx.container(), query={"restype": "container"}
                ),
                409,
            ),
        ),
        (
            "412",
            "a 412 has the error shape",
            _error_case(lambda ctx: _with_blob(ctx, {"If-Match": '"0x8D000000DEADBEEF"'}), 412),
        ),
        (
            "416",
            "a 416 has the error shape",
            _error_case(lambda ctx: _with_blob(ctx, {"x-ms-range": "bytes=9-"}), 416),
        ),
    ],
)


@check("error-shape.head", ERRORS, "a HEAD error has no body but carries x-ms-error-code")
def _err_head(ctx: CheckContext) -> None:
    resp = ctx.head(ctx.container(), "nope")
    ctx.expect("status / body", (404, b""), (resp.status, resp.body))
    ctx.expect_header(resp, "x-ms-error-code", "BlobNotFound")


# ---- Versioning ------------------------------------------------------------------------------


@check("versioning.headers", VERSIONING, "responses carry x-ms-version, x-ms-request-id, Date")
def _v_headers(ctx: CheckContext) -> None:
    resp = ctx.head(ctx.container())
    for name in ("x-ms-version", "x-ms-request-id"):
        ctx.expect_header(resp, name)
    date = ctx.expect_header(resp, "date")
    ctx.expect_true("Date RFC 1123", bool(RFC1123.match(date)), "RFC 1123", date)


@check("versioning.echo", VERSIONING, "x-ms-version echoes the request's version")
def _v_echo(ctx: CheckContext) -> None:
    resp = ctx.head(ctx.container())
    ctx.expect_header(resp, "x-ms-version", ctx.http.api_version)


@check("versioning.client-request-id", VERSIONING, "x-ms-client-request-id is echoed")
def _v_client_id(ctx: CheckContext) -> None:
    resp = ctx.head(ctx.container(), **{"x-ms-client-request-id": "lab-0001"})
    ctx.expect_header(resp, "x-ms-client-request-id", "lab-0001")


@check("versioning.request-id-unique", VERSIONING, "each response has its own x-ms-request-id")
def _v_unique(ctx: CheckContext) -> None:
    ct = ctx.container()
    ids = {ctx.head(ct).header("x-ms-request-id") for _ in range(3)}
    ctx.expect("distinct ids", 3, len(ids))


def _version_case(version: str) -> Callable[[CheckContext], None]:
    def run(ctx: CheckContext) -> None:
        ct = ctx.container()
        resp = ctx.http.request(
            "PUT",
            ct,
            "v",
            body=b"x",
            headers={"x-ms-blob-type": "BlockBlob", "x-ms-version": version},
        )
        ctx.expect_status(resp, 201)
        ctx.expect_status(
            ctx.http.request("GET", ct, "v", headers={"x-ms-version": version}), 200, "read back"
        )

    return run


register_cases(
    "versioning.accepts",
    VERSIONING,
    [
        (
            "2025-07-05",
            "AzCopy 10.32's default version 2025-07-05 is accepted",
            _version_case("2025-07-05"),
        ),
        ("2026-02-06", "a newer version 2026-02-06 is accepted", _version_case("2026-02-06")),
        ("2021-08-06", "an older SDK version 2021-08-06 is accepted", _version_case("2021-08-06")),
        ("2020-04-08", "version 2020-04-08 is accepted", _version_case("2020-04-08")),
    ],
)


@check("versioning.keep-alive", VERSIONING, "HTTP/1.1 keep-alive: the connection stays open")
def _v_keepalive(ctx: CheckContext) -> None:
    ct = ctx.container()
    resp = ctx.head(ct)
    ctx.expect("Connection", False, (resp.header("connection") or "").lower() == "close")


# ---- Tolerance of unknown input -----------------------------------------------------------------


@check("tolerance.unknown-query", TOLERANCE, "an unknown query parameter is ignored")
def _t_query(ctx: CheckContext) -> None:
    ct = ctx.container()
    ctx.put_blob(ct, "b", b"x")
    resp = ctx.http.request("GET", ct, "b", query={"lab-unknown": "1"})
    ctx.expect("status / body", (200, b"x"), (resp.status, resp.body))


def _put_blob_with(header: str, value: str) -> Callable[[CheckContext], None]:
    """Put Blob with one extra header the service must accept -> 201."""

    def run(ctx: CheckContext) -> None:
        ct = ctx.container()
        headers = {"x-ms-blob-type": "BlockBlob", header: value}
        ctx.expect_status(ctx.http.request("PUT", ct, "b", body=b"x", headers=headers), 201)

    return run


register_cases(
    "tolerance",
    TOLERANCE,
    [
        (
            "unknown-header",
            "an unknown x-ms- header is ignored",
            _put_blob_with("x-ms-lab-future-feature", "on"),
        ),
        (
            "access-tier",
            "x-ms-access-tier: Hot on Put Blob is accepted",
            _put_blob_with("x-ms-access-tier", "Hot"),
        ),
    ],
)


@check("tolerance.timeout-param", TOLERANCE, "the timeout query parameter is accepted")
def _t_timeout(ctx: CheckContext) -> None:
    ct = ctx.container()
    resp = ctx.http.request(
        "GET", ct, query={"restype": "container", "comp": "list", "timeout": "30"}
    )
    ctx.expect_status(resp, 200)


# ---- Limits --------------------------------------------------------------------------------------


def _declared_body(
    ctx: CheckContext, query: dict[str, str], length: int, extra: dict[str, str]
) -> tuple[int | None, str | None]:
    """Send only the headers of a request declaring ``length`` body bytes; the server must
    refuse from the headers alone. Returns (status, x-ms-error-code) or (None, reason)."""
    ct = ctx.container()
    head = ctx.http.prepare(
        "PUT", ct, "big", query=query, headers=extra, content_length=length
    ).head()
    with ctx.http.open_socket(timeout_s=3) as sock:
        sock.sendall(head)
        try:
            data = sock.recv(65536)
        except TimeoutError:
            return None, "no response within 3 s (server waits for the body)"
    line, _, rest = data.partition(b"\r\n")
    code = None
    for hline in rest.split(b"\r\n"):
        if hline.lower().startswith(b"x-ms-error-code:"):
            code = hline.split(b":", 1)[1].strip().decode()
    return int(line.split()[1]), code


@check(
    "limits.block-size",
    LIMITS,
    "Put Block declaring 4,000 MiB + 1 byte -> 413 RequestBodyTooLarge before the body",
)
def _l_block(ctx: CheckContext) -> None:
    got = _declared_body(ctx, {"comp": "block", "blockid": block_id(1)}, 4000 * MIB + 1, {})
    ctx.expect("status / code", (413, "RequestBodyTooLarge"), got)


@check(
    "limits.put-blob-size",
    LIMITS,
    "Put Blob declaring 5,000 MiB + 1 byte -> 413 RequestBodyTooLarge before the body",
)
def _l_blob(ctx: CheckContext) -> None:
    got = _declared_body(ctx, {}, 5000 * MIB + 1, {"x-ms-blob-type": "BlockBlob"})
    ctx.expect("status / code", (413, "RequestBodyTooLarge"), got)


@check("limits.metadata-size", LIMITS, "metadata over 8 KiB -> 400")
def _l_meta(ctx: CheckContext) -> None:
    ct = ctx.container()
    headers = {"x-ms-blob-type": "BlockBlob"}
    headers.update({f"x-ms-meta-k{i}": "v" * 1000 for i in range(9)})
    ctx.expect_status(ctx.http.request("PUT", ct, "b", body=b"x", headers=headers), 400)


@check("limits.metadata-at-limit", LIMITS, "metadata just under 8 KiB is accepted")
def _l_meta_ok(ctx: CheckContext) -> None:
    ct = ctx.container()
    headers = {"x-ms-blob-type": "BlockBlob"}
    headers.update({f"x-ms-meta-k{i}": "v" * 1000 for i in range(8)})
    ctx.expect_status(ctx.http.request("PUT", ct, "b", body=b"x", headers=headers), 201)


@check("limits.block-id-64-bytes", LIMITS, "a 64-byte block ID (before base64) is accepted")
def _l_id64(ctx: CheckContext) -> None:
    ct = ctx.container()
    ctx.expect_status(ctx.put_block(ct, "b", block_id(1, width=64), b"x"), 201)


# ---- Throttling ------------------------------------------------------------------------------


@check(
    "throttle.server-busy",
    THROTTLE,
    "over the in-flight limit -> 503 ServerBusy with Retry-After and x-ms-error-code",
    needs=("throttle",),
)
def _throttle(ctx: CheckContext) -> None:
    limit = int(ctx.capabilities["throttle"])
    ct = ctx.container()
    held: list[socket.socket] = []
    try:
        # Hold `limit` Put Block requests open: headers sent, body still owed.
        for n in range(limit):
            query = {"comp": "block", "blockid": block_id(n)}
            req = ctx.http.prepare("PUT", ct, "held", query=query, content_length=MIB)
            sock = ctx.http.open_socket(timeout_s=5)
            sock.sendall(req.head() + b"x" * 16)
            held.append(sock)
        time.sleep(0.2)  # let the server parse the held requests' headers
        ctx.http.close()
        resp = ctx.head(ct)
        ctx.expect_error(resp, 503, "ServerBusy")
        retry = ctx.expect_header(resp, "retry-after")
        ctx.expect_true("Retry-After seconds", retry.isdigit(), "integer seconds", retry)
    finally:
        for sock in held:
            sock.close()
    ctx.http.close()
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and ctx.head(ct).status == 503:
        time.sleep(0.05)
    ctx.expect_status(ctx.head(ct), 200, "after the held requests end")
