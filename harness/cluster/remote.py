"""Steps with ``hosts:``: the step's client runs on each of an inventory's hosts at once.

Controller side (``HostSteps``, called by the runner for such a step): the release is deployed
to the hosts once per run (``harness.cluster.deploy``), then each execution writes one job file
per host (the step, the target's endpoint, the dataset's spec and which share of it), copies it
over SFTP and starts ``python -m harness.cli remote-step --start-on-stdin JOB`` on every host.
Each host prepares (imports, its dataset share, the tool check) and says ``ready``; once all
have, the controller sends ``go`` to each, so the clients start together, not staggered by
the hosts' set-up. Then it fetches each host's ``result.json`` (a StepResult) over SFTP. The
rows are merged exactly (``harness.results.merge_host_results``), each host's start taken onto
the controller's clock by its measured offset. A host that cannot be reached, loses its SSH
connection mid-step, lacks the step's tool or does not answer in time fails the step, named.

Host side (``harness.runner.run_job``, the hidden command ``harness remote-step JOB``): the
dataset is generated there from its spec and seed (cached under the host's work directory), its
share picked (``share: split``, the default: host k of n takes every n-th file, under
``prefix + <host>/``; ``share: same``: the whole dataset under the step's prefix), and the
driver runs as the runner runs it (``harness.runner.run_step``: bounded by the step's timeout,
downloads verified byte for byte), uploads verified by a listing of the target.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shlex
import shutil
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import paramiko

    from harness.cluster.deploy import Deployed
    from harness.cluster.inventory import Host, Inventory
    from harness.datasets import Dataset
    from harness.results import StepResult

# The runner's step, context and dataset spec (harness.scenario.Step, harness.drivers.base.
# StepContext, harness.scenario.DatasetSpec) are taken as they come, not imported: those modules
# reach the targets, which reach this package.
Step = StepContext = DatasetSpec = Any

JOB_FILE, RESULT_FILE, LOG_FILE = "job.json", "result.json", "remote.log"
# A host's own settings, sourced before its step runs: where its tools are when not where the
# lab puts them (LAB_AZCOPY=/usr/local/bin/azcopy, LAB_RCLONE=...).
HOST_ENV = "host.env"
# Beyond the step's timeout: the host's own timer stops its client first, then it answers.
ANSWER_GRACE_S = 60.0
POLL_S = 0.2
STOP_GRACE_S = 15.0  # after Ctrl-C / SIGTERM, how long the hosts get to stop their clients
KEEPALIVE_S = 2  # a host that vanishes without closing its connection is noticed
LOST = (
    "the SSH connection was lost mid-step (the host went down or its sshd stopped): "
    "its result is unknown"
)


def select_hosts(inv: Inventory, spec: str | int) -> list[Host]:
    """The hosts a step's ``hosts:`` names: "clients" (every client host), a role, or a count
    (the first N client hosts); ValueError says what the inventory lacks."""
    clients = inv.with_role("client")
    if isinstance(spec, int):
        if spec > len(clients):
            names = ", ".join(h.name for h in clients) or "none"
            raise ValueError(
                f"{spec} client hosts asked for, but inventory {inv.name} has "
                f"{len(clients)} ({names})"
            )
        return clients[:spec]
    role = "client" if spec == "clients" else spec
    hosts = inv.with_role(role)  # type: ignore[arg-type]
    if not hosts:
        raise ValueError(f"inventory {inv.name} has no host with role {role}")
    return hosts


def host_prefix(prefix: str, host: str, share: str) -> str:
    """Where a host works: its own sub-prefix for a split share, the step's prefix otherwise."""
    return f"{prefix}{host}/" if share == "split" else prefix


# ---------------------------------------------------------------- controller side


@dataclass
class _Launched:
    host: Host
    client: paramiko.SSHClient
    channel: paramiko.Channel
    pid: int
    remote_dir: str
    offset: float  # the host's clock minus the controller's, seconds
    started: float  # controller time the command was sent
    output: bytes = b""  # the remote command's stdout so far (its pid, then "ready")
    exit_code: int | None = None
    lost: str | None = None  # why no answer came (connection lost, no answer in time)

    def ready(self) -> bool:
        """Whether the host said it is ready to start (reads what has arrived, never blocks)."""
        while self.channel.recv_ready():
            self.output += self.channel.recv(4096)
        return b"\nready\n" in self.output

    def ended(self) -> bool:
        """The command exited or the connection died (``exit_code`` / ``lost`` say which)."""
        transport = self.client.get_transport()
        # a channel closed with its connection reads as exit status -1 (paramiko's "none")
        if self.channel.exit_status_ready() and self.channel.exit_status != -1:
            self.exit_code = self.channel.recv_exit_status()
        elif self.channel.exit_status_ready() or transport is None or not transport.is_active():
            self.lost = LOST
        else:
            return False
        return True


