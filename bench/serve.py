"""Runs the benchmarked app with the uvicorn options `gql-chat serve` uses (its HTTP and
websocket protocols, limits and message size), so the bench measures the server as deployed.

    python -m bench.serve PORT      (settings from GQL_CHAT_* in the environment)"""

from __future__ import annotations

import sys

import uvicorn

from gql_chat.cli import load_settings, uvicorn_options


def main() -> None:
    port = int(sys.argv[1])
    uvicorn.run(
        "bench.server:create_bench_app",
        factory=True,
        host="127.0.0.1",
        port=port,
        loop="uvloop",
        log_level="warning",
        backlog=8192,
        **uvicorn_options(load_settings()),
    )


if __name__ == "__main__":
    main()
