"""Integration methods: the method registry and the discrete coRNN scheme ``imex``.

Public names: `METHODS` (and the fixed-step / adaptive split), `check_method`,
`is_fixed_step`; `imex_sequence` (the one entry for a drive sequence), its argument record
`ImexField`, and `imex_loop` (the readable loop the fused kernels are checked against).
"""

from oscsim.solvers.imex import SecondOrderField, imex_loop, imex_sequence
from oscsim.solvers.imex_field import ImexField, SequenceSpec, check_sequence
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
    "ImexField",
    "SecondOrderField",
    "SequenceSpec",
    "check_method",
    "check_sequence",
    "imex_loop",
    "imex_sequence",
    "is_fixed_step",
]
