"""Names of every integration method, with their order and kind.

The continuous methods are torchdiffeq's own (read by the adapter
`oscsim.solvers._torchdiffeq`, so a new torchdiffeq method is picked up without a change
here); ``imex`` is the discrete coRNN scheme.
"""

from __future__ import annotations

from oscsim.errors import OscsimInputError
from oscsim.solvers._torchdiffeq import torchdiffeq_methods

_FIXED, _ADAPTIVE = torchdiffeq_methods()

#: Methods torchdiffeq integrates with a fixed step ``dt`` (plus ``imex``).
FIXED_STEP_METHODS: tuple[str, ...] = _FIXED + ("imex",)

#: Adaptive torchdiffeq methods (``rtol``/``atol`` control the step).
ADAPTIVE_METHODS: tuple[str, ...] = _ADAPTIVE

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
