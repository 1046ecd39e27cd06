"""`python -m tests.wait_for_mongodb URL SECONDS`: exit 0 once the server answers a ping, 1 if
it does not within SECONDS (CI starts the test server, then waits on this)."""

from __future__ import annotations

import asyncio
import sys
import time
from typing import Any

from pymongo import AsyncMongoClient


async def wait_for(url: str, seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(
            url, serverSelectionTimeoutMS=1000
        )
        try:
            await client.admin.command("ping")
            return True
        except Exception:
            await asyncio.sleep(0.5)
        finally:
            await client.close()
    return False


def main(argv: list[str]) -> int:
    url, seconds = argv[1], float(argv[2])
    if asyncio.run(wait_for(url, seconds)):
        return 0
    print(f"no MongoDB server answered within {seconds:g} s", file=sys.stderr)
    return 1


if __name__ == "__main__":
    raise SystemExit(main(sys.argv))
