"""Serving: the socket, TLS, uvicorn, and a SIGTERM that drains before it stops.

SIGTERM ─► draining: new runs get 503, /_ready is false
        ─► running runs may finish for drain_timeout s, then are cancelled and recorded
        ─► uvicorn stops: listeners close, streams end (each run sent its `done`)
        ─► lifespan shutdown: the runtime stops (extensions, store, sandbox)
a second SIGTERM/SIGINT skips the wait.
"""

from __future__ import annotations

import asyncio
import faulthandler
import logging
import os
import socket
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import FrameType

import uvicorn

from runner import runtime as runtimes
from runner import tls
from runner.connections import guarded_protocol
from runner.errors import ConfigError
from runner.executor import Executor
from runner.hooks import Extension
from runner.kinds import Job
from runner.runtime import Runtime
from runner.settings import Settings
from runner.store import Store
from runner.web.app import build_app
from runner.web.security import Security

log = logging.getLogger("runner.server")


def bind(host: str, port: int) -> socket.socket:
    """A listening socket; TCP_NODELAY set here since uvicorn cannot on a pre-bound socket."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    sock.bind((host, port))
    sock.listen(2048)
    sock.setblocking(False)
    return sock


@dataclass
class Prepared:
    """Everything needed to serve, built from settings; tests start it in a thread."""

    runtime: Runtime
    config: uvicorn.Config
    sock: socket.socket
    url: str
    cacert: Path | None

    @property
    def settings(self) -> Settings:
        return self.runtime.settings


def prepare(
    settings: Settings,
    *,
    store: Store | None = None,
    extensions: list[Extension] | None = None,
) -> Prepared:
    """Build the runtime, set up TLS and security, bind the socket. Raises RunnerError."""
    runtime = runtimes.build(settings, store=store, extensions=extensions, serving=True)
    try:
        runtime.claim_state_dir()
        settings = runtime.settings
        cert = key = None
        if settings.server.tls:
            if settings.server.tls_cert is not None and settings.server.tls_key is not None:
                cert, key = settings.server.tls_cert, settings.server.tls_key
            else:
                cert, key, _ = tls.self_signed(settings.server.state_dir)
        security = Security.from_settings(settings, runtime.runs.policies, runtime.secrets)
        app = build_app(runtime, security, hsts=settings.server.tls)
        sec = settings.security
        config = uvicorn.Config(
            app,
            ssl_certfile=str(cert) if cert else None,
            ssl_keyfile=str(key) if key else None,
            lifespan="on",
            loop=settings.server.loop,
            log_config=None,
            access_log=False,
            server_header=False,
            # X-Forwarded-For is believed only from the configured proxies.
            proxy_headers=bool(sec.trusted_proxies),
            forwarded_allow_ips=list(sec.trusted_proxies) or None,
            timeout_graceful_shutdown=5,
            # Slow clients: an idle keep-alive connection is closed after this many seconds.
            timeout_keep_alive=30,
            h11_max_incomplete_event_size=16 * 1024,
            http=guarded_protocol(
                settings.limits.header_timeout, settings.limits.max_connections_per_address
            ),
        )
        try:
            sock = bind(settings.server.host, settings.server.port)
        except OSError as exc:
            where = f"{settings.server.host}:{settings.server.port}"
            raise ConfigError(
                f"cannot listen on {where}: {exc.strerror or exc} (is another server there? "
                "choose --port, or stop it)"
            ) from None
    except BaseException:
        runtime.resources.close()
        raise
    host, port = sock.getsockname()[:2]
    shown = f"[{host}]" if ":" in host else host
    scheme = "https" if settings.server.tls else "http"
    url = f"{scheme}://{shown}:{port}"
    if not runtime.links.base:
        # Links in chat and notices: this address, or the host's name when it listens on
        # every interface (0.0.0.0 is no address to open). public_url says it better.
        named = socket.gethostname() if host in ("0.0.0.0", "::") else shown
        runtime.links.base = f"{scheme}://{named}:{port}"
    return Prepared(runtime, config, sock, url, cert)


class RunnerServer(uvicorn.Server):
    """uvicorn's server with a draining first SIGTERM (see the module docstring)."""

    def __init__(self, config: uvicorn.Config, executor: Executor, drain_timeout: float) -> None:
        super().__init__(config)
        self.executor = executor
        self.drain_timeout = drain_timeout
        self._drain: asyncio.Task[None] | None = None
        self._signals = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        #: Called once the lifespan started the runtime, before connections are served.
        self.on_ready: Callable[[], None] | None = None

    @classmethod
    def of(cls, prepared: Prepared) -> RunnerServer:
        rt = prepared.runtime
        return cls(prepared.config, rt.executor, rt.settings.limits.drain_timeout)

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        self._loop = asyncio.get_running_loop()
        await super().startup(sockets)
        if self.on_ready is not None and not self.should_exit:
            self.on_ready()

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        if self._loop is not None and not self.should_exit:
            self._signals += 1
            if self._signals == 1:
                self._loop.call_soon_threadsafe(self._begin_drain, sig, frame)
                return
            if self._signals == 2:
                # Second signal: stop waiting for runs; the drain still cancels and records
                # them, and followers still get their `done`, before the server stops.
                self._loop.call_soon_threadsafe(self.executor.hurry)
                return
        # A third signal: stop now, whatever is still running.
        super().handle_exit(sig, frame)

    def _begin_drain(self, sig: int, frame: FrameType | None) -> None:
        if self._drain is None:
            self._drain = asyncio.get_running_loop().create_task(self.drain(sig, frame))

    async def drain(self, sig: int = 15, frame: FrameType | None = None) -> None:
        """Drain the executor, then let uvicorn stop."""
        try:
            await self.executor.drain(self.drain_timeout)
            # Give open streams a moment to write the `done` events just recorded.
            await asyncio.sleep(0.2)
        finally:
            # Not super().handle_exit: sse-starlette patches it to set a process-wide
            # "exiting" flag that would end every later SSE stream in this process (a
            # test process runs many servers). Its watcher still sees should_exit.
            self.should_exit = True


