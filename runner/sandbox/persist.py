"""What a sandbox keeps in its state directory so that a restart looks like the same Azure.

Ports and the App Service / Cloud Shell secrets are saved in ``listen.json``: an azure-cli
configuration (``az cloud register``) or an exported ``IDENTITY_HEADER`` made for one run
of a state directory stays valid for the next (issue 12, item 7).
"""

from __future__ import annotations

import json
import logging
import secrets
import socket
from dataclasses import asdict, dataclass, replace
from pathlib import Path

from .listeners import bind

__all__ = ["Saved", "bind_saved", "load", "save"]

log = logging.getLogger(__name__)
_FILE = "listen.json"


@dataclass(frozen=True)
class Saved:
    """Ports (0: not chosen yet) and endpoint secrets of one state directory."""

    arm_port: int
    identity_port: int
    app_service_secret: str
    msi_secret: str
    vault_port: int = 0

    def __repr__(self) -> str:
        return (
            f"Saved(arm_port={self.arm_port}, identity_port={self.identity_port}, "
            f"vault_port={self.vault_port})"
        )


def load(state_dir: Path) -> Saved:
    """The saved values, or new secrets and unchosen ports for a new state directory."""
    try:
        raw = json.loads((state_dir / _FILE).read_text(encoding="utf-8"))
        return Saved(
            int(raw["arm_port"]),
            int(raw["identity_port"]),
            str(raw["app_service_secret"]),
            str(raw["msi_secret"]),
            int(raw.get("vault_port", 0)),
        )
    except (OSError, ValueError, KeyError, TypeError):
        return Saved(0, 0, secrets.token_urlsafe(24), secrets.token_urlsafe(24))


def save(state_dir: Path, saved: Saved) -> None:
    """Write the values (owner-only: they include the secrets)."""
    path = state_dir / _FILE
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(asdict(saved), indent=1), encoding="utf-8")
    tmp.chmod(0o600)
    tmp.replace(path)


def bind_saved(saved: Saved, which: str) -> tuple[socket.socket, Saved]:
    """Bind the saved port of ``which`` (``arm``/``identity``/``vault``), or a free one."""
    port: int = getattr(saved, f"{which}_port")
    try:
        sock = bind(port)
    except OSError as exc:
        # Another process holds it: serve anyway; clients configured for the old port
        # must be set up again, which the printed instructions say.
        log.warning("sandbox %s port %d unavailable (%s): using a new one", which, port, exc)
        sock = bind(0)
    return sock, replace(saved, **{f"{which}_port": sock.getsockname()[1]})
