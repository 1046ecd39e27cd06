"""The `gql-chat` command line."""

from __future__ import annotations

import io
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from pymongo_async_mock import AsyncMongoMockClient

from gql_chat import cli
from gql_chat.store.database import open_database
from gql_chat.store.embedded import open_embedded_client

ROOT = Path(__file__).resolve().parent.parent


def test_schema_file_is_up_to_date(tmp_path: Path) -> None:
    output = tmp_path / "schema.graphql"
    assert cli.main(["export-schema", "--output", str(output)]) == 0
    assert output.read_text() == (ROOT / "schema.graphql").read_text(), (
        "schema.graphql is stale: run `gql-chat export-schema`"
    )


def test_module_entry_point_prints_help() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "gql_chat", "--help"], capture_output=True, text=True, check=True
    )
    for command in ("serve", "export-schema", "create-admin"):
        assert command in result.stdout


def test_invalid_settings_stop_with_one_line(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("GQL_CHAT_ACCESS_TOKEN_TTL", "never")
    with pytest.raises(SystemExit) as exited:
        cli.main(["serve"])
    assert exited.value.code == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("gql-chat: invalid setting GQL_CHAT_ACCESS_TOKEN_TTL")
    assert len(err.splitlines()) == 1


def test_serve_runs_uvicorn_with_the_app(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[dict[str, Any]] = []
    monkeypatch.setattr("uvicorn.run", lambda app, **kwargs: calls.append({"app": app, **kwargs}))
    assert cli.main(["serve", "--host", "0.0.0.0", "--port", "9001"]) == 0
    assert calls[0]["host"] == "0.0.0.0"
    assert calls[0]["port"] == 9001
    assert calls[0]["ws_per_message_deflate"] is False
    assert calls[0]["ws"] == "websockets-sansio"
    assert cli.main(["serve", "--reload"]) == 0
    assert calls[1]["app"] == "gql_chat.app:create_app"
    assert calls[1]["reload"] is True
    assert calls[1]["ws"] == "websockets-sansio"


@pytest.fixture
def shared_store(monkeypatch: pytest.MonkeyPatch) -> AsyncMongoMockClient:
    """Make every `open_database` of the CLI use one in-memory store, so runs can see each other."""
    client = open_embedded_client()
    monkeypatch.setattr(
        "gql_chat.store.database.open_database",
        lambda settings, embedded_client=None: open_database(settings, client),
    )
    monkeypatch.setenv("GQL_CHAT_ARGON2_MEMORY_KIB", "64")
    monkeypatch.setenv("GQL_CHAT_ARGON2_TIME_COST", "1")
    return client


def run_create_admin(monkeypatch: pytest.MonkeyPatch, email: str, password: str) -> int:
    monkeypatch.setattr("sys.stdin", io.StringIO(password + "\n"))
    return cli.main(["create-admin", "--email", email])


async def _user(client: AsyncMongoMockClient, email: str) -> dict[str, Any] | None:
    doc: dict[str, Any] | None = await client["gql_chat"]["users"].find_one({"email": email})
    return doc


def test_create_admin_creates_then_promotes(
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    shared_store: AsyncMongoMockClient,
) -> None:
    import asyncio

    assert run_create_admin(monkeypatch, "Root@Example.com", "a strong password") == 0
    assert "created admin root@example.com" in capsys.readouterr().out
    created = asyncio.run(_user(shared_store, "root@example.com"))
    assert created is not None
    assert created["role"] == "ADMIN"

    asyncio.run(
        shared_store["gql_chat"]["users"].update_one(
            {"_id": created["_id"]}, {"$set": {"role": "USER"}}
        )
    )
    assert run_create_admin(monkeypatch, "root@example.com", "") == 0
    assert "promoted admin root@example.com" in capsys.readouterr().out
    promoted = asyncio.run(_user(shared_store, "root@example.com"))
    assert promoted is not None
    assert promoted["role"] == "ADMIN"
    assert promoted["password_hash"] == created["password_hash"]


def test_create_admin_rejects_a_short_password(
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    shared_store: AsyncMongoMockClient,
) -> None:
    assert run_create_admin(monkeypatch, "new@example.com", "short") == 1
    assert "Password must be" in capsys.readouterr().err