def banner(prepared: Prepared) -> str:
    """What to print at start: the URL, how to trust the certificate, a ready curl line."""
    lines = [f"runner listening on {prepared.url}"]
    job = _example_job(prepared.runtime)
    cacert = f"--cacert {prepared.cacert} " if prepared.cacert else ""
    if prepared.cacert is not None and prepared.settings.server.tls_cert is None:
        lines.append(
            f"TLS: self-signed certificate {prepared.cacert}; trust it with "
            f"`curl --cacert {prepared.cacert}` (or add it to your CA store)"
        )
    if job is not None:
        required = job.schema().get("required", [])
        query = "&".join(f"{name}=…" for name in required)
        sec = prepared.settings.security
        auth = ""
        if sec.htpasswd is not None:
            auth = "--user USER "
        elif prepared.settings.tokens_path.is_file():
            auth = '-H "Authorization: Bearer $RUNNER_TOKEN" '
        target = f"{prepared.url}/{job.path}" + (f"?{query}" if query else "")
        lines.append(f"try:  curl {cacert}{auth}-X POST '{target}'")
    if prepared.settings.server.web_ui:
        lines.append(f"web page: {prepared.url}/")
    return "\n".join(lines)


def _example_job(runtime: Runtime) -> Job | None:
    """The job the banner suggests: one a plain curl can start (no webhook signature, no
    allow list), with the fewest required parameters (issue 11: the first job
    alphabetically was a Slack-verified one, so the suggested line got a 403)."""
    runs = runtime.runs
    open_jobs = [
        job for job in runs.jobs()
        if (policy := runs.policies.for_job(job.path)) is None
        or (not policy.verify and not policy.allow)
    ]  # fmt: skip
    return min(open_jobs, key=lambda j: len(j.schema().get("required", [])), default=None)


def serve(settings: Settings) -> None:
    """``runner serve``: run until SIGTERM/SIGINT, draining first."""
    # A fatal signal (SIGBUS from a store file that cannot grow, SIGSEGV) leaves its
    # traceback on stderr instead of a silent death.
    faulthandler.enable()
    prepared = prepare(settings)
    server = RunnerServer.of(prepared)

    def ready() -> None:
        # Once the runtime started (secrets read, store open): a refused start says why
        # instead of a banner.
        print(banner(prepared), flush=True)
        log.info("listening", extra={"url": prepared.url, "pid": os.getpid()})

    server.on_ready = ready
    # The lifespan stops the runtime; the resources close here too in case it never ran.
    with prepared.runtime.resources:
        try:
            server.run(sockets=[prepared.sock])
        except SystemExit:
            # uvicorn exits when the lifespan fails; the runtime kept the reason in words.
            if prepared.runtime.start_error is not None:
                raise prepared.runtime.start_error from None
            raise
