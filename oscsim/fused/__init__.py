"""The fused `imex` operators: a whole drive sequence in one call, forward and backward.

`run_fused` runs the scheme over every step of a drive sequence as one
`torch.autograd.Function` with a hand-derived adjoint, instead of one small PyTorch graph
per step. It is the one dispatch between the two operators, chosen by device and coupling:

============================ ==========================================================
``local``/``none`` on CPU    Numba kernels, parallel over the batch (`_numba_kernels`)
``global`` on CPU            PyTorch operations, one matrix product per step, hand adjoint
any coupling on CUDA         the same PyTorch-operation adjoint (unmeasured on a GPU)
============================ ==========================================================

Users call `oscsim.imex_sequence` (which validates the arguments and falls back on the
readable loop `oscsim.solvers.imex_loop` where no operator applies); the tests compare the
two. `map_inputs` maps a sequence model's inputs onto the grid into reused memory.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch

from oscsim.errors import OscsimInputError
from oscsim.fused._autograd import Call
from oscsim.fused.drive import map_inputs

if TYPE_CHECKING:
    from oscsim.solvers.imex_field import ImexField, SequenceSpec

BACKENDS: tuple[str, ...] = ("numba", "torch")
FUSED_COUPLINGS: tuple[str, ...] = ("local", "global", "none")

__all__ = ["BACKENDS", "FUSED_COUPLINGS", "fused_supports", "map_inputs", "run_fused"]


def fused_supports(coupling: str, ndim: int, device: torch.device | str) -> bool:
    """Whether a fused operator exists for this coupling, grid and device.

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


def _backend(spec: SequenceSpec, backend: str | None) -> str:
    if backend is None:
        cpu_kernel = spec.device.type == "cpu" and spec.coupling in ("local", "none")
        return "numba" if cpu_kernel else "torch"
    if backend not in BACKENDS:
        raise OscsimInputError(
            f"backend must be one of {', '.join(BACKENDS)} or None; got {backend!r}"
        )
    if backend == "numba" and (spec.device.type != "cpu" or spec.coupling not in ("local", "none")):
        raise OscsimInputError(
            f"backend 'numba' runs 'local' and 'none' coupling on CPU; got coupling "
            f"{spec.coupling!r} on {spec.device}: use backend='torch' or None"
        )
    return backend


def run_fused(
    field: ImexField,
    spec: SequenceSpec,
    drive: torch.Tensor,
    position0: torch.Tensor,
    velocity0: torch.Tensor,
    dt: torch.Tensor | float,
    *,
    return_sequence: bool = False,
    backend: str | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """The `imex` recurrence over a whole, already validated drive sequence.

    Arguments as for `oscsim.imex_sequence`, ``spec`` from
    `oscsim.solvers.imex_field.check_sequence`. Differentiable with respect to the drive,
    the initial state, ``dt`` and every tensor of ``field``.

    Raises
    ------
    OscsimInputError
        For an unknown backend, or ``"numba"`` where it does not apply.
    """
    if not fused_supports(spec.coupling, spec.ndim, spec.device):
        raise OscsimInputError(
            f"no fused imex kernel for coupling {spec.coupling!r} on {spec.device}: "
            "use oscsim.imex_sequence with fused=False"
        )
    chosen = _backend(spec, backend)
    inputs = (drive, position0, velocity0, dt, *field.coefficients())
    call = Call(spec, field, return_sequence)
    if chosen == "torch":
        from oscsim.fused._torch_function import TorchImex

        return TorchImex.apply(call, *inputs)
    from oscsim.fused import _numba_function as numba_impl

    needs_grad = torch.is_grad_enabled() and any(
        isinstance(t, torch.Tensor) and t.requires_grad for t in inputs
    )
    if needs_grad:
        return numba_impl.NumbaImex.apply(call, *inputs)
    every = numba_impl.checkpoint_interval(spec, return_sequence=return_sequence, needs_grad=False)
    saved_y, saved_z, _ = numba_impl.run_forward(
        spec, field, drive, position0, velocity0, float(dt), every
    )
    return numba_impl.outputs(spec, saved_y, saved_z, return_sequence)