class HostSteps:
    """The `hosts:` steps of one run against one inventory: deploys once per host, then runs
    each execution on its hosts at once and merges their results."""

    def __init__(self, inv: Inventory, run_id: str) -> None:
        self.inv = inv
        self.run_id = run_id
        self.deployed: dict[str, Deployed] = {}

    def run(self, step: Step, ctx: StepContext, spec: DatasetSpec | None) -> StepResult:
        """One execution of ``step`` on its hosts; ``ctx`` is the controller's context (its
        workdir gets ``hosts/<host>/`` with each host's job, result and log)."""
        from harness.results import merge_host_results

        assert step.hosts is not None
        hosts = select_hosts(self.inv, step.hosts)
        share = str(ctx.options.get("share", "split"))
        base = ctx.result(driver=step.driver, started_at=time.time())
        failed: dict[str, StepResult] = {}
        for host, error in self._deploy(hosts).items():
            failed[host] = self._host_failure(ctx, step, self.inv.host(host), error)
        todo = [(index, host) for index, host in enumerate(hosts) if host.name not in failed]

        def launch(index: int, host: Host) -> _Launched:
            job = self._job(step, ctx, spec, host, index, len(hosts), share)
            return self._launch(host, job, ctx.workdir / "hosts" / host.name)

        launched: list[_Launched] = []
        try:
            # every host's SSH set-up at once: a large cluster does not pay it host by host
            with ThreadPoolExecutor(max(1, len(todo)), thread_name_prefix="host") as pool:
                futures = [(host, pool.submit(launch, index, host)) for index, host in todo]
                for host, future in futures:
                    try:
                        launched.append(future.result())
                    except Exception as exc:  # any failure is that host's, named
                        failed[host.name] = self._host_failure(ctx, step, host, _reason(exc))
            self._start(launched, ctx.timeout_s + ANSWER_GRACE_S)
            self._wait(launched, ctx.timeout_s + ANSWER_GRACE_S)
        except KeyboardInterrupt:
            self._interrupt(launched)
            raise

        def outcome(host: Host) -> StepResult:
            if host.name in failed:
                return failed[host.name]
            item = next(item for item in launched if item.host.name == host.name)
            return self._collect(item, ctx, step)

        with ThreadPoolExecutor(max(1, len(hosts)), thread_name_prefix="host") as pool:
            rows = list(pool.map(outcome, hosts))
        merged = merge_host_results(base, rows)
        merged.extra["share"] = share
        return merged

    # -- the pieces
    def _deploy(self, hosts: list[Host]) -> dict[str, str]:
        """Deploy to the hosts not deployed yet in this run; host name -> error."""
        from harness.cluster import deploy, ssh

        todo = [h for h in hosts if h.name not in self.deployed]
        if not todo:
            return {}
        done, errors = deploy.deploy(self.inv, todo)
        self.deployed |= {d.host.name: d for d in done}
        failures: dict[str, str] = {}
        for host in todo:
            if host.name not in self.deployed:
                where = ssh.where(host)
                error = next((e for e in errors if e.startswith(where)), "deploy failed")
                failures[host.name] = f"deploy failed: {error.removeprefix(where + ': ')}"
        return failures

    def _job(
        self,
        step: Step,
        ctx: StepContext,
        spec: DatasetSpec | None,
        host: Host,
        index: int,
        count: int,
        share: str,
    ) -> dict[str, Any]:
        deployed = self.deployed[host.name]
        tag = ctx.workdir.name  # r0, w0: the same layout as the controller's run directory
        remote_dir = f"{deployed.work_dir}/runs/{self.run_id}/{step.name}/{tag}"
        endpoint = {k: _plain(v) for k, v in dataclasses.asdict(ctx.endpoint).items()}
        source = ctx.source_endpoint
        return {
            "host": host.name,
            "workdir": remote_dir,
            "cache_dir": f"{deployed.work_dir}/cache",
            "scenario": ctx.scenario,
            "step": ctx.step,
            "driver": step.driver,
            "operation": ctx.operation,
            "container": ctx.container,
            "prefix": host_prefix(ctx.prefix, host.name, share),
            "concurrency": ctx.concurrency,
            "block_size_mib": ctx.block_size_mib,
            "timeout_s": ctx.timeout_s,
            "repeat": ctx.repeat,
            "warmup": ctx.warmup,
            "options": ctx.options,
            "endpoint": endpoint,
            "source_endpoint": (
                {k: _plain(v) for k, v in dataclasses.asdict(source).items()} if source else None
            ),
            "source_container": ctx.source_container,
            "dataset": (
                {
                    "spec": spec.model_dump(mode="json"),
                    "share": [index, count] if share == "split" else None,
                }
                if spec is not None
                else None
            ),
        }

    def _launch(self, host: Host, job: dict[str, Any], local: Path) -> _Launched:
        from harness.cluster import ssh
        from harness.cluster.facts import clock_offset

        deployed = self.deployed[host.name]
        client = ssh.connect(self.inv, host)
        transport = client.get_transport()
        try:
            assert transport is not None
            transport.set_keepalive(KEEPALIVE_S)
            offset, _ = clock_offset(client)
            remote_dir = job["workdir"]
            local.mkdir(parents=True, exist_ok=True)
            (local / JOB_FILE).write_text(json.dumps(job, indent=1, default=str))
            made = ssh.run(client, f"mkdir -p {shlex.quote(remote_dir)}", timeout=30)
            if made.exit_code != 0:
                raise ssh.HostError(f"cannot make {remote_dir}: {made.stderr.strip()}")
            ssh.put(client, local / JOB_FILE, f"{remote_dir}/{JOB_FILE}")
            channel = transport.open_session(timeout=ssh.CONNECT_TIMEOUT_S)
            channel.settimeout(ssh.CONNECT_TIMEOUT_S)
            started = time.time()
            channel.exec_command(_command(deployed, remote_dir))
            pid, output = _read_pid(channel)
        except Exception:
            alive = transport is not None and transport.is_active()
            client.close()
            if not alive:  # whatever failed, the cause is the connection gone
                raise ssh.HostError(LOST) from None
            raise
        except BaseException:
            client.close()
            raise
        return _Launched(host, client, channel, pid, remote_dir, offset, started, output)

    def _start(self, launched: list[_Launched], budget_s: float) -> None:
        """The start barrier: once every host is ready (or ended: a missing tool answers at
        once), ``go`` to each, one right after the other."""
        pending = list(launched)
        deadline = time.monotonic() + budget_s
        while pending and time.monotonic() < deadline:
            pending = [item for item in pending if not item.ready() and not item.ended()]
            if pending:
                time.sleep(POLL_S / 4)
        for item in launched:
            if item in pending:
                item.lost = f"not ready within {budget_s:g} s (the step's timeout and a grace)"
                _signal(item, "KILL")
            elif item.exit_code is None and item.lost is None:
                try:
                    item.channel.sendall(b"go\n")
                except OSError as exc:
                    item.lost = f"could not be started: {exc}"

    def _wait(self, launched: list[_Launched], budget_s: float) -> None:
        """Until every host answered, lost its connection, or ``budget_s`` passed."""
        pending = [item for item in launched if item.exit_code is None and item.lost is None]
        deadline = time.monotonic() + budget_s
        while pending and time.monotonic() < deadline:
            pending = [item for item in pending if not item.ended()]
            if pending:
                time.sleep(POLL_S)
        for item in pending:
            item.lost = f"no answer within {budget_s:g} s (the step's timeout and a grace)"
            _signal(item, "KILL")

    def _interrupt(self, launched: list[_Launched]) -> None:
        """Ctrl-C / SIGTERM: each host's harness stops its client as the runner would."""
        for item in launched:
            if item.exit_code is None:
                _signal(item, "INT")
        deadline = time.monotonic() + STOP_GRACE_S
        for item in launched:
            while not item.channel.exit_status_ready() and time.monotonic() < deadline:
                time.sleep(POLL_S)
            item.client.close()

    def _collect(self, item: _Launched, ctx: StepContext, step: Step) -> StepResult:
        import paramiko

        from harness.cluster import ssh
        from harness.results import StepResult

        local = ctx.workdir / "hosts" / item.host.name
        try:
            if item.lost:
                return self._host_failure(ctx, step, item.host, item.lost, item.started)
            try:
                ssh.get(item.client, f"{item.remote_dir}/{LOG_FILE}", local / LOG_FILE)
            except (OSError, paramiko.SSHException):
                pass  # the log is evidence, not the result
            try:
                ssh.get(item.client, f"{item.remote_dir}/{RESULT_FILE}", local / RESULT_FILE)
                result = StepResult.from_dict(json.loads((local / RESULT_FILE).read_text()))
            except (OSError, ValueError, TypeError, paramiko.SSHException) as exc:
                transport = item.client.get_transport()
                if transport is None or not transport.is_active():
                    return self._host_failure(ctx, step, item.host, LOST, item.started)
                tail = _tail(local / LOG_FILE)
                error = f"remote-step exited {item.exit_code} without a result ({exc}): {tail}"
                return self._host_failure(ctx, step, item.host, error, item.started)
        finally:
            item.client.close()
        result.started_at -= item.offset  # onto the controller's clock
        result.host = item.host.name
        if result.error:
            result.error = f"{ssh.where(item.host)}: {result.error}"
        result.extra["clock_offset_s"] = round(item.offset, 6)
        return result

    def _host_failure(
        self, ctx: StepContext, step: Step, host: Host, error: str, started: float | None = None
    ) -> StepResult:
        from harness.cluster import ssh

        now = time.time()
        result = ctx.result(driver=step.driver, ok=False, started_at=started or now)
        result.duration_s = now - result.started_at
        result.host = host.name
        result.error = error if error.startswith(ssh.where(host)) else f"{ssh.where(host)}: {error}"
        return result


