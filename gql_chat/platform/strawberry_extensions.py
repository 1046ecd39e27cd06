"""Strawberry's schema-extension hooks, with their per-request set-up done once per class.

For every operation Strawberry builds four hook context managers (operation, parse, validate,
execute). Each asks every extension, per request, whether it overrides the hook
(`inspect.isgeneratorfunction` and friends), wraps an override in a new
`contextlib.contextmanager(types.MethodType(...))` (which copies the function's metadata with
`functools.update_wrapper`), and opens an `AsyncExitStack` even when no extension has the hook.
On a `{ me { id email } }` request that was about a fifth of `Schema.execute`'s time.

`install()` replaces `ExtensionContextManagerBase.get_hook` with one that analyses a hook once
per (extension class, hook), as Strawberry looks hooks up on the class, and binds the prebuilt
context manager factory to the extension with a `functools.partial`; and the four enter/exit
methods with ones that skip the exit stack when the hook list is empty (an empty
`AsyncExitStack` enters and leaves doing nothing, and never suppresses an exception) or holds
one generator hook (entered and left directly). Hooks that are plain callables (neither
generator kind) take Strawberry's own path.
It relies on `strawberry.extensions.context.ExtensionContextManagerBase` (its `HOOK_NAME`,
`hooks`, `get_hook` and `WrappedHook`), so `require_supported_versions` stops start-up on a
Strawberry version this was not checked against."""

from __future__ import annotations

import contextlib
import functools
import inspect
import weakref
from collections.abc import Callable
from types import TracebackType
from typing import Any

from strawberry.extensions import SchemaExtension
from strawberry.extensions.context import ExtensionContextManagerBase, WrappedHook

from gql_chat.platform.versions import (
    UnsupportedVersion,
    distribution_version,
    require_versions,
)

SUPPORTED_STRAWBERRY = ("0.341.",)
"""The Strawberry versions whose extension context internals this module was checked against."""

_strawberry_get_hook: Callable[[Any, SchemaExtension], WrappedHook | None] = (
    ExtensionContextManagerBase.get_hook
)
_strawberry_enter = ExtensionContextManagerBase.__enter__
_strawberry_exit = ExtensionContextManagerBase.__exit__
_strawberry_aenter = ExtensionContextManagerBase.__aenter__
_strawberry_aexit = ExtensionContextManagerBase.__aexit__

_NO_HOOK = object()
_ORIGINAL = object()
_factories: weakref.WeakKeyDictionary[type[SchemaExtension], dict[str, Any]] = (
    weakref.WeakKeyDictionary()
)
"""Per extension class (weakly: an app may build schemas with classes of its own), per hook
name: `_NO_HOOK`, `_ORIGINAL` (Strawberry's path), or (context manager factory, is_async)."""


def _factory_for(extension_class: type[SchemaExtension], hook_name: str) -> Any:
    hooks = _factories.get(extension_class)
    if hooks is None:
        hooks = _factories[extension_class] = {}
    found = hooks.get(hook_name)
    if found is not None:
        return found
    hook = getattr(extension_class, hook_name)
    if hook is getattr(SchemaExtension, hook_name):
        found = _NO_HOOK
    elif inspect.isgeneratorfunction(hook):
        found = (contextlib.contextmanager(hook), False)
    elif inspect.isasyncgenfunction(hook):
        found = (contextlib.asynccontextmanager(hook), True)
    else:
        found = _ORIGINAL
    hooks[hook_name] = found
    return found


def _get_hook(self: Any, extension: SchemaExtension) -> WrappedHook | None:
    found = _factory_for(type(extension), self.HOOK_NAME)
    if found is _NO_HOOK:
        return None
    if found is _ORIGINAL:
        return _strawberry_get_hook(self, extension)
    factory, is_async = found
    return WrappedHook(
        extension=extension, hook=functools.partial(factory, extension), is_async=is_async
    )


def _single_sync_hook(self: Any) -> bool:
    """One hook, a plain generator: the usual case (one extension per stage). It is entered
    and left directly, without an exit stack: with one context manager `ExitStack` adds nothing
    (Strawberry ignores whether it suppressed an exception), and building, entering and leaving
    one costs more than the hook."""
    return len(self.hooks) == 1 and not self.hooks[0].is_async


def _enter(self: Any) -> None:
    if _single_sync_hook(self):
        self.exit_stack = self.hooks[0].hook()
        self.exit_stack.__enter__()
    elif self.hooks:
        _strawberry_enter(self)


def _exit(
    self: Any,
    exc_type: type[BaseException] | None,
    exc_val: BaseException | None,
    exc_tb: TracebackType | None,
) -> None:
    if _single_sync_hook(self):
        self.exit_stack.__exit__(exc_type, exc_val, exc_tb)
    elif self.hooks:
        _strawberry_exit(self, exc_type, exc_val, exc_tb)


async def _aenter(self: Any) -> None:
    if _single_sync_hook(self):
        self.async_exit_stack = self.hooks[0].hook()
        self.async_exit_stack.__enter__()
    elif self.hooks:
        await _strawberry_aenter(self)


async def _aexit(
    self: Any,
    exc_type: type[BaseException] | None,
    exc_val: BaseException | None,
    exc_tb: TracebackType | None,
) -> None:
    if _single_sync_hook(self):
        self.async_exit_stack.__exit__(exc_type, exc_val, exc_tb)
    elif self.hooks:
        await _strawberry_aexit(self, exc_type, exc_val, exc_tb)


def require_supported_versions() -> None:
    """Stop start-up when Strawberry is a version this module was not checked against."""
    require_versions(
        __name__,
        {"strawberry-graphql": SUPPORTED_STRAWBERRY},
        {"strawberry-graphql": distribution_version("strawberry-graphql")},
    )
    for name in ("get_hook", "__enter__", "__exit__", "__aenter__", "__aexit__"):
        if not callable(getattr(ExtensionContextManagerBase, name, None)):
            raise UnsupportedVersion(f"Strawberry's ExtensionContextManagerBase has no {name}()")


def install() -> None:
    """Idempotent: the originals are kept from before the first install."""
    require_supported_versions()
    base: Any = ExtensionContextManagerBase
    base.get_hook = _get_hook
    base.__enter__ = _enter
    base.__exit__ = _exit
    base.__aenter__ = _aenter
    base.__aexit__ = _aexit
