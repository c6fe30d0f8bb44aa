"""Optional dependencies: one place that turns a missing package into an error naming the extra.

    psycopg = require("psycopg", extra="pg", feature="vanilla_async.pg")

`require` imports and returns the module; when it is not installed it raises `MissingDependency`
(an `ImportError`, so ``except ImportError`` still works) whose message says which feature needs
it and the exact ``pip install 'vanilla-async[EXTRA]'`` that fixes it. A module that is installed
but fails to import for another reason (a broken C extension, say) re-raises that error unchanged,
so the real cause is not hidden behind install advice.
"""

from __future__ import annotations

import importlib
from types import ModuleType

__all__ = ("DISTRIBUTION", "MissingDependency", "require")

DISTRIBUTION = "vanilla-async"  #: the name on PyPI, as ``pip install`` wants it


class MissingDependency(ImportError):
    """An optional dependency is not installed; the message says which extra to install."""

    def __init__(self, module: str, *, extra: str, feature: str) -> None:
        self.extra = extra
        self.feature = feature
        super().__init__(
            f"{feature} needs the {module!r} package, which is not installed: "
            f"pip install '{DISTRIBUTION}[{extra}]'",
            name=module,
        )


def require(module: str, *, extra: str, feature: str) -> ModuleType:
    """Import ``module`` (dotted names allowed) or raise `MissingDependency` naming ``extra``."""
    try:
        return importlib.import_module(module)
    except ModuleNotFoundError as exc:
        top = module.partition(".")[0]
        if exc.name is not None and exc.name.partition(".")[0] == top:
            raise MissingDependency(top, extra=extra, feature=feature) from None
        raise
