"""The one lazy re-export (PEP 562), for a package whose `__init__` names its public API but must not
import it: `import harness` (and `prh` building its parser) may load neither numpy, torch nor scipy, so
a package's names are imported on first use.

    __all__, __getattr__, __dir__ = lazy_exports(__name__, {".runner": ("RunSummary", "run_items")})

Module names starting with "." are relative to the package; others are absolute. A name is imported
once, then kept on the package like any attribute.
"""

from __future__ import annotations

import importlib.util
import sys
from collections.abc import Callable, Iterable, Mapping
from typing import Any


def lazy_exports(package: str, exports: Mapping[str, Iterable[str]]
                 ) -> tuple[list[str], Callable[[str], Any], Callable[[], list[str]]]:
    """(`__all__`, `__getattr__`, `__dir__`) for `package`, whose `exports` map each module to the names
    it provides. A name listed twice is an error here rather than a puzzle later, and so is a name equal to
    one of the package's submodules: once that submodule is imported, the import system sets the package's
    attribute to the module, and `from package import name` silently hands out the module instead."""
    where: dict[str, str] = {}
    for module, names in exports.items():
        for name in names:
            if name in where:
                raise ValueError(f"{package}: {name!r} is exported from both {where[name]} and {module}")
            if importlib.util.find_spec(f"{package}.{name}") is not None:
                raise ValueError(f"{package}: the exported name {name!r} is also a submodule's name")
            where[name] = module

    def __getattr__(name: str) -> Any:
        module = where.get(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(module, package), name)
        setattr(sys.modules[package], name, value)
        return value

    def __dir__() -> list[str]:
        return sorted({*vars(sys.modules[package]), *where})

    return sorted(where), __getattr__, __dir__
