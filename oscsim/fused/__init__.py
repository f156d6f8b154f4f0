"""The fused `imex` recurrence: a whole sequence in one call, forward and backward.

`imex_sequence` runs the scheme of docs/model.md over every step of a drive sequence as one
`torch.autograd.Function` with a hand-derived adjoint, instead of one small PyTorch graph
per step. Implementations, chosen by device and coupling:

============================ ==========================================================
``local``/``none`` on CPU    Numba kernels, parallel over the batch (`_numba_kernels`)
``global`` on CPU            PyTorch operations, one matrix product per step, hand adjoint
any coupling on CUDA         the same PyTorch-operation adjoint (unmeasured on a GPU)
============================ ==========================================================

`imex_sequence_eager` is the readable per-step reference they are tested against.
"""

from __future__ import annotations

import torch

from oscsim.errors import OscsimInputError
from oscsim.fused._checks import FUSED_COUPLINGS, SequenceSpec, check_arguments
from oscsim.fused.drive import map_inputs
from oscsim.fused.eager import imex_sequence_eager

BACKENDS: tuple[str, ...] = ("numba", "torch")
"""Implementations behind `imex_sequence`: the Numba kernels and PyTorch operations."""

__all__ = ["BACKENDS", "fused_supports", "imex_sequence", "imex_sequence_eager", "map_inputs"]


def fused_supports(coupling: str, ndim: int, device: torch.device | str) -> bool:
    """Whether `imex_sequence` has a fused implementation for this network and device.

    Parameters
    ----------
    coupling
        ``"local"``, ``"global"``, ``"none"`` are fused; ``"locally_connected"`` is not.
    ndim
        1 (ring) or 2 (torus).
    device
        CPU and CUDA devices are supported.
    """
    return (
        coupling in FUSED_COUPLINGS
        and ndim in (1, 2)
        and torch.device(device).type in ("cpu", "cuda")
    )


def _default_backend(spec: SequenceSpec) -> str:
    if spec.device.type == "cpu" and spec.coupling in ("local", "none"):
        return "numba"
    return "torch"


def imex_sequence(
    drive: torch.Tensor,
    position0: torch.Tensor,
    velocity0: torch.Tensor,
    kernel_position: torch.Tensor | None,
    kernel_velocity: torch.Tensor | None,
    bias: torch.Tensor,
    gamma: torch.Tensor,
    epsilon: torch.Tensor,
    dt: torch.Tensor | float,
    *,
    coupling: str,
    activation: str = "tanh",
    return_sequence: bool = False,
    backend: str | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Run the `imex` scheme over a whole drive sequence in one fused call.

    For n = 0..T−1 (the coRNN scheme, docs/model.md#the-imex-scheme)::

        z[n+1] = z[n] + dt·(act(K_y⋆y[n] + K_z⋆z[n] + drive[n] + b) − γ·y[n] − ε·z[n])
        y[n+1] = y[n] + dt·z[n+1]

    Differentiable with respect to every tensor argument, by a hand-derived adjoint
    recurrence over the stored states (first derivatives only).

    Parameters
    ----------
    drive
        (T, B, C, *grid): the input already mapped onto the grid for every step.
    position0, velocity0
        (B, C, *grid): the initial state ``y[0]``, ``z[0]``.
    kernel_position, kernel_velocity
        ``K_y``, ``K_z``: (C, C, k) on a ring or (C, C, k, k) on a torus for ``local``
        (circular cross-correlation, PyTorch's ``conv`` with circular padding ``k // 2``);
        (C·N, C·N) for ``global`` (acting on the state flattened in (channel, *grid)
        order: ``out = y_flat @ Kᵀ``); ``None`` for ``none``.
    bias
        (C,) or (C, *grid).
    gamma, epsilon
        (C,): stiffness and damping (non-negative by the caller's construction).
    dt
        The step, a float or a 0-dim tensor (which may require grad).
    coupling
        ``"local"``, ``"global"`` or ``"none"``.
    activation
        ``"tanh"`` or ``"identity"``.
    return_sequence
        Return every state after steps 1..T instead of only the last.
    backend
        ``None`` (the fastest for the device and coupling), ``"numba"`` (CPU, ``local``
        or ``none``) or ``"torch"`` (any device and coupling).

    Returns
    -------
    position, velocity
        (B, C, *grid) after the last step, or (T, B, C, *grid) with ``return_sequence``.
        Same dtype and device as ``drive``.

    Raises
    ------
    OscsimInputError
        For any shape, dtype, device or option that is not allowed.

    Examples
    --------
    >>> import torch
    >>> from oscsim.fused import imex_sequence
    >>> drive = torch.zeros(5, 2, 1, 8, 8)
    >>> y0 = torch.zeros(2, 1, 8, 8); y0[:, :, 4, 4] = 1.0
    >>> k = torch.tensor([[[[0.0, 1.0, 0.0], [1.0, -4.0, 1.0], [0.0, 1.0, 0.0]]]])
    >>> one = torch.ones(1)
    >>> y, z = imex_sequence(drive, y0, torch.zeros_like(y0), k, torch.zeros_like(k),
    ...                      torch.zeros(1), one, 0.1 * one, 0.1, coupling="local")
    >>> tuple(y.shape)
    (2, 1, 8, 8)
    """
    spec = check_arguments(
        drive, position0, velocity0, kernel_position, kernel_velocity,
        bias, gamma, epsilon, dt, coupling, activation,
    )  # fmt: skip
    if not fused_supports(coupling, spec.ndim, spec.device):
        raise OscsimInputError(
            f"no fused imex kernel for device {spec.device}: use oscsim.fused.imex_sequence_eager"
        )
    if backend is None:
        backend = _default_backend(spec)
    if backend not in BACKENDS:
        raise OscsimInputError(
            f"backend must be one of {', '.join(BACKENDS)} or None; got {backend!r}"
        )
    args = (drive, position0, velocity0, kernel_position, kernel_velocity, bias, gamma, epsilon, dt)
    if backend == "torch":
        from oscsim.fused._torch_function import TorchImex

        return TorchImex.apply(spec, return_sequence, *args)

    if spec.device.type != "cpu" or coupling not in ("local", "none"):
        raise OscsimInputError(
            f"backend 'numba' runs 'local' and 'none' coupling on CPU; got coupling "
            f"{coupling!r} on {spec.device}: use backend='torch' or None"
        )
    from oscsim.fused import _numba_function as numba_impl

    needs_grad = torch.is_grad_enabled() and any(
        isinstance(t, torch.Tensor) and t.requires_grad for t in args
    )
    if needs_grad:
        return numba_impl.NumbaImex.apply(spec, return_sequence, *args)
    every = numba_impl.checkpoint_interval(spec, return_sequence=return_sequence, needs_grad=False)
    saved_y, saved_z, _ = numba_impl.run_forward(spec, *args[:8], float(dt), every)
    return numba_impl.outputs(spec, saved_y, saved_z, return_sequence)
