"""The one place that reads torchdiffeq's internals: which of its methods take a fixed step.

torchdiffeq's public API (``odeint``) accepts a method name but does not publish its list
of names or which of them step with a fixed ``step_size``. Both are read here from its
registry (``torchdiffeq._impl``), so that a new torchdiffeq method is picked up without a
change. ``tests/test_solvers.py`` checks the result against torchdiffeq's public behaviour
(every name integrates; fixed-step methods use ``step_size``, adaptive ones warn that it is
unexpected) and fails loudly if a torchdiffeq release moves or changes these internals.
"""

from __future__ import annotations

try:
    from torchdiffeq._impl.fixed_adams import AdamsBashforth, AdamsBashforthMoulton
    from torchdiffeq._impl.odeint import SOLVERS
    from torchdiffeq._impl.solvers import FixedGridODESolver
except ImportError as error:  # pragma: no cover - only with an incompatible torchdiffeq
    raise ImportError(
        "oscsim reads the method registry of torchdiffeq 0.2.x (torchdiffeq._impl.odeint."
        f"SOLVERS); this torchdiffeq does not have it ({error}): install torchdiffeq 0.2.x"
    ) from error


def torchdiffeq_methods() -> tuple[tuple[str, ...], tuple[str, ...]]:
    """torchdiffeq's method names: ``(fixed_step, adaptive)``, each sorted."""
    fixed_classes = (FixedGridODESolver, AdamsBashforth, AdamsBashforthMoulton)
    fixed = sorted(name for name, solver in SOLVERS.items() if issubclass(solver, fixed_classes))
    adaptive = sorted(name for name in SOLVERS if name not in fixed)
    return tuple(fixed), tuple(adaptive)
