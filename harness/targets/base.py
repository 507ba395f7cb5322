"""Target: where a scenario runs. One interface for the embedded façade, Azurite, a URL, remote hosts."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol


@dataclass
class Endpoint:
    """How a client reaches one Blob account."""

    target: str  # target name: "reference", "azurite", "url", ...
    account: str
    # Account URL in the form clients take: http://127.0.0.1:PORT/ACCOUNT (path style) or
    # https://ACCOUNT.blob.DOMAIN (virtual-host style).
    blob_url: str
    key: str | None = None  # base64 Shared Key, when the account key is known
    sas: str | None = None  # account SAS query string without '?', when one is used
    # Loopback forwarding proxy (http://127.0.0.1:PORT) that routes the virtual-host names of
    # ``virtual_host_url`` to this endpoint, for clients that infer the service from the host name.
    proxy_url: str | None = None
    virtual_host_url: str | None = None
    ca_bundle: Path | None = None  # lab CA when the endpoint speaks TLS
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def connection_string(self) -> str:
        parts = ["DefaultEndpointsProtocol=" + self.blob_url.split(":", 1)[0]]
        parts.append(f"AccountName={self.account}")
        if self.key:
            parts.append(f"AccountKey={self.key}")
        if self.sas:
            parts.append(f"SharedAccessSignature={self.sas}")
        parts.append(f"BlobEndpoint={self.blob_url}")
        return ";".join(parts) + ";"


class Target(Protocol):
    name: str

    def start(self, workdir: Path) -> None:
        """Start (or reach) the target; workdir is private to this run."""

    def endpoint(self) -> Endpoint: ...

    def stop(self) -> None: ...

    def facts(self) -> dict[str, Any]:
        """Version, build, host and configuration facts recorded in run.json."""

    def server_pids(self) -> list[int]:
        """Local server process ids to sample for CPU/RSS (empty for remote targets)."""
