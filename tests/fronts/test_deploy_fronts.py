"""deploy/caddy/Caddyfile and deploy/nginx/runner.conf, as shipped, before a runner:
real Caddy and nginx on loopback with a local certificate (no ACME, no outside address).

Through each front: the first SSE event and the first text line arrive before the run
ends; a stream silent for several heartbeats, with the front's read timeout shortened to
two heartbeats, stays open to its end; the client's address (a second loopback address,
127.0.0.2) reaches the run record through X-Forwarded-For and trusted_proxies."""

from __future__ import annotations

import os
import shutil
import ssl
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from runner import tls
from tests.conftest import ROOT, Served, wait_final
from tests.fronts.conftest import NGINX, free_port, wait_listening

DEPLOY = ROOT / "deploy"
CADDY = shutil.which("caddy") or "/usr/bin/caddy"
HEARTBEAT = 1.0


def _swap(text: str, old: str, new: str) -> str:
    """Replace a line of the shipped file; fails if the file no longer has it."""
    assert old in text, f"the deploy file no longer has {old!r}"
    return text.replace(old, new)


def nginx_conf(srv: Served, root: Path, port: int, *, prefix: str = "") -> Path:
    """deploy/nginx/runner.conf with test ports, a local certificate and a 2 s read timeout."""
    cert, key, _ = tls.self_signed(root / "tls")
    upstream = srv.url.removeprefix("http://")
    site = (DEPLOY / "nginx" / "runner.conf").read_text()
    site = _swap(site, "server 127.0.0.1:8080;", f"server {upstream};")
    site = _swap(site, "listen 443 ssl;", f"listen 127.0.0.1:{port} ssl;")
    site = _swap(site, "/etc/letsencrypt/live/runner.example.com/fullchain.pem", str(cert))
    site = _swap(site, "/etc/letsencrypt/live/runner.example.com/privkey.pem", str(key))
    site = _swap(site, "proxy_read_timeout 75s;", f"proxy_read_timeout {2 * HEARTBEAT:g}s;")
    if prefix:
        site = _swap(site, "location / {", f"location {prefix} {{")
        site = _swap(site, "proxy_pass http://runner;", "proxy_pass http://runner/;")
    (root / "runner.conf").write_text(site)
    conf = root / "nginx.conf"
    temp = " ".join(f"{k}_temp_path {root}/{k};" for k in ("client_body", "proxy", "fastcgi",
                                                          "uwsgi", "scgi"))  # fmt: skip
    conf.write_text(
        f"daemon off; worker_processes 1; pid {root}/nginx.pid; error_log {root}/error.log;\n"
        f"{'user root;' if os.geteuid() == 0 else ''}\n"
        f"events {{ worker_connections 64; }}\n"
        f"http {{ access_log {root}/access.log; {temp} include {root}/runner.conf; }}\n"
    )
    return cert


@pytest.fixture
def front(tmp_path: Path) -> Iterator[Callable[..., tuple[str, Path]]]:
    """Factory: ``front("caddy"|"nginx", srv)`` → (its https URL, the CA to trust)."""
    procs: list[subprocess.Popen[bytes]] = []

    def start(kind: str, srv: Served, prefix: str = "") -> tuple[str, Path]:
        port = free_port()
        root = tmp_path / f"{kind}{len(procs)}"
        root.mkdir()
        if kind == "nginx":
            if not Path(NGINX).exists():
                pytest.fail("nginx is not installed: run scripts/tools.sh (make test does)")
            ca = nginx_conf(srv, root, port, prefix=prefix)
            cmd, env = [NGINX, "-c", str(root / "nginx.conf"), "-p", str(root)], None
        else:
            if not Path(CADDY).exists():
                pytest.fail("caddy is not installed: run scripts/tools.sh (make test does)")
            # Global options for a test: internal CA instead of ACME, no admin endpoint, no
            # trust store touched, storage in the test's folder; then the shipped site.
            (root / "Caddyfile").write_text(
                f"{{\n\tadmin off\n\tlocal_certs\n\tskip_install_trust\n"
                f"\tauto_https disable_redirects\n\thttp_port {free_port()}\n"
                f"\thttps_port {port}\n\tstorage file_system {root}/data\n}}\n"
                f"import {DEPLOY / 'caddy' / 'Caddyfile'}\n"
            )
            env = {**os.environ, "HOME": str(root), "XDG_DATA_HOME": str(root / "xdg"),
                   "XDG_CONFIG_HOME": str(root / "xdg"), "RUNNER_DOMAIN": "localhost",
                   "RUNNER_UPSTREAM": srv.url.removeprefix("http://"),
                   "RUNNER_READ_TIMEOUT": f"{2 * HEARTBEAT:g}s"}  # fmt: skip
            cmd = [CADDY, "run", "--config", str(root / "Caddyfile"), "--adapter", "caddyfile"]
            ca = root / "data" / "pki" / "authorities" / "local" / "root.crt"
        proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        procs.append(proc)
        wait_listening(port, proc)
        deadline = time.monotonic() + 10
        while not ca.exists():
            assert time.monotonic() < deadline, "no certificate"
            time.sleep(0.05)
        url = f"https://localhost:{port}"
        _wait_handshake(url, ca, deadline)
        return url, ca

    yield start
    for proc in procs:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)
        if proc.stderr is not None:
            proc.stderr.close()


