"""AzCopy: the real binary, `--output-type json`, its EndOfJob counters kept."""

from __future__ import annotations

import contextlib
import json
import os
import re
from collections import Counter
from pathlib import Path
from typing import Any

from harness.drivers.base import Driver, StepContext
from harness.drivers.common import (
    ProcessRunner,
    account_sas,
    blob_path_url,
    client_env,
    is_ip_host,
    local_dir,
)
from harness.lab_proxy import LabProxy, routes_for, virtual_host_url
from harness.metrics import latency_summary
from harness.results import StepResult
from harness.targets.base import Endpoint
from harness.tools import Tool, azcopy_path

# EndOfJob fields copied into StepResult.extra (numbers arrive as strings)
SUMMARY_FIELDS = (
    "TransfersCompleted",
    "TransfersFailed",
    "TransfersSkipped",
    "TotalTransfers",
    "TotalBytesTransferred",
    "TotalBytesEnumerated",
    "BytesOverWire",
    "ServerBusyPercentage",
    "NetworkErrorPercentage",
    "AverageE2EMilliseconds",
    "AverageIOPS",
    "PerfConstraint",
    "JobStatus",
)
_STATUS_RE = re.compile(r"RESPONSE (?:Status|STATUS): (\d{3})")
_CODE_RE = re.compile(r"X-Ms-Error-Code: (\S+)", re.IGNORECASE)
_RETRY_RE = re.compile(r"\(Try=(\d+)")
# Every request AzCopy logs (INFO and up) carries its own time, retries included:
# "==> REQUEST/RESPONSE (Try=1/28.1ms, OpTime=28.6ms) -- RESPONSE SUCCESSFULLY RECEIVED"
_OPTIME_RE = re.compile(r"OpTime=([0-9.]+(?:ns|us|µs|ms|s|m|h)(?:[0-9.]+(?:ns|us|µs|ms|s))*)")
_GO_UNIT_MS = {"ns": 1e-6, "us": 1e-3, "µs": 1e-3, "ms": 1.0, "s": 1e3, "m": 6e4, "h": 3.6e6}
_GO_PART_RE = re.compile(r"([0-9.]+)(ns|us|µs|ms|s|m|h)")


def go_duration_ms(text: str) -> float:
    """A Go ``time.Duration`` string (``28.6ms``, ``512µs``, ``1m2.5s``) in milliseconds."""
    return sum(float(n) * _GO_UNIT_MS[unit] for n, unit in _GO_PART_RE.findall(text))


def _number(value: Any) -> float | int | str:
    try:
        as_float = float(value)
    except (TypeError, ValueError):
        return value
    return int(as_float) if as_float.is_integer() else as_float


class _Location:
    """How AzCopy should address one endpoint: URL base, SAS, whether --from-to is needed."""

    def __init__(self, endpoint: Endpoint, base: str, oauth: bool = False) -> None:
        self.endpoint = endpoint
        self.base = base
        # OAuth (AZCOPY_AUTO_LOGIN_TYPE in options.env): no SAS in the URL, AzCopy sends tokens
        self.sas = "" if oauth else account_sas(endpoint)
        # AzCopy classifies a location by its host (".blob" in the name); an IP is "unknown"
        self.needs_from_to = is_ip_host(base) or ".blob" not in base

    def url(self, container: str, path: str = "") -> str:
        return blob_path_url(self.base, container, path, self.sas)


