"""`gql-chat serve | export-schema | create-admin`."""

from __future__ import annotations

import argparse
import asyncio
import logging
import resource
import socket
import sys
from contextlib import suppress
from pathlib import Path
from typing import TYPE_CHECKING, Any

import uvicorn
from pydantic import ValidationError
from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol

from gql_chat.config import Settings, describe_settings_error
from gql_chat.errors import DomainError
from gql_chat.logs import configure_logging
from gql_chat.platform import install as install_platform
from gql_chat.platform.uvicorn_limits import limited_http_protocol
from gql_chat.platform.uvicorn_websockets import websocket_protocol

if TYPE_CHECKING:
    from starlette.applications import Starlette

logger = logging.getLogger(__name__)

STARTUP_FAILURE = 3  # uvicorn's exit status when the app cannot start
INTERRUPTED = 130
CLOSE_ANSWER_WAIT = 1.0
"""Seconds, at shutdown, for clients to answer the websockets' 1001 close before uvicorn drops
the connections."""


def load_settings() -> Settings:
    """Invalid settings end the process with one clear line naming the variable."""
    try:
        return Settings()
    except ValidationError as exc:
        print(f"gql-chat: {describe_settings_error(exc)}", file=sys.stderr)
        raise SystemExit(2) from None


def uvicorn_options(settings: Settings) -> dict[str, Any]:
    """How `gql-chat serve` runs uvicorn; the tests' live server runs it the same way."""
    return {
        # uvicorn's websockets-sansio protocol (its maintained one: the legacy `websockets`
        # one is deprecated, and under 50 streamed replies left half the cyclic garbage per
        # connection), with its error log for a refused handshake fixed and less memory per
        # open websocket (gql_chat/platform/uvicorn_websockets.py).
        "ws": websocket_protocol(),
        "ws_per_message_deflate": False,
        # uvicorn's default is 16 MiB, read before anyone signs in: a websocket message may be
        # as large as a request body and no larger (a larger one closes the socket with 1009).
        "ws_max_size": settings.max_body_bytes,
        "access_log": False,  # RequestContextMiddleware logs requests, without query strings
        "proxy_headers": False,  # the app believes X-Forwarded-For from trusted proxies only
        # uvicorn has no deadline for a request head, no limit on its size with httptools, and
        # no cap on connections (`limit_concurrency` answers 503 only after a complete head,
        # keeping the connection): see gql_chat/platform/uvicorn_limits.py.
        "http": limited_http_protocol(
            head_timeout=settings.header_timeout,
            max_head_bytes=settings.max_header_bytes,
            max_connections=settings.max_connections,
        ),
    }


FILE_DESCRIPTOR_MARGIN = 100
"""File descriptors beyond the connections: the MongoDB pool, the model provider's
connections, logs."""


def check_file_limit(settings: Settings) -> None:
    """Raise the process's open-file limit to fit `GQL_CHAT_MAX_CONNECTIONS`, or warn: at the
    limit the server can accept no connection at all, not even a health check."""
    needed = settings.max_connections + FILE_DESCRIPTOR_MARGIN
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY or soft >= needed:
        return
    if hard == resource.RLIM_INFINITY or hard >= needed:
        resource.setrlimit(resource.RLIMIT_NOFILE, (needed, hard))
        return
    logger.warning(
        "the open-file limit (%d) is too low for GQL_CHAT_MAX_CONNECTIONS=%d: lower the "
        "setting below %d or raise the limit",
        hard,
        settings.max_connections,
        hard - FILE_DESCRIPTOR_MARGIN,
    )


async def drain(app: Starlette) -> None:
    """Let in-flight replies finish (their followers get every event and `done`), then close
    the websockets with 1001 Going Away."""
    services = getattr(app.state, "services", None)
    if services is None:  # the lifespan never started
        return
    await services.runner.shutdown(services.settings.shutdown_grace)
    websockets = getattr(app.state, "websockets", None)
    if websockets is not None:
        await websockets.going_away()


class DrainingServer(uvicorn.Server):
    """uvicorn's server with the app's shutdown order. uvicorn first cuts every websocket
    with 1012 and only then runs the lifespan's shutdown, whose grace period lets replies
    finish: their followers lost the end. Here the server stops accepting connections, drains
    the app (`drain`), gives clients a moment to answer the 1001 close, and then lets uvicorn
    close what is left; the lifespan's own call of the runner's shutdown is then a no-op.
    A second Ctrl+C (uvicorn's force exit) stops waiting."""

    def __init__(self, config: uvicorn.Config, app: Starlette) -> None:
        super().__init__(config)
        self.app = app

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        """Ready is said once it is true: the app started and the socket accepts."""
        await super().startup(sockets)
        if self.started:
            names = ", ".join(str(s.getsockname()[:2]) for s in sockets or ())
            logger.info("gql_chat ready, accepting connections on %s", names or "its sockets")

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        for server in self.servers:
            server.close()
        draining = asyncio.create_task(drain(self.app))
        while not draining.done() and not self.force_exit:
            await asyncio.wait({draining}, timeout=0.1)
        draining.cancel()
        outcome = (await asyncio.gather(draining, return_exceptions=True))[0]
        if isinstance(outcome, Exception):
            logger.error("draining the app at shutdown failed", exc_info=outcome)
        await self._wait_for_close_answers()
        await super().shutdown(sockets)

    async def _wait_for_close_answers(self) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + CLOSE_ANSWER_WAIT
        while not self.force_exit and loop.time() < deadline:
            if not any(
                isinstance(connection, WebSocketsSansIOProtocol) and connection.close_sent
                for connection in self.server_state.connections
            ):
                return
            await asyncio.sleep(0.02)


