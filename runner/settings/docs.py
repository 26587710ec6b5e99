"""The settings table of README.md, made from the Settings definition so it cannot drift.

``python -m runner.settings.docs README.md`` rewrites the table between its markers;
tests/test_settings_docs.py fails when README's table differs from this one.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from runner.settings.sections import SECTIONS

START = "<!-- settings table: made by `python -m runner.settings.docs README.md` -->"
END = "<!-- end of settings table -->"


def _default(value: Any) -> str:
    if value is None:
        return "–"
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, tuple):
        return "[]" if not value else ", ".join(map(str, value))
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def table() -> str:
    """Markdown: one row per key, by section, with its variable, default and meaning."""
    rows = ["| key (runner.toml) | environment | default | what |", "|---|---|---|---|"]
    for section, model in SECTIONS.items():
        for name, info in model.model_fields.items():
            if info.exclude:
                continue
            key = info.alias or name
            what = (info.description or "").replace("|", "\\|")
            rows.append(
                f"| `{key}` | `RUNNER_{key.upper()}` | `{_default(info.default)}` | "
                f"{what} ({section}) |"
            )
    return "\n".join(rows)


def rewrite(readme: Path) -> bool:
    """Put the current table into ``readme``; True if it changed."""
    text = readme.read_text()
    head, _, rest = text.partition(START)
    _, _, tail = rest.partition(END)
    if not rest:
        raise SystemExit(f"{readme}: no settings table markers")
    new = f"{head}{START}\n{table()}\n{END}{tail}"
    readme.write_text(new)
    return new != text


if __name__ == "__main__":
    print("rewritten" if rewrite(Path(sys.argv[1])) else "up to date")
