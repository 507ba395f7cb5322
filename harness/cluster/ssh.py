"""SSH to an inventory's hosts with paramiko: connect (through a jump host), run, copy."""

from __future__ import annotations

import ipaddress
import logging
import subprocess
from dataclasses import dataclass
from pathlib import Path

import paramiko

from harness.cluster.inventory import Host, Inventory
from harness.cluster.lab import prefix_for

CONNECT_TIMEOUT_S = 10.0
# The lab's range (harness.cluster.lab) exists only on its bridge: with the bridge gone the
# kernel would route it out of the machine, so such addresses are refused then.
LAB_NETWORKS = ipaddress.ip_network("10.213.0.0/16")  # lab L holds 10.213.L.0/24
LAB_BRIDGE = "{prefix}-br"
# paramiko logs failed handshakes with tracebacks; HostError already says what went wrong.
logging.getLogger("paramiko").addHandler(logging.NullHandler())


class HostError(RuntimeError):
    """A host that cannot be reached or used, with the reason in words."""


@dataclass
class Result:
    exit_code: int
    stdout: str
    stderr: str


def where(host: Host) -> str:
    return f"{host.name} ({host.user}@{host.address}:{host.port})"


def check_lab_route(address: str) -> None:
    """Refuse an address of the lab's range unless the kernel routes it over the lab bridge."""
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return
    if ip not in LAB_NETWORKS:
        return
    bridge = LAB_BRIDGE.format(prefix=prefix_for(int(str(ip).split(".")[2])))
    route = subprocess.run(["ip", "route", "get", address], capture_output=True, text=True)
    if f" dev {bridge} " not in f" {route.stdout} ":
        raise HostError(
            f"{address} is a lab address but the lab bridge {bridge} is not up: "
            "run `harness lab up` first"
        )


def connect(inv: Inventory, host: Host, timeout: float = CONNECT_TIMEOUT_S) -> paramiko.SSHClient:
    """An authenticated client for ``host``; HostError says why not (refused, timed out,
    rejected key, unknown host key)."""
    key = inv.path(host.key_file)
    if key is not None and not key.is_file():  # a misconfiguration, not a network problem
        raise HostError(f"{where(host)}: key_file {key} does not exist")
    if not host.jump:  # behind a jump host, the jump host routes the address
        try:
            check_lab_route(host.address)
        except HostError as exc:
            raise HostError(f"{where(host)}: {exc}") from None
    client = paramiko.SSHClient()
    known = inv.path(inv.known_hosts)
    if known is not None:
        # A known_hosts file means host keys are checked: an unknown key is refused.
        client.load_host_keys(str(known))
        client.set_missing_host_key_policy(paramiko.RejectPolicy())
    else:
        client.set_missing_host_key_policy(paramiko.AutoAddPolicy())
    sock = None
    if host.jump:
        jump = connect(inv, inv.host(host.jump), timeout)
        transport = jump.get_transport()
        assert transport is not None
        try:
            sock = transport.open_channel(
                "direct-tcpip", (host.address, host.port), ("127.0.0.1", 0), timeout=timeout
            )
        except paramiko.ChannelException as exc:
            jump.close()
            raise HostError(
                f"{where(host)}: jump host {host.jump} cannot reach it: {exc.text}"
            ) from None
    try:
        client.connect(
            host.address,
            port=host.port,
            username=host.user,
            key_filename=str(key) if key else None,
            timeout=timeout,
            banner_timeout=timeout,
            auth_timeout=timeout,
            sock=sock,
            allow_agent=False,
            look_for_keys=key is None,
        )
    except paramiko.AuthenticationException as exc:
        raise HostError(f"{where(host)}: authentication failed ({exc}); key_file {key}") from None
    except paramiko.SSHException as exc:
        raise HostError(f"{where(host)}: SSH failed: {exc}") from None

    except TimeoutError:
        raise HostError(f"{where(host)}: timed out after {timeout:g} s") from None
    except paramiko.ssh_exception.NoValidConnectionsError as exc:
        # one error per address tried: the first says why (refused, no route)
        first = next(iter(exc.errors.values()))
        raise HostError(f"{where(host)}: cannot connect: {first.strerror or first}") from None
    except OSError as exc:
        raise HostError(f"{where(host)}: cannot connect: {exc.strerror or exc}") from None
    if host.jump:
        # the tunnel lives on the jump host's connection: keep it as long as this one
        client.jump_client = jump  # type: ignore[attr-defined]
    return client


def run(client: paramiko.SSHClient, command: str, timeout: float = 60.0) -> Result:
    """Run ``command`` in the remote shell; waits for it (bounded by ``timeout``)."""
    _, out, err = client.exec_command(command, timeout=timeout)
    stdout = out.read().decode(errors="replace")
    stderr = err.read().decode(errors="replace")
    return Result(out.channel.recv_exit_status(), stdout, stderr)


def put(client: paramiko.SSHClient, local: Path, remote: str) -> None:
    with client.open_sftp() as sftp:
        sftp.put(str(local), remote)


def get(client: paramiko.SSHClient, remote: str, local: Path) -> None:
    local.parent.mkdir(parents=True, exist_ok=True)
    with client.open_sftp() as sftp:
        sftp.get(remote, str(local))