def database_problem(settings: Settings) -> str | None:
    """One line saying why MongoDB cannot be used, or None when it answers a ping."""
    from gql_chat.store.database import DatabaseUnavailable, open_database

    async def check() -> None:
        database = open_database(settings)
        try:
            await database.check()
        finally:
            await database.close()

    try:
        asyncio.run(check())
    except DatabaseUnavailable as exc:
        return str(exc)
    return None


def serve(args: argparse.Namespace) -> int:
    settings = load_settings()
    configure_logging(settings)
    check_file_limit(settings)
    if settings.mongodb_url is not None:
        try:
            problem = database_problem(settings)
        except KeyboardInterrupt:
            return INTERRUPTED
        if problem is not None:
            print(f"gql-chat: {problem}", file=sys.stderr)
            return 1
    if args.reload:
        # Development only: uvicorn's reloader runs its own server, without `DrainingServer`.
        uvicorn.run(
            "gql_chat.app:create_app",
            factory=True,
            host=args.host,
            port=args.port,
            reload=True,
            **uvicorn_options(settings),
        )
        return 0
    try:  # before anything starts: a taken port is one clear line, not a traceback
        listener = socket.create_server((args.host, args.port), backlog=2048)
    except OSError as exc:
        reason = exc.strerror or str(exc)
        print(f"gql-chat: cannot listen on {args.host}:{args.port}: {reason}", file=sys.stderr)
        return 1
    from gql_chat.app import create_app

    app = create_app(settings)
    config = uvicorn.Config(
        app, host=args.host, port=args.port, log_config=None, **uvicorn_options(settings)
    )
    server = DrainingServer(config, app)
    with suppress(KeyboardInterrupt), listener:
        server.run(sockets=[listener])
    return 0 if server.started else STARTUP_FAILURE


def export_schema(args: argparse.Namespace) -> int:
    from gql_chat.api.schema import schema_sdl

    Path(args.output).write_text(schema_sdl())
    print(f"wrote {args.output}")
    return 0


def create_admin(args: argparse.Namespace) -> int:
    settings = load_settings()
    configure_logging(settings)
    install_platform()  # the embedded store needs mongomock's indexes
    password = sys.stdin.readline().rstrip("\r\n")
    return asyncio.run(_create_admin(settings, args.email, password))


async def _create_admin(settings: Settings, email: str, password: str) -> int:
    from limits.aio.storage import MemoryStorage

    from gql_chat.services.accounts import AccountService
    from gql_chat.services.audit import AuditLog
    from gql_chat.services.passwords import PasswordService
    from gql_chat.services.rate_limits import RateLimits
    from gql_chat.services.sign_ins import SignInChanges
    from gql_chat.services.tokens import TokenService
    from gql_chat.store.database import DatabaseUnavailable, open_database

    try:
        database = open_database(settings)
    except DatabaseUnavailable as exc:
        print(f"gql-chat: {exc}", file=sys.stderr)
        return 1
    try:
        await database.check()
        await database.create_indexes()
        accounts = AccountService(
            database,
            PasswordService(settings),
            TokenService(settings, "unused: no tokens issued"),
            RateLimits(settings, MemoryStorage()),
            SignInChanges(),
            AuditLog(settings, database.audit_log),
        )
        user, created = await accounts.create_admin(email, password)
    except DomainError as exc:
        print(f"gql-chat: {exc.message}", file=sys.stderr)
        return 1
    except DatabaseUnavailable as exc:
        print(f"gql-chat: {exc}", file=sys.stderr)
        return 1
    finally:
        await database.close()
    print(f"{'created' if created else 'promoted'} admin {user.email}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="gql-chat", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)

    serve_cmd = commands.add_parser("serve", help="run the server")
    serve_cmd.add_argument("--host", default="127.0.0.1")
    serve_cmd.add_argument("--port", type=int, default=8000)
    serve_cmd.add_argument("--reload", action="store_true", help="restart on code changes")
    serve_cmd.set_defaults(handler=serve)

    export_cmd = commands.add_parser("export-schema", help="write the GraphQL SDL")
    export_cmd.add_argument("--output", default="schema.graphql")
    export_cmd.set_defaults(handler=export_schema)

    admin_cmd = commands.add_parser(
        "create-admin", help="create an admin or promote a user (password read from stdin)"
    )
    admin_cmd.add_argument("--email", required=True)
    admin_cmd.set_defaults(handler=create_admin)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.captureWarnings(True)
    result: int = args.handler(args)
    return result
