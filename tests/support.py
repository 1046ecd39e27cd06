"""Test helpers: a GraphQL client over HTTP and a graphql-transport-ws client over websockets."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import itertools
import json
import shutil
import socket
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from redis.asyncio import Redis
from redis.exceptions import RedisError
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed
from websockets.typing import Subprotocol

DEFAULT_PASSWORD = "correct horse battery"

_emails = itertools.count(1)


def unique_email(prefix: str = "user") -> str:
    return f"{prefix}{next(_emails)}@example.com"


@dataclass
class GraphQLResult:
    status: int
    body: dict[str, Any]

    @property
    def data(self) -> Any:
        return self.body.get("data")

    @property
    def errors(self) -> list[dict[str, Any]]:
        return list(self.body.get("errors") or [])

    @property
    def error_codes(self) -> list[str | None]:
        return [error.get("extensions", {}).get("code") for error in self.errors]

    def ok(self) -> Any:
        assert not self.errors, self.errors
        return self.data


class GraphQLClient:
    def __init__(self, http: httpx.AsyncClient) -> None:
        self.http = http

    async def execute(
        self,
        query: str,
        variables: dict[str, Any] | None = None,
        *,
        token: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> GraphQLResult:
        all_headers = dict(headers or {})
        if token is not None:
            all_headers["Authorization"] = f"Bearer {token}"
        response = await self.http.post(
            "/graphql", json={"query": query, "variables": variables or {}}, headers=all_headers
        )
        return GraphQLResult(status=response.status_code, body=response.json())

    async def register(
        self,
        email: str | None = None,
        password: str = DEFAULT_PASSWORD,
        display_name: str | None = None,
    ) -> dict[str, Any]:
        result = await self.execute(
            """mutation($input: RegisterInput!) { register(input: $input) {
                accessToken accessTokenExpiresAt refreshToken refreshTokenExpiresAt
                user { id email displayName role disabled createdAt } } }""",
            {
                "input": {
                    "email": email or unique_email(),
                    "password": password,
                    "displayName": display_name,
                }
            },
        )
        payload: dict[str, Any] = result.ok()["register"]
        return payload


class TransportWsClient:
    """The client side of graphql-transport-ws, enough to drive subscriptions in tests."""

    def __init__(self, connection: ClientConnection) -> None:
        self.connection = connection
        self._ids = itertools.count(1)

    async def send(self, message: dict[str, Any]) -> None:
        await self.connection.send(json.dumps(message))

    async def receive(self) -> dict[str, Any]:
        frame = await self.connection.recv()
        assert isinstance(frame, str), "graphql-transport-ws messages travel in text frames"
        message: dict[str, Any] = json.loads(frame)
        return message

    async def init(self, payload: dict[str, Any] | None = None) -> dict[str, Any]:
        await self.send({"type": "connection_init", "payload": payload or {}})
        return await self.receive()

    async def subscribe(self, query: str, variables: dict[str, Any] | None = None) -> str:
        operation_id = str(next(self._ids))
        await self.send(
            {
                "id": operation_id,
                "type": "subscribe",
                "payload": {"query": query, "variables": variables or {}},
            }
        )
        return operation_id


async def close_code(ws: TransportWsClient, within: float = 5.0) -> int:
    """The code the server closes the socket with, reading (and dropping) frames until then."""

    async def closed() -> int:
        try:
            while True:
                await ws.receive()
        except ConnectionClosed as closing:
            received = closing.rcvd
        assert received is not None, "the server closed the socket"
        return received.code

    return await asyncio.wait_for(closed(), timeout=within)


@asynccontextmanager
async def ws_client(base_ws_url: str, **kwargs: Any) -> AsyncIterator[TransportWsClient]:
    protocols = [Subprotocol("graphql-transport-ws")]
    async with connect(f"{base_ws_url}/graphql", subprotocols=protocols, **kwargs) as connection:
        yield TransportWsClient(connection)


@asynccontextmanager
async def signed_in_socket(base_ws_url: str, token: str) -> AsyncIterator[TransportWsClient]:
    """A graphql-transport-ws socket, acknowledged for this access token."""
    async with ws_client(base_ws_url) as ws:
        ack = await ws.init({"Authorization": f"Bearer {token}"})
        assert ack["type"] == "connection_ack", ack
        yield ws


@dataclass
class SignedIn:
    """A registered user and a client bound to their access token."""

    gql: GraphQLClient
    token: str
    refresh_token: str
    user_id: str
    email: str

    async def execute(self, query: str, variables: dict[str, Any] | None = None) -> GraphQLResult:
        return await self.gql.execute(query, variables, token=self.token)

    async def ok(self, query: str, variables: dict[str, Any] | None = None) -> Any:
        return (await self.execute(query, variables)).ok()


def as_user(user: SignedIn, gql: GraphQLClient) -> SignedIn:
    """The same user, talking through another client (another instance, say)."""
    return SignedIn(gql, user.token, user.refresh_token, user.user_id, user.email)


async def sign_up(gql: GraphQLClient, email: str | None = None) -> SignedIn:
    payload = await gql.register(email=email)
    return SignedIn(
        gql=gql,
        token=payload["accessToken"],
        refresh_token=payload["refreshToken"],
        user_id=payload["user"]["id"],
        email=payload["user"]["email"],
    )


CREATE_FOLDER = """mutation($input: CreateFolderInput!) {
    createFolder(input: $input) { id name position parent { id } } }"""
CREATE_CONVERSATION = """mutation($input: CreateConversationInput!) {
    createConversation(input: $input) { id title folder { id } llmConfig { id } } }"""
CREATE_PRESET = """mutation($input: CreateLlmConfigInput!) {
    createLlmConfig(input: $input) { id name model isDefault } }"""


async def create_folder(user: SignedIn, name: str, parent_id: str | None = None) -> str:
    data = await user.ok(CREATE_FOLDER, {"input": {"name": name, "parentId": parent_id}})
    folder_id: str = data["createFolder"]["id"]
    return folder_id


async def create_conversation(user: SignedIn, **fields: Any) -> str:
    data = await user.ok(CREATE_CONVERSATION, {"input": fields})
    conversation_id: str = data["createConversation"]["id"]
    return conversation_id


async def create_preset(user: SignedIn, name: str = "Preset", **fields: Any) -> str:
    data = await user.ok(
        CREATE_PRESET, {"input": {"name": name, "model": "openai/gpt-4o-mini", **fields}}
    )
    preset_id: str = data["createLlmConfig"]["id"]
    return preset_id


SEND = """mutation($input: SendMessageInput!) { sendMessage(input: $input) {
    conversation { id title messageCount }
    userMessage { id role content status parentId }
    assistantMessage { id role content status model parentId } } }"""
STREAM = """subscription($id: ID!, $after: Int) { messageStream(messageId: $id, afterSeq: $after) {
    messageId seq delta status done
    message { id content status model usage { promptTokens completionTokens totalTokens cost }
              error { code message } } } }"""


async def send_message(
    user: SignedIn, content: str = "Hello there", **fields: Any
) -> dict[str, Any]:
    data = await user.ok(SEND, {"input": {"content": content, **fields}})
    payload: dict[str, Any] = data["sendMessage"]
    return payload


async def follow_reply(
    ws_url: str,
    token: str,
    message_id: str,
    after_seq: int = 0,
    stop_after: int | None = None,
    *,
    keepalive: bool = True,
) -> list[dict[str, Any]]:
    """Subscribe to `messageStream` and collect events until `done`, or disconnect after
    `stop_after` events (like a client whose network dropped). Without `keepalive` the client
    sends no pings (its pong would wait behind every frame already in flight)."""
    events: list[dict[str, Any]] = []
    async with ws_client(ws_url, **({} if keepalive else {"ping_interval": None})) as ws:
        ack = await ws.init({"Authorization": f"Bearer {token}"})
        assert ack["type"] == "connection_ack", ack
        operation = await ws.subscribe(STREAM, {"id": message_id, "after": after_seq})
        while True:
            message = await asyncio.wait_for(ws.receive(), timeout=20)
            assert message.get("id") == operation, message
            if message["type"] == "complete":
                return events
            assert message["type"] == "next", message
            assert "errors" not in message["payload"], message["payload"]
            event = message["payload"]["data"]["messageStream"]
            events.append(event)
            if event["done"] or (stop_after is not None and len(events) >= stop_after):
                return events


async def subscription_errors(
    ws_url: str, token: str, query: str, variables: dict[str, Any]
) -> list[dict[str, Any]]:
    """The errors a subscription answers with (over `next` or `error` messages)."""
    async with ws_client(ws_url) as ws:
        await ws.init({"Authorization": f"Bearer {token}"})
        await ws.subscribe(query, variables)
        message = await asyncio.wait_for(ws.receive(), timeout=10)
        if message["type"] == "error":
            return list(message["payload"])
        return list(message["payload"].get("errors") or [])


class RedisServer:
    """A private redis-server on 127.0.0.1 that a test may stop and start again."""

    def __init__(self) -> None:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            self.port: int = sock.getsockname()[1]
        self.process: asyncio.subprocess.Process | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    async def start(self) -> None:
        binary = shutil.which("redis-server")
        assert binary is not None, "redis-server is not installed"
        self.process = await asyncio.create_subprocess_exec(
            *(binary, "--port", str(self.port), "--bind", "127.0.0.1"),
            *("--save", "", "--appendonly", "no"),
            *("--enable-debug-command", "local"),  # DEBUG SLEEP: a stalled Redis, in tests
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.DEVNULL,
        )
        client: Redis = Redis.from_url(self.url)
        try:
            for _ in range(200):
                with contextlib.suppress(RedisError, OSError):
                    if await client.ping():
                        return
                await asyncio.sleep(0.02)
        finally:
            await client.aclose()
        raise RuntimeError("redis-server did not start")

    async def stop(self) -> None:
        if self.process is not None:
            self.process.kill()
            await self.process.wait()
            self.process = None


@contextmanager
def within(seconds: float) -> Iterator[None]:
    """The code inside takes less than `seconds` of this thread's CPU (the app under test runs
    on its event loop here): unlike wall time, other load on the machine does not count, so the
    bound can stay tight against the cost it guards (an exploding document took seconds).
    Neither do other threads (password hashing left by earlier tests) nor a full collection of
    the suite's heap that happens to fall inside: the collector is paused for the block."""
    collecting = gc.isenabled()
    gc.disable()
    started = time.thread_time()
    try:
        yield
        elapsed = time.thread_time() - started
    finally:
        if collecting:
            gc.enable()
    assert elapsed < seconds, f"took {elapsed:.2f} s of CPU"


