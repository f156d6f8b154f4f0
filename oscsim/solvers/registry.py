"""Names of every integration method, with their order and kind.

The continuous methods are torchdiffeq's own registry (so a new torchdiffeq method is
picked up without a change here); ``imex`` is the discrete coRNN scheme.
"""

from __future__ import annotations

from torchdiffeq._impl.fixed_adams import AdamsBashforth, AdamsBashforthMoulton
from torchdiffeq._impl.odeint import SOLVERS
from torchdiffeq._impl.solvers import FixedGridODESolver

from oscsim.errors import OscsimInputError

#: Methods torchdiffeq integrates with a fixed step ``dt`` (plus ``imex``).
FIXED_STEP_METHODS: tuple[str, ...] = tuple(
    sorted(
        name
        for name, solver in SOLVERS.items()
        if issubclass(solver, FixedGridODESolver)
        or issubclass(solver, (AdamsBashforth, AdamsBashforthMoulton))
    )
) + ("imex",)

#: Adaptive torchdiffeq methods (``rtol``/``atol`` control the step).
ADAPTIVE_METHODS: tuple[str, ...] = tuple(
    sorted(name for name in SOLVERS if name not in FIXED_STEP_METHODS)
)

METHODS: tuple[str, ...] = FIXED_STEP_METHODS + ADAPTIVE_METHODS


def check_method(method: str) -> str:
    """Return ``method`` if it is known, else raise naming every valid one."""
    if method not in METHODS:
        raise OscsimInputError(
            f"unknown method {method!r}; valid methods are: {', '.join(METHODS)}"
        )
    return method


def is_fixed_step(method: str) -> bool:
    """Whether ``method`` steps with a fixed ``dt``."""
    return check_method(method) in FIXED_STEP_METHODS
