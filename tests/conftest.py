"""Fixtures: test settings, the app with its lifespan, an HTTP client, a live uvicorn server.

Set GQL_CHAT_TEST_MONGODB_URL to run everything against a real MongoDB: each test then gets a
throwaway database that is dropped afterwards.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import socket
import tempfile
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
from starlette.applications import Starlette

from gql_chat.app import create_app
from gql_chat.cli import DrainingServer, uvicorn_options
from gql_chat.config import Settings
from gql_chat.platform import install as install_platform
from tests.fakes.openrouter import FakeOpenRouter
from tests.support import GraphQLClient, SignedIn, sign_up

TEST_MONGODB_URL = os.environ.get("GQL_CHAT_TEST_MONGODB_URL")
RATE_SETTINGS = (
    "login_per_email",
    "login_per_ip",
    "failed_logins_per_account",
    "register_per_ip",
    "refresh_per_user",
    "send_message_per_user",
    "password_reset_per_email",
    "password_reset_per_ip",
    "verification_mail_per_user",
)
TEST_MAIL_OUTBOX = Path(tempfile.gettempdir()) / f"gql_chat-test-outbox-{os.getpid()}"
"""Where the servers of the suite write their mail (a test that reads mail sets its own)."""
TEST_JWT_SECRET = "test-secret-that-is-long-enough-for-hs256-0123456789"


def make_settings(**overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "jwt_secret": TEST_JWT_SECRET,
        # Cheap argon2 keeps the suite fast; the production defaults are exercised in benchmarks.
        "argon2_time_cost": 1,
        "argon2_memory_kib": 64,
        "mongodb_url": TEST_MONGODB_URL,
        "mongodb_db": f"gql_chat_test_{uuid.uuid4().hex[:12]}",
        "mail_outbox": TEST_MAIL_OUTBOX,
        # Generous limits: the suite signs many users up from one address. The limits
        # themselves are tested with their defaults in tests/api/test_rate_limits.py.
        **{f"rate_{name}": "100000/minute" for name in RATE_SETTINGS},
    }
    values.update(overrides)
    return Settings(**values)


@pytest.fixture(scope="session", autouse=True)
def platform_installed() -> None:
    """What the app and the CLI do at start-up: tests also open stores and clients directly."""
    install_platform()


@pytest.fixture(scope="session", autouse=True)
def mail_outbox_removed() -> Iterator[None]:
    """The suite's mail goes when the suite ends: each run would leave a directory behind."""
    yield
    shutil.rmtree(TEST_MAIL_OUTBOX, ignore_errors=True)


@pytest.fixture
def settings_factory() -> Callable[..., Settings]:
    return make_settings


@pytest.fixture
def settings() -> Settings:
    return make_settings()


async def _drop_database(settings: Settings) -> None:
    if settings.mongodb_url is None:
        return
    from pymongo import AsyncMongoClient

    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(
        settings.mongodb_url.get_secret_value()
    )
    try:
        await client.drop_database(settings.mongodb_db)
    finally:
        await client.close()


async def stored_documents(
    settings: Settings, embedded: Any, collection: str, query: dict[str, Any]
) -> list[dict[str, Any]]:
    """Documents read straight from the database, after an app has shut down and closed its
    client (`embedded`: the in-memory client it ran on, when no MongoDB URL is set)."""
    if settings.mongodb_url is None:
        return [doc async for doc in embedded[settings.mongodb_db][collection].find(query)]
    from pymongo import AsyncMongoClient

    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(
        settings.mongodb_url.get_secret_value()
    )
    try:
        return await client[settings.mongodb_db][collection].find(query).to_list(None)
    finally:
        await client.close()


@pytest.fixture
async def app(settings: Settings) -> AsyncIterator[Starlette]:
    application = create_app(settings)
    async with application.router.lifespan_context(application):
        yield application
    await _drop_database(settings)


@pytest.fixture
async def http(app: Starlette) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        yield client


@pytest.fixture
def gql(http: httpx.AsyncClient) -> GraphQLClient:
    return GraphQLClient(http)


