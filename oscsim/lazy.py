"""Package attributes imported on first use (PEP 562), so that importing a package stays cheap.

A package lists ``submodule → names`` and binds the returned function as its module-level
``__getattr__``; ``package.name`` then imports the submodule the first time it is asked for.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping, Sequence
from typing import Any


def lazy_attributes(package: str, table: Mapping[str, Sequence[str]]) -> Callable[[str], Any]:
    """A module ``__getattr__`` that imports the submodule providing ``name`` and returns it.

    Parameters
    ----------
    package
        The package's ``__name__``: the submodules are relative to it.
    table
        Submodule name (relative to `package`) → the names it defines.

    Returns
    -------
    callable
        ``__getattr__(name)`` for the package.

    Raises
    ------
    AttributeError
        From the returned function, for a name not in `table`, as Python's own lookup does.
    """

    where = {name: f"{package}.{module}" for module, names in table.items() for name in names}

    def __getattr__(name: str) -> Any:
        if name in where:
            return getattr(importlib.import_module(where[name]), name)
        raise AttributeError(f"module {package!r} has no attribute {name!r}")

    return __getattr__
