"""Logging: one line per lifecycle step; JSON when stderr is not a terminal.

``log_level`` is a level, then optional ``logger=level`` pairs: ``info``,
``info,azure=debug``, ``warning,runner.access=info``. The Azure SDK logs every HTTP
request with its headers at INFO (36 of a VM creation's 328 terminal lines, 40 of 81
server lines in issue 11), so its loggers stay at WARNING unless the spec is plain
``debug`` or names them.
"""

from __future__ import annotations

import json
import logging
import sys
import time
from typing import Any

# Attributes a LogRecord has anyway; anything else passed in ``extra`` is a field.
_STANDARD = set(vars(logging.LogRecord("", 0, "", 0, "", (), None))) | {"message", "asctime"}
LEVELS = ("debug", "info", "warning", "error", "critical")
# Chatty below WARNING: the SDK's HTTP lines, and uvicorn's access log (ours replaces it).
QUIET = ("azure", "uvicorn.access")


def parse_level(spec: str) -> tuple[str, dict[str, str]]:
    """``"info,azure=debug"`` → ("info", {"azure": "debug"}); ValueError in words."""
    parts = [p.strip() for p in spec.lower().split(",") if p.strip()]
    if not parts or "=" in parts[0] or parts[0] not in LEVELS:
        raise ValueError(
            f"log_level {spec!r}: start with one of {', '.join(LEVELS)}, then optional "
            "logger=level pairs (info,azure=debug)"
        )
    named: dict[str, str] = {}
    for part in parts[1:]:
        name, sep, level = part.partition("=")
        if not sep or not name or level not in LEVELS:
            raise ValueError(f"log_level {spec!r}: {part!r} is not logger=level")
        named[name] = level
    return parts[0], named


_second: tuple[int, str] = (-1, "")  # the last whole second formatted, and its text


def iso(ts: float) -> str:
    """A UTC timestamp people and log tools both read: 2026-12-01T11:12:42.765Z."""
    global _second
    whole, text = _second  # one read: another thread may replace it meanwhile
    if whole != int(ts):
        # Formatted once a second: every run writes a few lines, most in the same second.
        whole = int(ts)
        text = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(whole))
        _second = (whole, text)
    return f"{text}.{int(ts % 1 * 1000):03d}Z"


class JSONFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, and the ``extra`` fields."""

    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "ts": iso(record.created),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        for key, value in record.__dict__.items():
            if key not in _STANDARD:
                out[key] = value
        if record.exc_info:
            out["exc"] = self.formatException(record.exc_info)
        return _ENCODE(out)


# One encoder for every line: json.dumps builds a new one per call when given ``default``.
_ENCODE = json.JSONEncoder(default=str).encode


class TextFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        stamp = time.strftime("%H:%M:%S", time.localtime(record.created))
        line = f"{stamp} {record.levelname.lower():7} {record.getMessage()}"
        if record.exc_info:
            line += "\n" + self.formatException(record.exc_info)
        return line


class RunnerLineFormatter(logging.Formatter):
    """``runner run`` in a terminal: a log line looks like the run's own ``runner:`` lines."""

    def format(self, record: logging.LogRecord) -> str:
        level = "" if record.levelno < logging.WARNING else f"{record.levelname.lower()}: "
        line = f"runner: {level}{record.getMessage()}"
        if record.exc_info:
            line += "\n" + self.formatException(record.exc_info)
        return line


def configure(fmt: str = "auto", level: str = "info", *, job_terminal: bool = False) -> None:
    """Route runner's and uvicorn's logs through one handler on stderr.

    ``job_terminal``: ``runner run``, whose terminal is for the job's output; only
    warnings (as ``runner:`` lines) join it, unless the level spec asks for more.
    """
    # The logging HOWTO's "Optimization" settings: no caller frame lookup, no thread or
    # process fields. A log line per lifecycle step is on every run's path.
    logging.logThreads = False
    logging.logProcesses = False
    logging.logMultiprocessing = False
    setattr(logging, "_srcfile", None)  # noqa: B010 - the documented switch is private
    base, named = parse_level(level)
    tty = sys.stderr.isatty()
    use_json = fmt == "json" or (fmt == "auto" and not tty)
    handler = logging.StreamHandler(sys.stderr)
    if job_terminal and not use_json:
        handler.setFormatter(RunnerLineFormatter())
    else:
        handler.setFormatter(JSONFormatter() if use_json else TextFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    if job_terminal and base != "debug" and not named:
        base = "warning"
    root.setLevel(base.upper())
    for name in QUIET:
        if base != "debug":
            logging.getLogger(name).setLevel(logging.WARNING)
    for name, value in named.items():
        logging.getLogger(name).setLevel(value.upper())
