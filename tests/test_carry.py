"""A secret across the 64 KiB cut of a long line is masked like any other (issue 15, 1)."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from runner.output import MASK, Carry, Mask
from tests.conftest import wait_final

TOKEN = "tok-3f9a8b7c6d5e4f"


def test_a_script_line_longer_than_the_cut_shows_no_secret_and_no_broken_character(serve):
    srv = serve()
    with srv.client() as c:
        run_id = c.post("/sh/longsecret", data={"token": TOKEN}).headers["x-run-id"]
        assert wait_final(c, run_id)["state"] == "succeeded"
        events = [e for e in _events(c, run_id) if e["event"] == "output"]
    text = "".join(e["data"] for e in events)
    assert TOKEN not in text
    first = "x" * 65530 + MASK + "y" * 100
    second = "z" * 65535 + "é and the rest"
    assert text == first + second
    assert "\ufffd" not in text
    assert all(len(e["data"]) <= 65536 + len(TOKEN) for e in events)


def _events(c, run_id: str) -> list[dict]:
    from tests.conftest import parse_sse

    return parse_sse(c.get(f"/_runs/{run_id}/events").text)


@given(
    prefix=st.text(alphabet="ab", max_size=40),
    suffix=st.text(alphabet="ab", max_size=40),
    cuts=st.lists(st.integers(min_value=1, max_value=12), max_size=12),
)
def test_pieces_cut_anywhere_are_masked_as_the_whole_line_is(prefix, suffix, cuts):
    """Whatever the cuts, the pieces shown join to the whole line masked, with no secret
    (nor two overlapping secrets) left whole."""
    mask = Mask(["abba", "secret-value", "bab"])
    line = prefix + "secret-value" + suffix
    carry = Carry(mask)
    shown, rest = [], line
    for size in cuts:
        if len(rest) <= size:
            break
        shown.append(carry.feed(rest[:size], last=False))
        rest = rest[size:]
    shown.append(carry.feed(rest, last=True))
    assert "".join(shown) == mask(line)
    assert carry.held == ""
