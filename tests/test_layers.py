"""Arrows point down: api → services → store, llm, streams → domain (DESIGN.md, "Layers"), and
platform (the version-guarded patches of other libraries) sits below them all.

Every module's imports are read with `ast`, wherever they are (inside functions, under
TYPE_CHECKING), so a lazy or type-only import counts as much as a top-level one."""

from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path

import pytest

import gql_chat

PACKAGE_ROOT = Path(gql_chat.__file__).parent
TOP = ("gql_chat.app", "gql_chat.wiring", "gql_chat.cli")


@dataclass(frozen=True)
class Rule:
    """Modules under `layer` must not import any of `forbidden` (or anything below them),
    except what is under one of `allowed`."""

    layer: str
    forbidden: tuple[str, ...]
    why: str
    allowed: tuple[str, ...] = ()


RULES = [
    Rule(
        "gql_chat.api",
        ("gql_chat.store", "pymongo", *TOP),
        "api reaches data through services, and knows nothing of how they are built",
    ),
    Rule(
        "gql_chat.domain",
        ("gql_chat",),
        "domain imports nothing of ours but itself",
        allowed=("gql_chat.domain",),
    ),
    *(
        Rule(layer, ("gql_chat.services", "gql_chat.api", *TOP), "no import points upward")
        for layer in (
            "gql_chat.store",
            "gql_chat.llm",
            "gql_chat.streams",
            "gql_chat.files",
            "gql_chat.imports",
            "gql_chat.mail",
            "gql_chat.oidc",
        )
    ),
    Rule(
        "gql_chat.services", ("gql_chat.api", *TOP), "services know nothing of GraphQL or the app"
    ),
    Rule(
        "gql_chat.platform",
        ("gql_chat",),
        "platform patches third-party libraries only; every layer may use it",
        allowed=("gql_chat.platform",),
    ),
]


@dataclass(frozen=True)
class Import:
    """One import statement, and the modules it may name: `from a import b` names `a`, and
    `a.b` when b is a module. Relative imports are resolved."""

    modules: tuple[str, ...]
    line: int
    statement: str


def imports_of(source: str, module: str, *, is_package: bool = False) -> list[Import]:
    package = module if is_package else module.rpartition(".")[0]
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            names = tuple(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")
                parent = ".".join(parts[: len(parts) - node.level + 1])
                base = f"{parent}.{base}" if base else parent
            names = (base, *(f"{base}.{alias.name}" for alias in node.names))
        else:
            continue
        found.append(Import(names, node.lineno, ast.unparse(node)))
    return found


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE_ROOT.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def within(name: str, prefix: str) -> bool:
    return name == prefix or name.startswith(prefix + ".")


def breaks(rule: Rule, name: str) -> bool:
    return any(within(name, banned) for banned in rule.forbidden) and not any(
        within(name, allowed) for allowed in rule.allowed
    )


def violations(rule: Rule) -> list[str]:
    found = []
    for path in sorted(PACKAGE_ROOT.rglob("*.py")):
        module = module_name(path)
        if not within(module, rule.layer):
            continue
        for imported in imports_of(path.read_text(), module, is_package=path.name == "__init__.py"):
            if any(breaks(rule, name) for name in imported.modules):
                where = f"{path.relative_to(PACKAGE_ROOT.parent)}:{imported.line}"
                found.append(f"{module} ({where}): {imported.statement}")
    return found


@pytest.mark.parametrize("rule", RULES, ids=lambda rule: rule.layer)
def test_no_module_imports_across_its_layer(rule: Rule) -> None:
    if found := violations(rule):
        banned = ", ".join(rule.forbidden)
        pytest.fail(f"{rule.why}: {rule.layer} must not import {banned}, but\n" + "\n".join(found))


def test_every_layer_has_modules() -> None:
    """A renamed package must not leave its rule checking nothing."""
    modules = {module_name(path) for path in PACKAGE_ROOT.rglob("*.py")}
    for rule in RULES:
        assert any(within(module, rule.layer) for module in modules), rule.layer


def test_imports_are_found_wherever_they_are() -> None:
    source = """
from typing import TYPE_CHECKING
import pymongo.errors
from gql_chat import store
from . import loaders
from ..store.users import UserStore
if TYPE_CHECKING:
    from gql_chat.services.sending import SendService
def later():
    import gql_chat.store.database
"""
    names = {name for i in imports_of(source, "gql_chat.api.context") for name in i.modules}
    assert {
        "pymongo.errors",
        "gql_chat.store",
        "gql_chat.api.loaders",
        "gql_chat.store.users",
        "gql_chat.services.sending",
        "gql_chat.store.database",
    } <= names
    (relative,) = imports_of("from .x import y", "gql_chat.domain", is_package=True)
    assert relative.modules == ("gql_chat.domain.x", "gql_chat.domain.x.y")


def test_platform_may_import_itself_and_third_party_libraries_only() -> None:
    (rule,) = [rule for rule in RULES if rule.layer == "gql_chat.platform"]
    assert not breaks(rule, "gql_chat.platform.versions")
    assert not breaks(rule, "httpcore._async.connection_pool")
    assert breaks(rule, "gql_chat.config")
    assert breaks(rule, "gql_chat.store.embedded")
    assert breaks(rule, "gql_chat")  # `from gql_chat import x` names the package first
