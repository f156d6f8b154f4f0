"""Shared lists and builders for the tests (one place to add a solver or a coupling)."""

from __future__ import annotations

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
