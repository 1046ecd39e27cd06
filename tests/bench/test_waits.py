"""The bench's waits for the processes it starts: bounded, and done once the process listens."""

from __future__ import annotations

import socket

import pytest

from bench.run import free_port, wait_until_listening


def test_a_listening_port_ends_the_wait_and_a_silent_one_fails_it_in_time() -> None:
    with socket.create_server(("127.0.0.1", 0)) as server:
        wait_until_listening(server.getsockname()[1], seconds=5)
    with pytest.raises(RuntimeError, match="nothing listens"):
        wait_until_listening(free_port(), seconds=0.3)
