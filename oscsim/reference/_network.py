"""Translate `NetworkParameters` into the kernels' record (`_kernels.Network`).

Every grid becomes 2-D (a ring of ``n`` cells is ``1 × n``) and every kernel 6-D, so one
compiled kernel serves all couplings (see `_kernels`).
"""

from __future__ import annotations

import numpy as np

from oscsim.parameters import NetworkParameters
from oscsim.reference._kernels import (
    COUPLING_DENSE,
    COUPLING_NONE,
    COUPLING_PER_CELL,
    COUPLING_STENCIL,
    Network,
)

_COUPLING_KIND = {
    "local": COUPLING_STENCIL,
    "locally_connected": COUPLING_PER_CELL,
    "global": COUPLING_DENSE,
    "none": COUPLING_NONE,
}


def grid2d(grid: tuple[int, ...]) -> tuple[int, int]:
    """``(H, W)`` of the kernels' layout for a ring ``(n,)`` or a torus ``(h, w)``."""
    return (1, grid[0]) if len(grid) == 1 else (grid[0], grid[1])


def _readonly(array: np.ndarray) -> np.ndarray:
    out = np.array(array, dtype=np.float64, order="C", copy=True)
    out.setflags(write=False)
    return out


def _kernel6(params: NetworkParameters, kernel: np.ndarray | None) -> np.ndarray:
    c = params.channels
    if kernel is None or params.coupling not in ("local", "locally_connected"):
        return np.zeros((c, c, 1, 1, 1, 1))
    if params.coupling == "local":
        k2 = kernel[:, :, None, :] if params.ndim == 1 else kernel
        return k2[..., None, None]  # (C, C, kh, kw, 1, 1)
    if params.ndim == 1:  # locally connected (C, C, n, k) -> (C, C, 1, k, 1, n)
        return np.transpose(kernel, (0, 1, 3, 2))[:, :, None, :, None, :]
    return np.transpose(kernel, (0, 1, 4, 5, 2, 3))  # (C, C, kh, kw, h, w)


def build(params: NetworkParameters) -> Network:
    """The kernels' read-only record for ``params`` (copies every array)."""
    height, width = grid2d(params.grid)
    empty = np.zeros((0, 0))
    dense = params.coupling == "global"
    # The kernels read the dense matrices transposed (input-major), see `_kernels.Network`.
    dense_y = params.kernel_position.T if dense and params.kernel_position is not None else None
    dense_z = params.kernel_velocity.T if dense and params.kernel_velocity is not None else None
    return Network(
        coupling=_COUPLING_KIND[params.coupling],
        tanh=params.activation == "tanh",
        kernel_position=_readonly(_kernel6(params, params.kernel_position)),
        kernel_velocity=_readonly(_kernel6(params, params.kernel_velocity)),
        dense_position=_readonly(empty if dense_y is None else dense_y),
        dense_velocity=_readonly(empty if dense_z is None else dense_z),
        gamma=_readonly(params.gamma),
        epsilon=_readonly(params.epsilon),
        bias=_readonly(params.bias_full.reshape(params.channels, height, width)),
    )
