"""Figures of a benchmark: one measured number, its target and who measured it; the table."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

# -- figures ---------------------------------------------------------------------------


@dataclass
class Figure:
    """One measured number, with what it is compared to and who measured it."""

    part: str
    what: str
    value: float
    unit: str
    client: str
    target: float | None = None
    higher_is_better: bool = True
    note: str = ""

    @property
    def ok(self) -> bool | None:
        if self.target is None:
            return None
        return self.value >= self.target if self.higher_is_better else self.value <= self.target

    def to_json(self) -> dict[str, Any]:
        return {**asdict(self), "ok": self.ok}


def fmt_value(value: float, unit: str) -> str:
    if unit in ("runs/s", "lines/s", "req/s", "µs/run"):
        return f"{value:,.0f} {unit}"
    if unit == "ms":
        return f"{value:.2f} ms"
    if unit == "×":
        return f"{value:.2f}×"
    if unit == "KiB":
        return f"{value:,.1f} KiB"
    return f"{value:g} {unit}"


def print_table(figures: list[Figure]) -> None:
    rows = [("part", "figure", "value", "target", "ok", "client", "note")]
    for f in figures:
        target = ""
        if f.target is not None:
            target = ("≥ " if f.higher_is_better else "≤ ") + fmt_value(f.target, f.unit)
        ok = {None: "", True: "yes", False: "NO"}[f.ok]
        rows.append((f.part, f.what, fmt_value(f.value, f.unit), target, ok, f.client, f.note))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    for n, row in enumerate(rows):
        print("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip())
        if n == 0:
            print("  ".join("-" * w for w in widths))


def percentile(values: list[float], q: float) -> float:
    """The q-th percentile (0–100) by nearest rank; values need not be sorted."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    rank = max(0, min(len(ordered) - 1, round(q / 100 * len(ordered) + 0.5) - 1))
    return ordered[rank]
