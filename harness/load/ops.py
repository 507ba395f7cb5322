"""Blob REST requests of the load mix, built and signed without any HTTP client.

The locustfile sends what ``RequestBuilder`` returns through Locust's FastHttpUser; the driver
seeds read targets through ``harness.http.BlobHttp``. Both shape and sign requests with
``harness.http.BlobRequests`` (Shared Key, or the plan's SAS).
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field

from harness.http import BlobRequests, block_id, block_list_xml
from harness.load.plan import LOAD_OPERATIONS, LoadPlan

# Set explicitly on every body: an HTTP client that adds its own default after signing would
# break the Shared Key signature (Content-Type is part of the string to sign).
OCTETS = {"Content-Type": "application/octet-stream"}


@dataclass
class Request:
    op: str  # the operation name: Locust's stats entry and the KPI rows use it
    method: str
    target: str  # path and query as sent, relative to the host
    headers: dict[str, str]
    body: bytes = b""
    expect: tuple[int, ...] = (200,)
    blob: str | None = None  # the blob the request addresses, when it addresses one
    block_id: str | None = None  # Put Block: the staged block ID (dropped again if it fails)


@dataclass
class UserState:
    """What one simulated user remembers between requests: its blob being staged, its blobs."""

    name: str  # unique per user across workers: "<worker>-<n>"
    rng: random.Random
    blob_seq: int = 0  # Put Blob names
    stage_seq: int = 0  # the blob that Put Block stages into, until Put Block List commits it
    block_seq: int = 0
    staged: list[str] = field(default_factory=list)
    own_blobs: list[str] = field(default_factory=list)


def seed_blob_names(plan: LoadPlan) -> list[str]:
    return [f"{plan.seed_prefix}obj-{i:05d}" for i in range(plan.seed_objects)]


class RequestBuilder:
    """Builds the signed request for one operation of one user."""

    def __init__(self, plan: LoadPlan, payload_seed: int = 0) -> None:
        self.plan = plan
        self.shaper = BlobRequests(plan.blob_url, plan.account, plan.key, sas=plan.sas)
        rnd = random.Random(payload_seed)
        self.block = rnd.randbytes(plan.block_size)
        self.object = rnd.randbytes(plan.object_size)
        self.seeds = seed_blob_names(plan)

    # ---- signing -------------------------------------------------------------------------
    def request(
        self,
        op: str,
        method: str,
        blob: str | None,
        query: list[tuple[str, str]] | None = None,
        headers: dict[str, str] | None = None,
        body: bytes = b"",
    ) -> Request:
        req = self.shaper.prepare(
            method,
            self.plan.container,
            blob,
            query=query,
            headers=headers,
            content_length=len(body),
        )
        expect = LOAD_OPERATIONS.get(op, (200,))
        return Request(op, method, req.target, req.headers, body, expect, blob)

    # ---- operations ----------------------------------------------------------------------
    def create_container(self) -> Request:
        return self.request("create_container", "PUT", None, [("restype", "container")])

    def put_blob(self, blob: str, body: bytes | None = None) -> Request:
        body = self.object if body is None else body
        hdrs = {"x-ms-blob-type": "BlockBlob", **OCTETS}
        return self.request("put_blob", "PUT", blob, None, hdrs, body)

    def staging_blob(self, st: UserState) -> str:
        return f"{self.plan.prefix}{st.name}/blocks-{st.stage_seq:06d}"

    def put_block(self, st: UserState) -> Request:
        if len(st.staged) >= self.plan.blocks_per_blob:
            # Without a Put Block List in the mix, move on to a fresh blob name so no blob
            # collects more uncommitted blocks than the service allows.
            self.rotate(st)
        bid = block_id(st.block_seq)
        st.block_seq += 1
        st.staged.append(bid)
        q = [("comp", "block"), ("blockid", bid)]
        req = self.request("put_block", "PUT", self.staging_blob(st), q, OCTETS, self.block)
        req.block_id = bid
        return req

    def put_block_list(self, st: UserState) -> Request:
        body = block_list_xml(st.staged)
        blob = self.staging_blob(st)
        hdrs = {"Content-Type": "application/xml"}
        return self.request("put_block_list", "PUT", blob, [("comp", "blocklist")], hdrs, body)

    def rotate(self, st: UserState) -> None:
        st.stage_seq += 1
        st.block_seq = 0
        st.staged.clear()

    def new_blob_name(self, st: UserState) -> str:
        st.blob_seq += 1
        return f"{self.plan.prefix}{st.name}/blob-{st.blob_seq:06d}"

    def get_blob(self, st: UserState) -> Request:
        return self.request("get_blob", "GET", st.rng.choice(self.seeds))

    def get_range(self, st: UserState) -> Request:
        size = self.plan.object_size
        length = max(1, min(self.plan.range_size, size))
        start = st.rng.randrange(0, max(1, size - length + 1))
        rng = {"x-ms-range": f"bytes={start}-{start + length - 1}"}
        return self.request("get_range", "GET", st.rng.choice(self.seeds), None, rng)

    def get_properties(self, st: UserState) -> Request:
        return self.request("get_properties", "HEAD", st.rng.choice(self.seeds))

    def list_blobs(self, st: UserState) -> Request:
        q = [
            ("restype", "container"),
            ("comp", "list"),
            ("prefix", self.plan.seed_prefix),
            ("maxresults", "100"),
        ]
        return self.request("list_blobs", "GET", None, q)

    def delete_blob(self, blob: str) -> Request:
        return self.request("delete_blob", "DELETE", blob)


def bytes_moved(req: Request, response_length: int) -> int:
    """Payload bytes one successful request moved (request body up, response body down)."""
    if req.op in ("put_block", "put_blob"):
        return len(req.body)
    if req.op in ("get_blob", "get_range"):
        return response_length
    return 0