def _plain(value: Any) -> Any:
    return str(value) if isinstance(value, Path) else value


def _reason(exc: BaseException) -> str:
    from harness.cluster import ssh

    return str(exc) if isinstance(exc, ssh.HostError) else f"{type(exc).__name__}: {exc}"


def _command(deployed: Deployed, remote_dir: str) -> str:
    """The remote shell line: the release's harness, the lab's tools where the host has them at
    the controller's paths (the lab's hosts share this machine's files), then the host's own
    ``host.env``; it prints its pid (kept by ``exec``) and logs into the step's directory."""
    from harness import tools

    q = shlex.quote
    lines = [f"cd {q(deployed.release_dir)} || exit 97"]
    azcopy = Path(os.environ.get("LAB_AZCOPY", tools.AZCOPY)).resolve()
    lines.append(f"[ -x {q(str(azcopy))} ] && export LAB_AZCOPY={q(str(azcopy))}")
    env = f"{deployed.work_dir}/{HOST_ENV}"
    lines.append(f"if [ -f {q(env)} ]; then set -a; . {q(env)}; set +a; fi")
    job, log = f"{remote_dir}/{JOB_FILE}", f"{remote_dir}/{LOG_FILE}"
    # stdout and stdin stay on the channel: "ready" comes back on one, "go" goes out on the other
    lines.append(
        f"echo $$; PYTHONUNBUFFERED=1 exec {q(deployed.python)} -m harness.cli remote-step "
        f"--start-on-stdin {q(job)} 2> {q(log)}"
    )
    return "\n".join(lines)


