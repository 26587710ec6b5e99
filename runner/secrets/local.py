"""Secrets on this host: ``env:NAME`` (an environment variable) and ``file:PATH``."""

from __future__ import annotations

import logging
import stat
from collections.abc import Mapping
from pathlib import Path

from runner.errors import ConfigError
from runner.secrets.value import Secret

log = logging.getLogger("runner.secrets")

# A secret file is a token or a key, not a document: refuse to slurp a wrong path's 2 GB.
MAX_SECRET_FILE = 64 * 1024


def read_local(spec: str, environ: Mapping[str, str], *, base_dir: Path | None = None) -> Secret:
    """Read the secret that ``spec`` (``"env:NAME"`` or ``"file:PATH"``) points to.

    A file's one trailing newline (``echo`` and editors add it) is removed; a relative
    path is taken from ``base_dir`` (the folder of ``runner.toml``) when given. A file that
    other users may read is used, with a warning. Every failure is a :class:`ConfigError`
    that names the source and never contains the value.
    """
    kind, sep, where = spec.partition(":")
    if kind == "keyvault" and sep:
        # Callers that can follow a reference use SecretSources (runtime.secrets) instead.
        raise ConfigError(f"secret {spec}: this setting takes env:NAME or file:PATH only")
    if not sep or kind not in ("env", "file") or not where:
        raise refused_literal()
    if kind == "env":
        value = environ.get(where)
        if value is None:
            raise ConfigError(f"secret env:{where}: the environment variable {where} is not set")
        return Secret(value, source=spec)
    return Secret(_read_file(Path(where), spec, base_dir), source=spec)


def _read_file(path: Path, spec: str, base_dir: Path | None) -> bytes:
    if not path.is_absolute() and base_dir is not None:
        path = base_dir / path
    try:
        info = path.stat()
        if not stat.S_ISREG(info.st_mode):
            raise ConfigError(f"secret {spec}: {path} is not a regular file")
        if info.st_size > MAX_SECRET_FILE:
            raise ConfigError(f"secret {spec}: {path} is larger than {MAX_SECRET_FILE} bytes")
        raw = path.read_bytes()
    except FileNotFoundError:
        raise ConfigError(f"secret {spec}: no such file {path}") from None
    except PermissionError:
        raise ConfigError(f"secret {spec}: {path} is not readable by this user") from None
    except IsADirectoryError:
        raise ConfigError(f"secret {spec}: {path} is a directory") from None
    if info.st_mode & stat.S_IROTH:
        log.warning("secret %s: %s is readable by every user; chmod o-r it", spec, path)
    if raw.endswith(b"\r\n"):
        raw = raw[:-2]
    elif raw.endswith(b"\n"):
        raw = raw[:-1]
    return raw


def refused_literal() -> ConfigError:
    """The error for a source that is none of the forms: never echoing it, since a refused
    source is most often the secret itself, pasted in literally."""
    return ConfigError(
        "a secret must be given as 'env:NAME' or 'file:PATH' (or "
        "'keyvault:https://VAULT.vault.azure.net/secrets/NAME'), not as a literal value "
        "in the configuration"
    )
