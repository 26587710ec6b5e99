"""Real fronts on loopback: nginx (Debian's, installed by scripts/tools.sh) before a runner."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.conftest import Served

NGINX = shutil.which("nginx") or "/usr/sbin/nginx"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_listening(port: int, proc: subprocess.Popen[bytes], within: float = 10) -> None:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        assert proc.poll() is None, "the front exited at start"
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise AssertionError(f"nothing listens on {port}")


@pytest.fixture
def nginx(tmp_path: Path) -> Iterator[Callable[..., str]]:
    """Factory: nginx on a loopback port in front of a runner; returns its URL.

    ``nginx(srv, "proxy_read_timeout 5s;")`` adds directives to the location.
    """
    if not Path(NGINX).exists():
        pytest.fail("nginx is not installed: run scripts/tools.sh (make test does)")
    procs: list[subprocess.Popen[bytes]] = []

    def start(srv: Served, *directives: str) -> str:
        port = free_port()
        root = tmp_path / f"nginx{len(procs)}"
        root.mkdir()
        upstream = srv.url.removeprefix("https://")
        conf = root / "nginx.conf"
        conf.write_text(
            f"""
daemon off;
worker_processes 1;
{"user root;" if os.geteuid() == 0 else ""}
pid {root}/nginx.pid;
error_log {root}/error.log info;
events {{ worker_connections 64; }}
http {{
    access_log {root}/access.log;
    client_body_temp_path {root}/body;
    proxy_temp_path {root}/proxy;
    fastcgi_temp_path {root}/fastcgi;
    uwsgi_temp_path {root}/uwsgi;
    scgi_temp_path {root}/scgi;
    server {{
        listen 127.0.0.1:{port};
        location / {{
            proxy_pass https://{upstream};
            proxy_ssl_trusted_certificate {srv.cacert};
            proxy_ssl_verify on;
            proxy_ssl_name localhost;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
            {" ".join(directives)}
        }}
    }}
}}
"""
        )
        proc = subprocess.Popen(
            [NGINX, "-c", str(conf), "-p", str(root)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        procs.append(proc)
        wait_listening(port, proc)
        return f"http://127.0.0.1:{port}"

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


from tests.ui.conftest import browser, page  # noqa: E402  (the sub-path test's browser)

__all__ = ["browser", "page"]
