"""Blob REST requests of the load mix, built and signed without any HTTP client.

The locustfile sends what ``build`` returns through Locust's FastHttpUser; the driver seeds read
targets with the same builder through ``harness.http.BlobHttp``. Every request is signed by the
project's one signing module (Shared Key), or carries the plan's SAS.
"""

from __future__ import annotations

import base64
import random
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from email.utils import formatdate
from urllib.parse import urlsplit

from harness.http import API_VERSION, encode_query, quote_name
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


def block_id(n: int) -> str:
    # Base64 of a fixed-width string: every block ID of a blob has the same length, as required.
    return base64.b64encode(f"block-{n:010d}".encode()).decode()


def block_list_xml(ids: list[str]) -> bytes:
    root = ET.Element("BlockList")
    for i in ids:
        ET.SubElement(root, "Latest").text = i
    return ET.tostring(root, encoding="utf-8", xml_declaration=True)


class RequestBuilder:
    """Builds the signed request for one operation of one user."""

    def __init__(self, plan: LoadPlan, payload_seed: int = 0) -> None:
        self.plan = plan
        parts = urlsplit(plan.blob_url)
        self.origin = f"{parts.scheme}://{parts.netloc}"
        self.base_path = parts.path.rstrip("/")
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
        path = f"{self.base_path}/{self.plan.container}"
        if blob is not None:
            path += "/" + quote_name(blob)
        qs = encode_query(query)
        if self.plan.sas:
            qs = f"{qs}&{self.plan.sas}" if qs else self.plan.sas
        target = path + (f"?{qs}" if qs else "")
        hdrs = {"x-ms-version": API_VERSION, "x-ms-date": formatdate(usegmt=True)}
        if body or method in ("PUT", "POST"):
            hdrs["Content-Length"] = str(len(body))
        hdrs.update(headers or {})
        if self.plan.key and not self.plan.sas:
            from reference_server.auth.shared_key import sign_request

            hdrs = dict(
                sign_request(method, self.origin + target, hdrs, self.plan.account, self.plan.key)
            )
        return Request(op, method, target, hdrs, body, LOAD_OPERATIONS.get(op, (200,)), blob)

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
