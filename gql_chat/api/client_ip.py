"""The client's address: the peer, or `X-Forwarded-For` when the peer is a trusted proxy."""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence
from functools import lru_cache

from starlette.requests import HTTPConnection

UNKNOWN = "unknown"


@lru_cache(maxsize=32)
def _networks(
    trusted: tuple[str, ...],
) -> tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]:
    return tuple(ipaddress.ip_network(n, strict=False) for n in trusted)


def _is_trusted(address: str, trusted: Sequence[str]) -> bool:
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    return any(ip in network for network in _networks(tuple(trusted)))


def client_ip(connection: HTTPConnection, trusted_proxies: Sequence[str]) -> str:
    """Walks `X-Forwarded-For` from the right, skipping trusted proxies: the first untrusted
    hop is the client. Without a trusted peer the header is ignored (anyone can forge it)."""
    peer = connection.client.host if connection.client else UNKNOWN
    if not trusted_proxies or not _is_trusted(peer, trusted_proxies):
        return peer
    forwarded = connection.headers.get("x-forwarded-for", "")
    hops = [hop.strip() for hop in forwarded.split(",") if hop.strip()]
    for hop in reversed(hops):
        if not _is_trusted(hop, trusted_proxies):
            return hop
    return hops[0] if hops else peer
