"""Several real `gql-chat serve` processes sharing one MongoDB and one Redis, behind nginx as a
round-robin balancer with websocket upgrade and no sticky sessions: as a deployment runs them.

Needs a MongoDB server (processes cannot share the embedded store; CI runs this file in its
SecantusDB pass), `redis-server` and `nginx` (CI installs both); skipped otherwise."""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import signal
import sys
import tempfile
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import httpx
import pytest

from tests.conftest import (
    TEST_JWT_SECRET,
    TEST_MONGODB_URL,
    _drop_database,
    free_port,
    make_settings,
)
from tests.fakes.openrouter import FakeOpenRouter, Reply
from tests.support import (
    GraphQLClient,
    RedisServer,
    SignedIn,
    TransportWsClient,
    as_user,
    sign_up,
    signed_in_socket,
)

pytestmark = pytest.mark.skipif(
    TEST_MONGODB_URL is None or not shutil.which("redis-server") or not shutil.which("nginx"),
    reason="needs a MongoDB server (GQL_CHAT_TEST_MONGODB_URL), redis-server and nginx",
)

LEASE = 2.0
STREAM = """subscription($id: ID!, $after: Int) { messageStream(messageId: $id, afterSeq: $after) {
    seq delta done status message { content } } }"""
SEND = "mutation($c: String!) { sendMessage(input: {content: $c}) { assistantMessage { id } } }"
SLOW = Reply(tokens=[f"t{i} " for i in range(60)], token_delay=0.05)


class ServerProcess:
    """`python -m gql_chat serve` on a port of its own, its log in a file."""

    def __init__(self, env: dict[str, str], log_dir: Path) -> None:
        self.port = free_port()
        self.env = env
        self.log_path = log_dir / f"server-{self.port}.log"
        self.process: asyncio.subprocess.Process | None = None
        self._log: IO[bytes] | None = None

    @property
    def http_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}"

    async def start(self) -> None:
        self._log = self.log_path.open("wb")
        self.process = await asyncio.create_subprocess_exec(
            *(sys.executable, "-m", "gql_chat", "serve", "--port", str(self.port)),
            env=self.env,
            stdout=self._log,
            stderr=self._log,
        )
        await wait_until_up(f"{self.http_url}/healthz")

    def kill(self) -> None:
        """As `kill -9` would: no shutdown of any kind."""
        assert self.process is not None
        self.process.kill()

    async def stop(self) -> None:
        if self.process is not None and self.process.returncode is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(self.process.wait(), timeout=20)
            except TimeoutError:
                self.process.kill()
                await self.process.wait()
        if self._log is not None:
            self._log.close()

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")


DEPLOY_NGINX_CONF = Path(__file__).parents[2] / "deploy" / "nginx.conf"


def nginx_conf(ports: list[int], port: int, tmp: Path) -> str:
    """`deploy/nginx.conf` with these instances, this port, and paths and logs of its own."""
    conf = DEPLOY_NGINX_CONF.read_text()
    servers = "".join(f"    server 127.0.0.1:{p};\n" for p in ports)
    conf, upstreams = re.subn(
        r"(upstream gql_chat \{\n)(?:\s*server [^;]+;\n)+", lambda m: m.group(1) + servers, conf
    )
    conf, listens = re.subn(r"listen 8000;", f"listen 127.0.0.1:{port};", conf)
    own_paths = "".join(
        f"  {kind}_temp_path {tmp}/{kind};\n"
        for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
    )
    conf, https = re.subn(
        r"^http \{\n", f"http {{\n  access_log off;\n{own_paths}", conf, flags=re.M
    )
    assert (upstreams, listens, https) == (1, 1, 1), "deploy/nginx.conf changed shape"
    user = "user root;\n" if os.geteuid() == 0 else ""
    return f"{user}daemon off;\npid {tmp}/nginx.pid;\nerror_log {tmp}/nginx-error.log warn;\n{conf}"


@asynccontextmanager
async def nginx(ports: list[int], tmp: Path) -> AsyncIterator[str]:
    """nginx on a free port, round-robin over `ports`; yields its host and port."""
    port = free_port()
    conf = tmp / "nginx.conf"
    conf.write_text(nginx_conf(ports, port, tmp))
    binary = shutil.which("nginx")
    assert binary is not None
    process = await asyncio.create_subprocess_exec(
        binary,
        *("-c", str(conf), "-p", str(tmp)),
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL,
    )
    try:
        await wait_until_up(f"http://127.0.0.1:{port}/healthz")
        yield f"127.0.0.1:{port}"
    finally:
        process.send_signal(signal.SIGQUIT)
        try:
            await asyncio.wait_for(process.wait(), timeout=10)
        except TimeoutError:
            process.kill()
            await process.wait()


