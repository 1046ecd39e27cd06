"""`gql_chat.platform.install`: every module's version guard runs, the global patches go on once
and stay on, and the factories that need them refuse to run without them."""

from __future__ import annotations

from typing import Any

import graphql
import httpcore
import httptools
import httpx
import mongomock
import pytest
import uvicorn
from httpcore._async.connection_pool import AsyncConnectionPool
from mongomock.collection import Collection
from mongomock.store import CollectionStore

import gql_chat.platform
from gql_chat.platform import httpcore_pool, mongomock_indexes
from gql_chat.platform.versions import UnsupportedVersion, require_versions, supports


@pytest.mark.parametrize(
    ("library", "version", "module"),
    [
        (uvicorn, "0.55.0", "uvicorn_limits"),
        (httptools, "1.0.0", "uvicorn_limits"),
        (httpx, "0.29.0", "httpcore_network"),
        (httpcore, "1.1.0", "httpcore_network"),
        (httpcore, "1.0.8", "httpcore_pool"),
        (mongomock, "4.4.0", "mongomock_indexes"),
        (graphql, "3.4.0", "graphql_executor"),
    ],
)
def test_install_runs_every_guard(
    library: Any, version: str, module: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(library, "__version__", version)
    with pytest.raises(UnsupportedVersion, match=rf"gql_chat\.platform\.{module} "):
        gql_chat.platform.install()


def test_install_is_idempotent() -> None:
    gql_chat.platform.install()
    patched = (
        AsyncConnectionPool._assign_requests_to_connections,
        Collection._iter_documents,
        CollectionStore.__setitem__,
    )
    gql_chat.platform.install()
    assert AsyncConnectionPool._assign_requests_to_connections is patched[0]
    assert patched[0] is httpcore_pool._assign_requests_to_connections
    assert Collection._iter_documents is patched[1] is mongomock_indexes._iter_documents
    assert CollectionStore.__setitem__ is patched[2]
    gql_chat.platform.require_installed("a test")


def test_the_factories_refuse_to_run_unpatched(monkeypatch: pytest.MonkeyPatch) -> None:
    from gql_chat.config import Settings
    from gql_chat.llm.openrouter import build_http_client
    from gql_chat.store.embedded import open_embedded_client

    monkeypatch.setattr(gql_chat.platform, "_installed", [False])
    with pytest.raises(RuntimeError, match=r"open_embedded_client needs gql_chat\.platform"):
        open_embedded_client()
    with pytest.raises(RuntimeError, match=r"build_http_client needs gql_chat\.platform"):
        build_http_client(Settings.model_construct())


def test_a_version_is_supported_by_prefix_or_exactly() -> None:
    assert supports("0.54.3", ("0.54.",))
    assert not supports("0.540.0", ("0.54.",))
    assert supports("1.0.9", ("1.0.9",))
    assert not supports("1.0.90", ("1.0.9",))
    with pytest.raises(UnsupportedVersion) as raised:
        require_versions("m", {"a": ("1.",), "b": ("2.0.1",)}, {"a": "1.2", "b": "2.0.2"})
    assert str(raised.value) == (
        "m patches internals and was checked against a 1.*, b 2.0.1; found a 1.2, b 2.0.2: "
        "re-check m against the new version and update its supported versions"
    )
