"""The test suite itself refuses to leave loopback.

pytest-socket patches ``socket.connect``; asyncio's own loop goes through it, uvloop's
does not (libuv connects in C). So in-process servers run on the asyncio loop in tests
(``loop = "asyncio"`` in conftest's settings).
"""

from __future__ import annotations

import asyncio
import socket

import pytest
from pytest_socket import SocketConnectBlockedError

# pytest-socket also warns; under filterwarnings=error that warning is itself the failure.
# Here the warning is set aside to check the refusal underneath it.
pytestmark = pytest.mark.filterwarnings("ignore:A test tried to use socket")

OUTSIDE = [("169.254.169.254", 80), ("10.0.0.1", 443), ("8.8.8.8", 53)]


@pytest.mark.parametrize("address", OUTSIDE)
def test_connections_outside_loopback_fail_loudly(address):
    """IMDS's real address and any non-loopback address are blocked in tests."""
    with socket.socket() as s, pytest.raises(SocketConnectBlockedError):
        s.connect(address)


def test_asyncio_connections_outside_loopback_fail_loudly():
    """The asyncio loop (what aiohttp and the Azure SDK use) is blocked the same way."""

    async def attempt() -> None:
        await asyncio.open_connection("169.254.169.254", 80)

    with pytest.raises(SocketConnectBlockedError):
        asyncio.run(attempt())


def test_loopback_is_allowed():
    """Loopback stays open: the servers under test live there."""
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen(1)
        with socket.create_connection(server.getsockname(), timeout=5):
            pass
