"""The version guard every module of this package runs before it touches another library's
internals: a version it was not checked against stops start-up with a clear message."""

from __future__ import annotations

from collections.abc import Mapping
from importlib import metadata


class UnsupportedVersion(RuntimeError):
    """A patched library is at a version its patch was not checked against."""


def distribution_version(distribution: str) -> str:
    """The installed version of a distribution that has no `__version__` (Strawberry)."""
    return metadata.version(distribution)


def supports(found: str, supported: tuple[str, ...]) -> bool:
    """Whether `found` is one of `supported`: an entry ending with "." is a prefix ("0.54."
    is any 0.54 release), any other entry is one exact version ("1.0.9")."""
    return any(
        found.startswith(entry) if entry.endswith(".") else found == entry for entry in supported
    )


def _shown(entry: str) -> str:
    return f"{entry}*" if entry.endswith(".") else entry


def require_versions(
    module: str, checked: Mapping[str, tuple[str, ...]], found: Mapping[str, str]
) -> None:
    """Raise `UnsupportedVersion` naming `module`, the versions it was checked against and
    the versions found, unless every library in `checked` is at a supported version."""
    if all(supports(found[library], supported) for library, supported in checked.items()):
        return
    against = ", ".join(
        f"{library} {' or '.join(_shown(entry) for entry in supported)}"
        for library, supported in checked.items()
    )
    installed = ", ".join(f"{library} {found[library]}" for library in checked)
    raise UnsupportedVersion(
        f"{module} patches internals and was checked against {against}; found {installed}: "
        f"re-check {module} against the new version and update its supported versions"
    )
