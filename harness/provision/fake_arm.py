"""A fake of the Azure Resource Manager REST API on loopback, for testing provisioning.

It serves https with a lab-CA certificate (the management SDK's bearer policy refuses http),
keeps resources in memory with ARM's shapes (``id``, ``name``, ``type``, ``location``, ``tags``,
``properties.provisioningState``), answers long-running PUTs with ``Azure-AsyncOperation`` and
deletes with ``Location`` polling, records every call, and injects the failures a real
subscription produces: a quota refusal, a 409 conflict, a transient 503.

What it does not model: real validation of request bodies, quotas, capacity, images, SSH.
"""

from __future__ import annotations

import asyncio
import json
import threading
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiohttp import web

from harness.labca import LabCA, default_ca_dir, server_ssl_context

# Resource types whose PUT is a long-running operation in ARM (the others answer at once).
LRO_TYPES = {
    "microsoft.network/virtualnetworks",
    "microsoft.network/networksecuritygroups",
    "microsoft.network/networkinterfaces",
    "microsoft.network/publicipaddresses",
    "microsoft.compute/virtualmachines",
}


@dataclass
class Call:
    method: str
    path: str  # lower-case path without the query, e.g. /subscriptions/s/resourcegroups/rg
    api_version: str
    status: int

    def short(self) -> str:
        """``PUT virtualMachines/srv-0``-style: the method and the last type/name pair."""
        parts = self.path.strip("/").split("/")
        tail = "/".join(parts[-2:]) if len(parts) >= 2 else self.path
        return f"{self.method} {tail}"


@dataclass
class Failure:
    """Answer the next ``times`` requests of ``method`` whose path ends with ``suffix``."""

    method: str
    suffix: str
    status: int
    code: str
    message: str
    times: int = 1
    headers: dict[str, str] = field(default_factory=dict)


def quota_failure(vm_name: str, family: str = "standardLASv5Family") -> Failure:
    """ARM's refusal of a VM over the regional family quota (as the compute RP words it)."""
    return Failure(
        "PUT",
        f"/virtualmachines/{vm_name.lower()}",
        409,
        "OperationNotAllowed",
        f"Operation could not be completed as it results in exceeding approved {family} "
        "Cores quota. Additional details - Deployment Model: Resource Manager, "
        "Location: eastus, Current Limit: 0, Current Usage: 0, Additional Required: 16, "
        "(Minimum) New Limit Required: 16. QuotaExceeded",
    )


