"""A throwaway PostgreSQL 15 for tests and benchmarks: ``initdb`` into a temp dir, a
server listening on its Unix socket only (no TCP port at all), torn down after.

PostgreSQL refuses to run as root: as root (CI, this machine) the cluster runs as the
``postgres`` user that Debian's package creates; otherwise as whoever runs the tests.
The server binaries come from ``scripts/tools.sh`` (Debian's ``postgresql-15``).
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

BIN = Path(os.environ.get("RUNNER_PG_BIN", "/usr/lib/postgresql/15/bin"))
PORT = 5432  # only names the socket file (.s.PGSQL.5432): nothing listens on TCP
SUPERUSER = "runner_admin"


@dataclass(frozen=True)
class Cluster:
    """A running throwaway server: its socket folder and how to reach a database."""

    socket_dir: Path
    data_dir: Path

    def url(self, database: str = "postgres", user: str = SUPERUSER) -> str:
        """A ``postgresql://`` URL over the Unix socket."""
        return f"postgresql://{user}@/{database}?host={self.socket_dir}&port={PORT}"

    def psql(self, sql: str, database: str = "postgres") -> str:
        """Run SQL as the superuser and return psql's unaligned output."""
        out = subprocess.run(
            [str(BIN / "psql"), "-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1",
             "-h", str(self.socket_dir), "-p", str(PORT), "-U", SUPERUSER, "-d", database,
             "-c", sql],
            capture_output=True, text=True, check=False, timeout=60,
        )  # fmt: skip
        if out.returncode != 0:
            raise RuntimeError(f"psql failed: {out.stderr.strip()}")
        return out.stdout.strip()

    def create_database(self, name: str) -> str:
        """A fresh empty database; its URL."""
        self.psql(f'CREATE DATABASE "{name}"')
        return self.url(name)


def available() -> bool:
    return (BIN / "initdb").exists() and (BIN / "postgres").exists()


def _as_postgres() -> tuple[int, int] | None:
    """(uid, gid) to run the server as when we are root, else None (run as ourselves)."""
    if os.geteuid() != 0:
        return None
    entry = pwd.getpwnam("postgres")
    return entry.pw_uid, entry.pw_gid


def _run(cmd: list[str], ids: tuple[int, int] | None, **kw: object) -> subprocess.Popen[str]:
    def demote() -> None:  # pragma: no cover - runs in the child
        if ids is not None:
            os.setgid(ids[1])
            os.setuid(ids[0])

    return subprocess.Popen(cmd, preexec_fn=demote, text=True, **kw)  # type: ignore[call-overload]


@contextlib.contextmanager
def running(*, settings: dict[str, str] | None = None) -> Iterator[Cluster]:
    """Start a cluster for the ``with`` block; stop it and delete its files after."""
    if not available():
        raise RuntimeError(f"no PostgreSQL server binaries in {BIN}: run scripts/tools.sh")
    ids = _as_postgres()
    # Short path: a Unix socket's path must fit in 107 bytes.
    root = Path(tempfile.mkdtemp(prefix="rpg-"))
    data, sock = root / "data", root / "sock"
    data.mkdir()
    sock.mkdir()
    if ids is not None:
        for path in (root, data, sock):
            os.chown(path, *ids)
    root.chmod(0o755)
    proc: subprocess.Popen[str] | None = None
    try:
        init = _run(
            [str(BIN / "initdb"), "-D", str(data), "-U", SUPERUSER, "--auth=trust",
             "-E", "UTF8", "--locale=C.UTF-8", "--no-sync"],
            ids, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        )  # fmt: skip
        out, _ = init.communicate(timeout=120)
        if init.returncode != 0:
            raise RuntimeError(f"initdb failed: {out}")
        conf = {
            "listen_addresses": "''",  # the socket only
            "unix_socket_directories": f"'{sock}'",
            "port": str(PORT),
            "fsync": "off",  # a throwaway cluster: durability is not under test
            "synchronous_commit": "off",
            "full_page_writes": "off",
            "max_connections": "200",
            "shared_buffers": "64MB",
            **(settings or {}),
        }
        with open(data / "postgresql.conf", "a") as fh:
            fh.writelines(f"{key} = {value}\n" for key, value in conf.items())
        with open(root / "server.log", "w") as log:
            if ids is not None:
                os.chown(root / "server.log", *ids)
            proc = _run([str(BIN / "postgres"), "-D", str(data)], ids, stdout=log, stderr=log)
        cluster = Cluster(sock, data)
        _wait_ready(cluster, proc, root / "server.log")
        yield cluster
    finally:
        if proc is not None:
            proc.terminate()  # smart shutdown would wait for clients: SIGINT is "fast"
            with contextlib.suppress(ProcessLookupError):
                proc.send_signal(2)
            try:
                proc.wait(20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5)
        shutil.rmtree(root, ignore_errors=True)


def _wait_ready(cluster: Cluster, proc: subprocess.Popen[str], log: Path) -> None:
    deadline = time.monotonic() + 30
    while not (cluster.socket_dir / f".s.PGSQL.{PORT}").exists():
        if proc.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(f"PostgreSQL did not start: {log.read_text()[-2000:]}")
        time.sleep(0.05)
    while True:
        try:
            cluster.psql("SELECT 1")
            return
        except RuntimeError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)
