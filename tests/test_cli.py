"""The `gql-chat` command line."""

from __future__ import annotations

import functools
import io
import os
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from pymongo_async_mock import AsyncMongoMockClient
from starlette.applications import Starlette

from gql_chat import cli
from gql_chat.platform.uvicorn_limits import (
    DenialCompletingWebSocketsProtocol,
    LimitedHttpToolsProtocol,
)
from gql_chat.platform.uvicorn_websockets import LeanWebSocketsProtocol
from gql_chat.store.database import open_database
from gql_chat.store.embedded import open_embedded_client
from tests.conftest import free_port

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
    monkeypatch.setenv("GQL_CHAT_MAX_BODY_BYTES", "65536")
    servers: list[cli.DrainingServer] = []

    def run(server: cli.DrainingServer, sockets: Any = None) -> None:
        servers.append(server)
        server.started = True

    monkeypatch.setattr(cli.DrainingServer, "run", run)
    port = free_port()
    assert cli.main(["serve", "--host", "0.0.0.0", "--port", str(port)]) == 0
    config = servers[0].config
    assert isinstance(servers[0].app, Starlette)
    assert config.app is servers[0].app
    assert (config.host, config.port) == ("0.0.0.0", port)
    assert config.ws is LeanWebSocketsProtocol  # websockets-sansio, fixed, leaner
    assert issubclass(config.ws, DenialCompletingWebSocketsProtocol)
    assert config.ws_per_message_deflate is False
    assert config.ws_max_size == 65536  # the body limit, not uvicorn's 16 MiB
    assert config.proxy_headers is False
    assert config.access_log is False
    http = config.http  # the request head's deadline and size limit, the connection cap
    assert isinstance(http, functools.partial)
    assert http.func is LimitedHttpToolsProtocol
    assert http.keywords == {"head_timeout": 10.0, "max_head_bytes": 65536, "max_connections": 1000}

    calls: list[dict[str, Any]] = []
    monkeypatch.setattr("uvicorn.run", lambda app, **kwargs: calls.append({"app": app, **kwargs}))
    assert cli.main(["serve", "--reload"]) == 0
    assert calls[0]["app"] == "gql_chat.app:create_app"
    assert calls[0]["reload"] is True
    assert calls[0]["ws"] is LeanWebSocketsProtocol
    assert calls[0]["http"].func is LimitedHttpToolsProtocol
    assert calls[0]["ws_max_size"] == 65536


def test_serve_stops_with_one_line_when_mongodb_is_unreachable() -> None:
    """A real start in production mode: no traceback, no driver message, no credentials."""
    password = "pw-never-printed"
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("GQL_CHAT_")},
        "GQL_CHAT_ENV": "production",
        "GQL_CHAT_JWT_SECRET": "x" * 40,
        "GQL_CHAT_MONGODB_URL": (
            f"mongodb://admin:{password}@127.0.0.1:1/?serverSelectionTimeoutMS=300"
        ),
    }
    started = time.monotonic()
    result = subprocess.run(
        [sys.executable, "-m", "gql_chat", "serve", "--port", "1"],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    assert result.returncode == 1
    assert result.stderr.strip() == "gql-chat: cannot reach MongoDB at 127.0.0.1:1"
    assert result.stdout == ""
    assert time.monotonic() - started < 30


def test_serve_stops_with_one_line_when_its_port_is_taken() -> None:
    """Before the app starts (no "ready" line first), exit status 1."""
    with socket.create_server(("127.0.0.1", 0)) as taken:
        port = taken.getsockname()[1]
        env = {k: v for k, v in os.environ.items() if not k.startswith("GQL_CHAT_")}
        result = subprocess.run(
            [sys.executable, "-m", "gql_chat", "serve", "--host", "127.0.0.1", "--port", str(port)],
            capture_output=True,
            text=True,
            env=env,
            timeout=60,
        )
    assert result.returncode == 1
    assert (
        result.stderr.strip()
        .splitlines()[-1]
        .startswith(f"gql-chat: cannot listen on 127.0.0.1:{port}: ")
    )
    assert "gql_chat ready" not in result.stderr
    assert "Traceback" not in result.stderr


def test_create_admin_stops_with_one_line_when_mongodb_is_unreachable(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv(
        "GQL_CHAT_MONGODB_URL", "mongodb://u:secret@127.0.0.1:1/?serverSelectionTimeoutMS=200"
    )
    assert run_create_admin(monkeypatch, "root@example.com", "a strong password") == 1
    assert capsys.readouterr().err.strip() == "gql-chat: cannot reach MongoDB at 127.0.0.1:1"
    monkeypatch.setenv("GQL_CHAT_MONGODB_URL", "mongodb://u:secret@host:port/")
    assert run_create_admin(monkeypatch, "root@example.com", "a strong password") == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("gql-chat: GQL_CHAT_MONGODB_URL is not a valid MongoDB URL")
    assert "secret" not in err


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
