"""Locust workers on an inventory's hosts over SSH (``WorkerLauncher``), the master staying here.

The hosts get the deployed release (``harness.cluster.deploy``, a no-op when it is there), so
the locustfile is the release's own; the load plan is shipped to each host with its histogram
directory pointed at the host's work directory. Each worker runs under one SSH session whose
shell starts it, prints its pid, then its CPU ticks once a second, and its exit status when it
ends: the controller sees a killed worker (or a host that went away) within a second. After the
run the per-worker histogram files and logs come back over SFTP, so the driver merges them
exactly as it merges local ones.

The master binds the address the hosts reach the controller at: what ``$SSH_CLIENT`` says on
the first host (the lab bridge's address for the lab's namespaces), or ``master_host``; it must
be an address of this machine, never 0.0.0.0.
"""

from __future__ import annotations

import dataclasses
import shlex
import socket
import threading
import time
import uuid
from pathlib import Path
from typing import Any

from harness.cluster import ssh
from harness.cluster.deploy import Deployed, deploy
from harness.cluster.inventory import Host, from_file
from harness.load.plan import PLAN_ENV, LoadPlan
from harness.load.process import Worker

MAX_SECONDS = 86_400  # the remote watch loop ends by itself after this long, even if never told
# Starts the worker, then reports on it once a second until it ends (a zombie counts as ended).
WORKER_SCRIPT = """\
mkdir -p {hist} && cd {release} || exit 1
{env} PYTHONUNBUFFERED=1 setsid {python} -m locust -f {locustfile} --worker \\
  --master-host {master} --master-port {port} > {log} 2>&1 < /dev/null &
pid=$!
echo PID $pid $(getconf CLK_TCK)
i=0
while [ $i -lt {max} ] && [ -d /proc/$pid ] && ! grep -q '^State:.*Z' /proc/$pid/status; do
  echo CPU $(awk '{{print $14+$15}}' /proc/$pid/stat 2>/dev/null)
  i=$((i+1)); sleep 1
done
[ $i -lt {max} ] || kill -KILL $pid
wait $pid; echo EXIT $?
"""


class RemoteWorker:
    """One worker's SSH session: its pid, CPU once a second, its exit status."""

    def __init__(self, client: Any, host: Host, index: int, script: str) -> None:
        self.host = host
        self.client = client
        self.name = f"{host.name} worker {index}"
        self.remote_pid: int | None = None
        self._hz = 100
        self._cpu: float | None = None
        self._last: tuple[float, int] | None = None
        self._exit: int | None = None
        self._ended = threading.Event()
        self._started = threading.Event()
        transport = client.get_transport()
        assert transport is not None
        self.channel = transport.open_session(timeout=10)
        self.channel.exec_command(script)
        self._thread = threading.Thread(target=self._read, name=self.name, daemon=True)
        self._thread.start()
        if not self._started.wait(30) or self.remote_pid is None:
            raise ssh.HostError(f"{ssh.where(host)}: the Locust worker did not start")
        self.name = f"{host.name} worker {index} (pid {self.remote_pid})"

    @property
    def pid(self) -> int | None:
        return None  # not a process of this machine

    def _read(self) -> None:
        buffer = b""
        try:
            while True:
                chunk = self.channel.recv(4096)
                if not chunk:
                    return
                buffer += chunk
                while b"\n" in buffer:
                    line, _, buffer = buffer.partition(b"\n")
                    self._line(line.decode(errors="replace").split())
        except OSError:
            return
        finally:
            self._started.set()
            self._ended.set()

    def _line(self, parts: list[str]) -> None:
        if len(parts) >= 2 and parts[0] == "PID":
            self.remote_pid = int(parts[1])
            self._hz = int(parts[2]) if len(parts) > 2 else 100
            self._started.set()
        elif len(parts) == 2 and parts[0] == "CPU":
            now, ticks = time.time(), int(parts[1])
            if self._last is not None and now > self._last[0]:
                seconds = (ticks - self._last[1]) / self._hz
                self._cpu = round(100.0 * seconds / (now - self._last[0]), 1)
            self._last = (now, ticks)
        elif len(parts) == 2 and parts[0] == "EXIT":
            self._exit = int(parts[1])

    def poll(self) -> int | None:
        # an ended session without an exit status: the host or its sshd went away
        return (self._exit if self._exit is not None else -1) if self._ended.is_set() else None

    def wait(self, timeout: float) -> int | None:
        self._ended.wait(timeout)
        return self.poll()

    def stop(self) -> None:
        if self.remote_pid is not None and not self._ended.is_set():
            pid = self.remote_pid
            try:
                ssh.run(
                    self.client,
                    f"kill -TERM {pid} 2>/dev/null; for i in $(seq 50); do "
                    f"[ -d /proc/{pid} ] || break; sleep 0.2; done; kill -KILL {pid} 2>/dev/null; "
                    "true",
                    timeout=30,
                )
            except OSError:
                pass
        self._ended.wait(5)
        self.channel.close()

    def cpu_pct(self) -> float | None:
        return self._cpu


