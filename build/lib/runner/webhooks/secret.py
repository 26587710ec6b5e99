"""Webhook secrets: read from the environment or a file, never shown.

``runner.toml`` names a secret by where it lives (``"env:NAME"`` or ``"file:PATH"``), never
by value: a literal in a config file ends up in backups and diffs. The :class:`Secret`
wrapper keeps the value out of ``repr``, ``str``, logs and tracebacks; only ``reveal()``
gives it, at the point an HMAC key is needed.
"""

from __future__ import annotations

import base64
import binascii
import logging
import stat
from collections.abc import Mapping
from pathlib import Path

from runner.errors import ConfigError

log = logging.getLogger(__name__)

# A secret file is a token or a key, not a document: refuse to slurp a wrong path's 2 GB.
MAX_SECRET_FILE = 64 * 1024


class Secret:
    """A secret value and where it came from; ``repr`` and ``str`` show only the source."""

    __slots__ = ("_value", "source")

    def __init__(self, value: bytes | str, *, source: str = "inline") -> None:
        raw = value.encode("utf-8") if isinstance(value, str) else bytes(value)
        if not raw:
            raise ConfigError(f"the secret from {source} is empty")
        self._value = raw
        self.source = source

    def reveal(self) -> bytes:
        """The secret's bytes, for computing or comparing an HMAC; never log them."""
        return self._value

    def __repr__(self) -> str:
        return f"Secret(source={self.source!r})"

    def __str__(self) -> str:
        return f"<secret from {self.source}>"

    def __reduce__(self) -> tuple[object, ...]:
        # Pickling would copy the value into a queue, a cache or a crash dump.
        raise TypeError("a Secret cannot be pickled")

    # Immutable, so a copy is itself; this keeps copy.deepcopy and dataclasses.asdict of
    # the settings working without going through pickling's __reduce__.
    def __copy__(self) -> Secret:
        return self

    def __deepcopy__(self, memo: dict[int, object]) -> Secret:
        return self


def load_secret(spec: str, environ: Mapping[str, str], *, base_dir: Path | None = None) -> Secret:
    """Read the secret that ``spec`` (``"env:NAME"`` or ``"file:PATH"``) points to.

    A file's one trailing newline (``echo`` and editors add it) is removed; a relative
    path is taken from ``base_dir`` (the folder of ``runner.toml``) when given. A file that
    other users may read is used, with a warning. Every failure is a :class:`ConfigError`
    that names the source and never contains the value.
    """
    kind, sep, where = spec.partition(":")
    if not sep or kind not in ("env", "file") or not where:
        # Never echo ``spec``: a refused spec is most often the secret pasted in literally.
        raise ConfigError(
            "a webhook secret must be given as 'env:NAME' or 'file:PATH', "
            "not as a literal value in the configuration"
        )
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


def base64_key(secret: Secret, text: bytes, *, what: str) -> bytes:
    """A non-empty key decoded from base64 ``text`` (padding optional), or a ConfigError
    naming the secret's source and ``what`` it should be — never the value."""
    try:
        key = base64.b64decode(text + b"=" * (-len(text) % 4), validate=True)
    except binascii.Error:
        raise ConfigError(f"secret {secret.source}: {what}") from None
    if not key:
        raise ConfigError(f"secret {secret.source}: the key is empty")
    return key
