"""Log lines' timestamps: ISO 8601 in UTC to the millisecond, right across seconds."""

from __future__ import annotations

from runner.logs import iso


def test_timestamps_are_right_when_lines_cross_a_second_and_come_out_of_order():
    """The formatted second is kept from line to line: a line of the next second, or of
    an earlier one (a thread's line logged late), still shows its own second."""
    base = 1_764_588_762.0  # 2025-12-01T11:32:42Z
    assert iso(base + 0.765) == "2025-12-01T11:32:42.765Z"
    assert iso(base + 0.999) == "2025-12-01T11:32:42.999Z"
    assert iso(base + 1.25) == "2025-12-01T11:32:43.250Z"
    assert iso(base + 0.5) == "2025-12-01T11:32:42.500Z"
    assert iso(base + 86_400 + 0.001).startswith("2025-12-02T11:32:42.00")
