"""Abuse limits with their real (default) settings."""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import AsyncIterator, Callable

import pytest
from starlette.applications import Starlette

from gql_chat.app import create_app
from gql_chat.config import Settings
from tests.conftest import RATE_SETTINGS, LiveServer, serve
from tests.support import DEFAULT_PASSWORD, GraphQLClient, sign_up, unique_email

LOGIN = (
    "mutation($e: String!, $p: String!) { login(input: {email: $e, password: $p}) { accessToken } }"
)
REGISTER = 'mutation($e: String!) { register(input: {email: $e, password: "long enough pw"}) { accessToken } }'
REDIS_URL = os.environ.get("GQL_CHAT_TEST_REDIS_URL")


def default_limits(settings_factory: Callable[..., Settings], **overrides: object) -> Settings:
    defaults = {
        f"rate_{name}": Settings.model_fields[f"rate_{name}"].default for name in RATE_SETTINGS
    }
    return settings_factory(**{**defaults, **overrides})


@pytest.fixture(params=["memory", "redis"])
def settings(request: pytest.FixtureRequest, settings_factory: Callable[..., Settings]) -> Settings:
    if request.param == "redis":
        if not REDIS_URL:
            pytest.skip("set GQL_CHAT_TEST_REDIS_URL to run the rate limits on Redis (CI does)")
        return default_limits(settings_factory, redis_url=REDIS_URL)
    return default_limits(settings_factory)


@pytest.fixture(autouse=True)
async def fresh_counters(app: Starlette) -> AsyncIterator[None]:
    """Redis outlives a test; start and end each one with empty counters."""
    await app.state.services.rate_limits.reset()
    yield
    await app.state.services.rate_limits.reset()


async def test_login_attempts_per_email_then_retry_after(gql: GraphQLClient) -> None:
    email = unique_email()
    await gql.register(email=email)
    codes = [
        (await gql.execute(LOGIN, {"e": email, "p": "wrong password"})).error_codes[0]
        for _ in range(11)
    ]
    assert codes[:10] == ["UNAUTHENTICATED"] * 10
    assert codes[10] == "RATE_LIMITED"
    limited = await gql.execute(LOGIN, {"e": email, "p": DEFAULT_PASSWORD})
    assert limited.error_codes == ["RATE_LIMITED"]
    assert 1 <= limited.errors[0]["extensions"]["retryAfter"] <= 60


async def test_aliases_cannot_bypass_a_limit(settings_factory: Callable[..., Settings]) -> None:
    settings = default_limits(
        settings_factory, rate_send_message_per_user="3/minute", max_concurrent_generations=10
    )
    app = create_app(settings)
    async with serve(app) as http:
        user = await sign_up(GraphQLClient(http))
        aliased = (
            "mutation { "
            + " ".join(
                f'a{i}: sendMessage(input: {{content: "hi"}}) {{ assistantMessage {{ id }} }}'
                for i in range(5)
            )
            + " }"
        )
        result = await user.execute(aliased)
    # Each aliased field is one execution: the fourth one is over the limit.
    assert result.error_codes == ["RATE_LIMITED"]
    assert result.errors[0]["path"] == ["a3"]


async def test_a_known_device_survives_a_lockout_attack(gql: GraphQLClient, app: Starlette) -> None:
    email = unique_email()
    await gql.register(email=email)
    assert (
        await gql.execute(LOGIN, {"e": email, "p": DEFAULT_PASSWORD})
    ).ok()  # this device is known
    limits = app.state.services.rate_limits
    # An attacker elsewhere burns the account's daily failures.
    for _ in range(20):
        await limits.count_failure(limits.failed_logins, "login-failed", email)
    assert (await gql.execute(LOGIN, {"e": email, "p": DEFAULT_PASSWORD})).ok()
    # A new device is locked out until the window passes.
    await limits.reset()
    for _ in range(20):
        await limits.count_failure(limits.failed_logins, "login-failed", email)
    stranger = await gql.execute(
        LOGIN, {"e": email, "p": DEFAULT_PASSWORD}
    )  # same IP, but the reset forgot the device
    assert stranger.error_codes == ["RATE_LIMITED"]


