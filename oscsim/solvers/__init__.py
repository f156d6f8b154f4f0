"""Integration methods: the torchdiffeq registry and the discrete coRNN scheme ``imex``."""

from oscsim.solvers.imex import imex_eager
from oscsim.solvers.registry import (
    ADAPTIVE_METHODS,
    FIXED_STEP_METHODS,
    METHODS,
    check_method,
    is_fixed_step,
)

__all__ = [
    "ADAPTIVE_METHODS",
    "FIXED_STEP_METHODS",
    "METHODS",
    "check_method",
    "imex_eager",
    "is_fixed_step",
]
