"""The query path's alternating slices: each side runs as often as the other, in ABBA order
(so a steady drift in the machine's speed falls on both alike), and its slices add up to one
run whose rate is over all of them."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from bench.run import abba, combined


def test_the_sides_alternate_in_abba_order() -> None:
    assert abba(4) == [0, 1, 1, 0, 0, 1, 1, 0]
    assert abba(1) == [0, 1]


@given(st.integers(min_value=1, max_value=50))
def test_a_linear_drift_falls_on_both_sides_alike(slices: int) -> None:
    order = abba(slices)
    assert order.count(0) == order.count(1) == slices
    # The machine slows by one unit per turn: the two sides' totals differ by at most one
    # turn's worth, however many slices (back to back they would differ by slices squared).
    cost = [sum(turn for turn, side in enumerate(order) if side == s) for s in (0, 1)]
    assert abs(cost[0] - cost[1]) <= 1


def slice_of(requests: int, seconds: float, p50: float, p99: float) -> dict[str, float]:
    return {
        "requests": requests,
        "duration_us": seconds * 1e6,
        "errors": 1,
        "bad": 0,
        "p50_ms": p50,
        "p95_ms": p99 / 2,
        "p99_ms": p99,
    }


def test_slices_combine_into_one_run() -> None:
    run = combined(
        [slice_of(2000, 2, 1.0, 5.0), slice_of(1000, 2, 3.0, 9.0), slice_of(3000, 2, 2.0, 4.0)]
    )
    assert run["requests"] == 6000
    assert run["rps"] == 1000.0  # over all 6 s, not the mean of the slices' rates
    assert run["errors"] == 3
    assert run["p50_ms"] == 2.0
    assert run["p99_ms"] == 9.0
    assert run["slices"] == 3
