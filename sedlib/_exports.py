"""Lazy re-exports for package ``__init__`` modules: ``from sedlib.evaluate import psds_report``
imports ``sedlib.evaluate.report`` on first use only, so importing one module of a room (or
``import sedlib``) never pulls in torch, pandas or sed_scores_eval for the rest of it.

Inside the library, code imports from the defining module; these exports are for users.
"""

from __future__ import annotations

import importlib
from typing import Any, Callable, Mapping


def lazy_exports(package: str, names: Mapping[str, str]
                 ) -> tuple[Callable[[str], Any], Callable[[], list[str]], list[str]]:
    """``(__getattr__, __dir__, __all__)`` for ``package``; ``names`` maps a public name to the
    module defining it, absolute or relative to the package (``".report"``)."""
    exported = dict(names)

    def __getattr__(name: str) -> Any:
        if name not in exported:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(exported[name], package), name)
        setattr(importlib.import_module(package), name, value)
        return value

    def __dir__() -> list[str]:
        return sorted(exported)

    return __getattr__, __dir__, sorted(exported)
