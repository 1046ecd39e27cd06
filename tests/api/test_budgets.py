"""Spending budgets through the public API: the default and an admin's override, the check
before each reply (`QUOTA_EXCEEDED` with `resetsAt`), costs from the provider or estimated from
the models' prices, the offline model at no cost, a running reply never cut off, and the race
at the limit bounded by the replies in flight."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gql_chat.app import create_app
from gql_chat.domain.budgets import BudgetPeriod, parse_budget, period_end, period_start
from tests.conftest import make_settings, openrouter_settings, serve
from tests.fakes.openrouter import FakeOpenRouter, Reply
from tests.support import GraphQLClient, SignedIn, final_message, send_message, sign_up

BUDGET = "query { me { budget { amount period spent resetsAt } } }"
SET_BUDGET = """mutation($u: ID!, $a: Float, $p: BudgetPeriod!) {
    setUserBudget(userId: $u, amount: $a, period: $p) { id budget { amount period } } }"""
USAGE = "usage { cost costEstimated }"
COST = 0.004  # what the fake provider reports per reply here


def code_of(result: Any) -> str:
    assert result.errors, result.data
    code: str = result.errors[0]["extensions"]["code"]
    return code


async def reply_finished(user: SignedIn, content: str = "hello") -> dict[str, Any]:
    sent = await send_message(user, content)
    return await final_message(user, sent["assistantMessage"]["id"], USAGE)


def priced(fake: FakeOpenRouter, cost: float | None = COST, **reply: Any) -> None:
    usage: dict[str, Any] = {"prompt_tokens": 1000, "completion_tokens": 500}
    if cost is not None:
        usage["cost"] = cost
    fake.default = Reply(usage=usage, **reply)


async def test_the_default_budget_stops_sends_once_spent_and_says_when_it_resets(
    fake_openrouter: FakeOpenRouter,
) -> None:
    priced(fake_openrouter)
    async with serve(
        create_app(openrouter_settings(fake_openrouter, default_budget="0.01/day"))
    ) as http:
        user = await sign_up(GraphQLClient(http))
        before = (await user.ok(BUDGET))["me"]["budget"]
        tomorrow = (datetime.now(UTC) + timedelta(days=1)).strftime("%Y-%m-%dT00:00:00")
        assert before == {
            "amount": 0.01,
            "period": "DAY",
            "spent": 0.0,
            "resetsAt": before["resetsAt"],
        }
        assert before["resetsAt"].startswith(tomorrow)
        for _ in range(3):  # 0.004 each: after the third, 0.012 of 0.01 is spent
            assert (await reply_finished(user))["usage"] == {"cost": COST, "costEstimated": False}
        spent = (await user.ok(BUDGET))["me"]["budget"]["spent"]
        assert spent == pytest.approx(3 * COST)
        refused = await user.execute(
            'mutation { sendMessage(input: {content: "more"}) { assistantMessage { id } } }'
        )
        assert code_of(refused) == "QUOTA_EXCEEDED"
        assert refused.errors[0]["extensions"]["resetsAt"] == before["resetsAt"]


async def test_an_admin_sets_and_clears_a_users_own_budget(
    fake_openrouter: FakeOpenRouter,
) -> None:
    priced(fake_openrouter)
    app = create_app(openrouter_settings(fake_openrouter))
    async with serve(app) as http:
        gql = GraphQLClient(http)
        user, admin = await sign_up(gql), await sign_up(gql)
        await app.state.services.accounts.create_admin(admin.email, "")
        assert (await user.ok(BUDGET))["me"]["budget"] is None  # no default, no override
        assert (await reply_finished(user))["status"] == "COMPLETE"

        forbidden = await user.execute(SET_BUDGET, {"u": user.user_id, "a": 100, "p": "DAY"})
        assert code_of(forbidden) == "FORBIDDEN"
        bad = await admin.execute(SET_BUDGET, {"u": user.user_id, "a": -1, "p": "DAY"})
        assert code_of(bad) == "BAD_USER_INPUT"
        missing = await admin.execute(SET_BUDGET, {"u": "0" * 24, "a": 1, "p": "DAY"})
        assert code_of(missing) == "NOT_FOUND"

        set_ = await admin.ok(SET_BUDGET, {"u": user.user_id, "a": 0.004, "p": "MONTH"})
        assert set_["setUserBudget"]["budget"] == {"amount": 0.004, "period": "MONTH"}
        # What was spent before the budget was set counts: the month's total is 0.004.
        assert (await user.ok(BUDGET))["me"]["budget"]["spent"] == pytest.approx(COST)
        assert (
            code_of(
                await user.execute(
                    'mutation { sendMessage(input: {content: "x"}) { assistantMessage { id } } }'
                )
            )
            == "QUOTA_EXCEEDED"
        )

        cleared = await admin.ok(SET_BUDGET, {"u": user.user_id, "a": None, "p": "MONTH"})
        assert cleared["setUserBudget"]["budget"] is None
        assert (await reply_finished(user))["status"] == "COMPLETE"


async def test_a_cost_the_provider_does_not_report_is_estimated_from_the_models_prices(
    fake_openrouter: FakeOpenRouter,
) -> None:
    priced(fake_openrouter, cost=None)
    settings = openrouter_settings(fake_openrouter, default_budget="1/month")
    async with serve(create_app(settings)) as http:
        user = await sign_up(GraphQLClient(http))
        usage = (await reply_finished(user))["usage"]
        # openai/gpt-4o-mini: 1000 prompt tokens at 0.00000015, 500 completion at 0.0000006
        assert usage == {"cost": pytest.approx(0.00045), "costEstimated": True}
        assert (await user.ok(BUDGET))["me"]["budget"]["spent"] == pytest.approx(0.00045)


async def test_the_offline_model_costs_nothing() -> None:
    settings = make_settings(default_budget="0.000001/day", offline_token_delay=0.0)
    async with serve(create_app(settings)) as http:
        user = await sign_up(GraphQLClient(http))
        for _ in range(2):
            assert (await reply_finished(user))["usage"]["cost"] == 0.0
        assert (await user.ok(BUDGET))["me"]["budget"]["spent"] == 0.0


async def test_a_running_reply_is_not_cut_off_and_racing_sends_overshoot_by_their_own_cost(
    fake_openrouter: FakeOpenRouter,
) -> None:
    """At 0.004 of 0.005 spent, three sends at once are all admitted (each saw room left):
    the documented overshoot, at most the replies in flight. Each runs to the end; the next
    send is refused."""
    priced(fake_openrouter, tokens=["a", "b", "c"], token_delay=0.05)
    settings = openrouter_settings(
        fake_openrouter, default_budget="0.005/month", max_concurrent_generations=3
    )
    async with serve(create_app(settings)) as http:
        user = await sign_up(GraphQLClient(http))
        await reply_finished(user)
        sent = await asyncio.gather(*(send_message(user, f"race {i}") for i in range(3)))
        finished = [
            await final_message(user, s["assistantMessage"]["id"], "content " + USAGE) for s in sent
        ]
        assert [m["status"] for m in finished] == ["COMPLETE"] * 3
        assert all(m["content"] == "abc" for m in finished)
        spent = (await user.ok(BUDGET))["me"]["budget"]["spent"]
        assert spent == pytest.approx(4 * COST)  # 0.001 of room, overshot by the 3 in flight
        assert spent <= 0.005 + settings.max_concurrent_generations * COST
        refused = await user.execute(
            'mutation { sendMessage(input: {content: "x"}) { assistantMessage { id } } }'
        )
        assert code_of(refused) == "QUOTA_EXCEEDED"


@given(
    st.datetimes(
        min_value=datetime(2000, 1, 1), max_value=datetime(2100, 12, 31), timezones=st.just(UTC)
    ),
    st.sampled_from(list(BudgetPeriod)),
)
def test_every_moment_is_in_exactly_one_period(now: datetime, period: BudgetPeriod) -> None:
    start, end = period_start(period, now), period_end(period, now)
    assert start <= now < end
    assert period_start(period, end) == end  # the next period starts where this one ends
    assert period_start(period, end - timedelta(microseconds=1)) == start
    assert end - start in (
        [timedelta(days=1)]
        if period is BudgetPeriod.DAY
        else [timedelta(days=d) for d in (28, 29, 30, 31)]
    )


def test_budget_settings_read_as_amount_per_period() -> None:
    assert parse_budget(" 5.00 / Month ") == parse_budget("5/month")
    for bad in ("5", "five/month", "5/week", "-1/day", "1e9/day", "5.00/month/day"):
        with pytest.raises(ValueError, match="must"):
            parse_budget(bad)


async def test_a_continued_reply_is_charged_only_what_its_continuation_cost(
    fake_openrouter: FakeOpenRouter,
) -> None:
    priced(fake_openrouter, finish_reason="length")
    settings = openrouter_settings(fake_openrouter, default_budget="1/day")
    async with serve(create_app(settings)) as http:
        user = await sign_up(GraphQLClient(http))
        reply = await send_message(user)
        reply_id = reply["assistantMessage"]["id"]
        await final_message(user, reply_id)
        priced(fake_openrouter)
        continued = (
            "mutation($id: ID!) { continueGeneration(messageId: $id) { assistantMessage { id } } }"
        )
        assert await user.ok(continued, {"id": reply_id})
        done = await final_message(user, reply_id, USAGE)
        assert done["usage"]["cost"] == pytest.approx(2 * COST)  # both requests
        assert (await user.ok(BUDGET))["me"]["budget"]["spent"] == pytest.approx(2 * COST)


async def test_a_reply_stopped_before_the_provider_reports_usage_is_charged_an_estimate(
    fake_openrouter: FakeOpenRouter,
) -> None:
    """The provider reports usage in its last chunk: a reply stopped before it has none, but
    was generated (and billed upstream). Its tokens are estimated from the prompt and the
    text it got, priced from the models list, and charged, so stopping every reply just
    before its end is no way around a budget."""
    priced(fake_openrouter, tokens=["word "] * 200, token_delay=0.02)
    settings = openrouter_settings(fake_openrouter, default_budget="1/month")
    async with serve(create_app(settings)) as http:
        user = await sign_up(GraphQLClient(http))
        sent = await send_message(user, "hello")
        reply_id = sent["assistantMessage"]["id"]
        for _ in range(500):  # until some of it is stored (10 s at most)
            if len((await final_message_now(user, reply_id))["content"]) >= 20:
                break
            await asyncio.sleep(0.02)
        await user.ok(
            "mutation($id: ID!) { stopGeneration(messageId: $id) { id } }", {"id": reply_id}
        )
        stopped = await final_message(
            user, reply_id, "content usage { promptTokens completionTokens cost costEstimated }"
        )
        assert stopped["status"] == "STOPPED"
        usage = stopped["usage"]
        assert usage["costEstimated"] is True
        assert usage["promptTokens"] == 2 + 4  # "hello" and a message's overhead
        assert usage["completionTokens"] == (len(stopped["content"]) + 3) // 4
        assert usage["cost"] == pytest.approx(
            usage["promptTokens"] * 0.00000015 + usage["completionTokens"] * 0.0000006
        )
        spent = (await user.ok(BUDGET))["me"]["budget"]["spent"]
        assert spent == pytest.approx(usage["cost"])


async def final_message_now(user: SignedIn, message_id: str) -> dict[str, Any]:
    query = "query($id: ID!) { message(id: $id) { status content } }"
    message: dict[str, Any] = (await user.ok(query, {"id": message_id}))["message"]
    return message
