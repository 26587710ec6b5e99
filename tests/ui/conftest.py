"""The web page in a real browser: Debian's Chromium (scripts/tools.sh installs it),
driven by Playwright's Python package, headless, on loopback only.

One browser per test module (a start costs ~1 s); each test gets a fresh context
(its own cookies, cache and storage). Screenshots go to ``artifacts/screenshots/``
(gitignored), kept after the run.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.auth.conftest import make_htpasswd
from tests.client.proxy import CuttingProxy
from tests.conftest import ROOT, Served

__all__ = ["make_htpasswd"]

CHROMIUM = Path("/usr/bin/chromium")
SHOTS = ROOT / "artifacts" / "screenshots"
# No traffic beyond loopback: without the background-networking flags Chromium reaches for
# Google's hosts at every start. Playwright gives each launch a fresh --user-data-dir.
FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


# Module-scoped, not session: Playwright's sync API keeps an event loop running in the main
# thread while it lives, and later tests call asyncio.run() there.
@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    if not CHROMIUM.exists():
        pytest.fail("chromium is not installed: run scripts/tools.sh (make test does)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        found = pw.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=FLAGS)
        yield found
        found.close()


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    """A page in a fresh context; whatever the page logs to its console is kept in
    ``page.console_lines`` (a CSP violation or a script error shows there)."""
    # The servers under test use their self-signed certificate (as on a first start).
    context = browser.new_context(viewport={"width": 1280, "height": 860}, ignore_https_errors=True)
    context.set_default_timeout(15_000)
    found = context.new_page()
    lines: list[str] = []
    found.on("console", lambda msg: lines.append(f"{msg.type}: {msg.text}"))
    found.on("pageerror", lambda exc: lines.append(f"pageerror: {exc}"))
    found.console_lines = lines
    yield found
    context.close()


def shot(page: Any, name: str) -> Path:
    """Save a full-page screenshot as an artifact of the test run."""
    SHOTS.mkdir(parents=True, exist_ok=True)
    path = SHOTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path


@dataclasses.dataclass
class SwitchProxy(CuttingProxy):
    """The cutting proxy, with a switch: :meth:`cut` resets every open connection now, as
    a network drop does to a page (the browser sees ERR_CONNECTION_RESET)."""

    live: set[Any] = dataclasses.field(default_factory=set)

    async def _handle(self, client_r: Any, client_w: Any) -> None:
        self.live.add(client_w)
        try:
            await super()._handle(client_r, client_w)
        finally:
            self.live.discard(client_w)

    def cut(self) -> int:
        """Reset every connection open now; returns how many there were."""
        assert self._loop is not None
        found = list(self.live)
        self._loop.call_soon_threadsafe(lambda: [w.transport.abort() for w in found])
        return len(found)


@pytest.fixture
def switch_proxy() -> Iterator[Callable[[Served], SwitchProxy]]:
    """Factory: a :class:`SwitchProxy` in front of a server (the page loads through it)."""
    running: list[Any] = []

    def start(srv: Served) -> SwitchProxy:
        proxy = SwitchProxy(int(srv.url.rsplit(":", 1)[1]))
        ctx = proxy.running()
        running.append((proxy, ctx))
        return ctx.__enter__()

    yield start
    for proxy, ctx in reversed(running):
        # The page may still hold keep-alive connections: end them before the loop ends.
        deadline = time.monotonic() + 5
        while proxy.live and time.monotonic() < deadline:
            proxy.cut()
            time.sleep(0.05)
        ctx.__exit__(None, None, None)