class FakeArm:
    """The in-memory ARM: resources by lower-case id, the call log and pending failures."""

    def __init__(self) -> None:
        self.resources: dict[str, dict[str, Any]] = {}
        self.calls: list[Call] = []
        self.failures: list[Failure] = []
        self.operations: dict[str, int] = {}  # operation id -> polls left before done
        self.polls_before_done = 1
        self.base_url = ""
        self._on_done: dict[str, str] = {}  # operation id -> the resource it creates

    # ------------------------------------------------------------------ HTTP
    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self.handle)
        return app

    async def handle(self, request: web.Request) -> web.StreamResponse:
        path = request.path.rstrip("/").lower()
        response = self._inject(request.method, path) or await self._dispatch(request, path)
        self.calls.append(
            Call(request.method, path, request.query.get("api-version", ""), response.status)
        )
        return response

    def _inject(self, method: str, path: str) -> web.Response | None:
        for failure in self.failures:
            if failure.times > 0 and failure.method == method and path.endswith(failure.suffix):
                failure.times -= 1
                return _error(failure.status, failure.code, failure.message, failure.headers)
        return None

    async def _dispatch(self, request: web.Request, path: str) -> web.Response:
        if path.startswith("/operations/"):
            return self._poll(path.rsplit("/", 1)[1], request.query.get("kind", "async"))
        if request.method == "GET":
            found = self.resources.get(path)
            if found is None:
                return _error(404, "ResourceNotFound", f"The resource '{path}' was not found.")
            return web.json_response(found)
        if request.method == "PUT":
            body = await request.json() if request.can_read_body else {}
            return self._put(path, body)
        if request.method == "DELETE":
            return self._delete(path)
        return _error(405, "MethodNotAllowed", f"{request.method} is not supported here")

    # ------------------------------------------------------------------ resources
    def _put(self, path: str, body: dict[str, Any]) -> web.Response:
        parts = path.strip("/").split("/")
        rtype = _resource_type(parts)
        created = path not in self.resources
        resource = {
            "id": _arm_id(path, self.resources.get(path)),
            "name": parts[-1],
            "type": rtype,
            "location": body.get("location", ""),
            "tags": body.get("tags") or {},
            "properties": dict(body.get("properties") or {}),
        }
        for key in ("zones", "sku"):
            if key in body:
                resource[key] = body[key]
        self._fill(path, rtype, resource)
        lro = rtype.lower() in LRO_TYPES
        resource["properties"]["provisioningState"] = "Updating" if lro else "Succeeded"
        self.resources[path] = resource
        if not lro:
            return web.json_response(resource, status=201 if created else 200)
        op = uuid.uuid4().hex
        self.operations[op] = self.polls_before_done
        # The final GET (after the operation succeeds) sees the resource as Succeeded.
        self._on_done[op] = path
        headers = {"Azure-AsyncOperation": f"{self.base_url}/operations/{op}?kind=async"}
        return web.json_response(resource, status=201 if created else 200, headers=headers)

    def _fill(self, path: str, rtype: str, resource: dict[str, Any]) -> None:
        """Properties ARM computes: ids of child subnets, private and public addresses, vmId."""
        props = resource["properties"]
        kind = rtype.lower()
        if kind == "microsoft.network/virtualnetworks":
            for subnet in props.get("subnets", []):
                subnet["id"] = f"{resource['id']}/subnets/{subnet['name']}"
                subnet.setdefault("properties", {})["provisioningState"] = "Succeeded"
        elif kind == "microsoft.network/networkinterfaces":
            index = sum(1 for p in self.resources if "/networkinterfaces/" in p) + 4
            if path in self.resources:  # a rerun keeps its address
                old = self.resources[path]["properties"]["ipConfigurations"][0]
                index = int(old["properties"]["privateIPAddress"].rsplit(".", 1)[1])
            for config in props.get("ipConfigurations", []):
                config["properties"]["privateIPAddress"] = f"10.20.0.{index}"
                config["properties"]["privateIPAllocationMethod"] = "Dynamic"
        elif kind == "microsoft.network/publicipaddresses":
            old = self.resources.get(path, {}).get("properties", {})
            count = sum(1 for p in self.resources if "/publicipaddresses/" in p)
            props["ipAddress"] = old.get("ipAddress") or f"203.0.113.{count + 10}"
        elif kind == "microsoft.compute/virtualmachines":
            old = self.resources.get(path, {}).get("properties", {})
            props["vmId"] = old.get("vmId") or str(uuid.uuid4())

    def _poll(self, op: str, kind: str) -> web.Response:
        if op not in self.operations:
            return _error(404, "OperationNotFound", f"no operation {op}")
        if self.operations[op] > 0:
            self.operations[op] -= 1
            if kind == "location":
                return web.Response(status=202)
            return web.json_response({"status": "InProgress"})
        path = self._on_done.get(op)
        if path in self.resources:
            self.resources[path]["properties"]["provisioningState"] = "Succeeded"
        if kind == "location":
            return web.Response(status=200)
        return web.json_response({"status": "Succeeded"})

    def _delete(self, path: str) -> web.Response:
        if path not in self.resources:
            return web.Response(status=204)
        # Deleting a group deletes everything in it, as ARM does.
        for key in [k for k in self.resources if k == path or k.startswith(path + "/")]:
            del self.resources[key]
        op = uuid.uuid4().hex
        self.operations[op] = self.polls_before_done
        location = f"{self.base_url}/operations/{op}?kind=location"
        return web.Response(status=202, headers={"Location": location, "Retry-After": "0"})

    def paths(self, kind: str) -> list[str]:
        """Resource paths of a type segment, e.g. ``virtualmachines``."""
        return sorted(p for p in self.resources if f"/{kind}/" in p or p.endswith(f"/{kind}"))