@asynccontextmanager
async def serve(
    app: Starlette, base_url: str = "http://testserver", client: tuple[str, int] | None = None
) -> AsyncIterator[httpx.AsyncClient]:
    """Run an app's lifespan and give an HTTP client bound to it (optionally from `client`)."""
    transport = httpx.ASGITransport(app=app, client=client or ("127.0.0.1", 123))
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=transport, base_url=base_url) as http,
    ):
        yield http


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class LiveServer:
    """A real uvicorn server on 127.0.0.1 running the app, in this test's event loop, as
    `gql-chat serve` runs it (its uvicorn options and its shutdown). `settings` are the app's
    (uvicorn's websocket message limit follows them); the defaults when not given."""

    def __init__(self, app: Starlette, settings: Settings | None = None) -> None:
        self.app = app
        self.port = free_port()
        config = uvicorn.Config(
            app,
            host="127.0.0.1",
            port=self.port,
            log_level="warning",
            lifespan="on",
            **uvicorn_options(settings or Settings.model_construct()),
        )
        self.server: uvicorn.Server = DrainingServer(config, app)
        self._task: asyncio.Task[None] | None = None

    @property
    def http_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}"

    async def start(self) -> None:
        self._task = asyncio.create_task(self.server.serve())
        for _ in range(500):
            if self.server.started:
                return
            if self._task.done():
                self._task.result()
            await asyncio.sleep(0.01)
        raise RuntimeError("uvicorn did not start")

    async def stop(self) -> None:
        self.server.should_exit = True
        if self._task is not None:
            await asyncio.wait_for(self._task, timeout=15)


@asynccontextmanager
async def live_server_of(settings: Settings, *, pings: bool = True) -> AsyncIterator[LiveServer]:
    """A live server of these settings; stopped, and its database dropped, afterwards.
    Without `pings`, it sends websockets no keepalive pings."""
    server = LiveServer(create_app(settings), settings)
    if not pings:
        server.server.config.ws_ping_interval = None
    await server.start()
    try:
        yield server
    finally:
        await server.stop()
        await _drop_database(settings)


@pytest.fixture
async def live_server(settings: Settings) -> AsyncIterator[LiveServer]:
    async with live_server_of(settings) as server:
        yield server


@pytest.fixture
async def legacy_server(settings_factory: Callable[..., Settings]) -> AsyncIterator[LiveServer]:
    """A live server that also speaks the legacy `graphql-ws` protocol."""
    async with live_server_of(settings_factory(enable_legacy_graphql_ws=True)) as server:
        yield server


@pytest.fixture
async def live_gql(live_server: LiveServer) -> AsyncIterator[GraphQLClient]:
    async with httpx.AsyncClient(base_url=live_server.http_url) as client:
        yield GraphQLClient(client)


@pytest.fixture
async def alice(gql: GraphQLClient) -> SignedIn:
    return await sign_up(gql)


@pytest.fixture
async def bob(gql: GraphQLClient) -> SignedIn:
    return await sign_up(gql)


@pytest.fixture
async def admin(gql: GraphQLClient, app: Starlette) -> SignedIn:
    """An admin made the way `gql-chat create-admin` makes one (promotion of an account)."""
    user = await sign_up(gql)
    await app.state.services.accounts.create_admin(user.email, "")
    return user


@pytest.fixture
async def fake_openrouter() -> AsyncIterator[FakeOpenRouter]:
    fake = FakeOpenRouter()
    await fake.start()
    try:
        yield fake
    finally:
        await fake.stop()


def openrouter_settings(fake: FakeOpenRouter, **overrides: Any) -> Settings:
    """Settings that talk to the fake OpenRouter, with fast retries and short timeouts."""
    values: dict[str, Any] = {
        "openrouter_api_key": "sk-or-test-key-never-echoed",
        "openrouter_base_url": fake.base_url,
        "upstream_retry_backoff": 0.01,
        "upstream_retry_after_cap": 0.2,
        "upstream_first_byte_timeout": 2.0,
        "upstream_chunk_timeout": 2.0,
        "stream_flush_interval": 0.05,
        "shutdown_grace": 0.5,
    }
    values.update(overrides)
    return make_settings(**values)