async def wait_until_up(url: str, within: float = 30.0) -> None:
    async with httpx.AsyncClient() as http:
        for _ in range(int(within / 0.1)):
            try:
                if (await http.get(url)).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            await asyncio.sleep(0.1)
    raise AssertionError(f"{url} did not come up")


@dataclass
class Deployment:
    servers: list[ServerProcess]
    balancer: str  # host:port
    redis: RedisServer
    provider: FakeOpenRouter
    database: str


@pytest.fixture
async def deployment(fake_openrouter: FakeOpenRouter) -> AsyncIterator[Deployment]:
    assert TEST_MONGODB_URL is not None
    redis = RedisServer()
    await redis.start()
    database = f"gql_chat_test_{uuid.uuid4().hex[:12]}"
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("GQL_CHAT_")},
        "GQL_CHAT_MONGODB_URL": TEST_MONGODB_URL,
        "GQL_CHAT_MONGODB_DB": database,
        "GQL_CHAT_REDIS_URL": redis.url,
        "GQL_CHAT_REPLY_LEASE": str(LEASE),
        "GQL_CHAT_JWT_SECRET": TEST_JWT_SECRET,
        "GQL_CHAT_OPENROUTER_API_KEY": "sk-or-test-key-never-echoed",
        "GQL_CHAT_OPENROUTER_BASE_URL": fake_openrouter.base_url,
        "GQL_CHAT_ARGON2_TIME_COST": "1",
        "GQL_CHAT_ARGON2_MEMORY_KIB": "64",
        "GQL_CHAT_RATE_REGISTER_PER_IP": "1000/minute",
        "GQL_CHAT_RATE_SEND_MESSAGE_PER_USER": "1000/minute",
        "GQL_CHAT_LOG_LEVEL": "INFO",
        "GQL_CHAT_SHUTDOWN_GRACE": "1",
    }
    with tempfile.TemporaryDirectory(prefix="gql-chat-cluster-") as tmp:
        servers = [ServerProcess(env, Path(tmp)) for _ in range(2)]
        try:
            await asyncio.gather(*(server.start() for server in servers))
            async with nginx([s.port for s in servers], Path(tmp)) as balancer:
                yield Deployment(servers, balancer, redis, fake_openrouter, database)
        finally:
            await asyncio.gather(*(server.stop() for server in servers))
            await redis.stop()
            await _drop_database(make_settings(mongodb_db=database))


@asynccontextmanager
async def client_of(base: str) -> AsyncIterator[GraphQLClient]:
    async with httpx.AsyncClient(base_url=base, timeout=30) as http:
        yield GraphQLClient(http)


async def follow(
    ws: TransportWsClient,
    reply: str,
    after: int = 0,
    stop_at: int | None = None,
    texts: list[str] | None = None,
) -> tuple[list[int], dict[str, Any] | None]:
    """The seqs of the deltas received (their text appended to `texts`), and the `done` event
    (None when stopped at `stop_at`)."""
    await ws.subscribe(STREAM, {"id": reply, "after": after})
    seqs: list[int] = []
    while True:
        message = await asyncio.wait_for(ws.receive(), timeout=15)
        assert message["type"] == "next", message
        event = message["payload"]["data"]["messageStream"]
        if event["done"]:
            return seqs, event
        seqs.append(event["seq"])
        if texts is not None:
            texts.append(event["delta"])
        if stop_at is not None and len(seqs) >= stop_at:
            return seqs, None


async def signed_up_with_a_reply(gql: GraphQLClient) -> tuple[SignedIn, str]:
    alice = await sign_up(gql)
    reply = (await alice.ok(SEND, {"c": "hello"}))["sendMessage"]["assistantMessage"]["id"]
    return alice, reply


async def test_a_client_through_the_balancer_lands_on_every_instance_and_sees_one_service(
    deployment: Deployment,
) -> None:
    """Every request and socket of this client goes through nginx, round-robin: sign-up,
    sends, a follower and `userEvents` land on different instances and still agree."""
    deployment.provider.default = Reply(tokens=[f"w{i} " for i in range(20)], token_delay=0.02)
    base = f"http://{deployment.balancer}"
    async with client_of(base) as gql:
        alice = await sign_up(gql)
        async with signed_in_socket(f"ws://{deployment.balancer}", alice.token) as events:
            await events.subscribe("subscription { userEvents { kind messageId } }")
            await asyncio.sleep(0.3)
            for n in range(4):
                reply = (await alice.ok(SEND, {"c": f"hello {n}"}))["sendMessage"][
                    "assistantMessage"
                ]["id"]
                async with signed_in_socket(f"ws://{deployment.balancer}", alice.token) as follower:
                    seqs, done = await follow(follower, reply)
                assert done is not None
                assert done["status"] == "COMPLETE"
                assert seqs == sorted(set(seqs))  # each once, in order
                assert done["message"]["content"] == "".join(f"w{i} " for i in range(20))
                while True:  # the reply's completion reaches the events socket
                    message = await asyncio.wait_for(events.receive(), timeout=10)
                    event = message["payload"]["data"]["userEvents"]
                    if event == {"kind": "MESSAGE_COMPLETED", "messageId": reply}:
                        break
    for server in deployment.servers:
        assert "operation_type=" in server.log(), "round-robin reached every instance"
        assert "Traceback" not in server.log()


