"""Shared lists and builders for the tests (one place to add a solver or a coupling)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import scipy.ndimage

from oscsim.parameters import NetworkParameters

COUPLINGS = ("local", "global", "none", "locally_connected")
ACTIVATIONS = ("tanh", "identity")
FIXED_METHODS_WITH_ORDER = {"euler": 1, "midpoint": 2, "rk4": 4, "imex": 1}
ADAPTIVE_METHODS = ("dopri5", "dopri8")


def numpy_field(params: NetworkParameters):
    """An independent NumPy right-hand side (scipy.ndimage correlate, mode='wrap').

    Only for ``local`` and ``none`` couplings; returns ``f(t, flat_state)`` for solve_ivp
    on one sample with the state flattened as ``(y, z)``.
    """
    shape = params.state_shape
    size = int(np.prod(shape))
    act = np.tanh if params.activation == "tanh" else (lambda x: x)
    bias = params.bias_full
    per_channel = (-1,) + (1,) * params.ndim
    gamma = params.gamma.reshape(per_channel)
    epsilon = params.epsilon.reshape(per_channel)

    def couple(kernel: np.ndarray | None, x: np.ndarray) -> np.ndarray:
        out = np.zeros_like(x)
        if kernel is None:
            return out
        for o in range(params.channels):
            for c in range(params.channels):
                out[o] += scipy.ndimage.correlate(x[c], kernel[o, c], mode="wrap")
        return out

    def field(t: float, flat: np.ndarray) -> np.ndarray:
        y = flat[:size].reshape(shape)
        z = flat[size:].reshape(shape)
        pre = couple(params.kernel_position, y) + couple(params.kernel_velocity, z) + bias
        acc = act(pre) - gamma * y - epsilon * z
        return np.concatenate([z.ravel(), acc.ravel()])

    return field


def relative_error(actual: np.ndarray, expected: np.ndarray) -> float:
    """max |a − e| / max |e| (a max-norm relative error)."""
    scale = float(np.max(np.abs(expected)))
    return float(np.max(np.abs(np.asarray(actual) - expected)) / max(scale, 1e-300))


def decay_field(rate: float):
    """A plain ``torch.nn.Module`` field ``ẋ = −rate·x`` with ``rate`` a trainable parameter.

    Its solution ``x(t) = x(0)·exp(−rate·t)`` and the gradient with respect to ``rate`` are
    exact, so integrating it checks any solver route that accepts a generic module. Built
    on call so that the module imports no torch for the tests that must not.
    """
    import torch
    from torch import nn

    class Decay(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.rate = nn.Parameter(torch.tensor(rate))

        def forward(self, t: torch.Tensor, state: torch.Tensor) -> torch.Tensor:
            return -self.rate * state

    return Decay()


def adding_config(out: Path, *, hidden: int, **settings: Any):
    """A short ``nwm2d`` run on the adding problem into `out`: one epoch, no progress bars.

    ``hidden`` is the model's oscillator count; `settings` are further `RunConfig` fields
    and win over these.
    """
    from oscsim.models.training import RunConfig

    base = dict(task="adding", model="nwm2d", epochs=1, out=str(out), progress=False)
    return RunConfig(**{**base, "model_options": {"hidden": hidden}, **settings})
