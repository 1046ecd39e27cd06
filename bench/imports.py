"""The import scenario: a generated ChatGPT export of 2,000 conversations sent to
`importConversations`, timed until its job is done, with the server's memory (RSS) sampled and
`/healthz` timed meanwhile (the job must not hold the event loop)."""

from __future__ import annotations

import json
import threading
import time
from typing import Any

import httpx

from tests.imports.generated import chatgpt_export

CONVERSATIONS = 2_000
IMPORT = """mutation($file: Upload!) {
    importConversations(file: $file, format: CHATGPT) { id } }"""
JOB = "query($id: ID!) { importJob(id: $id) { status total importedCount problemCount error } }"
JOB_BOUND = 600.0


def import_scenario(base: str, token: str, rss_kib: Any, server_pid: int) -> dict[str, Any]:
    content = json.dumps(chatgpt_export(CONVERSATIONS, seed=1)).encode()
    headers = {"Authorization": f"Bearer {token}", "Apollo-Require-Preflight": "true"}
    before = rss_kib(server_pid)
    peak = before
    health: list[float] = []
    done = threading.Event()

    def sample() -> None:
        nonlocal peak
        with httpx.Client(base_url=base, timeout=30) as client:
            while not done.is_set():
                peak = max(peak, rss_kib(server_pid))
                began = time.perf_counter()
                client.get("/healthz")
                health.append((time.perf_counter() - began) * 1000)
                time.sleep(0.05)

    sampler = threading.Thread(target=sample)
    sampler.start()
    started = time.perf_counter()
    try:
        with httpx.Client(base_url=base, timeout=120) as client:
            operations = {"query": IMPORT, "variables": {"file": None}}
            response = client.post(
                "/graphql",
                data={"operations": json.dumps(operations), "map": '{"1": ["variables.file"]}'},
                files={"1": ("conversations.json", content, "application/json")},
                headers=headers,
            ).json()
            accepted = time.perf_counter() - started
            job_id = response["data"]["importConversations"]["id"]
            while True:
                job = client.post(
                    "/graphql", json={"query": JOB, "variables": {"id": job_id}}, headers=headers
                ).json()["data"]["importJob"]
                if job["status"] in ("DONE", "FAILED") or time.perf_counter() - started > JOB_BOUND:
                    break
                time.sleep(0.1)
    finally:
        done.set()
        sampler.join()
    health.sort()
    return {
        "file_mb": round(len(content) / 1e6, 1),
        "job": job,
        "accepted_seconds": round(accepted, 2),
        "seconds": round(time.perf_counter() - started, 1),
        "rss_before_mib": round(before / 1024),
        "rss_peak_mib": round(peak / 1024),
        "healthz_ms_p50": round(health[len(health) // 2], 1) if health else None,
        "healthz_ms_max": round(health[-1], 1) if health else None,
    }