class SshWorkers:
    """``WorkerLauncher`` for the hosts of one role of an inventory (default ``load``); workers
    are dealt to them in turn."""

    def __init__(self, inventory: Path, role: str = "load", master_host: str | None = None) -> None:
        self.inv = from_file(inventory)
        self.role = role
        self.hosts = self.inv.with_role(role)  # type: ignore[arg-type]
        if not self.hosts:
            raise ValueError(f"{inventory}: no host has the role {role} (for workers_on)")
        self._bind = master_host
        self.tag = uuid.uuid4().hex[:12]  # this run's directory on every host
        self.clients: dict[str, Any] = {}
        self.deployed: dict[str, Deployed] = {}
        self.workers: list[RemoteWorker] = []

    def _client(self, host: Host) -> Any:
        if host.name not in self.clients:
            self.clients[host.name] = ssh.connect(self.inv, host)
        return self.clients[host.name]

    @property
    def bind_host(self) -> str:
        if self._bind is None:
            host = self.hosts[0]
            seen = ssh.run(self._client(host), 'echo "$SSH_CLIENT"').stdout.split()
            if not seen:
                raise ssh.HostError(f"{ssh.where(host)}: SSH_CLIENT is not set: set master_host")
            self._bind = seen[0]
        with socket.socket() as s:  # the master can only listen on an address of this machine
            try:
                s.bind((self._bind, 0))
            except OSError as exc:
                raise ssh.HostError(
                    f"the load hosts reach this machine at {self._bind}, which is not one of its "
                    f"addresses ({exc.strerror}): set the step option master_host"
                ) from None
        return self._bind

    def _dir(self, host: Host) -> str:
        return f"{self.deployed[host.name].work_dir}/load/{self.tag}"

    def launch(
        self, count: int, master_host: str, master_port: int, env: dict[str, str], log_dir: Path
    ) -> list[Worker]:
        deployed, errors = deploy(self.inv, self.hosts)
        if errors:
            raise ssh.HostError("deploy to the load hosts failed: " + "; ".join(errors))
        self.deployed = {d.host.name: d for d in deployed}
        plan = LoadPlan.load(env[PLAN_ENV])
        try:
            for i in range(count):
                host = self.hosts[i % len(self.hosts)]
                if i < len(self.hosts):
                    self._ship_plan(host, plan, log_dir)
                self.workers.append(self._start(host, i, master_host, master_port))
        except BaseException:
            for w in self.workers:
                w.stop()
            raise
        return list(self.workers)

    def _ship_plan(self, host: Host, plan: LoadPlan, log_dir: Path) -> None:
        remote = self._dir(host)
        client = self._client(host)
        ssh.run(client, f"mkdir -p {shlex.quote(remote)}/hist")
        ca = None
        if plan.ca_bundle:
            ca = f"{remote}/ca.pem"
            ssh.put(client, Path(plan.ca_bundle), ca)
        mine = dataclasses.replace(plan, out_dir=f"{remote}/hist", ca_bundle=ca)
        local = mine.dump(log_dir / f"load-plan-{host.name}.json")
        ssh.put(client, local, f"{remote}/load-plan.json")

    def _start(self, host: Host, index: int, master: str, port: int) -> RemoteWorker:
        d = self.deployed[host.name]
        remote = self._dir(host)
        q = shlex.quote
        env = f"LOAD_PLAN={q(remote + '/load-plan.json')} PYTHONPATH={q(d.release_dir)}"
        script = WORKER_SCRIPT.format(
            hist=q(f"{remote}/hist"),
            release=q(d.release_dir),
            env=env,
            python=q(d.python),
            locustfile=q(f"{d.release_dir}/harness/load/locustfile.py"),
            master=q(master),
            port=port,
            log=q(f"{remote}/worker-{index}.log"),
            max=MAX_SECONDS,
        )
        return RemoteWorker(self._client(host), host, index, script)

    def finish(self, out_dir: Path, log_dir: Path) -> None:
        """Histograms into ``out_dir`` as ``<host>-<file>`` (worker pids of two hosts may
        match), logs into ``log_dir``; the run's directory on each host is removed."""
        out_dir.mkdir(parents=True, exist_ok=True)
        try:
            for name, client in self.clients.items():
                if name not in self.deployed:
                    continue
                remote = self._dir(self.inv.host(name))
                with client.open_sftp() as sftp:
                    for f in sftp.listdir(f"{remote}/hist"):
                        if f.endswith(".jsonl"):
                            sftp.get(f"{remote}/hist/{f}", str(out_dir / f"{name}-{f}"))
                    for f in sftp.listdir(remote):
                        if f.endswith(".log"):
                            sftp.get(f"{remote}/{f}", str(log_dir / f"{name}-{f}"))
                ssh.run(client, f"rm -rf {shlex.quote(remote)}")
        finally:
            for client in self.clients.values():
                client.close()
            self.clients = {}
