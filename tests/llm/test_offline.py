"""The offline model: deterministic, paced, and the default when no API key is set."""

from __future__ import annotations

from gql_chat.llm.offline import OFFLINE_MODEL_ID, OfflineProvider
from gql_chat.llm.tokens import estimate_tokens, trim_to_budget
from gql_chat.llm.types import ChatRequest, Completion, PromptMessage, TextDelta
from tests.conftest import LiveServer
from tests.support import GraphQLClient, follow_reply, send_message, sign_up


async def test_offline_answers_are_deterministic() -> None:
    provider = OfflineProvider(token_delay=0)
    request = ChatRequest(model=OFFLINE_MODEL_ID, messages=[PromptMessage("user", "ping " * 100)])
    sent: list[bool] = []
    first = [e async for e in provider.stream(request, lambda: sent.append(True))]
    second = [e async for e in provider.stream(request)]
    assert sent == [True]
    assert first == second
    text = "".join(e.text for e in first if isinstance(e, TextDelta))
    assert text.startswith("You said: “ping ping")
    assert "…" in text
    assert isinstance(first[-1], Completion)
    assert first[-1].usage is not None
    assert first[-1].usage.cost == 0.0
    assert [m.id for m in await provider.list_models()] == [OFFLINE_MODEL_ID]


def test_prompt_trimming_drops_the_oldest_first() -> None:
    system = PromptMessage("system", "s" * 40)
    history = [PromptMessage("user", str(i) * 400) for i in range(10)]
    trimmed = trim_to_budget(system, history, budget=400)
    assert trimmed[0] == system
    assert trimmed[-1] == history[-1]
    assert [m.content[0] for m in trimmed[1:]] == ["7", "8", "9"]
    assert sum(estimate_tokens(m.content) + 4 for m in trimmed) <= 400
    # The newest message is kept even when it alone is over budget.
    huge = [PromptMessage("user", "x" * 10_000)]
    assert trim_to_budget(None, huge, budget=256) == huge


async def test_the_server_chats_out_of_the_box(
    live_server: LiveServer, live_gql: GraphQLClient
) -> None:
    user = await sign_up(live_gql)
    models = await user.ok("{ models { id } }")
    assert models == {"models": [{"id": OFFLINE_MODEL_ID}]}
    sent = await send_message(user, "hello offline world")
    assert sent["assistantMessage"]["model"] == OFFLINE_MODEL_ID
    events = await follow_reply(live_server.ws_url, user.token, sent["assistantMessage"]["id"])
    final = events[-1]["message"]
    assert final["status"] == "COMPLETE"
    assert "hello offline world" in final["content"]
    assert "".join(e["delta"] for e in events) == final["content"]
