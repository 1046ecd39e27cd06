"""The bench's targets (issue 27, same-run ratios), evaluated row by row.

`evaluate(results)` turns a run's results into one row per table line: what was measured, the
target in words, and whether it was met (None where a row has no target, or its reference was
not measured). The JSON carries the rows as `results["targets"]` and the markdown table takes
its target and pass columns from them, so the two cannot disagree. Rows whose scenario did not
run (an `--only` subset, a skipped cross-instance phase) are left out."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any, TypedDict

QUERY_RATIOS = {"me": 0.6, "conversations(first: 20)": 0.5, "messages(last: 50)": 0.5}
"""Each query's GraphQL req/s over its Starlette baseline's, at least."""
FIRST_TOKEN_OVER_RELAY = {"p50": 0.5, "p99": 3.0}
"""One reply's added first-token ms, at most the "http" reference relay's plus this."""
RELAY = "http"
IDLE_KIB_AT_1000 = 20.0
LARGEST_IDLE = 10_000
STREAMING_REPLIES = 1000
ME_P99_DURING_LOGINS_MS = 50.0
CROSS_INSTANCE = {"first p50": 1.0, "first p99": 5.0, "later p99": 5.0}
"""A follower on the other instance: added ms over one on the reply's own instance."""


Row = TypedDict("Row", {"row": str, "measured": Any, "target": str | None, "pass": bool | None})
"""One table row: `pass` is None where there is no target (or its reference is missing)."""


def row(name: str, measured: Any, target: str | None = None, passed: bool | None = None) -> Row:
    return {"row": name, "measured": measured, "target": target, "pass": passed}


def query_name(query: str) -> str:
    return f"`{query}` req/s vs its Starlette baseline"


def streaming_names(label: str) -> tuple[str, str]:
    return f"added first-token ms, {label}", f"added later-token ms, {label}"


STREAMING_RUNS = (
    ("1", "1 reply"),
    ("50", "50 concurrent replies"),
    ("50_burst", "50 replies sent at one instant"),
)
IDLE_1000 = "idle subscriptions: KiB each at 1,000"
IDLE_LARGEST = "idle subscriptions: largest N in 2 min"
STREAMING_1000 = "1,000 concurrent streaming replies"
LOGIN = "login (default argon2)"
ME_DURING_LOGINS = "`me` p99 during a login burst"
IMPORT = "import of a 2,000-conversation ChatGPT export"
BOTH_WAYS = "replies over two instances, followers on the other"


def reference_name(relay: str) -> str:
    return f"reference relay {relay!r}: added first-token ms, 1 reply"


def cross_instance_name(label: str) -> str:
    return f"follower on B vs on A, {label}"


def query_rows(query_path: dict[str, Any]) -> Iterator[Row]:
    for query, ratio in QUERY_RATIOS.items():
        if query in query_path:
            measured = query_path[query]["ratio"]
            yield row(query_name(query), measured, f"≥ {ratio}×", measured >= ratio)


def first_token_one_reply(measured: dict[str, float], relay: dict[str, float] | None) -> Row:
    """Relative to the bare Starlette + httpx relay of the same run: what any relay of SSE over
    HTTP costs on this machine is not ours to win back."""
    name = streaming_names("1 reply")[0]
    target = ", ".join(f"{q} ≤ relay {q} + {extra}" for q, extra in FIRST_TOKEN_OVER_RELAY.items())
    if relay is None:
        return row(name, measured, f"{target} (relay not measured)", None)
    limits = {q: round(relay[q] + extra, 3) for q, extra in FIRST_TOKEN_OVER_RELAY.items()}
    shown = ", ".join(f"{q} ≤ {limit}" for q, limit in limits.items())
    passed = all(measured[q] <= limit for q, limit in limits.items())
    return row(name, measured, f"{target} ({shown})", passed)


def at_most(limits: dict[str, float]) -> tuple[str, Callable[[dict[str, float]], bool]]:
    """A target on percentiles: its words, and its check."""
    text = ", ".join(f"{q} ≤ {limit:g}" for q, limit in limits.items())
    return text, lambda measured: all(measured[q] <= limit for q, limit in limits.items())