def _read_pid(channel: paramiko.Channel) -> tuple[int, bytes]:
    """The pid the remote shell printed first, and the output read past it (kept as the
    start of the command's stdout, newline-led so "ready" is always found as a line)."""
    from harness.cluster import ssh

    buffer = b""
    while b"\n" not in buffer:
        chunk = channel.recv(64)  # bounded by the channel's timeout
        if not chunk:
            # an exit status follows a shell that ended; a lost connection closes the channel
            # without one (-1)
            channel.status_event.wait(ssh.CONNECT_TIMEOUT_S)
            if channel.exit_status == -1:
                raise ssh.HostError(LOST)
            raise RuntimeError(
                f"remote-step did not start (its shell exited {channel.exit_status})"
            )
        buffer += chunk
    pid, _, rest = buffer.partition(b"\n")
    return int(pid), b"\n" + rest


def _signal(item: _Launched, name: str) -> None:
    from harness.cluster import ssh

    try:
        ssh.run(item.client, f"kill -{name} {item.pid} 2>/dev/null; true", timeout=10)
    except Exception:  # a host that is gone needs no signal
        pass


def _tail(path: Path, lines: int = 8) -> str:
    try:
        text = path.read_text(errors="replace").strip().splitlines()
    except OSError:
        return "no log"
    return " | ".join(text[-lines:]) or "empty log"


# ---------------------------------------------------------------- host side


def share_dataset(full: Dataset, index: int, count: int) -> Dataset:
    """Host ``index`` of ``count``'s share of ``full``: every ``count``-th file, as a tree of
    its own beside the cached dataset (hard links; copies where links cannot be made)."""
    from harness.datasets import Dataset

    files = full.files[index::count]
    root = full.root.parent / "shares" / f"{index + 1}of{count}"
    if not root.is_dir():
        staging = root.with_name(root.name + f".tmp-{os.getpid()}")
        shutil.rmtree(staging, ignore_errors=True)
        for entry in files:
            target = staging / entry.path
            target.parent.mkdir(parents=True, exist_ok=True)
            try:
                os.link(full.root / entry.path, target)
            except OSError:
                shutil.copyfile(full.root / entry.path, target)
        staging.mkdir(parents=True, exist_ok=True)  # a share may be empty
        try:
            staging.rename(root)  # atomic: a half-made share is never taken
        except OSError:
            shutil.rmtree(staging, ignore_errors=True)  # another process made it first
    return Dataset(full.name, root, list(files))