def _resource_type(parts: list[str]) -> str:
    if "providers" in parts:
        i = parts.index("providers")
        namespace, segments = parts[i + 1], parts[i + 2 :]
        types = segments[0::2]
        return f"{_CANON.get(namespace, namespace)}/" + "/".join(_CANON.get(t, t) for t in types)
    return "Microsoft.Resources/resourceGroups"


# ARM answers with canonical casing; paths arrive (and are stored) lower-case.
_CANON = {
    "microsoft.network": "Microsoft.Network",
    "microsoft.compute": "Microsoft.Compute",
    "virtualnetworks": "virtualNetworks",
    "networksecuritygroups": "networkSecurityGroups",
    "networkinterfaces": "networkInterfaces",
    "publicipaddresses": "publicIPAddresses",
    "virtualmachines": "virtualMachines",
    "proximityplacementgroups": "proximityPlacementGroups",
}


def _arm_id(path: str, existing: dict[str, Any] | None) -> str:
    if existing:
        return existing["id"]
    out = []
    for segment in path.strip("/").split("/"):
        out.append(
            {"resourcegroups": "resourceGroups", "subscriptions": "subscriptions"}.get(
                segment, _CANON.get(segment, segment)
            )
        )
    return "/" + "/".join(out)


def _error(
    status: int, code: str, message: str, headers: dict[str, str] | None = None
) -> web.Response:
    body = {"error": {"code": code, "message": message}}
    return web.Response(
        status=status,
        text=json.dumps(body),
        content_type="application/json",
        headers={"x-ms-failure-cause": "gateway", **(headers or {})},
    )


class FakeArmServer:
    """The fake on ``https://127.0.0.1:<free port>`` in a thread; ``ca_bundle`` to trust it."""

    def __init__(self, ca_dir: Path | None = None) -> None:
        self.arm = FakeArm()
        self.ca = LabCA.load_or_create(ca_dir or default_ca_dir())
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._runner: web.AppRunner | None = None
        self.url = ""

    @property
    def ca_bundle(self) -> Path:
        return self.ca.bundle_path

    def __enter__(self) -> FakeArmServer:
        cert, key = self.ca.issue(["127.0.0.1"])
        self._thread.start()

        async def start() -> int:
            self._runner = web.AppRunner(self.arm.app(), access_log=None)
            await self._runner.setup()
            site = web.TCPSite(
                self._runner, "127.0.0.1", 0, ssl_context=server_ssl_context(cert, key)
            )
            await site.start()
            return site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]

        port = asyncio.run_coroutine_threadsafe(start(), self._loop).result(timeout=30)
        self.url = f"https://127.0.0.1:{port}"
        self.arm.base_url = self.url
        return self

    def __exit__(self, *exc: object) -> None:
        if self._runner is not None:
            asyncio.run_coroutine_threadsafe(self._runner.cleanup(), self._loop).result(timeout=30)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=30)
        self._loop.close()


def main(argv: list[str] | None = None) -> int:
    """``python -m harness.provision.fake_arm [--env-file FILE]``: the fake in the foreground
    (a CI job's stand-in for Azure) until SIGTERM or Ctrl-C. FILE gets ``HARNESS_ARM_URL``,
    ``HARNESS_ARM_CA`` (its CA bundle, for ``--ca-bundle``), ``HARNESS_ARM_TOKEN`` and
    ``HARNESS_ARM_POLL_S`` lines, ready for ``set -a; . FILE`` or ``$GITHUB_ENV``."""
    import argparse
    import signal

    parser = argparse.ArgumentParser(prog="python -m harness.provision.fake_arm")
    parser.add_argument("--env-file", type=Path, default=None)
    args = parser.parse_args(argv)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    with FakeArmServer() as server:
        lines = [
            f"HARNESS_ARM_URL={server.url}",
            f"HARNESS_ARM_CA={server.ca_bundle}",
            "HARNESS_ARM_TOKEN=fake-arm-token",  # the fake checks no signature
            "HARNESS_ARM_POLL_S=0",
        ]
        print("\n".join(lines), flush=True)
        if args.env_file is not None:
            with args.env_file.open("a") as f:  # appended: $GITHUB_ENV holds other lines
                f.write("\n".join(lines) + "\n")
        try:
            while not stop.wait(1.0):
                pass
        except KeyboardInterrupt:
            pass
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