def streaming_rows(streams: dict[str, Any], references: dict[str, Any]) -> Iterator[Row]:
    later_targets = {"1": {"p50": 1.5, "p99": 10.0}, "50": {"p99": 25.0}}
    for key, label in STREAMING_RUNS:
        if key not in streams:
            continue
        run = streams[key]
        first, later = run["added_first_token_ms"], run["added_later_token_ms"]
        first_name, later_name = streaming_names(label)
        if key == "1":
            yield first_token_one_reply(first, references.get(RELAY))
        elif key in later_targets:
            text, check = at_most(later_targets[key])
            yield row(first_name, first, text, check(first))
        else:
            yield row(first_name, first)
        if key in later_targets:
            text, check = at_most(later_targets[key])
            yield row(later_name, later, text, check(later))
        else:
            yield row(later_name, later)
    for relay, measured in references.items():
        yield row(reference_name(relay), measured, "(floor, no target)")


def capacity_rows(capacity: dict[str, Any]) -> Iterator[Row]:
    idle = capacity["idle_1000"]
    per_connection = idle["kib_per_connection"]
    yield row(
        IDLE_1000,
        per_connection,
        f"≤ {IDLE_KIB_AT_1000:g} KiB",
        per_connection <= IDLE_KIB_AT_1000 and idle["ready"] == idle["requested"],
    )
    largest = (capacity.get("largest_idle") or {}).get("ready", 0)
    yield row(IDLE_LARGEST, largest, f"≥ {LARGEST_IDLE:,}", largest >= LARGEST_IDLE)
    streamed = capacity["streaming_1000"]
    complete = streamed["complete"]
    yield row(
        STREAMING_1000,
        {"complete": complete, "failed": streamed["failed"]},
        f"{STREAMING_REPLIES:,} complete",
        complete >= STREAMING_REPLIES and streamed["failed"] == 0,
    )


def login_rows(login: dict[str, Any]) -> Iterator[Row]:
    yield row(LOGIN, {"logins_per_second": login["logins_per_second"], "ms": login["login_ms"]})
    p99 = login["me_ms_during_logins"]["p99"]
    yield row(
        ME_DURING_LOGINS, p99, f"< {ME_P99_DURING_LOGINS_MS:g} ms", p99 < ME_P99_DURING_LOGINS_MS
    )


def cross_instance_rows(cluster: dict[str, Any]) -> Iterator[Row]:
    limits = ", ".join(f"{what} ≤ +{limit:g}" for what, limit in CROSS_INSTANCE.items())
    for key, label in (("1", "1 reply"), ("50", "50 concurrent replies")):
        run = cluster[key]
        first, later = run["added_first_token_ms"], run["added_later_token_ms"]
        measured = {
            "first p50": first["p50"],
            "first p99": first["p99"],
            "later p99": later["p99"],
            "every seq once": f"{run['every_seq_once_on_both']}/{run['replies']}",
        }
        passed = (
            all(measured[what] <= limit for what, limit in CROSS_INSTANCE.items())
            and run["every_seq_once_on_both"] == run["replies"]
        )
        yield row(cross_instance_name(label), measured, f"{limits}, every seq once", passed)
    both = cluster["both_ways"]
    yield row(
        BOTH_WAYS,
        {
            "every_seq_once": both["every_seq_once"],
            "replies": both["replies"],
            "failed": both["failed"],
        },
        "every seq once",
        both["every_seq_once"] == both["replies"] and both["failed"] == 0,
    )


def import_rows(imported: dict[str, Any]) -> Iterator[Row]:
    yield row(
        IMPORT, {"seconds": imported["seconds"], "healthz_ms_max": imported["healthz_ms_max"]}
    )


def evaluate(results: dict[str, Any]) -> list[Row]:
    """Every table row of the scenarios that ran, with its target and verdict."""
    rows: list[Row] = []
    if "query_path" in results:
        rows += query_rows(results["query_path"])
    if "streaming" in results:
        references = (results.get("reference_relays") or {}).get("added_first_token_ms", {})
        rows += streaming_rows(results["streaming"], references)
    if "capacity" in results:
        rows += capacity_rows(results["capacity"])
    if "login" in results:
        rows += login_rows(results["login"])
    cluster = results.get("cross_instance")
    if cluster and "skipped" not in cluster:
        rows += cross_instance_rows(cluster)
    if results.get("import") is not None:
        rows += import_rows(results["import"])
    return rows


def verdict(passed: bool | None) -> str:
    return {True: "pass", False: "**FAIL**", None: "–"}[passed]
