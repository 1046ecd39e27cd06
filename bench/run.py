"""Runs every benchmark scenario against real processes on 127.0.0.1 and reports same-run ratios.

    .uv/bin/uv run --frozen python -m bench      (needs `wrk`: apt-get install wrk)
    .uv/bin/uv run --frozen python -m bench --only query,streaming   (a subset, while working)

A full run writes bench/results/latest.json and prints a markdown table; a subset prints its
figures as JSON and keeps latest.json. Every loop is bounded in time and count; nothing leaves
127.0.0.1."""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from bench import targets
from bench.targets import Row, verdict

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"
BENCH_DATABASE = "gql_chat_bench"
PYTHON = sys.executable
JWT_SECRET = "benchmark-secret-that-is-long-enough-0123456789"
PASSWORD = "benchmark password"
WRK_SECONDS = int(os.environ.get("BENCH_WRK_SECONDS", "8"))
CAPACITY_BUDGET_SECONDS = 120
CAPACITY_LADDER = (2000, 4000, 6000, 8000, 10000)
"""Idle subscriptions held at once, climbed until one fails or the budget is spent."""
REPLY_SECONDS = 1.2  # the fake's reply: 200 ms to the first of 50 tokens, then one every 20 ms
REFERENCE_RELAYS = {
    "tcp": "a bare TCP relay (bytes copied both ways)",
    "http": "a bare Starlette + httpx SSE relay (no GraphQL, auth, store or websocket)",
    "h11": "the same relay with a bare h11 connection in place of httpx",
}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))
    return ordered[index]


def summary(values: list[float]) -> dict[str, float]:
    return {f"p{q}": round(percentile(values, q), 3) for q in (50, 95, 99)}


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