def _wait_handshake(url: str, ca: Path, deadline: float) -> None:
    """Caddy writes its CA first and issues the site's certificate a moment later; until
    then a handshake fails with an internal-error alert. Wait for one to succeed."""
    trust = ssl.create_default_context(cafile=str(ca))
    while True:
        try:
            httpx.get(url + "/_health", verify=trust, timeout=2)
            return
        except httpx.ConnectError:
            assert time.monotonic() < deadline, "the front never completed a TLS handshake"
            time.sleep(0.1)


def _client(url: str, ca: Path) -> httpx.Client:
    # From 127.0.0.2: an address the front is not, so the record shows whose it kept.
    trust = ssl.create_default_context(cafile=str(ca))
    transport = httpx.HTTPTransport(verify=trust, local_address="127.0.0.2")
    return httpx.Client(base_url=url, transport=transport, timeout=30)


def _timed(c: httpx.Client, path: str, headers: dict[str, str], out: dict[str, Any]) -> None:
    t0 = time.monotonic()
    with c.stream("POST", path, headers=headers) as r:
        out["status"] = r.status_code
        out["run_id"] = r.headers.get("x-run-id")
        text = ""
        for chunk in r.iter_text():
            if "first" not in out and chunk.strip():
                out["first"] = time.monotonic() - t0
                out["first_chunk"] = chunk
            text += chunk
    out["end"] = time.monotonic() - t0
    out["text"] = text


@pytest.mark.parametrize("kind", ["caddy", "nginx"])
def test_streams_pass_the_front_live_survive_silence_and_keep_the_client_address(
    serve, front, kind
):
    """A 5 s run, silent for 5 heartbeats after its first line, followed over SSE and as
    text at once: first event and first line within a second, both streams to the end."""
    srv = serve(tls=False, heartbeat=HEARTBEAT, trusted_proxies=("127.0.0.1",))
    url, ca = front(kind, srv)
    sse: dict[str, Any] = {}
    text: dict[str, Any] = {}
    with _client(url, ca) as c:
        threads = [
            threading.Thread(target=_timed, args=(c, "/py/sleep?seconds=5&key=a",
                             {"Accept": "text/event-stream"}, sse)),
            threading.Thread(target=_timed, args=(c, "/py/sleep?seconds=5&key=b", {}, text)),
        ]  # fmt: skip
        for t in threads:
            t.start()
        for t in threads:
            t.join(30)
        with srv.client() as direct:
            record = wait_final(direct, text["run_id"])
    assert sse["status"] == text["status"] == 200
    assert sse["first"] < 1.5 < 4.5 < sse["end"], sse
    assert "event: run" in sse["first_chunk"]
    assert "event: done" in sse["text"] and '"state": "succeeded"' in sse["text"]
    assert text["first"] < 1.5 < 4.5 < text["end"], text
    assert text["first_chunk"].startswith("start ")
    lines = text["text"].splitlines()
    assert "state=succeeded" in lines[-1]
    assert sum("still running" in line for line in lines) >= 2
    assert record["trigger"]["address"] == "127.0.0.2"


def test_the_web_page_works_under_a_sub_path_of_the_nginx_front(serve, front, page):
    """nginx mounting the runner at /runner/: the page, its scripts, a run started from
    its form and the live log all work there (every URL the page uses is relative)."""
    srv = serve(tls=False, trusted_proxies=("127.0.0.1",))
    url, _ = front("nginx", srv, prefix="/runner/")
    page.goto(f"{url}/runner/#/job/py/lines")
    page.fill("#f-n", "3")
    page.click("button[type=submit]")
    page.wait_for_selector("text=state=succeeded")
    assert page.url.startswith(f"{url}/runner/#/run/")
    assert page.inner_text("pre.log").splitlines()[:3] == ["line 1", "line 2", "line 3"]
    page.click("text=History")
    page.wait_for_selector("table.runs tbody tr")
