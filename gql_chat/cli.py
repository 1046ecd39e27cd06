"""`gql-chat serve | export-schema | create-admin`."""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from pathlib import Path

from pydantic import ValidationError

from gql_chat.config import Settings, describe_settings_error
from gql_chat.errors import DomainError
from gql_chat.logs import configure_logging


def load_settings() -> Settings:
    """Invalid settings end the process with one clear line naming the variable."""
    try:
        return Settings()
    except ValidationError as exc:
        print(f"gql-chat: {describe_settings_error(exc)}", file=sys.stderr)
        raise SystemExit(2) from None


WEBSOCKETS = "websockets-sansio"
"""uvicorn's websocket implementation: its maintained one (the legacy `websockets` one is
deprecated), which under 50 streamed replies left half the cyclic garbage per connection."""


def serve(args: argparse.Namespace) -> int:
    import uvicorn

    settings = load_settings()
    configure_logging(settings)
    if args.reload:
        uvicorn.run(
            "gql_chat.app:create_app",
            factory=True,
            host=args.host,
            port=args.port,
            reload=True,
            ws=WEBSOCKETS,
        )
        return 0
    from gql_chat.app import create_app

    uvicorn.run(
        create_app(settings),
        host=args.host,
        port=args.port,
        log_config=None,
        access_log=False,  # RequestContextMiddleware logs requests, without query strings
        proxy_headers=False,
        ws=WEBSOCKETS,
        ws_per_message_deflate=False,
    )
    return 0


def export_schema(args: argparse.Namespace) -> int:
    from gql_chat.api.schema import schema_sdl

    Path(args.output).write_text(schema_sdl())
    print(f"wrote {args.output}")
    return 0


def create_admin(args: argparse.Namespace) -> int:
    settings = load_settings()
    configure_logging(settings)
    password = sys.stdin.readline().rstrip("\r\n")
    return asyncio.run(_create_admin(settings, args.email, password))


async def _create_admin(settings: Settings, email: str, password: str) -> int:
    from limits.aio.storage import MemoryStorage

    from gql_chat.services.accounts import AccountService
    from gql_chat.services.passwords import PasswordService
    from gql_chat.services.rate_limits import RateLimits
    from gql_chat.services.tokens import TokenService
    from gql_chat.store.database import open_database

    database = open_database(settings)
    try:
        await database.create_indexes()
        accounts = AccountService(
            database,
            PasswordService(settings),
            TokenService(settings, "unused: no tokens issued"),
            RateLimits(settings, MemoryStorage()),
        )
        user, created = await accounts.create_admin(email, password)
    except DomainError as exc:
        print(f"gql-chat: {exc.message}", file=sys.stderr)
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