@dataclass
class Processes:
    started: list[subprocess.Popen[bytes]] = field(default_factory=list)

    def start(self, args: list[str], env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
        process = subprocess.Popen(args, cwd=ROOT, env={**os.environ, **(env or {})})
        self.started.append(process)
        return process

    def stop_all(self) -> None:
        for process in self.started:
            if process.poll() is None:
                process.send_signal(signal.SIGINT)
        for process in self.started:
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()


@contextmanager
def processes() -> Any:
    group = Processes()
    try:
        yield group
    finally:
        group.stop_all()


def wait_until(ready: Callable[[], bool], seconds: float, failure: str) -> None:
    """Polls `ready` every 0.1 s until it holds, for at most `seconds`."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if ready():
            return
        time.sleep(0.1)
    raise RuntimeError(failure)


def wait_until_up(url: str, seconds: float = 30) -> None:
    def answers() -> bool:
        try:
            return httpx.get(url, timeout=1).status_code < 500
        except httpx.HTTPError:
            return False

    wait_until(answers, seconds, f"{url} did not come up")


def wait_until_listening(port: int, seconds: float = 30) -> None:
    """A TCP server on 127.0.0.1 (Redis) accepts connections."""

    def accepts() -> bool:
        with suppress(OSError), socket.create_connection(("127.0.0.1", port), 1):
            return True
        return False

    wait_until(accepts, seconds, f"nothing listens on port {port}")


def server_env(provider_url: str, mongodb_url: str | None) -> dict[str, str]:
    """Production-like: no explorer, no introspection, quiet logs, default argon2; the embedded
    store, or a fresh database on `mongodb_url` (the baselines read through the same one); rate
    limits lifted so that the load itself is what is measured."""
    env = {
        "GQL_CHAT_JWT_SECRET": JWT_SECRET,
        "GQL_CHAT_LOG_LEVEL": "WARNING",
        "GQL_CHAT_ENABLE_GRAPHIQL": "false",
        "GQL_CHAT_ENABLE_INTROSPECTION": "false",
        "GQL_CHAT_OPENROUTER_API_KEY": "sk-or-bench",
        "GQL_CHAT_OPENROUTER_BASE_URL": provider_url,
        "GQL_CHAT_MAX_CONCURRENT_GENERATIONS": "100000",
        "GQL_CHAT_MAX_WS_OPERATIONS": "100",
        # The capacity scenario holds thousands of websockets, all from 127.0.0.1.
        "GQL_CHAT_MAX_CONNECTIONS": "20000",
        "GQL_CHAT_MAX_WEBSOCKETS_PER_IP": "20000",
        # Ten users follow up to 100 replies each at once (the default cap is 10 per user).
        "GQL_CHAT_MAX_FOLLOWERS_PER_USER": "1000",
        # The import scenario sends a 2,000-conversation export (about 40 MB).
        "GQL_CHAT_MAX_UPLOAD_BYTES": str(64 * 1_048_576),
    }
    for name in (
        "LOGIN_PER_EMAIL",
        "LOGIN_PER_IP",
        "FAILED_LOGINS_PER_ACCOUNT",
        "REGISTER_PER_IP",
        "REFRESH_PER_USER",
        "SEND_MESSAGE_PER_USER",
    ):
        env[f"GQL_CHAT_RATE_{name}"] = "100000000/minute"
    if mongodb_url is not None:
        env["GQL_CHAT_MONGODB_URL"] = mongodb_url
        env["GQL_CHAT_MONGODB_DB"] = BENCH_DATABASE
    return env


def drop_bench_database(mongodb_url: str, name: str = BENCH_DATABASE) -> None:
    from pymongo import MongoClient

    client: MongoClient[dict[str, Any]] = MongoClient(mongodb_url)
    try:
        client.drop_database(name)
    finally:
        client.close()


class Api:
    def __init__(self, base: str) -> None:
        self.base = base
        self.http = httpx.Client(base_url=base, timeout=60)

    def gql(
        self, query: str, variables: dict[str, Any] | None = None, token: str | None = None
    ) -> Any:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        body = self.http.post(
            "/graphql", json={"query": query, "variables": variables or {}}, headers=headers
        ).json()
        if body.get("errors"):
            raise RuntimeError(body["errors"])
        return body["data"]

    def register(self, email: str) -> str:
        data = self.gql(
            "mutation($e: String!, $p: String!) { register(input: {email: $e, password: $p}) { accessToken } }",
            {"e": email, "p": PASSWORD},
        )
        token: str = data["register"]["accessToken"]
        return token

    def stream_users(self, prefix: str, count: int = 10) -> list[tuple[str, str]]:
        """`count` new users with a conversation each: (token, conversation id) pairs."""
        users = []
        for index in range(count):
            token = self.register(f"{prefix}{index}@example.com")
            conversation = self.gql(
                'mutation { createConversation(input: {title: "stream"}) { id } }', token=token
            )["createConversation"]["id"]
            users.append((token, conversation))
        return users


def set_provider_pace(
    provider: str, first_delay: float, token_delay: float, tokens: int = 50
) -> None:
    base = provider.rsplit("/api/v1", 1)[0]
    httpx.post(
        f"{base}/control",
        json={"first_delay": first_delay, "token_delay": token_delay, "tokens": tokens},
    )


def seed(api: Api, provider: str) -> dict[str, Any]:
    """One user with 20 filed conversations (folders with parents, presets) and one 50-message
    conversation; more users for the streaming scenarios."""
    token = api.register("bench@example.com")

    def folder(name: str, parent: str | None = None) -> str:
        created = api.gql(
            "mutation($n: String!, $p: ID) { createFolder(input: {name: $n, parentId: $p}) { id } }",
            {"n": name, "p": parent},
            token,
        )
        return str(created["createFolder"]["id"])

    parents = [folder(f"p{i}") for i in range(3)]
    folders = [folder(f"f{i}", parents[i % 3]) for i in range(5)]
    presets = [
        api.gql(
            'mutation($n: String!) { createLlmConfig(input: {name: $n, model: "bench/model"}) { id } }',
            {"n": f"preset{i}"},
            token,
        )["createLlmConfig"]["id"]
        for i in range(5)
    ]
    for i in range(20):
        api.gql(
            'mutation($f: ID, $p: ID) { createConversation(input: {title: "bench", folderId: $f, llmConfigId: $p}) { id } }',
            {"f": folders[i % 5], "p": presets[i % 5]},
            token,
        )
    set_provider_pace(provider, 0, 0, tokens=20)
    thread = api.gql(
        'mutation { createConversation(input: {title: "long thread"}) { id } }', token=token
    )["createConversation"]["id"]
    for i in range(25):
        sent = api.gql(
            "mutation($c: ID!, $t: String!) { sendMessage(input: {conversationId: $c, content: $t}) { assistantMessage { id } } }",
            {"c": thread, "t": f"question {i} " * 10},
            token,
        )
        message_id = sent["sendMessage"]["assistantMessage"]["id"]
        for _ in range(200):
            status = api.gql(
                "query($id: ID!) { message(id: $id) { status } }", {"id": message_id}, token
            )["message"]["status"]
            if status not in ("PENDING", "STREAMING"):
                break
            time.sleep(0.01)
    set_provider_pace(provider, 0.2, 0.02)
    return {"token": token, "thread": thread}


def wrk(
    url: str, token: str, body: str | None, connections: int = 32, seconds: int = WRK_SECONDS
) -> dict[str, Any]:
    env = {**os.environ, "BENCH_TOKEN": token, "BENCH_BODY": body or ""}
    output = subprocess.run(
        [
            "wrk",
            "-t1",
            f"-c{connections}",
            f"-d{seconds}s",
            "--timeout",
            "10s",
            "-s",
            str(ROOT / "bench" / "report.lua"),
            url,
        ],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    result: dict[str, Any] = json.loads(output.strip().splitlines()[-1])
    result["rps"] = round(result["requests"] / (result["duration_us"] / 1e6), 1)
    return result


QUERY_SLICES = 4
"""Each side's wrk time is taken in this many slices, in ABBA order (GraphQL, baseline,
baseline, GraphQL, ...). This machine's speed drifts by tens of percent within minutes: one
8 s run of each, back to back, gave one code `me` ratios from 0.42 to 0.51. Alternating puts
the drift on both sides alike."""


def abba(slices: int) -> list[int]:
    """Which side runs each turn: 0, 1, 1, 0, 0, 1, 1, 0, ... (`slices` turns each)."""
    return [(turn + turn // 2) % 2 for turn in range(2 * slices)]


def combined(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """One side's slices as one run: counts and durations summed, so `rps` is over all of
    them; p50 the median of the slices' p50s, p95 and p99 the highest slice's (an upper
    bound: wrk's histograms cannot be merged from its summaries)."""
    requests = sum(run["requests"] for run in runs)
    duration = sum(run["duration_us"] for run in runs)
    return {
        "requests": requests,
        "duration_us": duration,
        "errors": sum(run["errors"] for run in runs),
        "bad": sum(run["bad"] for run in runs),
        "p50_ms": statistics.median(run["p50_ms"] for run in runs),
        "p95_ms": max(run["p95_ms"] for run in runs),
        "p99_ms": max(run["p99_ms"] for run in runs),
        "rps": round(requests / (duration / 1e6), 1),
        "slices": len(runs),
    }


QUERIES = {
    "me": ("{ me { id email } }", "/baseline/me"),
    "conversations(first: 20)": (
        "{ conversations(first: 20) { totalCount edges { cursor node { id title folder { id name } llmConfig { id name model } } } } }",
        "/baseline/conversations",
    ),
    "messages(last: 50)": (
        "query($id: ID!) { conversation(id: $id) { messages(last: 50) { edges { node { id role content status createdAt } } } } }",
        "/baseline/messages?id={thread}",
    ),
}


def query_path(api: Api, seeded: dict[str, Any]) -> dict[str, Any]:
    results = {}
    for name, (query, baseline_path) in QUERIES.items():
        variables = {"id": seeded["thread"]} if "$id" in query else {}
        body = json.dumps({"query": query, "variables": variables})
        api.gql(query, variables, seeded["token"])  # warm up and check
        sides = (
            (f"{api.base}/graphql", body),
            (f"{api.base}{baseline_path.format(thread=seeded['thread'])}", None),
        )
        runs: tuple[list[dict[str, Any]], list[dict[str, Any]]] = ([], [])
        for side in abba(QUERY_SLICES):
            url, side_body = sides[side]
            runs[side].append(
                wrk(url, seeded["token"], side_body, seconds=max(1, WRK_SECONDS // QUERY_SLICES))
            )
        graphql, baseline = combined(runs[0]), combined(runs[1])
        results[name] = {
            "graphql": graphql,
            "baseline": baseline,
            "ratio": round(graphql["rps"] / baseline["rps"], 3),
        }
        print(f"  {name}: {graphql['rps']} vs {baseline['rps']} req/s", flush=True)
    return results


def run_clients(commands: list[list[str]]) -> list[dict[str, Any]]:
    outputs = []
    running = [subprocess.Popen(c, cwd=ROOT, stdout=subprocess.PIPE, text=True) for c in commands]
    for process in running:
        stdout, _ = process.communicate(timeout=300)
        outputs.append(json.loads(stdout.strip().splitlines()[-1]))
    return outputs


def merged(outputs: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "ttft": [v for o in outputs for v in o["ttft"]],
        "gaps": [v for o in outputs for v in o["gaps"]],
        "complete": sum(o["complete"] for o in outputs),
        "failed": sum(o["failed"] for o in outputs),
        "errors": [e for o in outputs for e in o["errors"]],
    }


def steady_pacing(rounds: int) -> list[str]:
    """A stream client's arguments for `rounds` counted replies per slot, the slots' starts
    spread over one reply's length, after one uncounted ramp-up round."""
    return ["--rounds", str(rounds + 1), "--warmup", "1", "--stagger", str(REPLY_SECONDS)]


def streaming(
    api: Api,
    provider: str,
    users: list[tuple[str, str]],
    concurrency: int,
    rounds: int,
    processes: int = 1,
    steady: bool = False,
) -> dict[str, Any]:
    """`steady`: each reply slot runs replies back to back, the slots' starts spread over one
    reply's length, and the first round (the ramp) is not counted; so `concurrency` replies are
    streaming at any moment, started at different times. Otherwise each round sends every reply
    at the same instant."""
    pacing = steady_pacing(rounds) if steady else []
    with tempfile.TemporaryDirectory() as tmp:
        gql_runs, direct_runs = [], []
        for _ in range(1 if steady else rounds):
            per_process = max(1, concurrency // processes)
            commands_gql, commands_direct = [], []
            for index in range(processes):
                work = [users[(index * per_process + i) % len(users)] for i in range(per_process)]
                path = Path(tmp) / f"work{index}.json"
                path.write_text(json.dumps(work))
                commands_gql.append(
                    [
                        PYTHON,
                        "-m",
                        "bench.stream_client",
                        "gql",
                        "--api",
                        api.base,
                        "--work",
                        str(path),
                        *pacing,
                    ]
                )
                commands_direct.append(
                    [
                        PYTHON,
                        "-m",
                        "bench.stream_client",
                        "direct",
                        "--provider",
                        provider,
                        "--replies",
                        str(per_process),
                        *pacing,
                    ]
                )
            gql_runs.append(merged(run_clients(commands_gql)))
            direct_runs.append(merged(run_clients(commands_direct)))
    gql, direct = merged(gql_runs), merged(direct_runs)
    added_first = {
        k: round(v - summary(direct["ttft"])[k], 3) for k, v in summary(gql["ttft"]).items()
    }
    added_later = {
        k: round(v - summary(direct["gaps"])[k], 3) for k, v in summary(gql["gaps"]).items()
    }
    return {
        "concurrency": concurrency,
        "arrivals": "spread over one reply's length" if steady else "all at once",
        "replies": len(gql["ttft"]),
        "complete": gql["complete"],
        "failed": gql["failed"],
        "errors": gql["errors"][:3],
        "gql_ttft_ms": summary(gql["ttft"]),
        "direct_ttft_ms": summary(direct["ttft"]),
        "gql_gap_ms": summary(gql["gaps"]),
        "direct_gap_ms": summary(direct["gaps"]),
        "added_first_token_ms": added_first,
        "added_later_token_ms": added_later,
    }


def reference_relays(provider_port: int) -> dict[str, Any]:
    """One reply at a time, read directly from the fake and then through each reference relay
    (`reference_relays.py`), paced as the one-reply streaming scenario. The relays run only for
    this phase, after the streaming scenarios, so that they cannot change what those measure."""

    def first_tokens(provider: str) -> list[float]:
        command = [PYTHON, "-m", "bench.stream_client", "direct", "--provider", provider]
        ttft: list[float] = merged(run_clients([[*command, *steady_pacing(30)]]))["ttft"]
        return ttft

    with processes() as relays:
        urls = {}
        for name in REFERENCE_RELAYS:
            port = free_port()
            relays.start(
                [PYTHON, "-m", "bench.reference_relays", name, str(port), str(provider_port)]
            )
            urls[name] = f"http://127.0.0.1:{port}/api/v1"
            wait_until_up(f"{urls[name]}/models")
        direct = summary(first_tokens(f"http://127.0.0.1:{provider_port}/api/v1"))
        added = {
            name: {k: round(v - direct[k], 3) for k, v in summary(first_tokens(url)).items()}
            for name, url in urls.items()
        }
    return {"direct_ttft_ms": direct, "added_first_token_ms": added}


def hold_idle(
    api: Api, token: str, server_pid: int, count: int, processes: int = 4
) -> dict[str, Any]:
    """Open `count` idle authenticated subscriptions from several client processes."""
    before = rss_kib(server_pid)
    ws_url = api.base.replace("http://", "ws://") + "/graphql"
    per_process = count // processes
    clients = [
        subprocess.Popen(
            [
                PYTHON,
                "-m",
                "bench.capacity_client",
                "--url",
                ws_url,
                "--token",
                token,
                "--count",
                str(per_process),
            ],
            cwd=ROOT,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        for _ in range(processes)
    ]
    ready, failed = 0, 0
    started = time.monotonic()
    for client in clients:
        assert client.stdout is not None
        words = client.stdout.readline().split()
        ready += int(words[1]) if len(words) > 1 else 0
        failed += int(words[3]) if len(words) > 3 else per_process
    elapsed = time.monotonic() - started
    time.sleep(1)
    after = rss_kib(server_pid)
    still_open = 0
    for client in clients:
        stdout, _ = client.communicate(input="", timeout=120)
        still_open += int(stdout.split()[-1]) if stdout.strip() else 0
    return {
        "requested": per_process * processes,
        "ready": ready,
        "failed": failed,
        "still_open": still_open,
        "open_seconds": round(elapsed, 1),
        "rss_before_kib": before,
        "rss_after_kib": after,
        "kib_per_connection": round((after - before) / max(ready, 1), 1),
    }


def warm_up(api: Api, token: str, server_pid: int) -> None:
    """Open and close some connections first, so the first measurement does not carry the
    process's one-off growth (allocator arenas, imported code paths)."""
    hold_idle(api, token, server_pid, 400)


def capacity(
    api: Api, provider: str, token: str, users: list[tuple[str, str]], server_pid: int
) -> dict[str, Any]:
    warm_up(api, token, server_pid)
    idle_1000 = hold_idle(api, token, server_pid, 1000)
    print(f"  idle 1000: {idle_1000['kib_per_connection']} KiB each", flush=True)
    # A long first delay keeps every reply in flight at once, however long the sends take.
    set_provider_pace(provider, 20, 0.02)
    streaming_1000 = streaming(api, provider, users, 1000, rounds=1, processes=4)
    set_provider_pace(provider, 0.2, 0.02)
    print(f"  streaming 1000: {streaming_1000['complete']} complete", flush=True)
    largest: dict[str, Any] = {}
    budget_end = time.monotonic() + CAPACITY_BUDGET_SECONDS
    for count in CAPACITY_LADDER:
        if time.monotonic() > budget_end:
            break
        result = hold_idle(api, token, server_pid, count)
        print(
            f"  idle {count}: ready {result['ready']}, {result['kib_per_connection']} KiB each",
            flush=True,
        )
        if result["ready"] < result["requested"] or result["still_open"] < result["ready"]:
            break
        largest = result
    return {"idle_1000": idle_1000, "streaming_1000": streaming_1000, "largest_idle": largest}


def login_scenario(api: Api, token: str) -> dict[str, Any]:
    base = [PYTHON, "-m", "bench.login_client"]
    alone = run_clients([[*base, "me", "--api", api.base, "--token", token, "--seconds", "5"]])[0]
    burst, me = run_clients(
        [
            [
                *base,
                "login",
                "--api",
                api.base,
                "--email",
                "bench@example.com",
                "--password",
                PASSWORD,
                "--seconds",
                "10",
            ],
            [*base, "me", "--api", api.base, "--token", token, "--seconds", "10"],
        ]
    )
    return {
        "logins_per_second": round(len(burst["latencies"]) / burst["seconds"], 1),
        "login_ms": summary(burst["latencies"]),
        "login_errors": burst["errors"],
        "me_ms_alone": summary(alone["latencies"]),
        "me_ms_during_logins": summary(me["latencies"]),
    }


def table_line(
    verdicts: dict[str, Row], name: str, measured: str, baseline: str = "", result: str = ""
) -> str:
    """A markdown row whose target and pass columns come from `targets.evaluate`."""
    checked = verdicts.get(name)
    target = (checked["target"] or "") if checked else ""
    passed = verdict(checked["pass"]) if checked else verdict(None)
    return f"| {name} | {measured} | {baseline} | {result} | {target} | {passed} |"


def markdown(results: dict[str, Any], rows: list[Row]) -> str:
    verdicts = {checked["row"]: checked for checked in rows}
    lines = [
        "| scenario | measured | baseline | result | target | pass |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    lines += query_lines(verdicts, results["query_path"])
    lines += streaming_lines(verdicts, results["streaming"], results.get("reference_relays", {}))
    lines += capacity_lines(verdicts, results["capacity"])
    login = results["login"]
    lines.append(
        table_line(
            verdicts,
            targets.LOGIN,
            f"{login['logins_per_second']} logins/s, p50 {login['login_ms']['p50']:.0f} ms",
        )
    )
    lines.append(
        table_line(
            verdicts,
            targets.ME_DURING_LOGINS,
            f"{login['me_ms_during_logins']['p99']:.1f} ms",
            f"alone: {login['me_ms_alone']['p99']:.1f} ms",
        )
    )
    lines += cross_instance_lines(verdicts, results.get("cross_instance") or {})
    if (imported := results.get("import")) is not None:
        lines.append(
            table_line(
                verdicts,
                targets.IMPORT,
                f"{imported['file_mb']} MB: {imported['seconds']} s, "
                f"{imported['job']['importedCount']} imported",
                f"RSS {imported['rss_before_mib']} → peak {imported['rss_peak_mib']} MiB",
                f"/healthz p50 {imported['healthz_ms_p50']} ms, max {imported['healthz_ms_max']} ms",
            )
        )
    return "\n".join(lines)


def query_lines(verdicts: dict[str, Row], q: dict[str, Any]) -> list[str]:
    lines = []
    for name in targets.QUERY_RATIOS:
        graphql, baseline = q[name]["graphql"], q[name]["baseline"]
        lines.append(
            table_line(
                verdicts,
                targets.query_name(name),
                f"{graphql['rps']} ({graphql['p50_ms']:.1f}/{graphql['p99_ms']:.1f} ms p50/p99)",
                f"{baseline['rps']} ({baseline['p50_ms']:.1f}/{baseline['p99_ms']:.1f})",
                f"{q[name]['ratio']}×",
            )
        )
    return lines


def percentiles(values: dict[str, float]) -> str:
    return f"{values['p50']}/{values['p95']}/{values['p99']} (p50/p95/p99)"


def streaming_lines(
    verdicts: dict[str, Row], streams: dict[str, Any], relays: dict[str, Any]
) -> list[str]:
    lines = []
    for key, label in targets.STREAMING_RUNS:
        if key not in streams:
            continue
        run = streams[key]
        first_name, later_name = targets.streaming_names(label)
        lines.append(
            table_line(
                verdicts,
                first_name,
                percentiles(run["added_first_token_ms"]),
                f"direct SSE: {run['direct_ttft_ms']['p50']:.0f} ms",
            )
        )
        lines.append(
            table_line(
                verdicts,
                later_name,
                percentiles(run["added_later_token_ms"]),
                f"direct gap p50 {run['direct_gap_ms']['p50']:.1f} ms",
            )
        )
    for name, reference in relays.get("added_first_token_ms", {}).items():
        lines.append(
            table_line(
                verdicts,
                targets.reference_name(name),
                percentiles(reference),
                REFERENCE_RELAYS[name],
            )
        )
    return lines


def capacity_lines(verdicts: dict[str, Row], cap: dict[str, Any]) -> list[str]:
    idle = cap["idle_1000"]
    largest = cap.get("largest_idle") or {}
    streamed = cap["streaming_1000"]
    return [
        table_line(
            verdicts,
            targets.IDLE_1000,
            str(idle["kib_per_connection"]),
            "",
            f"{idle['ready']} open",
        ),
        table_line(
            verdicts,
            targets.IDLE_LARGEST,
            str(largest.get("ready", 0)),
            "",
            f"{largest['kib_per_connection']} KiB each" if largest else "",
        ),
        table_line(
            verdicts,
            targets.STREAMING_1000,
            f"{streamed['complete']} complete, {streamed['failed']} failed",
            "",
            "every seq exactly once",
        ),
    ]


def cross_instance_lines(verdicts: dict[str, Row], cluster: dict[str, Any]) -> list[str]:
    if not cluster or "skipped" in cluster:
        return [f"| cross-instance | skipped: {cluster.get('skipped', 'not run')} | | | | – |"]
    lines = []
    for key, label in (("1", "1 reply"), ("50", "50 concurrent replies")):
        run = cluster[key]
        first, later = run["added_first_token_ms"], run["added_later_token_ms"]
        lines.append(
            table_line(
                verdicts,
                targets.cross_instance_name(label),
                f"added first-token ms p50/p99 {first['p50']}/{first['p99']}, later-token p99 {later['p99']}",
                f"on A: {run['first_token_ms_on_a']['p50']:.0f} ms",
                f"{run['every_seq_once_on_both']}/{run['replies']} every seq once",
            )
        )
    both = cluster["both_ways"]
    redis = cluster["redis_commands"]
    lines.append(
        table_line(
            verdicts,
            targets.BOTH_WAYS,
            f"{both['replies']} replies: {both['every_seq_once']} every seq once, {both['failed']} failed",
            "",
            f"Redis: {redis['per_delta']} commands per delta",
        )
    )
    return lines


def ensure_wrk() -> None:
    if shutil.which("wrk"):
        return
    if os.geteuid() == 0:
        subprocess.run(
            ["apt-get", "install", "-y", "-qq", "wrk"],
            check=True,
            env={**os.environ, "DEBIAN_FRONTEND": "noninteractive"},
        )
        return
    sys.exit("bench: needs wrk (sudo apt-get install wrk)")


SCENARIOS = ("query", "streaming", "capacity", "login", "cross_instance", "import")


def parse_arguments() -> tuple[tuple[str, ...], str | None]:
    """The scenarios to run, and the MongoDB server to run them on (None: the embedded store)."""
    parser = argparse.ArgumentParser(prog="python -m bench")
    parser.add_argument("--only", help=f"comma-separated subset of: {', '.join(SCENARIOS)}")
    parser.add_argument(
        "--mongodb-url",
        help=f"run on this MongoDB server (database {BENCH_DATABASE!r}, dropped before and after)",
    )
    arguments = parser.parse_args()
    if arguments.only is None:
        return SCENARIOS, arguments.mongodb_url
    chosen = tuple(name.strip() for name in arguments.only.split(","))
    unknown = set(chosen) - set(SCENARIOS)
    if unknown:
        parser.error(f"unknown scenario(s): {', '.join(sorted(unknown))}")
    return chosen, arguments.mongodb_url


def main() -> None:
    scenarios, mongodb_url = parse_arguments()
    if mongodb_url is not None:
        drop_bench_database(mongodb_url)
    ensure_wrk()
    started = time.monotonic()
    provider_port, api_port = free_port(), free_port()
    provider = f"http://127.0.0.1:{provider_port}/api/v1"
    api = Api(f"http://127.0.0.1:{api_port}")
    results: dict[str, Any] = {
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "platform": platform.platform(),
        },
        "started_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "store": "embedded" if mongodb_url is None else "mongodb",
    }
    with processes() as group:
        group.start([PYTHON, "-m", "bench.fake_provider", str(provider_port)])
        server = group.start(
            [PYTHON, "-m", "bench.serve", str(api_port)],
            env=server_env(provider, mongodb_url),
        )
        wait_until_up(f"{api.base}/healthz")
        wait_until_up(provider.rsplit("/api/v1", 1)[0] + "/api/v1/models")
        print("seeding…", flush=True)
        seeded = seed(api, provider)
        stream_users = api.stream_users("stream")
        if "query" in scenarios:
            print("1. query path", flush=True)
            results["query_path"] = query_path(api, seeded)
        if "streaming" in scenarios:
            print("2. streaming overhead", flush=True)
            results["streaming"] = {
                "1": streaming(api, provider, stream_users, 1, rounds=30, steady=True),
                "50": streaming(api, provider, stream_users, 50, rounds=3, steady=True),
                "50_burst": streaming(api, provider, stream_users, 50, rounds=3),
            }
            results["reference_relays"] = reference_relays(provider_port)
        if "capacity" in scenarios:
            print("3. capacity", flush=True)
            results["capacity"] = capacity(api, provider, seeded["token"], stream_users, server.pid)
        if "login" in scenarios:
            print("4. login", flush=True)
            results["login"] = login_scenario(api, seeded["token"])
        if "import" in scenarios:
            from bench.imports import import_scenario

            print("6. import", flush=True)
            results["import"] = import_scenario(api.base, seeded["token"], rss_kib, server.pid)
        if "cross_instance" in scenarios:
            from bench import cross_instance

            print("5. cross-instance", flush=True)
            why_not = cross_instance.available(mongodb_url)
            results["cross_instance"] = (
                {"skipped": why_not}
                if why_not is not None or mongodb_url is None
                else cross_instance.cross_instance(provider, mongodb_url)
            )
    if mongodb_url is not None:
        drop_bench_database(mongodb_url)
    results["elapsed_seconds"] = round(time.monotonic() - started, 1)
    results["targets"] = targets.evaluate(results)
    if scenarios != SCENARIOS:
        print(json.dumps(results, indent=2))
        print_verdicts(results["targets"])
        return
    results["table"] = markdown(results, results["targets"])
    RESULTS.mkdir(parents=True, exist_ok=True)
    name = "latest.json" if mongodb_url is None else "latest-mongodb.json"
    (RESULTS / name).write_text(json.dumps(results, indent=2))
    print()
    print(results["table"])
    print(f"\n{results['elapsed_seconds']} s; results in bench/results/{name}")
    print_verdicts(results["targets"])


def print_verdicts(rows: list[Row]) -> None:
    """One line per row with a target: a regression shows at a glance."""
    checked = [r for r in rows if r["pass"] is not None]
    failed = [r for r in checked if not r["pass"]]
    print(f"\ntargets: {len(checked) - len(failed)} of {len(checked)} met", flush=True)
    for r in failed:
        print(f"  FAIL {r['row']}: {r['measured']} (target {r['target']})", flush=True)


if __name__ == "__main__":
    main()
