"""Any Blob endpoint reached by URL, with credentials from the environment.

Credentials, first found wins: AZURE_STORAGE_CONNECTION_STRING (AccountName, AccountKey,
SharedAccessSignature, BlobEndpoint), then AZURE_STORAGE_KEY (Shared Key) or
AZURE_STORAGE_SAS_TOKEN (SAS query string). AZURE_STORAGE_ACCOUNT names the account when the
URL does not (virtual-host URLs carry it in the host name, path-style URLs in the first segment).
"""

from __future__ import annotations

import ipaddress
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from harness.targets.base import Endpoint


def parse_connection_string(text: str) -> dict[str, str]:
    """`Key=Value;...` -> dict (values may contain '=', as keys and SAS tokens do)."""
    parts = (p.split("=", 1) for p in text.strip().split(";") if "=" in p)
    return {k.strip(): v.strip() for k, v in parts}


def _account_from_url(url: str) -> str | None:
    parts = urlsplit(url)
    host = parts.hostname or ""
    try:
        ipaddress.ip_address(host)
        is_ip = True
    except ValueError:
        is_ip = host == "localhost"
    if is_ip:
        segment = parts.path.strip("/").split("/", 1)[0]
        return segment or None
    return host.split(".", 1)[0] if ".blob." in host else None


class UrlTarget:
    name = "url"

    def __init__(self, endpoint: str | None, env: Mapping[str, str] | None = None) -> None:
        env = os.environ if env is None else env
        conn = parse_connection_string(env.get("AZURE_STORAGE_CONNECTION_STRING", ""))
        url = endpoint or conn.get("BlobEndpoint")
        if not url:
            raise ValueError(
                "target 'url' needs --endpoint URL (or BlobEndpoint in "
                "AZURE_STORAGE_CONNECTION_STRING)"
            )
        self.url = url.rstrip("/")
        account = conn.get("AccountName") or env.get("AZURE_STORAGE_ACCOUNT")
        account = account or _account_from_url(self.url)
        if not account:
            raise ValueError(f"cannot tell the account of {self.url}: set AZURE_STORAGE_ACCOUNT")
        # Path-style URLs name the account in the path; clients want the account URL.
        parts = urlsplit(self.url)
        if _account_from_url(self.url) != account or not parts.path.strip("/"):
            host = parts.hostname or ""
            if ".blob." not in host:
                self.url = f"{parts.scheme}://{parts.netloc}/{account}"
        self.account = account
        self.key = conn.get("AccountKey") or env.get("AZURE_STORAGE_KEY") or None
        sas = conn.get("SharedAccessSignature") or env.get("AZURE_STORAGE_SAS_TOKEN") or ""
        self.sas = sas.lstrip("?") or None
        self.credential_source = (
            "connection string"
            if conn.get("AccountKey") or conn.get("SharedAccessSignature")
            else "AZURE_STORAGE_KEY"
            if self.key
            else "AZURE_STORAGE_SAS_TOKEN"
            if self.sas
            else "none (anonymous)"
        )

    def start(self, workdir: Path) -> None:
        """Nothing to start: the endpoint is already up."""

    def endpoint(self) -> Endpoint:
        return Endpoint(
            target=self.name, account=self.account, blob_url=self.url, key=self.key, sas=self.sas
        )

    def stop(self) -> None:
        """Nothing to stop."""

    def facts(self) -> dict[str, Any]:
        # Never record the key or the SAS itself: only where the credentials came from.
        return {
            "kind": self.name,
            "url": self.url,
            "account": self.account,
            "credentials": self.credential_source,
        }

    def server_pids(self) -> list[int]:
        return []