class AzCopyDriver(Driver):
    name = "azcopy"
    operations = ("upload", "download", "sync-up", "sync-down", "remove", "list", "copy")
    tool = Tool("azcopy", azcopy_path, ("--version",))
    proxy_timed = True  # a job ends only at AzCopy's 2 s status poll

    def __init__(self) -> None:
        self._runner = ProcessRunner()

    def prepare(self, ctx: StepContext) -> None:
        self.tool.path()

    def needs_container(self, ctx: StepContext) -> bool:
        # AzCopy creates a missing destination container only for hosts it classifies as
        # Blob; for an IP host an operator creates it first, and so does the runner. With a
        # token (auth: oauth) an upload by name does not try either (10.32.2: every upload is
        # answered 404 ContainerNotFound); a service-to-service copy does.
        if ctx.operation in ("upload", "sync-up") and ctx.options.get("auth") == "oauth":
            return True
        return ctx.operation in ("upload", "sync-up", "copy") and not self._by_name(ctx)

    @staticmethod
    def _by_name(ctx: StepContext) -> bool:
        """Whether AzCopy reaches the endpoint by its virtual-host name (through a proxy)."""
        # `azcopy list` has no --from-to: an IP host can only be listed by a lab name
        wants_names = ctx.options.get("via_proxy") or (
            ctx.operation == "list" and is_ip_host(ctx.endpoint.blob_url)
        )
        return bool(ctx.endpoint.proxy_url or wants_names)

    def pids(self) -> list[int]:
        pid = self._runner.pid()
        return [pid] if pid else []

    # -- building the command ---------------------------------------------------------------

    def _env(self, ctx: StepContext, proxy_url: str | None) -> dict[str, str]:
        env = {
            **os.environ,
            "AZCOPY_CONCURRENCY_VALUE": str(
                ctx.concurrency
            ),  # pinned: auto-tuning is not comparable
            "AZCOPY_LOG_LOCATION": str(ctx.workdir / "azcopy-logs"),
            "AZCOPY_JOB_PLAN_LOCATION": str(ctx.workdir / "azcopy-plans"),
            "AZCOPY_DISABLE_SYSLOG": "true",
        }
        for key in ("HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy"):
            env.pop(key, None)
        env |= client_env(ctx)
        if proxy_url:  # the step's own lab proxy wins over a token service's login proxy
            env["HTTP_PROXY"] = env["HTTPS_PROXY"] = proxy_url
            env["NO_PROXY"] = "127.0.0.1" if ctx.options.get("auth") == "oauth" else ""
        if ctx.endpoint.ca_bundle:
            env["SSL_CERT_FILE"] = str(ctx.endpoint.ca_bundle)
        env |= {str(k): str(v) for k, v in (ctx.options.get("env") or {}).items()}
        return env

    def _command(self, ctx: StepContext, dest: _Location, source: _Location | None) -> list[str]:
        op = ctx.operation
        prefix = ctx.prefix
        block = ["--block-size-mb", str(ctx.block_size_mib)]
        if op == "upload":
            assert ctx.dataset is not None, "upload needs a dataset"
            argv = ["copy", f"{ctx.dataset.root}/*", dest.url(ctx.container, prefix)]
            argv += ["--recursive", "--put-md5", *block]
            from_to = "LocalBlob"
        elif op == "download":
            argv = ["copy", dest.url(ctx.container, prefix + "*"), str(local_dir(ctx))]
            argv += ["--recursive", "--check-md5=FailIfDifferent", *block]
            from_to = "BlobLocal"
        elif op == "sync-up":
            assert ctx.dataset is not None or ctx.local_dir, "sync-up needs a local directory"
            src = ctx.local_dir or ctx.dataset.root  # type: ignore[union-attr]
            argv = ["sync", str(src), dest.url(ctx.container, prefix), "--put-md5", *block]
            argv.append(
                f"--delete-destination={str(ctx.options.get('delete_destination', False)).lower()}"
            )
            from_to = "LocalBlob"
        elif op == "sync-down":
            argv = ["sync", dest.url(ctx.container, prefix), str(local_dir(ctx))]
            argv += ["--check-md5=FailIfDifferent", *block]
            argv.append(
                f"--delete-destination={str(ctx.options.get('delete_destination', False)).lower()}"
            )
            from_to = "BlobLocal"
        elif op == "remove":
            argv = ["remove", dest.url(ctx.container, prefix), "--recursive"]
            from_to = "BlobTrash"
        elif op == "list":
            argv = ["list", dest.url(ctx.container, prefix), "--machine-readable"]
            from_to = ""
        elif op == "copy":
            assert source is not None, "copy needs a source endpoint"
            src_container = ctx.source_container or ctx.container
            argv = [
                "copy",
                source.url(src_container, prefix + "*"),
                dest.url(ctx.container, prefix),
            ]
            argv += ["--recursive", *block]
            from_to = "BlobBlob"
        else:
            raise ValueError(f"azcopy does not support operation {op!r}")
        needs_from_to = dest.needs_from_to or (source is not None and source.needs_from_to)
        if from_to and needs_from_to:
            argv.append(f"--from-to={from_to}")
        argv += ["--output-type", "json", "--log-level", str(ctx.options.get("log_level", "INFO"))]
        argv += [str(a) for a in ctx.options.get("extra_args", [])]
        return [str(self.tool.path()), *argv]

    # -- running ----------------------------------------------------------------------------

    def run(self, ctx: StepContext) -> StepResult:
        ctx.workdir.mkdir(parents=True, exist_ok=True)
        proxy: LabProxy | None = None
        try:
            endpoints = [ctx.endpoint] + ([ctx.source_endpoint] if ctx.source_endpoint else [])
            proxy_url = ctx.endpoint.proxy_url
            use_names = self._by_name(ctx)
            if use_names and not proxy_url:
                # reach the endpoints by their virtual-host names through a step-local proxy
                proxy = LabProxy(routes_for(*endpoints))
                proxy_url = proxy.start()

            def location(endpoint: Endpoint) -> _Location:
                base = endpoint.blob_url
                if use_names:
                    base = endpoint.virtual_host_url or virtual_host_url(endpoint)
                return _Location(endpoint, base, oauth=ctx.options.get("auth") == "oauth")

            dest = location(ctx.endpoint)
            source = location(ctx.source_endpoint) if ctx.source_endpoint else None
            argv = self._command(ctx, dest, source)
            return self._execute(ctx, argv, self._env(ctx, proxy_url), proxy)
        except Exception as exc:
            return ctx.result(driver=self.name, ok=False, error=f"{type(exc).__name__}: {exc}")
        finally:
            if proxy is not None:
                proxy.stop()

    def _execute(
        self, ctx: StepContext, argv: list[str], env: dict[str, str], proxy: LabProxy | None
    ) -> StepResult:
        summary: dict[str, Any] = {}
        listed: list[dict[str, Any]] = []
        messages: list[str] = []
        job_ids: list[str] = []

        def on_line(line: str) -> None:
            try:
                msg = json.loads(line)
            except ValueError:
                return
            kind = msg.get("MessageType")
            content = msg.get("MessageContent", "")
            if kind in ("Progress", "EndOfJob"):
                with contextlib.suppress(ValueError):
                    body = json.loads(content)
                    summary.update(body)
                    ctx.progress(
                        int(body.get("TotalBytesTransferred") or 0),
                        int(
                            body.get("TotalBytesExpected") or body.get("TotalBytesEnumerated") or 0
                        ),
                    )
            elif kind == "Init":
                with contextlib.suppress(ValueError):
                    job_ids.append(json.loads(content).get("JobID", ""))
            elif kind == "ListObject":
                with contextlib.suppress(ValueError):
                    listed.append(json.loads(content))
            elif kind in ("Error", "Warning") and content:
                messages.append(content.strip())

        outcome = self._runner.run(
            argv,
            env,
            on_line,
            cwd=ctx.workdir,
            stderr_path=ctx.workdir / "azcopy.stderr",
        )
        (ctx.workdir / "azcopy.stdout.jsonl").write_text("\n".join(outcome.stdout_lines) + "\n")
        result = ctx.result(driver=self.name, duration_s=outcome.duration_s)
        result.extra["argv"] = " ".join(a.split("?", 1)[0] for a in argv[1:])  # no SAS in results
        for key in SUMMARY_FIELDS:
            if key in summary:
                result.extra[key] = _number(summary[key])
        if proxy is not None:
            result.extra["proxy_forwarded"] = proxy.forwarded
            result.extra["proxy_refused"] = len(proxy.refused)

        if ctx.operation == "list":
            result.objects = len(listed)
            result.bytes = sum(int(o.get("ContentLength") or 0) for o in listed)
        else:
            result.objects = int(summary.get("TransfersCompleted") or 0)
            result.bytes = int(summary.get("TotalBytesTransferred") or 0)
            result.failed = int(summary.get("TransfersFailed") or 0)
        failed_statuses = Counter(
            str(t.get("ErrorCode"))
            for t in summary.get("FailedTransfers") or []
            if t.get("ErrorCode")
        )
        log = self._scan_logs(ctx.workdir / "azcopy-logs", job_ids)
        by_status, by_code, retries, latencies = log
        result.errors_by_status = dict(by_status or failed_statuses)
        result.errors_by_code = dict(by_code)
        result.retries = retries
        if latencies:
            # AzCopy's job log times every request itself: its percentiles, not the proxy's
            for key, value in latency_summary(latencies).items():
                setattr(result, key, value)
            result.latency_clock = "azcopy-log"
            result.extra["requests_timed"] = len(latencies)

        if outcome.returncode != 0 or result.failed:
            result.ok = False
            detail = summary.get("ErrorMsg") or "; ".join(messages[-3:]) or outcome.stderr[-500:]
            result.error = f"azcopy exit {outcome.returncode}, {result.failed} failed: {detail}"
        return result

    @staticmethod
    def _scan_logs(log_dir: Path, job_ids: list[str]) -> tuple[Counter, Counter, int, list[float]]:
        """Error responses by status and x-ms-error-code, retried requests and every request's
        OpTime in ms, from the job log."""
        by_status: Counter = Counter()
        by_code: Counter = Counter()
        retries = 0
        latencies: list[float] = []
        for job in job_ids:
            path = log_dir / f"{job}.log"
            if not path.is_file():
                continue
            status = 0
            with open(path, errors="replace") as fh:
                for line in fh:
                    if m := _RETRY_RE.search(line):
                        retries += int(m.group(1)) > 1 and "REQUEST" in line
                    if m := _OPTIME_RE.search(line):
                        latencies.append(go_duration_ms(m.group(1)))
                    if m := _STATUS_RE.search(line):
                        status = int(m.group(1))
                        if status >= 400:
                            by_status[str(status)] += 1
                    elif status >= 400 and (m := _CODE_RE.search(line)):
                        by_code[m.group(1)] += 1
                        status = 0
        return by_status, by_code, retries, latencies
