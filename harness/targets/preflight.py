"""Preflight: before the first step, each target must answer one authenticated request.

Without it a wrong port or a missing key shows up as every step failing, one timeout after
another (20 steps of 600 s), with the recording proxy's port in the errors. The preflight
connects over TCP, then sends Get Account Information (List Containers if the target does not
implement it) signed as the clients will be, and fails in seconds naming the user's URL, the
HTTP status and ``x-ms-error-code``.
"""

from __future__ import annotations

import http.client
import socket
from dataclasses import asdict, dataclass
from typing import Any
from urllib.parse import urlsplit

from harness.http import BlobRequests, client_ssl_context
from harness.targets.base import Endpoint

PREFLIGHT_TIMEOUT_S = 5.0
# 403s that prove the credentials were accepted but do not cover the probe (a SAS scoped to
# containers or objects, without list permission): the steps may still work, so no failure.
SCOPED_CODES = frozenset(
    {
        "AuthorizationPermissionMismatch",
        "AuthorizationResourceTypeMismatch",
        "AuthorizationServiceMismatch",
    }
)
# (what, query): the first request that answers 2xx proves the endpoint and its credentials.
PROBES = (
    ("Get Account Information", {"restype": "account", "comp": "properties"}),
    ("List Containers", {"comp": "list", "maxresults": "1"}),
)


@dataclass
class PreflightError(Exception):
    target: str
    url: str  # the account URL the user gave
    problem: str  # what failed, in words
    status: int | None = None
    code: str | None = None

    def __str__(self) -> str:
        return f"preflight of target {self.target} at {self.url} failed: {self.problem}"

    def to_dict(self) -> dict[str, Any]:
        return {"ok": False, **asdict(self), "error": str(self)}


def preflight(name: str, endpoint: Endpoint, timeout_s: float = PREFLIGHT_TIMEOUT_S) -> dict:
    """Check ``endpoint`` of target ``name``; a dict for run.json, or PreflightError."""
    url = endpoint.display_url
    parts = urlsplit(endpoint.blob_url)
    https = parts.scheme == "https"
    host, port = parts.hostname or "", parts.port or (443 if https else 80)
    try:
        socket.create_connection((host, port), timeout=timeout_s).close()
    except OSError as exc:
        raise PreflightError(name, url, f"TCP connect to {host}:{port}: {exc}") from None
    requests = BlobRequests(endpoint.blob_url, endpoint.account, endpoint.key, sas=endpoint.sas)
    answers = []
    for what, query in PROBES:
        status, code = _send(name, requests, query, endpoint, timeout_s, host, port)
        if 200 <= status < 300 or (status == 403 and code in SCOPED_CODES):
            return {
                "ok": True,
                "target": name,
                "url": url,
                "request": what,
                "status": status,
                "code": code,
            }
        answers.append((what, status, code))
        if status in (401, 403):  # an authentication answer: the next probe would say the same
            break
    what, status, code = answers[0]
    problem = f"{what} answered {status}" + (f" {code}" if code else " without x-ms-error-code")
    if len(answers) > 1:
        problem += "; " + ", ".join(
            f"{w} answered {s} {c or ''}".strip() for w, s, c in answers[1:]
        )
    if not endpoint.key and not endpoint.sas:
        problem += (
            " (no credentials: set AZURE_STORAGE_CONNECTION_STRING, AZURE_STORAGE_KEY or "
            "AZURE_STORAGE_SAS_TOKEN)"
        )
    raise PreflightError(name, url, problem, status, code)


def _send(
    name: str,
    requests: BlobRequests,
    query: dict[str, str],
    endpoint: Endpoint,
    timeout_s: float,
    host: str,
    port: int,
) -> tuple[int, str | None]:
    prepared = requests.prepare("GET", query=query)
    if requests.scheme == "https":
        conn: http.client.HTTPConnection = http.client.HTTPSConnection(
            host, port, timeout=timeout_s, context=client_ssl_context(endpoint.ca_bundle)
        )
    else:
        conn = http.client.HTTPConnection(host, port, timeout=timeout_s)
    try:
        conn.request("GET", prepared.target, headers=prepared.headers)
        resp = conn.getresponse()
        resp.read()
        return resp.status, resp.getheader("x-ms-error-code")
    except (OSError, http.client.HTTPException) as exc:
        raise PreflightError(
            name, endpoint.display_url, f"GET {prepared.target.split('?')[0]}: {exc}"
        ) from None
    finally:
        conn.close()
