"""Every patch of another library's internals, each version-guarded in its own module:

- `uvicorn_limits`: uvicorn's httptools and websockets-sansio protocols (a request-head deadline
  and size limit, a cap on connections, a denied handshake counted as complete);
- `uvicorn_websockets`: uvicorn's websockets-sansio protocol with a lean receive queue and send
  gate, and the handshake forgotten once answered (less memory per open websocket);
- `httpcore_pool`: httpcore's pool assignment pass, lock and event (global patch);
- `httpcore_network`: an httpcore network backend on asyncio streams, set on httpx's pools;
- `mongomock_indexes`: hash indexes for mongomock's collections (global patch);
- `mongomock_reads`: mongomock's per-document filter, projection and time-zone pass, for the
  common shapes (global patch);
- `mongomock_group`: mongomock's `$group` by hashing instead of sorting (global patch);
- `async_mock_bulk`: pymongo-async-mock's bulk-update patch, applied once (global patch);
- `mongomock_gridfs`: PyMongo's `AsyncGridFSBucket` over pymongo-async-mock (global patch);
- `graphql_executor`: Strawberry's graphql-core execution context (the schema's executor class);
- `strawberry_extensions`: Strawberry's schema-extension hooks, analysed once per class (global
  patch);
- `lean_asyncio` (not a patch): slotted stand-ins for `asyncio.Queue`/`Event`, shared by
  `uvicorn_websockets` and the user-event bus, `MovingDeadline`, one timer for a stream's
  run of timed waits (`httpcore_network`, the provider client), and `CoarseTimeouts`, one timer
  per event loop for waits that are nearly always over at once (request bodies);
- `strawberry_validation`: Strawberry's validation step, as `gql_chat.api.documents` runs it;
- `strawberry_resolvers`: Strawberry's resolver chain, skipped for fields that need none of it
  or only its permission check (set on the schema's fields when it is built);
- `strawberry_execute`: Strawberry's `Schema.execute` with the schema's own stages called
  directly, without per-operation extension instances and hook context managers, and
  graphql-core's `execute` as its two steps (build the executor, execute the operation);
- `strawberry_arguments`: Strawberry's argument conversion, with each argument's converter
  built once (global patch).

`install()` runs every module's version guard and installs the global patches; the app factory
and the CLI call it once at start-up. Modules here import third-party libraries only (and each
other): nothing else of gql_chat.
"""

from __future__ import annotations

_installed = [False]


def install() -> None:
    """Check every patched library's version (raising `UnsupportedVersion` on one a module was
    not checked against) and install the global patches. Idempotent."""
    from gql_chat.platform import (
        async_mock_bulk,
        graphql_executor,
        httpcore_network,
        httpcore_pool,
        mongomock_gridfs,
        mongomock_group,
        mongomock_indexes,
        mongomock_reads,
        strawberry_arguments,
        strawberry_execute,
        strawberry_extensions,
        strawberry_resolvers,
        strawberry_validation,
        uvicorn_limits,
        uvicorn_websockets,
    )

    uvicorn_limits.require_supported_versions()
    uvicorn_websockets.require_supported_versions()
    httpcore_network.require_supported_versions()
    graphql_executor.require_supported_versions()
    strawberry_validation.require_supported_versions()
    strawberry_execute.require_supported_versions()
    strawberry_resolvers.require_supported_versions()
    strawberry_arguments.require_supported_versions()
    httpcore_pool.install()
    strawberry_extensions.install()
    strawberry_arguments.install()
    mongomock_indexes.install()
    mongomock_reads.install()
    mongomock_group.install()
    async_mock_bulk.install()
    mongomock_gridfs.install()
    _installed[0] = True


def require_installed(user: str) -> None:
    """Fail loudly when `user` (a factory that needs the global patches) runs before
    `install()`: it would run on unpatched libraries, with other semantics."""
    if not _installed[0]:
        raise RuntimeError(f"{user} needs gql_chat.platform.install() to have run first")