UPLOAD = """mutation($file: Upload!) { uploadAttachment(file: $file) {
    id kind filename mediaType size sha256 width height pageCount createdAt url } }"""


async def upload_file(
    user: SignedIn,
    content: bytes,
    filename: str = "notes.txt",
    content_type: str | None = "application/octet-stream",
    *,
    headers: dict[str, str] | None = None,
) -> httpx.Response:
    """`uploadAttachment` as apollo-upload-client sends it: a GraphQL multipart request (the
    operation, a map from file part to variable, the file part) with its preflight header."""
    operations = {"query": UPLOAD, "variables": {"file": None}}
    file_part: tuple[Any, ...] = (
        (filename, content, content_type) if content_type is not None else (filename, content)
    )
    return await user.gql.http.post(
        "/graphql",
        data={"operations": json.dumps(operations), "map": json.dumps({"1": ["variables.file"]})},
        files={"1": file_part},
        headers={
            "Authorization": f"Bearer {user.token}",
            "Apollo-Require-Preflight": "true",
            **(headers or {}),
        },
    )


async def upload_attachment(
    user: SignedIn, content: bytes, filename: str = "notes.txt", content_type: str | None = None
) -> dict[str, Any]:
    response = await upload_file(user, content, filename, content_type)
    body = response.json()
    assert response.status_code == 200, body
    assert not body.get("errors"), body
    attachment: dict[str, Any] = body["data"]["uploadAttachment"]
    return attachment


async def final_message(
    user: SignedIn, message_id: str, fields: str = "", within: float = 20.0
) -> dict[str, Any]:
    """`message(id) { status <fields> }` once the reply is no longer PENDING or STREAMING."""
    query = f"query($id: ID!) {{ message(id: $id) {{ status {fields} }} }}"
    deadline = time.monotonic() + within
    while True:
        message: dict[str, Any] = (await user.ok(query, {"id": message_id}))["message"]
        if message["status"] not in ("PENDING", "STREAMING"):
            return message
        if time.monotonic() > deadline:
            raise AssertionError(f"the reply {message_id} did not finish in {within} s")
        await asyncio.sleep(0.02)


NODE_SCRIPT_SECONDS = 120


async def run_node(script: Path, *args: str) -> tuple[int, str, str]:
    """A Node script's exit status, standard output and standard error (at most
    `NODE_SCRIPT_SECONDS`)."""
    process = await asyncio.create_subprocess_exec(
        "node",
        str(script),
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    stdout, stderr = await asyncio.wait_for(process.communicate(), NODE_SCRIPT_SECONDS)
    assert process.returncode is not None
    return process.returncode, stdout.decode(), stderr.decode()