async def test_a_follower_resumes_on_another_instance_with_every_seq_once(
    deployment: Deployment,
) -> None:
    deployment.provider.default = SLOW
    a, b = deployment.servers
    async with client_of(a.http_url) as gql:
        alice, reply = await signed_up_with_a_reply(gql)
        async with signed_in_socket(a.ws_url, alice.token) as on_a:
            first, _ = await follow(on_a, reply, stop_at=10)
        async with signed_in_socket(b.ws_url, alice.token) as on_b:
            rest, done = await follow(on_b, reply, after=first[-1])
    assert done is not None
    assert done["status"] == "COMPLETE"
    assert first + rest == list(range(1, 61))


async def test_kill_9_of_the_producing_instance_ends_its_replies_and_frees_the_users_slots(
    deployment: Deployment,
) -> None:
    """The follower on B gets `done` INTERRUPTED within the lease plus a sweep, with the text it
    was shown (the deltas A streamed after its last save are saved from Redis); the user's three
    slots, held in Redis by the dead instance, free themselves when their lease runs out."""
    deployment.provider.default = Reply(tokens=["slow "] * 600, token_delay=0.05)
    a, b = deployment.servers
    async with client_of(a.http_url) as on_a, client_of(b.http_url) as on_b:
        alice = await sign_up(on_a)
        alice_on_b = as_user(alice, on_b)
        replies = [
            (await alice.ok(SEND, {"c": f"hello {n}"}))["sendMessage"]["assistantMessage"]["id"]
            for n in range(3)
        ]
        assert (await alice_on_b.execute(SEND, {"c": "a fourth"})).error_codes == ["RATE_LIMITED"]
        async with signed_in_socket(b.ws_url, alice.token) as follower:
            shown: list[str] = []
            following = asyncio.create_task(follow(follower, replies[0], texts=shown))
            await asyncio.sleep(0.5)
            a.kill()
            loop = asyncio.get_running_loop()
            killed_at = loop.time()
            _, done = await following
            assert done is not None
            assert done["status"] == "INTERRUPTED"
            assert done["message"]["content"] == "".join(shown)
            assert loop.time() - killed_at < LEASE * 3
        for _ in range(int(LEASE * 3 / 0.2)):
            if (await alice_on_b.execute(SEND, {"c": "after the lease"})).data is not None:
                break
            await asyncio.sleep(0.2)
        else:
            raise AssertionError("the dead instance's slots never freed themselves")


async def test_a_reply_survives_redis_stopping_and_starting_mid_reply(
    deployment: Deployment,
) -> None:
    deployment.provider.default = SLOW
    a, b = deployment.servers
    async with client_of(a.http_url) as gql:
        alice, reply = await signed_up_with_a_reply(gql)
        async with signed_in_socket(b.ws_url, alice.token) as on_b:
            following = asyncio.create_task(follow(on_b, reply))
            await asyncio.sleep(0.5)
            await deployment.redis.stop()
            await asyncio.sleep(1.0)
            await deployment.redis.start()
            seqs, done = await following
    assert done is not None
    assert done["status"] == "COMPLETE"
    assert seqs == list(range(1, 61))


async def test_a_stop_sent_to_the_other_instance_ends_the_reply_and_its_upstream_request(
    deployment: Deployment,
) -> None:
    deployment.provider.default = Reply(tokens=["slow "] * 600, token_delay=0.05)
    a, b = deployment.servers
    async with client_of(a.http_url) as on_a, client_of(b.http_url) as on_b:
        alice, reply = await signed_up_with_a_reply(on_a)
        alice_on_b = as_user(alice, on_b)
        async with signed_in_socket(a.ws_url, alice.token) as follower:
            following = asyncio.create_task(follow(follower, reply))
            await asyncio.sleep(0.5)
            stopped = await alice_on_b.ok(
                "mutation($id: ID!) { stopGeneration(messageId: $id) { status } }", {"id": reply}
            )
            assert stopped["stopGeneration"]["status"] == "STOPPED"
            _, done = await asyncio.wait_for(following, timeout=5)
        assert done is not None
        assert done["status"] == "STOPPED"
        await asyncio.wait_for(deployment.provider.disconnected.wait(), timeout=5)
