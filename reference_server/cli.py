"""``python -m reference_server`` / ``harness serve``: start the reference façade.

One worker serves in this process; ``--workers N`` starts N processes that share the port
(SO_REUSEPORT) and the data root, restarting any that dies; they stop when the supervisor dies,
and a second façade refuses a data root in use (``supervision.py``). SIGTERM or SIGINT stops
cleanly.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import multiprocessing
import multiprocessing.connection
import signal
import ssl
import sys
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from aiohttp import web

from reference_server.auth.sas import redact
from reference_server.config import Account, ServerConfig, add_account, load_yaml
from reference_server.store import Store
from reference_server.supervision import DataRootClaim, die_with_parent, hold_worker_lock


def parse_args(argv: Sequence[str] | None, prog: str = "reference_server") -> argparse.Namespace:
    p = argparse.ArgumentParser(prog=prog, description=__doc__.splitlines()[0])
    p.add_argument("--data-root", type=Path, help="POSIX directory holding the blobs")
    p.add_argument("--host", help="listen address (default 127.0.0.1)")
    p.add_argument("--port", type=int, help="listen port (default 10000; 0 picks a free one)")
    p.add_argument("--workers", type=int, help="processes sharing the port (default 1)")
    p.add_argument("--max-inflight", type=int, help="requests per worker before 503 ServerBusy")
    p.add_argument(
        "--io-threads", type=int, help="threads per worker for file I/O and commits (default 8)"
    )
    p.add_argument(
        "--max-connections",
        type=int,
        help="connections per worker; over it the one idle the longest is closed (default 8192)",
    )
    p.add_argument(
        "--head-timeout",
        type=float,
        metavar="S",
        help="seconds from a request's first byte to the end of its headers (default 60)",
    )
    p.add_argument(
        "--body-timeout",
        type=float,
        metavar="S",
        help="seconds a request body may send nothing before its connection closes (default 120)",
    )
    p.add_argument(
        "--body-stall",
        type=float,
        metavar="S",
        help="window in which a body under 16 KiB leaves --max-inflight (default 5)",
    )
    p.add_argument(
        "--keepalive-timeout",
        type=float,
        metavar="S",
        help="seconds an idle connection stays open between requests (default 75)",
    )
    p.add_argument(
        "--sync-copy-max",
        type=int,
        metavar="BYTES",
        help="largest same-account Copy Blob answered as success at once (default 268435456)",
    )
    p.add_argument(
        "--config", type=Path, help="YAML: accounts (name, keys, allow_anonymous_read, bearer)"
    )
    p.add_argument(
        "--account",
        action="append",
        default=[],
        metavar="NAME:KEY",
        help="an account and its base64 key (repeatable)",
    )
    p.add_argument(
        "--loop",
        choices=["uvloop", "asyncio"],
        help="event loop (default uvloop); Get Blob uses sendfile(2) on either",
    )
    p.add_argument("--log-level", help="DEBUG, INFO, WARNING (default), ERROR")
    p.add_argument("--tls-cert", type=Path, help="PEM server certificate (chain): serve https")
    p.add_argument("--tls-key", type=Path, help="PEM private key of --tls-cert")
    p.add_argument(
        "--trust-ca",
        type=Path,
        help="PEM CA bundle the bearer token issuers' https certificates chain to",
    )
    return p.parse_args(argv)


def build_config(args: argparse.Namespace) -> ServerConfig:
    """Defaults, then the YAML file, then the flags."""
    config = load_yaml(args.config) if args.config else ServerConfig()
    for spec in args.account:
        name, sep, key = spec.partition(":")
        if not sep or not name or not key:
            raise SystemExit(f"--account expects NAME:KEY, got {spec!r}")
        add_account(config, Account(name, [key]))
    for flag, attr in (
        ("data_root", "data_root"),
        ("host", "host"),
        ("port", "port"),
        ("workers", "workers"),
        ("max_inflight", "max_inflight"),
        ("io_threads", "io_threads"),
        ("max_connections", "max_connections"),
        ("head_timeout", "head_timeout_s"),
        ("body_timeout", "body_timeout_s"),
        ("body_stall", "body_stall_s"),
        ("keepalive_timeout", "keepalive_timeout_s"),
        ("sync_copy_max", "sync_copy_max"),
        ("loop", "event_loop"),
        ("log_level", "log_level"),
        ("tls_cert", "tls_cert"),
        ("tls_key", "tls_key"),
        ("trust_ca", "trust_ca"),
    ):
        value = getattr(args, flag)
        if value is not None:
            setattr(config, attr, value)
    config.data_root = Path(config.data_root).resolve()
    if (config.tls_cert is None) != (config.tls_key is None):
        raise SystemExit("--tls-cert and --tls-key go together")
    if config.tls_cert and config.tls_key:
        config.tls_cert, config.tls_key = config.tls_cert.resolve(), config.tls_key.resolve()
        ssl_context(config)  # a bad pair fails here, with its reason, before any worker starts
    return config


def ssl_context(config: ServerConfig) -> ssl.SSLContext | None:
    """The server side of https, or None for plain http. Each worker builds its own (an
    SSLContext does not cross a spawn)."""
    if not config.tls_cert or not config.tls_key:
        return None
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    try:
        context.load_cert_chain(config.tls_cert, config.tls_key)
    except (OSError, ssl.SSLError) as exc:
        raise SystemExit(f"cannot load --tls-cert/--tls-key: {exc}") from exc
    return context


async def _serve(
    config: ServerConfig, on_ready: Callable[[int], None], supervisor: int | None
) -> None:
    from reference_server.app import create_app
    from reference_server.connections import FacadeRunner

    loop = asyncio.get_running_loop()
    loop.set_default_executor(ThreadPoolExecutor(max_workers=config.io_threads))
    # Bodies are stored as sent: Content-Encoding is a blob property, never decoded here.
    runner = FacadeRunner(
        create_app(config), access_log=None, handle_signals=False, auto_decompress=False
    )
    await runner.setup()
    site = web.TCPSite(
        runner,
        config.host,
        config.port,
        backlog=4096,
        reuse_port=config.workers > 1,
        ssl_context=ssl_context(config),
    )
    await site.start()
    server = site._server
    port = server.sockets[0].getsockname()[1] if server and server.sockets else config.port
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    if supervisor is not None:  # the supervisor's pipe reads EOF when it dies

        def supervisor_gone() -> None:
            loop.remove_reader(supervisor)  # level-triggered: it would fire on every turn
            stop.set()

        loop.add_reader(supervisor, supervisor_gone)
    on_ready(port)
    await stop.wait()
    await runner.cleanup()


class RedactingFormatter(logging.Formatter):
    """Blanks SAS signatures in whole records, tracebacks included: aiohttp's own parser errors
    quote the raw request line, and any library may put a URL in an exception message."""

    def format(self, record: logging.LogRecord) -> str:
        return redact(super().format(record))


def run_worker(
    config: ServerConfig, on_ready: Callable[[int], None], supervisor: int | None = None
) -> None:
    """Serve until SIGTERM/SIGINT (or until the ``supervisor`` pipe closes)."""
    handler = logging.StreamHandler()
    handler.setFormatter(
        RedactingFormatter("%(asctime)s %(process)d %(levelname)s %(name)s: %(message)s")
    )
    logging.basicConfig(level=config.log_level.upper(), handlers=[handler])
    if config.event_loop == "uvloop":
        try:
            import uvloop

            uvloop.run(_serve(config, on_ready, supervisor))
            return
        except ImportError:
            pass
    asyncio.run(_serve(config, on_ready, supervisor))


def _announce(config: ServerConfig, port: int) -> None:
    print(f"listening on {config.scheme}://{config.host}:{port}", flush=True)


def _child(config: ServerConfig, ready: multiprocessing.synchronize.Event) -> None:
    supervisor = die_with_parent()
    hold_worker_lock(config.data_root)
    run_worker(config, lambda _port: ready.set(), supervisor)


def supervise(config: ServerConfig) -> int:
    """Run ``config.workers`` worker processes; restart any that dies until told to stop."""
    ctx = multiprocessing.get_context("spawn")
    stopping = False

    def start() -> multiprocessing.process.BaseProcess:
        ready = ctx.Event()
        proc = ctx.Process(target=_child, args=(config, ready), daemon=True)
        proc.start()
        if not ready.wait(60):
            raise SystemExit("a worker did not start within 60 s")
        return proc

    def on_signal(signum: int, frame: object) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    store = Store(config.data_root, [a.name for a in config.accounts])
    procs = [start() for _ in range(config.workers)]
    _announce(config, config.port)
    while not stopping:
        multiprocessing.connection.wait([p.sentinel for p in procs], timeout=0.5)
        for i, p in enumerate(procs):
            if not p.is_alive() and not stopping:
                logging.warning("worker %d exited with %s; restarting", p.pid, p.exitcode)
                # what the dead worker left half-written in staging is nobody's any more
                store.sweep_staging(pid=p.pid)
                procs[i] = start()
    for p in procs:
        p.terminate()
    for p in procs:
        p.join(10)
        if p.is_alive():
            p.kill()
    return 0


def main(argv: Sequence[str] | None = None, prog: str = "reference_server") -> int:
    config = build_config(parse_args(argv, prog))
    config.data_root.mkdir(parents=True, exist_ok=True)
    if config.workers > 1 and config.port == 0:
        raise SystemExit("--workers > 1 needs an explicit --port")
    claim = DataRootClaim(config.data_root)  # refuses a data root another façade serves
    # Before any worker serves: what a crash left half-written in staging is nobody's any more.
    Store(config.data_root, [a.name for a in config.accounts]).sweep_staging()
    claim.release_workers_lock()
    if config.workers > 1:
        return supervise(config)
    hold_worker_lock(config.data_root)
    run_worker(config, lambda port: _announce(config, port))
    return 0


if __name__ == "__main__":
    sys.exit(main())
