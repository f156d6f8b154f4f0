"""`torch.autograd.Function` around the Numba kernels (CPU; ``local`` and ``none`` coupling)."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch
from torch.autograd.function import once_differentiable

from oscsim.fused import _numba_kernels as kernels
from oscsim.fused import _workspace
from oscsim.fused._autograd import Call, States, gradients, needed, unpack
from oscsim.solvers.imex_field import ImexField, SequenceSpec


def _plane(spec: SequenceSpec) -> tuple[int, int]:
    """The grid as (H, W): a ring of n cells is a torus of height 1."""
    return (1, spec.grid[0]) if spec.ndim == 1 else (spec.grid[0], spec.grid[1])


def _cells_per_sample(spec: SequenceSpec) -> int:
    height, width = _plane(spec)
    return spec.channels * height * width


def _np(t: torch.Tensor, spec: SequenceSpec) -> np.ndarray:
    """A C-contiguous NumPy view (or copy) of ``t`` with its grid axes as (H, W)."""
    t = t.detach()
    if spec.ndim == 1:
        t = t.unsqueeze(-2)
    return t.contiguous().numpy()


def _np_dtype(spec: SequenceSpec) -> type:
    return np.float32 if spec.dtype == torch.float32 else np.float64


def _kernel(kernel: torch.Tensor | None, spec: SequenceSpec) -> np.ndarray:
    if kernel is None:  # coupling "none": a (C, C, 0, 0) kernel skips the coupling term
        return np.zeros((spec.channels, spec.channels, 0, 0), dtype=_np_dtype(spec))
    return _np(kernel, spec)


def _bias(bias: torch.Tensor, spec: SequenceSpec) -> np.ndarray:
    shape = (spec.channels, *_plane(spec))
    if bias.ndim == 1:
        return np.ascontiguousarray(np.broadcast_to(bias.detach().numpy()[:, None, None], shape))
    return _np(bias, spec).reshape(shape)


def checkpoint_interval(spec: SequenceSpec, *, return_sequence: bool, needs_grad: bool) -> int:
    """Steps between saved states: every step for a returned sequence, ⌈√T⌉ for a backward,
    only the last otherwise.

    For a backward the forward also stores every step's activations (as much memory as the
    drive), and the backward replays each segment's states from its saved state and those
    activations: only the element-wise update, not the coupling or the tanh (NWM-2D,
    B = 120, T = 784, one thread: backward 0.18 s rerunning the steps, 0.15 s replaying).
    The saved states themselves stay O(√T) per sample.
    """
    if return_sequence:
        return 1
    if needs_grad:
        return math.isqrt(spec.steps - 1) + 1
    return spec.steps


def run_forward(
    spec: SequenceSpec,
    field: ImexField,
    drive: torch.Tensor,
    position0: torch.Tensor,
    velocity0: torch.Tensor,
    dt: float,
    every: int,
    *,
    keep_activations: bool = False,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Run the forward kernel; return the saved states (S+1, B, C, H, W), S = ceil(T/every),
    and every step's activations (T, C, B·P) if ``keep_activations`` (else empty)."""
    slots = -(-spec.steps // every) + 1
    plane = (spec.batch, spec.channels, *_plane(spec))
    saved_y = _workspace.empty((slots, *plane), spec.dtype)
    saved_z = _workspace.empty((slots, *plane), spec.dtype)
    ky = _kernel(field.kernel_position, spec)
    # the activations as the kernels' padded planes: (T, C, B·P), P the padded grid
    padded = (plane[2] + 2 * (ky.shape[2] // 2)) * (plane[3] + 2 * (ky.shape[3] // 2))
    activations = (spec.steps if keep_activations else 0, spec.channels, spec.batch * padded)
    saved_h = _workspace.empty(activations, spec.dtype)
    kernels.run_batched(
        kernels.imex_forward,
        spec.batch,
        _cells_per_sample(spec),
        _np(drive, spec),
        _np(position0, spec),
        _np(velocity0, spec),
        ky,
        _kernel(field.kernel_velocity, spec),
        _bias(field.bias, spec),
        field.gamma.detach().numpy(),
        field.epsilon.detach().numpy(),
        _np_dtype(spec)(dt),
        spec.activation == "tanh",
        every,
        saved_y.numpy(),
        saved_z.numpy(),
        saved_h.numpy(),
    )
    return saved_y, saved_z, saved_h


def outputs(
    spec: SequenceSpec, saved_y: torch.Tensor, saved_z: torch.Tensor, return_sequence: bool
) -> tuple[torch.Tensor, torch.Tensor]:
    """The states `imex_sequence` returns, as views of the saved states."""
    shape = (spec.batch, spec.channels, *spec.grid)
    if return_sequence:
        return saved_y[1:].view(spec.steps, *shape), saved_z[1:].view(spec.steps, *shape)
    return saved_y[-1].view(shape), saved_z[-1].view(shape)


class NumbaImex(torch.autograd.Function):
    """The fused `imex` recurrence with its hand-derived adjoint (see `_numba_kernels`)."""

    @staticmethod
    def forward(ctx: Any, call: Call, *inputs: Any) -> States:
        spec, field, return_sequence = call
        every = checkpoint_interval(spec, return_sequence=return_sequence, needs_grad=True)
        drive, position0, velocity0, dt = unpack(inputs)
        dt_value = float(dt)
        saved_y, saved_z, saved_h = run_forward(
            spec, field, drive, position0, velocity0, dt_value, every, keep_activations=True
        )
        ctx.set_materialize_grads(False)
        ctx.spec = spec
        ctx.return_sequence = return_sequence
        ctx.dt_value = dt_value
        ctx.every = every
        ctx.bias_ndim = field.bias.ndim
        ctx.dt_dtype = dt.dtype if isinstance(dt, torch.Tensor) else None
        # the backward replays from the saved states and activations: neither the drive nor
        # the bias is needed again
        ctx.save_for_backward(
            saved_y, saved_z, saved_h,
            field.kernel_position, field.kernel_velocity, field.gamma, field.epsilon,
        )  # fmt: skip
        return outputs(spec, saved_y, saved_z, return_sequence)

    @staticmethod
    @once_differentiable
    def backward(
        ctx: Any, grad_position: torch.Tensor | None, grad_velocity: torch.Tensor | None
    ) -> tuple[torch.Tensor | None, ...]:
        needs = needed(ctx)
        spec: SequenceSpec = ctx.spec
        saved_y, saved_z, saved_h, kernel_position, kernel_velocity, gamma, epsilon = (
            ctx.saved_tensors
        )
        dtype = _np_dtype(spec)
        b, c, plane = spec.batch, spec.channels, _plane(spec)
        zeros_state: np.ndarray = np.zeros((b, c, *plane), dtype=dtype)
        no_sequence: np.ndarray = np.zeros((0, b, c, *plane), dtype=dtype)
        if ctx.return_sequence:
            grad_y_last = grad_z_last = zeros_state
            full = (spec.steps, b, c, *plane)
            grad_ys = np.zeros(full, dtype) if grad_position is None else _np(grad_position, spec)
            grad_zs = np.zeros(full, dtype) if grad_velocity is None else _np(grad_velocity, spec)
        else:
            grad_y_last = zeros_state if grad_position is None else _np(grad_position, spec)
            grad_z_last = zeros_state if grad_velocity is None else _np(grad_velocity, spec)
            grad_ys = grad_zs = no_sequence

        ky = _kernel(kernel_position, spec)
        kz = _kernel(kernel_velocity, spec)
        # the adjoint correlation: channels transposed, space flipped
        ky_t = np.ascontiguousarray(ky.transpose(1, 0, 2, 3)[:, :, ::-1, ::-1])
        kz_t = np.ascontiguousarray(kz.transpose(1, 0, 2, 3)[:, :, ::-1, ::-1])
        kernel_shape = (b, c, c, ky.shape[2], ky.shape[3])
        grad_drive = _workspace.empty(
            (spec.steps if needs["drive"] else 0, b, c, *plane), spec.dtype
        )
        grad_y0 = torch.empty((b, c, *plane), dtype=spec.dtype)
        grad_z0 = torch.empty((b, c, *plane), dtype=spec.dtype)
        grad_ky = np.zeros(kernel_shape)
        grad_kz = np.zeros(kernel_shape)
        grad_bias: np.ndarray = np.empty((b, c, *plane), dtype=dtype)
        grad_gamma = np.empty((b, c))
        grad_epsilon = np.empty((b, c))
        grad_dt = np.empty((b,), dtype=np.float64)
        kernels.run_batched(
            kernels.imex_backward, b, _cells_per_sample(spec),
            saved_y.numpy(), saved_z.numpy(), saved_h.numpy(), ctx.every, ky, kz, ky_t, kz_t,
            gamma.detach().numpy(), epsilon.detach().numpy(),
            dtype(ctx.dt_value), spec.activation == "tanh",
            grad_y_last, grad_z_last, grad_ys, grad_zs,
            grad_drive.numpy(), grad_y0.numpy(), grad_z0.numpy(),
            grad_ky, grad_kz, grad_bias, grad_gamma, grad_epsilon, grad_dt,
        )  # fmt: skip

        def batch_sum(per_sample: np.ndarray, shape: tuple[int, ...]) -> torch.Tensor:
            total = per_sample.sum(axis=0, dtype=np.float64).astype(dtype)
            return torch.from_numpy(np.ascontiguousarray(total)).reshape(shape)

        state_shape = (b, c, *spec.grid)
        grads: dict[str, torch.Tensor | None] = {}
        kernel_grads = (
            ("kernel_position", kernel_position, grad_ky),
            ("kernel_velocity", kernel_velocity, grad_kz),
        )
        for name, kernel, per_sample in kernel_grads:
            if kernel is not None and needs[name]:
                grads[name] = batch_sum(per_sample, tuple(kernel.shape))
        if needs["bias"]:
            per_cell = grad_bias.reshape(b, c, -1)
            if ctx.bias_ndim == 1:
                grads["bias"] = batch_sum(per_cell.sum(axis=2, dtype=np.float64), (c,))
            else:
                grads["bias"] = batch_sum(per_cell, (c, *spec.grid))
        if needs["gamma"]:
            grads["gamma"] = batch_sum(grad_gamma, (c,))
        if needs["epsilon"]:
            grads["epsilon"] = batch_sum(grad_epsilon, (c,))
        if needs["dt"] and ctx.dt_dtype is not None:
            grads["dt"] = torch.tensor(float(grad_dt.sum()), dtype=ctx.dt_dtype)
        if needs["drive"]:
            grads["drive"] = grad_drive.view(spec.steps, *state_shape)
        if needs["position0"]:
            grads["position0"] = grad_y0.view(state_shape)
        if needs["velocity0"]:
            grads["velocity0"] = grad_z0.view(state_shape)
        return gradients(grads)
