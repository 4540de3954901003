"""The distribution's optional extras as import names, and the line a command prints when one is not installed.

pyproject.toml's [project.optional-dependencies] names the distributions; EXTRAS names the modules they install,
so a command checks them before it starts (tests/virtwatch/test_extras.py keeps the two equal).
"""

from __future__ import annotations

import importlib.util
from collections.abc import Sequence

#: each extra: the extras it includes, then the modules it adds (as imported)
EXTRAS: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "frames": ((), ("pandas", "numpy")),
    "alerts": (("frames",), ()),
    "soak": (("frames",), ()),
    "analysis": (("frames",), ("scipy",)),
    "embedded": (("frames",), ("duckdb", "pyarrow")),
    "dashboard": (("analysis",), ("dash", "plotly", "dash_ag_grid", "gunicorn")),
    "all": (("alerts", "soak", "analysis", "embedded", "dashboard"), ("influxdb_client",)),
}


class MissingExtra(Exception):
    """A module of an extra that is not installed; the message says what to `pip install`."""


def extra_modules(extra: str) -> list[str]:
    """Return the modules an extra installs, those of the extras it includes first, each once."""
    included, own = EXTRAS[extra]
    modules: list[str] = []
    for name in [*(m for inner in included for m in extra_modules(inner)), *own]:
        if name not in modules:
            modules.append(name)
    return modules


def install_hint(extras: Sequence[str]) -> str:
    """Return the pip command that installs these extras."""
    return f"pip install 'virtwatch[{','.join(extras)}]'"


def missing_modules(extras: Sequence[str]) -> list[str]:
    """Return the modules of these extras that cannot be imported here (found without importing them)."""
    missing: list[str] = []
    for extra in extras:
        for module in extra_modules(extra):
            if module not in missing and importlib.util.find_spec(module) is None:
                missing.append(module)
    return missing


def require_extras(command: str, extras: Sequence[str]) -> None:
    """Raise MissingExtra naming what to install when a module of these extras is missing."""
    missing = missing_modules(extras)
    if missing:
        raise MissingExtra(missing_message(command, extras, missing))


def missing_message(command: str, extras: Sequence[str], missing: Sequence[str]) -> str:
    """Return the one line saying that `virtwatch COMMAND` needs these extras, what is missing and the fix."""
    names = " and ".join(f"'{extra}'" for extra in extras)
    noun = "extra" if len(extras) == 1 else "extras"
    return (f"virtwatch {command}: needs the {names} {noun} of virtwatch, not installed here "
            f"(missing: {', '.join(missing)}): {install_hint(extras)}")


def extra_providing(module: str, preferred: Sequence[str] = ()) -> str | None:
    """Return the extra that installs a module (one of `preferred` if one does), or None for a module of no extra."""
    top = module.partition(".")[0]
    for extra in [*preferred, *EXTRAS]:
        if top in extra_modules(extra):
            return extra
    return None
