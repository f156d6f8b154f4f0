"""Coupling operators ``K ⋆ x`` between oscillators (docs/model.md#couplings).

Each coupling is a small `torch.nn.Module` mapping a state of shape ``(B, C, *grid)`` to a
tensor of the same shape. ``none`` has no module: the network skips the term.
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from oscsim.errors import OscsimInputError


def circular_pad(x: torch.Tensor, radius: int) -> torch.Tensor:
    """Pad the trailing 1 or 2 spatial dims of ``x`` periodically by ``radius`` cells."""
    ndim = x.dim() - 2
    if radius == 0:
        return x
    return F.pad(x, (radius,) * (2 * ndim), mode="circular")


def circular_correlate(x: torch.Tensor, kernel: torch.Tensor) -> torch.Tensor:
    """``K ⋆ x``: circular cross-correlation of ``x`` with one kernel shared by every cell.

    ``(K ⋆ x)[o, i, j] = Σ_{c,a,b} K[o, c, a, b] · x[c, i + a − r, j + b − r]`` (indices
    mod the grid, ``r = k // 2``): ``conv2d`` of ``x`` padded circularly by ``r`` (``conv1d``
    on a ring). The one circular convolution of the torch core: the coupling module, the
    ``imex`` field and the fused kernels' torch operator all call it.

    Parameters
    ----------
    x
        ``(B, C_in, n)`` on a ring or ``(B, C_in, h, w)`` on a torus.
    kernel
        ``(C_out, C_in, k)`` or ``(C_out, C_in, k, k)``, ``k`` odd.

    Returns
    -------
    torch.Tensor
        ``(B, C_out, *grid)``.
    """
    padded = circular_pad(x, kernel.shape[-1] // 2)
    return F.conv1d(padded, kernel) if kernel.dim() == 3 else F.conv2d(padded, kernel)


def dense_couple(x: torch.Tensor, matrix: torch.Tensor) -> torch.Tensor:
    """``K x`` for a dense ``(C·N, C·N)`` matrix acting on ``x`` flattened in
    ``(channel, *grid)`` C order; ``x`` is ``(B, C, *grid)``."""
    return (x.flatten(1) @ matrix.T).reshape(x.shape)


def locally_connected_correlate(x: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """Like `circular_correlate` with an own kernel per cell: ``weight`` is ``(C, C, n, k)``
    on a ring or ``(C, C, h, w, k, k)`` on a torus."""
    k = weight.shape[-1]
    padded = circular_pad(x, k // 2)
    if weight.dim() == 4:
        patches = padded.unfold(2, k, 1)  # (B, C, n, k)
        return torch.einsum("ncia,ocia->noi", patches, weight)
    patches = padded.unfold(2, k, 1).unfold(3, k, 1)  # (B, C, h, w, k, k)
    return torch.einsum("ncijab,ocijab->noij", patches, weight)


def couple(coupling: str, x: torch.Tensor, weight: torch.Tensor | None) -> torch.Tensor | None:
    """``K ⋆ x`` for a coupling name of `oscsim.COUPLINGS`; ``None`` for ``none``.

    The functional form of the coupling modules below, for code that holds the weights
    itself (the ``imex`` solver's `oscsim.solvers.ImexField`).
    """
    if coupling == "none" or weight is None:
        return None
    if coupling == "local":
        return circular_correlate(x, weight)
    if coupling == "global":
        return dense_couple(x, weight)
    return locally_connected_correlate(x, weight)


class LocalCoupling(nn.Module):
    """Circular cross-correlation with one kernel shared by every cell (`circular_correlate`).

    Parameters
    ----------
    weight
        ``(C, C, k)`` for a ring or ``(C, C, k, k)`` for a torus; ``k`` odd.
    """

    #: the kernel's allowed numbers of dimensions and how the error message names them
    kernel_dims: tuple[int, ...] = (3, 4)
    kernel_shapes = "local kernel must have shape (C, C, k) or (C, C, k, k)"

    def __init__(self, weight: torch.Tensor) -> None:
        super().__init__()
        if weight.dim() not in self.kernel_dims or weight.shape[-1] % 2 == 0:
            raise OscsimInputError(f"{self.kernel_shapes} with odd k, got {tuple(weight.shape)}")
        self.weight = nn.Parameter(weight.clone())
        self.radius = weight.shape[-1] // 2

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return circular_correlate(x, self.weight)


class GlobalCoupling(nn.Module):
    """A dense matrix over every oscillator of every channel: the original coRNN coupling.

    Parameters
    ----------
    weight
        ``(C·N, C·N)``, acting on the state flattened in ``(channel, *grid)`` C order.
    """

    def __init__(self, weight: torch.Tensor) -> None:
        super().__init__()
        if weight.dim() != 2 or weight.shape[0] != weight.shape[1]:
            raise OscsimInputError(
                f"global coupling matrix must be square, got {tuple(weight.shape)}"
            )
        self.weight = nn.Parameter(weight.clone())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return dense_couple(x, self.weight)


class LocallyConnectedCoupling(LocalCoupling):
    """Like `LocalCoupling`, but every cell has its own kernel (untied weights,
    `locally_connected_correlate`).

    Parameters
    ----------
    weight
        ``(C, C, *grid, k)`` on a ring or ``(C, C, h, w, k, k)`` on a torus.
    """

    kernel_dims = (4, 6)
    kernel_shapes = "locally connected kernel must have shape (C, C, n, k) or (C, C, h, w, k, k)"

    def __init__(self, weight: torch.Tensor) -> None:
        super().__init__(weight)
        self.ndim = 1 if weight.dim() == 4 else 2

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return locally_connected_correlate(x, self.weight)


def build_coupling(coupling: str, weight: np.ndarray | torch.Tensor | None) -> nn.Module | None:
    """The coupling module for a name of `oscsim.COUPLINGS` and its weight (``None`` for none)."""
    if coupling == "none":
        return None
    if weight is None:
        raise OscsimInputError(f"coupling {coupling!r} needs a kernel")
    tensor = torch.as_tensor(weight)
    if coupling == "local":
        return LocalCoupling(tensor)
    if coupling == "global":
        return GlobalCoupling(tensor)
    if coupling == "locally_connected":
        return LocallyConnectedCoupling(tensor)
    raise OscsimInputError(
        f"coupling must be one of local, global, none, locally_connected; got {coupling!r}"
    )


def local_kernel_as_matrix(kernel: np.ndarray, grid: tuple[int, ...]) -> np.ndarray:
    """The dense ``(C·N, C·N)`` matrix of a circular local kernel (for tests and `global`)."""
    channels, k = kernel.shape[0], kernel.shape[-1]
    r = k // 2
    n = math.prod(grid)
    matrix = np.zeros((channels * n, channels * n))
    cells = list(np.ndindex(*grid))
    for o in range(channels):
        for c in range(channels):
            for cell_index, cell in enumerate(cells):
                for offset in np.ndindex(*(k,) * len(grid)):
                    source = tuple((cell[d] + offset[d] - r) % grid[d] for d in range(len(grid)))
                    source_index = int(np.ravel_multi_index(source, grid))
                    matrix[o * n + cell_index, c * n + source_index] += kernel[(o, c, *offset)]
    return matrix
