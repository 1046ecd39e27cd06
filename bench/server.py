"""gql_chat as benchmarked: the real app, plus baseline endpoints in the same process.

Each baseline does the same authentication and the same store reads as its GraphQL twin and
returns the same payload with plain Starlette + orjson, so the ratio isolates what the GraphQL
layer costs. Run with `uvicorn bench.server:create_bench_app --factory`."""

from __future__ import annotations

from typing import Any

import orjson
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from gql_chat.api.context import bearer_token
from gql_chat.app import create_app
from gql_chat.config import Settings
from gql_chat.domain.conversations import ConversationFilter
from gql_chat.domain.ids import parse_object_id
from gql_chat.domain.trees import path_to
from gql_chat.services.registry import Services


def _json(payload: Any) -> Response:
    return Response(orjson.dumps(payload), media_type="application/json")


async def _user(request: Request) -> Any:
    services: Services = request.app.state.services
    token = bearer_token(request.headers.get("authorization"))
    assert token is not None
    return (await services.accounts.authenticate(token)).user


async def me(request: Request) -> Response:
    user = await _user(request)
    return _json({"data": {"me": {"id": str(user.id), "email": user.email}}})


async def conversations(request: Request) -> Response:
    services: Services = request.app.state.services
    user = await _user(request)
    page = await services.database.conversations.list_page(user.id, ConversationFilter(), 20)
    records = [record for _, record in page.items]
    folder_ids = list({r.folder_id for r in records if r.folder_id})
    preset_ids = list({r.llm_config_id for r in records if r.llm_config_id})
    folders = {f.id: f for f in await services.database.folders.get_many(user.id, folder_ids)}
    presets = {p.id: p for p in await services.database.llm_configs.get_many(user.id, preset_ids)}
    edges = []
    for cursor, record in page.items:
        folder = folders.get(record.folder_id) if record.folder_id else None
        preset = presets.get(record.llm_config_id) if record.llm_config_id else None
        edges.append(
            {
                "cursor": cursor,
                "node": {
                    "id": str(record.id),
                    "title": record.title,
                    "folder": {"id": str(folder.id), "name": folder.name} if folder else None,
                    "llmConfig": {"id": str(preset.id), "name": preset.name, "model": preset.model}
                    if preset
                    else None,
                },
            }
        )
    return _json({"data": {"conversations": {"totalCount": page.total_count, "edges": edges}}})


async def messages(request: Request) -> Response:
    services: Services = request.app.state.services
    user = await _user(request)
    conversation_id = parse_object_id(request.query_params["id"])
    assert conversation_id is not None
    conversation = await services.database.conversations.get(user.id, conversation_id)
    assert conversation is not None
    nodes = await services.database.messages.nodes(user.id, [conversation.id])
    path = path_to(nodes, conversation.active_leaf_id)
    window = path[-50:]
    edges = [
        {
            "node": {
                "id": str(m.id),
                "role": m.role.value,
                "content": m.content,
                "status": m.status.value,
                "createdAt": m.created_at.isoformat(),
            }
        }
        for m in await services.database.messages.get_many(user.id, window)
    ]
    return _json({"data": {"conversation": {"messages": {"edges": edges}}}})


def create_bench_app() -> Starlette:
    app = create_app(Settings())
    app.router.routes.extend(
        [
            Route("/baseline/me", me),
            Route("/baseline/conversations", conversations),
            Route("/baseline/messages", messages),
        ]
    )
    return app
