"""Helpers the drivers share: credentials, URLs, local directories, client subprocesses."""

from __future__ import annotations

import datetime
import ipaddress
import os
import subprocess
import time
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness.drivers.base import StepContext
from harness.signing import generate_account_sas
from harness.targets.base import Endpoint

SAS_LIFETIME = datetime.timedelta(hours=6)


def account_sas(endpoint: Endpoint) -> str:
    """An account SAS query string (no '?') for every service/container/object operation."""
    if endpoint.sas:
        return endpoint.sas.lstrip("?")
    if not endpoint.key:
        raise ValueError(f"endpoint {endpoint.blob_url} has neither a key nor a SAS")
    start = datetime.datetime.now(datetime.UTC) - datetime.timedelta(minutes=5)  # clock skew
    return generate_account_sas(
        endpoint.account,
        endpoint.key,
        permissions="rwdlac",
        expiry=start + SAS_LIFETIME,
        start=start,
    )


def is_ip_host(url: str) -> bool:
    host = urllib.parse.urlsplit(url).hostname or ""
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def blob_path_url(base: str, container: str, path: str = "", query: str = "") -> str:
    """``base/container/path?query`` with the path percent-encoded (``/`` kept)."""
    url = f"{base.rstrip('/')}/{container}"
    if path:
        url += "/" + urllib.parse.quote(path, safe="/*")
    return f"{url}?{query}" if query else url


def local_dir(ctx: StepContext, default: str = "download") -> Path:
    path = ctx.local_dir or ctx.workdir / default
    path.mkdir(parents=True, exist_ok=True)
    return path


@dataclass
class ProcessOutcome:
    returncode: int
    stdout_lines: list[str] = field(default_factory=list)
    stderr: str = ""
    duration_s: float = 0.0


class ProcessRunner:
    """Runs one client subprocess, streaming its stdout lines to a callback.

    It arms no timer: the runner bounds every step and kills the process tree of ``pid()``
    when the step overruns (the client runs in a session of its own, children included)."""

    def __init__(self) -> None:
        self.process: subprocess.Popen[str] | None = None

    def pid(self) -> int | None:
        proc = self.process
        return proc.pid if proc is not None and proc.poll() is None else None

    def run(
        self,
        argv: list[str],
        env: dict[str, str],
        on_line: Callable[[str], None] | None = None,
        cwd: Path | None = None,
        stderr_path: Path | None = None,
    ) -> ProcessOutcome:
        started = time.monotonic()
        with open(stderr_path or os.devnull, "w") as err:
            self.process = proc = subprocess.Popen(
                argv,
                stdout=subprocess.PIPE,
                stderr=err,
                stdin=subprocess.DEVNULL,
                text=True,
                env=env,
                cwd=cwd,
                start_new_session=True,  # its own group: stopping it reaches its children
            )
            lines: list[str] = []
            assert proc.stdout is not None
            for line in proc.stdout:
                lines.append(line.rstrip("\n"))
                if on_line is not None:
                    on_line(lines[-1])
            proc.wait()
        stderr = stderr_path.read_text(errors="replace") if stderr_path is not None else ""
        return ProcessOutcome(proc.returncode, lines, stderr, time.monotonic() - started)


def client_env(ctx: StepContext) -> dict[str, str]:
    """The step's ``options.env`` for its client; with ``auth: oauth``, on top of the OAuth
    settings of the endpoint's token service (a target with ``identity: true``), so a scenario
    names the login flavour and never the service's port."""
    env: dict[str, str] = {}
    if ctx.options.get("auth") == "oauth":
        env |= (ctx.endpoint.extra.get("identity") or {}).get("env", {})
    env |= {str(k): str(v) for k, v in (ctx.options.get("env") or {}).items()}
    return env


def sdk_credential(endpoint: Endpoint) -> Any:
    """The azure-storage-blob credential for an endpoint: its SAS, else its Shared Key."""
    if endpoint.sas:
        return endpoint.sas.lstrip("?")
    if endpoint.key:
        return {"account_name": endpoint.account, "account_key": endpoint.key}
    return None


def sdk_transport(endpoint: Endpoint) -> dict[str, Any]:
    """Client keywords that make azure-storage-blob (sync and aio) trust the endpoint's lab CA;
    verification stays on. Empty for an endpoint without one (system CAs)."""
    return {"connection_verify": str(endpoint.ca_bundle)} if endpoint.ca_bundle else {}
