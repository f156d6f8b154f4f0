"""Plain NumPy baselines for the reference-solver benchmark (`bench_reference`).

A vectorised right-hand side with ``np.roll`` stencils for a ``local`` network on a 2-D
torus, the same 3/8-rule RK4 step as ``oscsim.reference`` (torchdiffeq's ``rk4``), and a
flat ``f(t, u)`` for ``scipy.integrate.solve_ivp``. Written the way one would write it in
NumPy, without tricks, as the thing a reader would otherwise use.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from oscsim.parameters import NetworkParameters


def _check(params: NetworkParameters) -> None:
    if params.coupling != "local" or params.ndim != 2:
        raise ValueError("the NumPy baseline covers `local` coupling on a 2-D torus only")


def acceleration(params: NetworkParameters, y: np.ndarray, z: np.ndarray) -> np.ndarray:
    """``act(K_y⋆y + K_z⋆z + b) − γ·y − ε·z`` for ``(B, C, h, w)`` states, with rolls."""
    _check(params)
    ky, kz = params.kernel_position, params.kernel_velocity
    if ky is None or kz is None:
        raise ValueError("a local network has both kernels")
    k = ky.shape[-1]
    r = k // 2
    single = y.shape[1] == 1
    coupled = np.zeros_like(y)
    for a in range(k):
        for b in range(k):
            # (K⋆y)[o, i, j] = Σ_c K[o, c, a, b]·y[c, i + a − r, j + b − r]
            ys = np.roll(y, (r - a, r - b), axis=(2, 3))
            zs = np.roll(z, (r - a, r - b), axis=(2, 3))
            if single:  # one channel: a scalar weight, no channel sum
                coupled += ky[0, 0, a, b] * ys + kz[0, 0, a, b] * zs
            else:
                coupled += np.einsum("oc,bchw->bohw", ky[:, :, a, b], ys)
                coupled += np.einsum("oc,bchw->bohw", kz[:, :, a, b], zs)
    pre = coupled + params.bias_full[None]
    act = np.tanh(pre) if params.activation == "tanh" else pre
    gamma = params.gamma[None, :, None, None]
    epsilon = params.epsilon[None, :, None, None]
    return act - gamma * y - epsilon * z


def rk4(
    params: NetworkParameters, y: np.ndarray, z: np.ndarray, dt: float, steps: int
) -> tuple[np.ndarray, np.ndarray]:
    """``steps`` steps of Kutta's 3/8 rule from ``(y, z)``; returns the final state."""
    y = y.copy()
    z = z.copy()
    third = 1.0 / 3.0
    for _ in range(steps):
        a1 = acceleration(params, y, z)
        y2, z2 = y + dt * third * z, z + dt * third * a1
        a2 = acceleration(params, y2, z2)
        y3, z3 = y + dt * (z2 - third * z), z + dt * (a2 - third * a1)
        a3 = acceleration(params, y3, z3)
        y4, z4 = y + dt * (z - z2 + z3), z + dt * (a1 - a2 + a3)
        a4 = acceleration(params, y4, z4)
        y = y + (z + 3.0 * (z2 + z3) + z4) * (dt / 8.0)
        z = z + (a1 + 3.0 * (a2 + a3) + a4) * (dt / 8.0)
    return y, z


def flat_rhs(
    params: NetworkParameters, shape: tuple[int, ...]
) -> Callable[[float, np.ndarray], np.ndarray]:
    """``f(t, u)`` on the flat state ``u = [y.ravel(), z.ravel()]``, for ``solve_ivp``."""
    size = int(np.prod(shape))

    def rhs(t: float, u: np.ndarray) -> np.ndarray:
        y = u[:size].reshape(shape)
        z = u[size:].reshape(shape)
        return np.concatenate([z.ravel(), acceleration(params, y, z).ravel()])

    return rhs
