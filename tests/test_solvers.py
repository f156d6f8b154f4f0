"""The method registry against torchdiffeq's public behaviour.

`oscsim.solvers._torchdiffeq` is the one module that reads torchdiffeq's internals (its
registry of methods). These tests fail loudly when a torchdiffeq release changes them: every
name must integrate through the public ``torchdiffeq.odeint``, the fixed-step ones must use
``step_size`` and the adaptive ones must not.
"""

from __future__ import annotations

import warnings

import pytest
import torch
import torchdiffeq

from oscsim.solvers import ADAPTIVE_METHODS, FIXED_STEP_METHODS, METHODS, check_method
from oscsim.solvers._torchdiffeq import torchdiffeq_methods


def _unexpected_step_size(method: str) -> bool:
    """Whether torchdiffeq warns that ``step_size`` is not an option of ``method``."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        out = torchdiffeq.odeint(
            lambda t, y: -y,
            torch.ones(1, dtype=torch.float64),
            torch.tensor([0.0, 1.0], dtype=torch.float64),
            method=method,
            options={"step_size": 0.25},
        )
    assert torch.isfinite(out).all(), f"torchdiffeq method {method!r} did not integrate"
    return any("Unexpected arguments" in str(w.message) for w in caught)


@pytest.mark.parametrize("method", [m for m in METHODS if m != "imex"])
def test_every_method_integrates_and_is_classified_as_torchdiffeq_behaves(method):
    fixed = method in FIXED_STEP_METHODS
    assert _unexpected_step_size(method) is not fixed, (
        f"torchdiffeq changed: {method!r} is classified as "
        f"{'fixed-step' if fixed else 'adaptive'} from torchdiffeq._impl, but torchdiffeq "
        "treats step_size the other way; update oscsim/solvers/_torchdiffeq.py"
    )


def test_registry_is_torchdiffeq_plus_imex():
    fixed, adaptive = torchdiffeq_methods()
    assert fixed and adaptive and not set(fixed) & set(adaptive)
    assert {"euler", "rk4", "midpoint"} <= set(fixed)
    assert {"dopri5", "bosh3"} <= set(adaptive)
    assert FIXED_STEP_METHODS == (*fixed, "imex") and ADAPTIVE_METHODS == adaptive
    assert check_method("imex") == "imex"
