"""Apollo Client 4, urql 6 and graphql-ws, each with its default settings (urql's queries go
as GET), against a live server: sign up, list conversations, send a message and follow the reply
to `done` (`tests/clients/clients.mjs`)."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

import pytest

from gql_chat.config import Settings
from tests.conftest import LiveServer, make_settings
from tests.support import run_node

CLIENTS_DIR = Path(__file__).resolve().parents[1] / "clients"


@pytest.fixture
def settings() -> Settings:
    return make_settings(offline_token_delay=0.005)


def clients_available() -> bool:
    return shutil.which("node") is not None and (CLIENTS_DIR / "node_modules" / "@apollo").exists()


async def run_clients(url: str) -> list[dict[str, Any]]:
    _, stdout, stderr = await run_node(CLIENTS_DIR / "clients.mjs", url)
    results = [json.loads(line) for line in stdout.splitlines() if line.strip()]
    assert results, stderr
    return results


async def test_popular_clients_work_with_their_defaults(live_server: LiveServer) -> None:
    if not clients_available():
        if os.environ.get("CI"):
            pytest.fail("CI must install the client libraries: npm ci --prefix tests/clients")
        pytest.skip("run `npm ci --prefix tests/clients` to enable the client-library suite")
    results = await run_clients(f"{live_server.http_url}/graphql")
    assert [(r["client"], r["ok"]) for r in results] == [
        ("apollo", True),
        ("urql", True),
        ("graphql-ws", True),
    ], results
    for result in results:
        assert result["listed"] == 0  # a new user has no conversations
        assert result["final"]["status"] == "COMPLETE"
        assert result["text"] == result["final"]["content"]  # every delta, once, in order
        assert result["text"].startswith("You said: “Hello from ")