async def test_registrations_per_ip(gql: GraphQLClient) -> None:
    for _ in range(5):
        await gql.register()
    result = await gql.execute(
        REGISTER,
        {"e": unique_email()},
    )
    assert result.error_codes == ["RATE_LIMITED"]


async def test_refresh_per_user(gql: GraphQLClient, app: Starlette) -> None:
    session = await gql.register()
    token = session["refreshToken"]
    refresh = "mutation($t: String!) { refreshToken(refreshToken: $t) { refreshToken } }"
    for _ in range(30):
        token = (await gql.execute(refresh, {"t": token})).ok()["refreshToken"]["refreshToken"]
    assert (await gql.execute(refresh, {"t": token})).error_codes == ["RATE_LIMITED"]


async def test_logout_per_user(gql: GraphQLClient) -> None:
    """Each logout that ends a sign-in makes every open socket of the user check itself again:
    counted like refreshes, aliases included."""
    session = await gql.register()
    logout = (
        "mutation($t: String!) { "
        + " ".join(f"l{i}: logout(refreshToken: $t)" for i in range(30))
        + " }"
    )
    assert (await gql.execute(logout, {"t": session["refreshToken"]})).errors == []
    again = await gql.execute(
        "mutation($t: String!) { logout(refreshToken: $t) }", {"t": session["refreshToken"]}
    )
    assert again.error_codes == ["RATE_LIMITED"]


async def test_send_message_per_user(settings_factory: Callable[..., Settings]) -> None:
    settings = default_limits(
        settings_factory, rate_send_message_per_user="3/minute", offline_token_delay=0
    )
    app = create_app(settings)
    async with serve(app) as http:
        user = await sign_up(GraphQLClient(http))
        send = 'mutation { sendMessage(input: {content: "hi"}) { assistantMessage { id } } }'
        for _ in range(3):
            assert (await user.execute(send)).ok()
            await asyncio.sleep(0.05)
        assert (await user.execute(send)).error_codes == ["RATE_LIMITED"]


async def test_forwarded_for_is_trusted_only_from_trusted_proxies(
    settings_factory: Callable[..., Settings],
) -> None:
    async def register_from(settings: Settings, forwarded: list[str]) -> list[list[str | None]]:
        app = create_app(settings)
        codes = []
        async with serve(app, client=("10.0.0.5", 1234)) as http:
            gql = GraphQLClient(http)
            for address in forwarded:
                result = await gql.execute(
                    REGISTER,
                    {"e": unique_email()},
                    headers={"X-Forwarded-For": f"{address}, 10.0.0.9"},
                )
                codes.append(result.error_codes)
        return codes

    spoofed = [f"198.51.100.{i}" for i in range(6)]
    untrusted = default_limits(settings_factory, rate_register_per_ip="2/hour")
    assert (await register_from(untrusted, spoofed))[2] == ["RATE_LIMITED"]  # the header is ignored
    trusted = default_limits(
        settings_factory, rate_register_per_ip="2/hour", trusted_proxies="10.0.0.0/8"
    )
    assert all(codes == [] for codes in await register_from(trusted, spoofed))


async def test_brute_force_is_throttled_and_others_stay_served(
    live_server: LiveServer, live_gql: GraphQLClient
) -> None:
    victim = unique_email()
    await live_gql.register(email=victim)
    bystander = await sign_up(live_gql)
    attempts = 1000
    results: list[list[str | None]] = []

    async def attack() -> None:
        for _ in range(attempts):
            results.append((await live_gql.execute(LOGIN, {"e": victim, "p": "guess"})).error_codes)

    latencies: list[float] = []

    async def bystander_queries() -> None:
        while len(results) < attempts:
            started = time.perf_counter()
            assert (await bystander.ok("{ me { id } }"))["me"]["id"] == bystander.user_id
            latencies.append(time.perf_counter() - started)
            await asyncio.sleep(0.01)

    await asyncio.wait_for(asyncio.gather(attack(), bystander_queries()), timeout=120)
    assert results.count(["RATE_LIMITED"]) >= attempts - 30
    assert latencies
    assert max(latencies) < 2.0
