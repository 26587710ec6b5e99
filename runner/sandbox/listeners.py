"""Loopback sockets and the uvicorn server that serves one app on one of them."""

from __future__ import annotations

import asyncio
import socket
from typing import Any

import uvicorn

from .certs import TlsFiles

__all__ = ["Listener", "bind"]


def bind(port: int = 0) -> socket.socket:
    """A listening socket on 127.0.0.1 (``port`` 0: any free one)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    # uvicorn does not set TCP_NODELAY on sockets it is handed; accepted sockets inherit
    # it from here. Without it delayed ACKs add ~40 ms per request (AZURE.md).
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    try:
        sock.bind(("127.0.0.1", port))
    except OSError:
        sock.close()
        raise
    sock.listen(128)
    sock.setblocking(False)
    return sock


class Listener:
    """One uvicorn server on one socket, started and stopped in the running loop."""

    def __init__(self, app: Any, sock: socket.socket, tls: TlsFiles | None) -> None:
        self.app, self.sock, self.tls = app, sock, tls
        self.port: int = sock.getsockname()[1]
        self.server: uvicorn.Server | None = None
        self.task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        """Serve until ``stop``; returns once the server accepts connections."""
        config = uvicorn.Config(
            self.app,
            log_level="warning",
            access_log=False,
            lifespan="off",
            ssl_certfile=str(self.tls.cert) if self.tls else None,
            ssl_keyfile=str(self.tls.key) if self.tls else None,
            timeout_graceful_shutdown=2,
        )
        self.server = uvicorn.Server(config)
        self.task = asyncio.create_task(self.server.serve(sockets=[self.sock]))
        while not self.server.started:
            if self.task.done():
                await self.task  # re-raise why it could not start
                raise RuntimeError("sandbox listener exited during start-up")
            await asyncio.sleep(0.005)

    async def stop(self) -> None:
        """Stop serving and close the socket."""
        if self.server is not None and self.task is not None:
            self.server.should_exit = True
            await self.task
        self.server = self.task = None
        self.sock.close()
