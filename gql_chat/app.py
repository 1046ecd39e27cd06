"""The ASGI application: routes, middleware and the lifespan that owns the database and services."""

from __future__ import annotations

import gc
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.cors import CORSMiddleware
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route, WebSocketRoute

from gql_chat.api.downloads import download_archive, download_file
from gql_chat.api.provider_sign_ins import finish_provider_sign_in, start_provider_sign_in
from gql_chat.api.schema import build_schema
from gql_chat.api.view import GraphQLView
from gql_chat.config import Settings
from gql_chat.llm.openrouter import build_http_client
from gql_chat.logs import protect_library_logs
from gql_chat.platform import install as install_platform
from gql_chat.services.registry import Services
from gql_chat.store.database import TRANSIENT_ERRORS, open_database
from gql_chat.web.middleware import (
    BodySizeLimitMiddleware,
    RequestContextMiddleware,
    SecurityHeadersMiddleware,
)
from gql_chat.wiring import build_services

logger = logging.getLogger(__name__)

UPLOAD_ENVELOPE_BYTES = 1_048_576
"""A multipart upload's body beyond its file: the operation, the map and the part headers."""


async def healthz(request: Request) -> JSONResponse:
    """The process is alive."""
    return JSONResponse({"status": "ok"})


async def readyz(request: Request) -> JSONResponse:
    """The database answers a ping. Redis, when configured, is reported, not required: without
    it this instance serves alone (degraded) until it answers again."""
    services: Services = request.app.state.services
    if not await services.database.ping():
        return JSONResponse({"status": "database unavailable"}, status_code=503)
    redis = await services.cluster.redis_available()
    if redis is None:
        return JSONResponse({"status": "ready"})
    return JSONResponse({"status": "ready", "redis": "ok" if redis else "degraded"})


async def recover_unfinished_replies(services: Services) -> None:
    """Replies a stopped process left unfinished end as INTERRUPTED with their saved text: alone,
    all of them (they were this instance's); with other instances, only those whose lease ran
    out (see `services/reply_leases.py`)."""
    if services.leases is None:
        ended = await services.database.messages.interrupt_unfinished()
    else:
        ended = await services.leases.sweep()
    if ended:
        logger.warning("marked %d unfinished replies of a previous run INTERRUPTED", ended)


def freeze_startup_objects() -> None:
    """Take what exists at start-up (libraries, the schema, services) out of the garbage
    collector's full passes, which otherwise walk it all on the event loop: the longest pause
    under 50 concurrent replies went from about 90 ms to 45 ms. Once per process, so that app
    instances created later (tests) are still collected."""
    if gc.get_freeze_count() == 0:
        gc.collect()
        gc.freeze()


def create_app(
    settings: Settings | None = None, *, embedded_client: Any | None = None
) -> Starlette:
    """`embedded_client` shares one in-memory store between app instances (restart tests)."""
    settings = settings or Settings()
    install_platform()  # the version guards and patches of gql_chat.platform, once per process
    protect_library_logs()

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        # Created here, not at import: the Mongo client binds to the loop that runs the app.
        database = open_database(settings, embedded_client)
        http_client = build_http_client(settings)
        try:
            await database.create_indexes()
            services = build_services(settings, database, http_client)
            await recover_unfinished_replies(services)
            services.cluster.start()
            if services.leases is not None:
                services.leases.start()
            if services.reply_slots is not None:
                services.reply_slots.start()
            services.attachments.start()
            services.exports.start()
            services.mailer.start()
            app.state.services = services
            app.state.websockets = graphql.websockets  # `gql-chat serve` closes them at shutdown
            services.sign_ins.listen(graphql.websockets.sign_ins.sign_ins_ended)
            freeze_startup_objects()
            logger.info("gql_chat started", extra={"embedded_store": database.embedded})
            try:
                yield
            finally:
                # `gql-chat serve` has done this before uvicorn closed the websockets (see
                # `DrainingServer`); then it is a no-op. Other servers get it here.
                await services.runner.shutdown(settings.shutdown_grace)
                await services.attachments.close()
                await services.branching.close()
                await services.imports.close()
                await services.exports.close()
                await services.email_accounts.close()
                await services.mailer.close()
                if services.leases is not None:
                    await services.leases.close()
                if services.reply_slots is not None:
                    await services.reply_slots.close()
                await services.cluster.close()
        finally:
            await http_client.aclose()
            await database.close()

    graphql = GraphQLView(build_schema(settings, TRANSIENT_ERRORS), settings)
    return Starlette(
        routes=[
            Route("/graphql", graphql, methods=["GET", "POST"]),
            WebSocketRoute("/graphql", graphql),
            Route("/files/{attachment_id}", download_file, methods=["GET"]),
            Route("/exports/{job_id}", download_archive, methods=["GET"]),
            Route("/auth/oidc/{provider}/login", start_provider_sign_in, methods=["GET"]),
            Route("/auth/oidc/{provider}/callback", finish_provider_sign_in, methods=["GET"]),
            Route("/healthz", healthz),
            Route("/readyz", readyz),
        ],
        middleware=[
            Middleware(RequestContextMiddleware, trusted_proxies=settings.trusted_proxies),
            Middleware(SecurityHeadersMiddleware),
            Middleware(
                CORSMiddleware,
                allow_origins=settings.cors_origins,
                allow_methods=["GET", "POST"],
                allow_headers=[
                    "Authorization",
                    "Content-Type",
                    "Apollo-Require-Preflight",
                    "X-Apollo-Operation-Name",
                    "X-Request-ID",
                ],
                expose_headers=["X-Request-ID"],
            ),
            Middleware(
                BodySizeLimitMiddleware,
                max_bytes=settings.max_body_bytes,
                max_upload_bytes=settings.max_upload_bytes + UPLOAD_ENVELOPE_BYTES,
            ),
        ],
        lifespan=lifespan,
    )
