"""The cross-instance scenario: two gql_chat processes over one MongoDB and one Redis (as behind a
balancer), a reply produced on A and followed on B, against the same reply followed on A.

Runs only with `--mongodb-url` (two processes cannot share the embedded store) and `redis-server`
installed. Each reply is followed on A and on B at once, and compared reply by reply: the first
token on B minus the first token on A is what the cross-instance path adds (separate runs of
A-followers and B-followers differ by several milliseconds from the database's noise alone). It
also counts Redis's commands (INFO commandstats) per reply and per delta, and sends replies on
both instances at once with followers on the other one, checking every `seq` arrives once."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Any

from bench.run import (
    PYTHON,
    Api,
    drop_bench_database,
    free_port,
    merged,
    processes,
    run_clients,
    server_env,
    steady_pacing,
    summary,
    wait_until_listening,
    wait_until_up,
)

CLUSTER_DATABASE = "gql_chat_bench_cluster"
DELTAS = 50  # the fake provider's reply: 50 tokens


def available(mongodb_url: str | None) -> str | None:
    """Why the scenario cannot run here, or None."""
    if mongodb_url is None:
        return "needs --mongodb-url: two processes cannot share the embedded store"
    if shutil.which("redis-server") is None:
        return "needs redis-server"
    return None


def redis_commands(port: int) -> dict[str, int]:
    """Calls per command so far (INFO commandstats)."""
    output = subprocess.run(
        ["redis-cli", "-p", str(port), "info", "commandstats"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    calls: dict[str, int] = {}
    for line in output.splitlines():
        if line.startswith("cmdstat_"):
            name, stats = line[len("cmdstat_") :].split(":", 1)
            fields = dict(part.split("=", 1) for part in stats.split(","))
            calls[name] = int(fields["calls"])
    return calls


def follow_on_both(
    a: Api, b: Api, users: list[tuple[str, str]], concurrency: int, rounds: int
) -> dict[str, Any]:
    """Steady pacing (see `steady_pacing`), sends on A, each reply followed on A and B at once."""
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "work.json"
        path.write_text(json.dumps([users[i % len(users)] for i in range(concurrency)]))
        command = [
            PYTHON,
            "-m",
            "bench.stream_client",
            "gql",
            *("--api", a.base, "--follow-api", a.base, "--pair-api", b.base),
            *("--work", str(path)),
            *steady_pacing(rounds),
        ]
        (output,) = run_clients([command])
        return output


def both_ways(a: Api, b: Api, users: list[tuple[str, str]], replies: int) -> dict[str, Any]:
    """`replies` at once, half sent on A and followed on B, half the other way round."""
    half = replies // 2
    with tempfile.TemporaryDirectory() as tmp:
        commands = []
        for index, (send_on, follow_on) in enumerate(((a, b), (b, a))):
            path = Path(tmp) / f"work{index}.json"
            path.write_text(json.dumps([users[i % len(users)] for i in range(half)]))
            commands.append(
                [
                    PYTHON,
                    "-m",
                    "bench.stream_client",
                    "gql",
                    *("--api", send_on.base, "--follow-api", follow_on.base),
                    *("--work", str(path)),
                ]
            )
        result = merged(run_clients(commands))
    return {
        "replies": replies,
        "every_seq_once": result["complete"],
        "failed": result["failed"],
        "errors": result["errors"][:3],
    }


def compare(paired: dict[str, Any]) -> dict[str, Any]:
    """Followers on B against followers on A of the same replies: the added first-token time
    (per reply, B minus A) and the later-token gaps."""
    on_a, on_b = paired["ttft"], paired["ttft_pair"]
    gap_a, gap_b = summary(paired["gaps"]), summary(paired["gaps_pair"])
    return {
        "replies": len(on_a),
        "every_seq_once_on_both": paired["complete"],
        "failed": paired["failed"],
        "first_token_ms_on_a": summary(on_a),
        "first_token_ms_on_b": summary(on_b),
        "added_first_token_ms": summary([b - a for a, b in zip(on_a, on_b, strict=True)]),
        "later_token_gap_ms_on_a": gap_a,
        "later_token_gap_ms_on_b": gap_b,
        "added_later_token_ms": {k: round(gap_b[k] - gap_a[k], 3) for k in gap_a},
    }


def cross_instance(provider: str, mongodb_url: str) -> dict[str, Any]:
    drop_bench_database(mongodb_url, CLUSTER_DATABASE)
    redis_port = free_port()
    env = {
        **server_env(provider, mongodb_url),
        "GQL_CHAT_MONGODB_DB": CLUSTER_DATABASE,
        "GQL_CHAT_REDIS_URL": f"redis://127.0.0.1:{redis_port}/0",
    }
    with processes() as group:
        group.start(
            [
                *("redis-server", "--port", str(redis_port), "--bind", "127.0.0.1"),
                *("--save", "", "--logfile", os.devnull),
            ]
        )
        wait_until_listening(redis_port)  # else each instance starts without Redis, alone
        apis = []
        for _ in range(2):
            port = free_port()
            group.start([PYTHON, "-m", "bench.serve", str(port)], env=env)
            apis.append(Api(f"http://127.0.0.1:{port}"))
        a, b = apis
        for api in apis:
            wait_until_up(f"{api.base}/healthz")
        users = a.stream_users("cluster")
        results: dict[str, Any] = {}
        for concurrency, rounds in ((1, 60), (50, 6)):
            results[str(concurrency)] = compare(follow_on_both(a, b, users, concurrency, rounds))
        before = redis_commands(redis_port)
        replies = 200
        results["both_ways"] = both_ways(a, b, users, replies)
        after = redis_commands(redis_port)
        used = {name: after[name] - before.get(name, 0) for name in after}
        results["redis_commands"] = {
            "replies": replies,
            "per_reply": {
                name: round(count / replies, 2) for name, count in sorted(used.items()) if count
            },
            "per_delta": round(sum(used.values()) / (replies * DELTAS), 3),
        }
    drop_bench_database(mongodb_url, CLUSTER_DATABASE)
    return results
