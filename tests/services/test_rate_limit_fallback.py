"""Rate limits while Redis does not answer: counted in the instance's memory (still limits, not
open, not closed), and on the shared counters again once Redis is back."""

from __future__ import annotations

import shutil
import time

import limits
import pytest
from pydantic import SecretStr

from gql_chat.config import Settings
from gql_chat.errors import RateLimited
from gql_chat.services import rate_limits
from gql_chat.services.rate_limits import RateLimits, open_storage
from tests.support import RedisServer

pytestmark = pytest.mark.skipif(
    shutil.which("redis-server") is None, reason="needs redis-server (CI has it)"
)
RULE = limits.parse("2/minute")


async def test_limits_count_locally_while_redis_is_down_then_shared_again(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(rate_limits, "RETRY_SHARED", 0.0)  # try Redis again on every call
    redis = RedisServer()  # not started yet: nothing listens on its port
    settings = Settings.model_construct(redis_url=SecretStr(redis.url))
    one, other = (RateLimits(settings, open_storage(settings)) for _ in range(2))
    began = time.monotonic()
    await one.hit(RULE, "send", "u")
    await one.hit(RULE, "send", "u")
    with pytest.raises(RateLimited):
        await one.hit(RULE, "send", "u")
    await other.hit(RULE, "send", "u")  # each instance counts alone meanwhile
    assert time.monotonic() - began < 4 * rate_limits.STORAGE_TIMEOUT

    await redis.start()
    try:
        await one.hit(RULE, "send", "v")
        await one.hit(RULE, "send", "v")
        with pytest.raises(RateLimited):  # counted in Redis: the other instance sees it
            await other.hit(RULE, "send", "v")
        await one.remember("device")
        assert await other.remembers("device") is True
    finally:
        await redis.stop()
