"""Target `inventory`: the reference façade on every `server` host of an inventory, over SSH.

`start` deploys the checkout to the server hosts (a no-op when it is there), starts
`python -m reference_server` on each, listening on the host's own address and the inventory's
endpoint port, and waits until each answers; `stop` ends them and copies their logs into the
run directory. Clients reach the inventory's VIP when it names one, else the first server.
Every host of the inventory is sampled over SSH meanwhile (``harness.cluster.monitor``) into
``host_samples.parquet`` beside the logs, one row per host and second, and the inventory's
``links`` are shaped (``harness.cluster.links``) from start to stop.

``role: lake`` (a scenario's ``targets: {lake: {kind: inventory, options: {role: lake}}}``) runs
the same façade on the `lake` hosts instead, as the scenario's source endpoint; the `server`
target, the run's default, is the one that gathers facts, samples hosts and shapes links.
"""

from __future__ import annotations

import shlex
import socket
import time
from pathlib import Path
from typing import Any

from harness.targets.base import DEV_ACCOUNT, DEV_KEY, Endpoint


class InventoryTarget:
    name = "inventory"

    def __init__(
        self,
        inventory: Path,
        workers: int = 1,
        role: str = "server",
        extra_args: list[str] | tuple[str, ...] = (),
    ) -> None:
        from harness.cluster.inventory import from_file

        self.inventory_path = inventory
        self.inv = from_file(inventory)  # `harness run` checked it with file:line errors
        self.workers = workers
        self.extra_args = [str(a) for a in extra_args]  # façade flags, e.g. --max-inflight 4
        if role not in ("server", "lake"):
            raise ValueError(f"options.role: {role!r}; an inventory target is server or lake")
        self.role = role
        self.servers = self.inv.with_role(role)  # type: ignore[arg-type]
        if not self.servers:
            raise ValueError(f"{inventory}: no host has the role {role}")
        self.running: list[dict[str, Any]] = []  # host, client, pid, log of each façade
        self.host_facts: list[dict[str, Any]] = []
        self.workdir: Path | None = None
        self.monitors: list[Any] = []  # HostMonitor of every host
        self.monitor_clients: list[Any] = []
        self.samples_path: Path | None = None
        self.notes: list[str] = []
        self.shaper: Any = None  # harness.cluster.links.Shaper while links are shaped
        self.shaped: list[dict[str, Any]] = []

    def start(self, workdir: Path) -> None:
        from harness.cluster import ssh
        from harness.cluster.deploy import deploy
        from harness.cluster.facts import collect

        self.workdir = workdir
        workdir.mkdir(parents=True, exist_ok=True)
        main = self.role == "server"  # one target per run describes, samples and shapes
        if main:
            # every host's facts, not only the servers': run.json describes the whole cluster
            self.host_facts, unreachable = collect(self.inv)
            self.notes += [f"no facts: {e}" for e in unreachable]
            self._shape()
        deployed, errors = deploy(self.inv, self.servers)
        if errors:
            raise RuntimeError("deploy failed: " + "; ".join(errors))
        port = self.inv.endpoints.port
        run_id = workdir.parent.parent.name or "run"  # the run directory's name
        for d in deployed:
            client = ssh.connect(self.inv, d.host)
            data = f"{d.work_dir}/data/{run_id}"
            log = f"{d.work_dir}/logs/{run_id}-server.log"
            argv = [d.python, "-m", "reference_server", "--data-root", data]
            argv += ["--host", d.host.address, "--port", str(port)]
            if self.workers > 1:
                argv += ["--workers", str(self.workers)]
            argv += self.extra_args
            # only the façade goes to the background, its output to the log: the channel
            # closes as soon as the pid is printed
            command = (
                f"mkdir -p {shlex.quote(data)} {shlex.quote(d.work_dir)}/logs && "
                f"cd {shlex.quote(d.release_dir)} || exit 1; PYTHONUNBUFFERED=1 setsid "
                f"{shlex.join(argv)} > {shlex.quote(log)} 2>&1 < /dev/null & echo $!"
            )
            pid = int(ssh.run(client, command, timeout=30).stdout.strip())
            self.running.append({"host": d.host, "client": client, "pid": pid, "log": log})
        for entry in self.running:
            self._wait(entry, port)
        if main:
            self._monitor()

    def _shape(self) -> None:
        from harness.cluster.links import Shaper

        if not self.inv.links:
            return
        self.shaper = Shaper(self.inv)  # kept before applying: stop() undoes a partial one
        self.shaped = self.shaper.apply()

    def _monitor(self) -> None:
        from harness.cluster import ssh
        from harness.cluster.monitor import HostMonitor

        assert self.workdir is not None
        # named now: the runner records facts() before it stops the target, which writes it
        self.samples_path = self.workdir / "host_samples.parquet"
        for host in self.inv.hosts:
            try:
                client = ssh.connect(self.inv, host)
                self.monitor_clients.append(client)
                self.monitors.append(HostMonitor(client, host))
            except (ssh.HostError, OSError) as exc:  # a run goes on without that host's samples
                self.notes.append(f"not monitored: {exc}")

    def _wait(self, entry: dict[str, Any], port: int, timeout: float = 60.0) -> None:
        from harness.cluster import ssh

        host = entry["host"]
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                with socket.create_connection((host.address, port), timeout=1):
                    return
            except OSError:
                alive = ssh.run(entry["client"], f"kill -0 {entry['pid']}", timeout=10)
                if alive.exit_code != 0:
                    tail = ssh.run(entry["client"], f"tail -n 30 {shlex.quote(entry['log'])}")
                    raise RuntimeError(
                        f"the façade on {ssh.where(host)} exited before listening:\n{tail.stdout}"
                    ) from None
                time.sleep(0.2)
        raise RuntimeError(f"the façade on {ssh.where(host)} did not listen on port {port}")

    @property
    def runs_facade(self) -> bool:
        """Whether clients reach a façade this target started (the first server's), not a VIP
        in front of a cluster it does not know: the reference façade's capabilities hold."""
        return not (self.inv.endpoints.vip and self.role == "server")

    def endpoint(self) -> Endpoint:
        ep = self.inv.endpoints
        if ep.vip and self.role == "server":
            url = ep.vip.rstrip("/")
        else:
            url = f"http://{self.servers[0].address}:{ep.port}/{ep.account}"
        key = self.inv.credentials[ep.key].resolve(self.inv.base_dir) if ep.key else None
        if key is None and ep.account == DEV_ACCOUNT:
            key = DEV_KEY  # the façade started here serves the emulator's well-known account
        # the inventory travels with the endpoint: Locust's `workers_on` finds its load hosts
        extra = {"inventory": str(self.inventory_path)}
        return Endpoint(target=self.name, account=ep.account, blob_url=url, key=key, extra=extra)

    def stop(self) -> None:
        from harness.cluster import ssh
        from harness.cluster.monitor import write_samples

        monitors, self.monitors = self.monitors, []
        for monitor in monitors:
            monitor.stop()
            if monitor.error:
                self.notes.append(monitor.error)
        if monitors and self.samples_path is not None:
            write_samples(monitors, self.samples_path)
        for client in self.monitor_clients:
            client.close()
        self.monitor_clients = []
        shaper, self.shaper = self.shaper, None
        if shaper is not None:
            removed = shaper.remove()
            self.notes.append(f"links unshaped on {', '.join(removed) or 'no host'}")
        running, self.running = self.running, []
        for entry in running:
            client = entry["client"]
            try:
                # SIGTERM to the session setsid made (workers included), SIGKILL after 10 s
                ssh.run(
                    client,
                    f"kill -TERM -{entry['pid']} 2>/dev/null; for i in $(seq 50); do "
                    f"kill -0 {entry['pid']} 2>/dev/null || break; sleep 0.2; done; "
                    f"kill -KILL -{entry['pid']} 2>/dev/null; true",
                    timeout=30,
                )
                if self.workdir is not None:
                    local = self.workdir / "servers" / f"{entry['host'].name}.log"
                    ssh.get(client, entry["log"], local)
            finally:
                client.close()

    def facts(self) -> dict[str, Any]:
        return {
            "kind": self.name,
            "inventory": self.inv.name,
            "inventory_file": str(self.inventory_path),
            "endpoint": self.endpoint().blob_url,
            "role": self.role,
            "servers": [h.name for h in self.servers],
            # each host's shaped device: link, rate, peers, and how a delay was added (netem)
            "links": self.shaped,
            "workers": self.workers,
            "args": self.extra_args,
            "hosts": self.host_facts,  # measured over SSH when the façades started
            "host_samples": str(self.samples_path) if self.samples_path else None,
            "notes": self.notes,
        }

    def server_pids(self) -> list[int]:
        return []  # remote processes: sampled over SSH, not by local psutil
