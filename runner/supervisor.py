"""``runner serve --workers N``: N processes serving one port, each a replica on the
PostgreSQL store, so that one machine's cores are all used.

    supervisor ─► reserves host:port (SO_REUSEPORT, bound, never listening), makes the TLS
               │  pair once, spawns N workers, prints the banner once they all listen
               ├─► worker 1..N: a whole runner (its own loop, executor, lease), listening
               │   on the same port with SO_REUSEPORT: the kernel spreads connections
               ├─► a worker that dies is started again (its runs are recovered by peers)
               └─► SIGTERM/SIGINT: passed to every worker (each drains), then waits

SQLite cannot be shared this way: its file is one process's, and each process would take
the others' runs for its own; ``--workers`` with SQLite is refused, saying what to use.
"""

from __future__ import annotations

import contextlib
import logging
import multiprocessing
import os
import signal
import socket
import time
from multiprocessing.process import BaseProcess
from typing import Any

from runner import tls
from runner.errors import ConfigError
from runner.settings import Settings

log = logging.getLogger("runner.server")

START_TIMEOUT = 60.0


def check(settings: Settings) -> None:
    """Refuse what cannot run as several processes, in words a user can act on."""
    n = settings.server.workers
    if settings.store.backend != "postgresql":
        raise ConfigError(
            f"--workers {n} needs a PostgreSQL store: the SQLite store is one process's "
            "file, and processes sharing it would each take the others' runs for their "
            'own. Set store = "postgresql://user@host/db" in runner.toml (or RUNNER_STORE) '
            '— README, "More than one replica" — or serve with one process (--workers 1)'
        )
    if settings.sandbox.enabled:
        raise ConfigError(
            f"--workers {n} with --sandbox: the emulated Azure lives in one process; "
            "use --workers 1 with --sandbox"
        )


def reserve(host: str, port: int) -> socket.socket:
    """Hold ``host:port`` (picking one for port 0) for the workers: bound with
    SO_REUSEPORT, never listening, so that only the workers' sockets take connections."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise ConfigError(
            f"cannot listen on {host}:{port}: {exc.strerror or exc} (is another server "
            "there? choose --port, or stop it)"
        ) from None
    return sock


def serve_workers(settings: Settings) -> None:
    """Run ``settings.server.workers`` workers until SIGTERM/SIGINT."""
    check(settings)
    server = settings.server
    held = reserve(server.host, server.port)
    port = held.getsockname()[1]
    update: dict[str, Any] = {"port": port, "workers": 1}
    if server.tls and server.tls_cert is None:
        # Made once here: workers generating it at once would race on the files.
        cert, key, _ = tls.self_signed(server.state_dir)
        update |= {"tls_cert": cert, "tls_key": key}
    # One state dir each (a state dir is one process's: runner.statelock), the same token
    # store; a worker started again takes its predecessor's dir (and recovers its runs).
    security = settings.security.model_copy(update={"token_store": settings.tokens_path})
    per_worker = [
        settings.model_copy(
            update={
                "server": server.model_copy(
                    update={**update, "state_dir": server.state_dir / "workers" / str(i)}
                ),
                "security": security,
            }
        )
        for i in range(server.workers)
    ]
    ctx = multiprocessing.get_context("spawn")
    ready = ctx.Queue()
    workers = [_spawn(ctx, each, ready) for each in per_worker]
    stopping = False

    def stop(sig: int, frame: Any) -> None:
        nonlocal stopping
        stopping = True
        for w in workers:
            if w.pid is not None and w.is_alive():
                # A first SIGTERM drains each; a second, passed on, hurries them.
                with contextlib.suppress(ProcessLookupError):
                    os.kill(w.pid, signal.SIGTERM)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    try:
        url = _await_ready(ready, workers)
        print(f"runner listening on {url}", flush=True)
        print(f"{len(workers)} worker processes (replicas on the PostgreSQL store)", flush=True)
        _supervise(ctx, workers, per_worker, ready, lambda: stopping)
    finally:
        for w in workers:
            w.join(30)
            if w.is_alive():
                w.kill()
        held.close()


def _spawn(ctx: Any, settings: Settings, ready: Any) -> BaseProcess:
    proc: BaseProcess = ctx.Process(target=_worker, args=(settings, ready), daemon=False)
    proc.start()
    return proc


def _await_ready(ready: Any, workers: list[BaseProcess]) -> str:
    deadline = time.monotonic() + START_TIMEOUT
    url = ""
    for _ in workers:
        left = deadline - time.monotonic()
        try:
            url = ready.get(timeout=max(0.1, left))
        except Exception:
            raise ConfigError("the worker processes did not start; see their log above") from None
    return url


def _supervise(
    ctx: Any, workers: list[BaseProcess], settings: list[Settings], ready: Any, stopping: Any
) -> None:
    """Until stopped: a worker that exits is started again (peers recover its runs)."""
    while not stopping():
        for i, w in enumerate(workers):
            if not w.is_alive() and not stopping():
                log.error("worker %s exited with %s; starting another", w.pid, w.exitcode)
                workers[i] = _spawn(ctx, settings[i], ready)
        time.sleep(0.5)


def _worker(settings: Settings, ready: Any) -> None:  # pragma: no cover - in a child process
    """One worker: a whole runner on the shared port."""
    import faulthandler

    from runner import logs
    from runner.server import RunnerServer, prepare

    faulthandler.enable()
    logs.configure(settings.server.log_format, settings.server.log_level)
    prepared = prepare(settings, reuse_port=True)
    server = RunnerServer.of(prepared)
    server.on_ready = lambda: ready.put(prepared.url)
    with prepared.runtime.resources:
        server.run(sockets=[prepared.sock])
