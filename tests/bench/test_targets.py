"""The bench's verdicts: every table row carries its target and whether it was met, rows of
scenarios that did not run are left out, and the markdown table agrees with the JSON."""

from __future__ import annotations

from typing import Any

from bench.cross_instance import compare
from bench.run import cross_instance_lines, markdown
from bench.targets import Row, evaluate, verdict


def percentiles(p50: float, p99: float) -> dict[str, float]:
    return {"p50": p50, "p95": p50, "p99": p99}


def query(ratio: float) -> dict[str, Any]:
    timing = {"rps": 1000.0, "p50_ms": 1.0, "p99_ms": 2.0}
    return {"graphql": timing, "baseline": timing, "ratio": ratio}


def streaming_run(first: dict[str, float], later: dict[str, float]) -> dict[str, Any]:
    return {
        "added_first_token_ms": first,
        "added_later_token_ms": later,
        "direct_ttft_ms": percentiles(200, 205),
        "direct_gap_ms": percentiles(20, 21),
    }


def idle(ready: int, kib: float) -> dict[str, Any]:
    return {"requested": ready, "ready": ready, "kib_per_connection": kib}


def fabricated() -> dict[str, Any]:
    return {
        "query_path": {
            "me": query(0.65),
            "conversations(first: 20)": query(0.45),  # under 0.5
            "messages(last: 50)": query(0.5),
        },
        "streaming": {
            # The http relay adds 2.0/2.8: the targets are 2.5 and 5.8.
            "1": streaming_run(percentiles(2.4, 6.0), percentiles(1.0, 9.0)),
            "50": streaming_run(percentiles(3.0, 20.0), percentiles(2.0, 26.0)),
            "50_burst": streaming_run(percentiles(9.0, 90.0), percentiles(5.0, 60.0)),
        },
        "reference_relays": {
            "added_first_token_ms": {"http": percentiles(2.0, 2.8), "tcp": percentiles(0.5, 0.1)}
        },
        "capacity": {
            "idle_1000": idle(1000, 19.5),
            "streaming_1000": {"complete": 1000, "failed": 0},
            "largest_idle": idle(8000, 18.0),  # the ladder stopped short of 10,000
        },
        "login": {
            "logins_per_second": 30.0,
            "login_ms": percentiles(30, 60),
            "me_ms_alone": percentiles(1, 3),
            "me_ms_during_logins": percentiles(5, 49.9),
        },
    }


def by_row(rows: list[Row]) -> dict[str, Row]:
    return {row["row"]: row for row in rows}


def test_every_row_carries_its_target_and_verdict() -> None:
    rows = by_row(evaluate(fabricated()))
    verdicts = {name: row["pass"] for name, row in rows.items()}
    assert verdicts == {
        "`me` req/s vs its Starlette baseline": True,
        "`conversations(first: 20)` req/s vs its Starlette baseline": False,
        "`messages(last: 50)` req/s vs its Starlette baseline": True,
        "added first-token ms, 1 reply": False,  # p99 6.0 > 2.8 + 3
        "added later-token ms, 1 reply": True,
        "added first-token ms, 50 concurrent replies": True,
        "added later-token ms, 50 concurrent replies": False,  # p99 26 > 25
        "added first-token ms, 50 replies sent at one instant": None,
        "added later-token ms, 50 replies sent at one instant": None,
        "reference relay 'http': added first-token ms, 1 reply": None,
        "reference relay 'tcp': added first-token ms, 1 reply": None,
        "idle subscriptions: KiB each at 1,000": True,
        "idle subscriptions: largest N in 2 min": False,
        "1,000 concurrent streaming replies": True,
        "login (default argon2)": None,
        "`me` p99 during a login burst": True,
    }
    assert rows["idle subscriptions: KiB each at 1,000"]["target"] == "≤ 20 KiB"
    assert rows["idle subscriptions: largest N in 2 min"]["measured"] == 8000


def test_first_token_is_judged_against_the_same_runs_http_relay() -> None:
    results = fabricated()
    one = results["streaming"]["1"]
    one["added_first_token_ms"] = percentiles(2.5, 5.8)  # exactly relay + 0.5 and + 3
    row = by_row(evaluate(results))["added first-token ms, 1 reply"]
    assert row["pass"] is True
    assert row["target"] is not None
    assert "p50 ≤ 2.5" in row["target"]
    one["added_first_token_ms"] = percentiles(2.51, 1.0)  # p50 over by a hair
    assert by_row(evaluate(results))["added first-token ms, 1 reply"]["pass"] is False
    del results["reference_relays"]  # no relay measured: no verdict, rather than a guess
    row = by_row(evaluate(results))["added first-token ms, 1 reply"]
    assert row["pass"] is None


def test_scenarios_that_did_not_run_are_left_out() -> None:
    results = fabricated()
    del results["query_path"], results["login"]
    results["cross_instance"] = {"skipped": "no Redis"}
    names = set(by_row(evaluate(results)))
    assert not any("req/s" in name or "login" in name for name in names)
    assert not any("instance" in name for name in names)
    assert "idle subscriptions: KiB each at 1,000" in names
    assert evaluate({}) == []


def paired_run(replies: int, complete: int) -> dict[str, Any]:
    """A cross-instance run as `bench.cross_instance.compare` makes it from the stream client's
    output (so the rows read the keys the scenario really writes)."""
    return compare(
        {
            "ttft": [200.0] * replies,
            "ttft_pair": [200.8] * replies,
            "gaps": [20.0] * replies,
            "gaps_pair": [20.1] * replies,
            "complete": complete,
            "failed": 0,
        }
    )


def test_cross_instance_rows_need_every_seq_once() -> None:
    cluster = {
        "1": paired_run(1, 1),
        "50": paired_run(50, 49),  # one reply missed a seq
        "both_ways": {"replies": 100, "every_seq_once": 100, "failed": 0},
        "redis_commands": {"per_delta": 1.0},
    }
    rows = by_row(evaluate({"cross_instance": cluster}))
    assert rows["follower on B vs on A, 1 reply"]["pass"] is True
    assert rows["follower on B vs on A, 50 concurrent replies"]["pass"] is False
    assert rows["replies over two instances, followers on the other"]["pass"] is True
    lines = cross_instance_lines(rows, cluster)
    assert any("49/50 every seq once" in line for line in lines)


def test_the_markdown_table_shows_the_same_verdicts() -> None:
    results = fabricated()
    table = markdown(results, evaluate(results))
    lines = {line.split(" | ")[0].lstrip("| "): line for line in table.splitlines()}
    assert lines["idle subscriptions: largest N in 2 min"].endswith("| ≥ 10,000 | **FAIL** |")
    assert lines["idle subscriptions: KiB each at 1,000"].endswith("| ≤ 20 KiB | pass |")
    no_verdict = f"| {verdict(None)} |"
    assert lines["login (default argon2)"].endswith(no_verdict)
    assert lines["cross-instance"].endswith(no_verdict)  # not run
