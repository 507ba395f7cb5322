"""The compatibility contract of one tool version: the REST operations it calls, with shapes.

Calls are reduced to their shape: method, path shape (``/{container}/{blob}``), restype/comp,
the sorted names of the query parameters and of the x-ms-* and standard headers it sends, the
x-ms-version values and a few enum-like header values (x-ms-blob-type, ...). Values that vary
per run (names, dates, signatures, lengths) are dropped, so two runs of one tool version give
the same contract and a new release's changes show up as drift.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import yaml

from harness.contract.proxy import Call

STANDARD_HEADERS = {
    "authorization",
    "cache-control",
    "content-disposition",
    "content-encoding",
    "content-language",
    "content-length",
    "content-md5",
    "content-type",
    "date",
    "if-match",
    "if-modified-since",
    "if-none-match",
    "if-range",
    "if-unmodified-since",
    "range",
}
# Headers whose values are part of the contract (enums), besides x-ms-version.
ENUM_HEADERS = {
    "x-ms-blob-type",
    "x-ms-access-tier",
    "x-ms-requires-sync",
    "x-ms-delete-snapshots",
    "x-ms-range-get-content-md5",
    "x-ms-copy-source-tag-option",
}
# Query parameters whose values are part of the contract.
ENUM_PARAMS = {"restype", "comp", "blocklisttype", "include"}
# SAS fields: a credential, not an API shape.
SAS_PARAMS = {
    "sv",
    "ss",
    "srt",
    "sp",
    "se",
    "st",
    "spr",
    "sig",
    "sr",
    "sip",
    "skoid",
    "sktid",
    "skt",
    "ske",
    "sks",
    "skv",
    "rscc",
    "rscd",
    "rsce",
    "rscl",
    "rsct",
    "ses",
    "sdd",
}


# Token service calls (``Call.service == "identity"``): the headers and query values that are
# their shape. Bodies (grant_type, scope) are not recorded.
IDENTITY_HEADERS = {"metadata", "x-identity-header", "secret", "x-client-sku", "x-client-os"}
IDENTITY_ENUM_PARAMS = {"api-version", "resource"}


def identity_operation(method: str, raw_path: str, headers: set[str]) -> tuple[str, str]:
    """(operation, path shape) of a call to a token service, named as Entra ID and the managed
    identity endpoints document them; the tenant segment becomes ``{tenant}``."""
    segments = raw_path.strip("/").split("/")
    shape = "/" + "/".join(["{tenant}", *segments[1:]]) if segments[0] else "/"
    path = raw_path.rstrip("/")
    if path.endswith("/.well-known/openid-configuration"):
        return ("OIDC Discovery v2.0" if "/v2.0/" in path else "OIDC Discovery v1"), shape
    if path.endswith("/discovery/v2.0/keys") or path.endswith("/discovery/keys"):
        return "JWKS", shape
    if path.endswith("/discovery/instance"):
        return "Instance Discovery", shape
    if path.endswith("/oauth2/v2.0/token"):
        return "Token: client credentials v2.0", shape
    if path.endswith("/metadata/identity/oauth2/token") or "metadata" in headers:
        return "Token: managed identity (IMDS)", raw_path
    if "x-identity-header" in headers:
        return "Token: managed identity (App Service)", raw_path
    if path.endswith("/oauth2/token"):
        return "Token: client credentials v1", shape
    # MSI_ENDPOINT (Cloud Shell / legacy App Service): any path the variable names
    return "Token: managed identity (MSI_ENDPOINT)", raw_path


def _is_ip(host: str) -> bool:
    name = host.rsplit(":", 1)[0].strip("[]")
    try:
        ipaddress.ip_address(name)
        return True
    except ValueError:
        return name == "localhost"


def path_shape(raw_path: str, host: str, account: str | None = None) -> str:
    """``/devstoreaccount1/ct/a%2Fb`` → ``/{container}/{blob}`` (path or virtual-host style)."""
    segments = [unquote(s) for s in raw_path.split("/")[1:]]
    if segments and segments[-1] == "" and len(segments) == 1:
        segments = []
    if segments and (_is_ip(host) or (account and segments[0] == account)):
        segments = segments[1:]  # path style: the account is the first segment
    if not segments or segments == [""]:
        return "/"
    if len(segments) == 1 or (len(segments) == 2 and segments[1] == ""):
        return "/{container}"
    return "/{container}/{blob}"


def operation_name(method: str, shape: str, restype: str, comp: str, headers: set[str]) -> str:
    """The Azure operation a call is, as named in the REST reference."""
    key = (method, shape, restype, comp)
    table = {
        ("GET", "/", "", "list"): "List Containers",
        ("GET", "/", "account", "properties"): "Get Account Information",
        ("HEAD", "/", "account", "properties"): "Get Account Information",
        ("GET", "/", "service", "properties"): "Get Service Properties",
        ("PUT", "/", "service", "properties"): "Set Service Properties",
        ("GET", "/", "service", "userdelegationkey"): "Get User Delegation Key",
        ("POST", "/", "service", "userdelegationkey"): "Get User Delegation Key",
        ("PUT", "/{container}", "container", ""): "Create Container",
        ("DELETE", "/{container}", "container", ""): "Delete Container",
        ("GET", "/{container}", "container", ""): "Get Container Properties",
        ("HEAD", "/{container}", "container", ""): "Get Container Properties",
        ("GET", "/{container}", "container", "metadata"): "Get Container Metadata",
        ("HEAD", "/{container}", "container", "metadata"): "Get Container Metadata",
        ("PUT", "/{container}", "container", "metadata"): "Set Container Metadata",
        ("GET", "/{container}", "container", "list"): "List Blobs",
        ("GET", "/{container}/{blob}", "", ""): "Get Blob",
        ("HEAD", "/{container}/{blob}", "", ""): "Get Blob Properties",
        ("DELETE", "/{container}/{blob}", "", ""): "Delete Blob",
        ("PUT", "/{container}/{blob}", "", "properties"): "Set Blob Properties",
        ("PUT", "/{container}/{blob}", "", "metadata"): "Set Blob Metadata",
        ("GET", "/{container}/{blob}", "", "metadata"): "Get Blob Metadata",
        ("HEAD", "/{container}/{blob}", "", "metadata"): "Get Blob Metadata",
        ("PUT", "/{container}/{blob}", "", "blocklist"): "Put Block List",
        ("GET", "/{container}/{blob}", "", "blocklist"): "Get Block List",
        ("GET", "/{container}/{blob}", "", "tags"): "Get Blob Tags",
        ("PUT", "/{container}/{blob}", "", "tags"): "Set Blob Tags",
        ("PUT", "/{container}/{blob}", "", "tier"): "Set Blob Tier",
    }
    if key in table:
        return table[key]
    if (restype, comp) == ("account", "properties"):
        # Azure answers Get Account Information on any resource URL; AzCopy asks on the
        # container or blob URL it is about to write.
        return "Get Account Information"
    if key == ("PUT", "/{container}/{blob}", "", "block"):
        return "Put Block From URL" if "x-ms-copy-source" in headers else "Put Block"
    if key == ("PUT", "/{container}/{blob}", "", ""):
        if "x-ms-copy-source" in headers:
            return "Put Blob From URL" if "x-ms-blob-type" in headers else "Copy Blob"
        return "Put Blob"
    return (
        f"{method} {shape}"
        + (f" restype={restype}" if restype else "")
        + (f" comp={comp}" if comp else "")
    )


@dataclass
class Operation:
    """One distinct operation shape in a contract."""

    operation: str
    method: str
    path: str
    restype: str = ""
    comp: str = ""
    count: int = 0
    used_in: list[str] = field(default_factory=list)
    headers: list[str] = field(default_factory=list)
    params: list[str] = field(default_factory=list)
    values: dict[str, list[str]] = field(default_factory=dict)  # x-ms-version, enums
    statuses: list[int] = field(default_factory=list)
    # scenario -> names of its steps that made this call
    scenarios: dict[str, list[str]] = field(default_factory=dict)

    @property
    def key(self) -> str:
        return self.operation

    def to_dict(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if v not in ("", [], {})}


def _add(items: list, values: Iterable) -> None:
    for v in values:
        if v not in items:
            items.append(v)
    items.sort()


def summarize_calls(
    calls: Iterable[Call], account: str | None = None, scenario: str = ""
) -> list[Operation]:
    """Calls → operations, dedup'd by operation name, sorted by first use. With ``scenario``,
    each operation also names the steps of that scenario that made it."""
    ops: dict[str, Operation] = {}
    for call in calls:
        query = dict(call.query)
        restype, comp = query.get("restype", ""), query.get("comp", "")
        identity = call.service == "identity"
        known = STANDARD_HEADERS | IDENTITY_HEADERS if identity else STANDARD_HEADERS
        names = {h for h in call.headers if h.startswith("x-ms-") or h in known}
        if identity:
            name, shape = identity_operation(call.method, call.raw_path, names)
        else:
            shape = path_shape(call.raw_path, call.host, account)
            name = operation_name(call.method, shape, restype, comp, names)
        op = ops.setdefault(name, Operation(name, call.method, shape, restype, comp))
        op.count += 1
        if call.phase and call.phase not in op.used_in:
            op.used_in.append(call.phase)
        if scenario:
            steps = op.scenarios.setdefault(scenario, [])
            if (call.step or call.phase) and (call.step or call.phase) not in steps:
                steps.append(call.step or call.phase)
        _add(op.headers, names)
        _add(op.params, {k for k in query if k.lower() not in SAS_PARAMS})
        if "sig" in query:
            _add(op.params, ["<sas>"])
        enums = {h: call.headers[h] for h in names if h == "x-ms-version" or h in ENUM_HEADERS}
        enum_params = IDENTITY_ENUM_PARAMS if identity else ENUM_PARAMS - {"restype", "comp"}
        enums.update({f"?{k}": v for k, v in query.items() if k in enum_params})
        for k, v in enums.items():
            _add(op.values.setdefault(k, []), [v])
        _add(op.statuses, [call.status])
    return list(ops.values())


def merge_operations(groups: Iterable[Iterable[Operation]]) -> list[Operation]:
    """Operations of several recordings of one tool version → one list: counts add up, header,
    parameter, value and status sets unite, and each keeps the scenarios and steps it was used
    in. Order is by first use (first recording first)."""
    out: dict[str, Operation] = {}
    for ops in groups:
        for op in ops:
            m = out.get(op.operation)
            if m is None:
                m = out[op.operation] = Operation(
                    op.operation, op.method, op.path, op.restype, op.comp
                )
            m.count += op.count
            m.used_in += [u for u in op.used_in if u not in m.used_in]
            _add(m.headers, op.headers)
            _add(m.params, op.params)
            for k, v in op.values.items():
                _add(m.values.setdefault(k, []), v)
            _add(m.statuses, op.statuses)
            for sc, steps in op.scenarios.items():
                have = m.scenarios.setdefault(sc, [])
                have += [s for s in steps if s not in have]
    return list(out.values())


@dataclass
class Contract:
    tool: str
    version: str
    operations: list[Operation]
    scenario: str = ""  # the scenarios it was locked from, comma-separated
    recorded_at: str = ""
    target: str = ""

    @property
    def slug(self) -> str:
        return f"{self.tool}-{self.version}"

    @property
    def scenarios(self) -> list[str]:
        """The scenarios this contract was recorded from."""
        return [s.strip() for s in self.scenario.split(",") if s.strip()]

    def by_name(self) -> dict[str, Operation]:
        return {op.operation: op for op in self.operations}

    def to_dict(self) -> dict[str, Any]:
        return {
            "tool": self.tool,
            "version": self.version,
            "scenario": self.scenario,
            "target": self.target,
            "recorded_at": self.recorded_at,
            "operations": [op.to_dict() for op in self.operations],
        }

    def save(self, directory: Path) -> Path:
        directory.mkdir(parents=True, exist_ok=True)
        path = directory / f"{self.slug}.yaml"
        path.write_text(
            yaml.safe_dump(self.to_dict(), sort_keys=False, allow_unicode=True, width=100),
            encoding="utf-8",
        )
        return path

    @classmethod
    def load(cls, path: Path) -> Contract:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
        ops = [Operation(**op) for op in data.get("operations", [])]
        return cls(
            data["tool"],
            str(data["version"]),
            ops,
            data.get("scenario", ""),
            data.get("recorded_at", ""),
            data.get("target", ""),
        )


# ---- drift ------------------------------------------------------------------------------------


@dataclass
class Drift:
    kind: str  # new-operation, vanished-operation, new-header, vanished-header, new-param,
    # vanished-param, new-value, vanished-value
    operation: str
    detail: str = ""

    def line(self) -> str:
        return f"{self.kind}: {self.operation}" + (f" {self.detail}" if self.detail else "")


def merge(contracts: list[Contract]) -> Contract:
    """Recordings of one tool version from several scenarios → one contract."""
    first = contracts[0]
    if any(c.slug != first.slug for c in contracts):
        raise ValueError(f"cannot merge contracts of {sorted({c.slug for c in contracts})}")
    scenarios: list[str] = []
    for c in contracts:
        scenarios += [s for s in c.scenarios if s not in scenarios]
    return Contract(
        first.tool,
        first.version,
        merge_operations(c.operations for c in contracts),
        ", ".join(scenarios),
        max(c.recorded_at for c in contracts),
        ", ".join(dict.fromkeys(c.target for c in contracts if c.target)),
    )


def diff(
    locked: Contract, observed: Contract, *, partial: bool = False, scenario: str | None = None
) -> list[Drift]:
    """What changed from the locked contract to the observed one. ``partial`` (a run that
    exercised only some of the tool's usage) does not report vanished operations, nor vanished
    headers and parameters: a run without ``--put-md5`` or without a prefix simply does not
    send them. With ``scenario`` as well (a run of one of the scenarios the contract was locked
    from), the operations the contract records as used in that scenario are still expected:
    one that is gone is reported as vanished."""
    out: list[Drift] = []
    old, new = locked.by_name(), observed.by_name()
    for name in new.keys() - old.keys():
        out.append(Drift("new-operation", name, f"({new[name].method} {new[name].path})"))
    for name in old.keys() - new.keys():
        if not partial or (scenario and scenario in old[name].scenarios):
            out.append(Drift("vanished-operation", name))
    for name in sorted(old.keys() & new.keys()):
        a, b = old[name], new[name]
        for label, before, after in (
            ("header", a.headers, b.headers),
            ("param", a.params, b.params),
        ):
            out += [Drift(f"new-{label}", name, h) for h in sorted(set(after) - set(before))]
            if not partial:
                gone = sorted(set(before) - set(after))
                out += [Drift(f"vanished-{label}", name, h) for h in gone]
        for key in sorted(set(a.values) | set(b.values)):
            va, vb = set(a.values.get(key, [])), set(b.values.get(key, []))
            out += [Drift("new-value", name, f"{key}={v}") for v in sorted(vb - va)]
            if key == "x-ms-version":
                out += [Drift("vanished-value", name, f"{key}={v}") for v in sorted(va - vb)]
    return sorted(out, key=lambda d: (d.operation, d.kind, d.detail))
