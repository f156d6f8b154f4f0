"""The `imex` recurrence with its hand-derived adjoint written in PyTorch operations.

Used where the Numba kernels do not apply: ``global`` coupling on CPU (each step is one
matrix product, which BLAS already does well) and every coupling on CUDA. It is the
adjoint of `_numba_kernels` (see the equations there) with the coupling done by PyTorch:

- position and velocity live side by side in one state ``s = [y, z]`` of shape
  (B, 2C, *grid), so that both couplings are one operation per step: a ``conv`` of the
  circularly padded state with ``[K_y, K_z]`` stacked along input channels, or one ``addmm``
  of the flattened state with ``[K_y, K_z]`` stacked along columns;
- the backward applies the transposed coupling to the adjoint once per step, and forms
  the kernel gradients once for the whole sequence, from the stored states and the
  stored per-step adjoints (one large matrix product or one ``conv_weight`` call);
- parameter sums are accumulated element-wise and reduced once at the end.

No autograd graph is built: per step the forward stores the state and the activation and
the backward stores the adjoint of the drive.
"""

from __future__ import annotations

from typing import Any

import torch
from torch.autograd.function import once_differentiable
from torch.nn import grad as nn_grad

from oscsim.coupling import circular_correlate, circular_pad
from oscsim.fused._autograd import Call, States, gradients, needed, unpack
from oscsim.fused._workspace import empty_for
from oscsim.solvers.imex_field import SequenceSpec


def _stacked(kernel_y: torch.Tensor | None, kernel_z: torch.Tensor | None) -> torch.Tensor:
    """``[K_y, K_z]`` along the input dimension (empty for ``none``): one operation per step
    applies both to the stacked state ``[y, z]``."""
    if kernel_y is None or kernel_z is None:
        return torch.empty(0)
    return torch.cat([kernel_y, kernel_z], dim=1)


class TorchImex(torch.autograd.Function):
    """Fused `imex` with a hand-derived adjoint in PyTorch operations (any device)."""

    @staticmethod
    def forward(ctx: Any, call: Call, *inputs: Any) -> States:
        spec, field, return_sequence = call
        drive, position0, velocity0, dt = unpack(inputs)
        bias, gamma, epsilon = field.bias, field.gamma, field.epsilon
        dt_value = float(dt)
        c = spec.channels
        per_channel = (-1,) + (1,) * spec.ndim
        kernel = _stacked(field.kernel_position, field.kernel_velocity)
        states = empty_for((spec.steps + 1, spec.batch, 2 * c, *spec.grid), drive)
        acts = empty_for(tuple(drive.shape), drive)  # drive + b first, then the activations
        torch.add(drive, bias.view(per_channel) if bias.ndim == 1 else bias, out=acts)
        states[0, :, :c] = position0
        states[0, :, c:] = velocity0
        decay = (1 - dt_value * epsilon).view(per_channel)
        stiff = (-dt_value * gamma).view(per_channel)
        for n in range(spec.steps):
            s = states[n]
            y, z = s[:, :c], s[:, c:]
            h = acts[n]
            if spec.coupling == "global":
                h.view(spec.batch, -1).addmm_(s.flatten(1), kernel.T)
            elif spec.coupling == "local":
                h.add_(circular_correlate(s, kernel))
            if spec.activation == "tanh":
                h.tanh_()
            z_next = states[n + 1, :, c:]
            torch.mul(z, decay, out=z_next)
            z_next.addcmul_(y, stiff).add_(h, alpha=dt_value)
            torch.add(y, z_next, alpha=dt_value, out=states[n + 1, :, :c])
        ctx.set_materialize_grads(False)
        ctx.spec = spec
        ctx.return_sequence = return_sequence
        ctx.dt_value = dt_value
        ctx.bias_ndim = bias.ndim
        ctx.dt_dtype = dt.dtype if isinstance(dt, torch.Tensor) else None
        ctx.save_for_backward(states, acts, kernel, gamma, epsilon)
        if return_sequence:
            return states[1:, :, :c], states[1:, :, c:]
        return states[-1, :, :c], states[-1, :, c:]

    @staticmethod
    @once_differentiable
    def backward(
        ctx: Any, grad_position: torch.Tensor | None, grad_velocity: torch.Tensor | None
    ) -> tuple[torch.Tensor | None, ...]:
        spec: SequenceSpec = ctx.spec
        states, acts, kernel, gamma, epsilon = ctx.saved_tensors
        needs = needed(ctx)
        dt = ctx.dt_value
        c, ndim = spec.channels, spec.ndim
        per_channel = (-1,) + (1,) * ndim
        g = gamma.view(per_channel)
        decay = (1 - dt * epsilon).view(per_channel)
        state_shape = (spec.batch, c, *spec.grid)
        gy = states.new_zeros(state_shape)
        gz = states.new_zeros(state_shape)
        if not ctx.return_sequence:
            if grad_position is not None:
                gy += grad_position
            if grad_velocity is not None:
                gz += grad_velocity
        # ∂L/∂drive[n], also used for the kernel gradients
        adjoints = empty_for(tuple(acts.shape), acts)
        acc_g = torch.zeros_like(gy)
        acc_e = torch.zeros_like(gy)
        acc_dt = torch.zeros_like(gy)
        # the adjoint of a circular correlation: channels transposed, space flipped
        transposed = (
            kernel.transpose(0, 1).flip(list(range(2, 2 + ndim)))
            if spec.coupling == "local"
            else kernel
        )
        for n in range(spec.steps - 1, -1, -1):
            if ctx.return_sequence:
                if grad_position is not None:
                    gy += grad_position[n]
                if grad_velocity is not None:
                    gz += grad_velocity[n]
            s = states[n]
            y, z = s[:, :c], s[:, c:]
            h = acts[n]
            zeta = torch.add(gz, gy, alpha=dt)
            a = adjoints[n]
            if spec.activation == "tanh":
                torch.mul(h, h, out=a)
                a.sub_(1).mul_(zeta).mul_(-dt)
            else:
                torch.mul(zeta, dt, out=a)
            acc_g.addcmul_(zeta, y)
            acc_e.addcmul_(zeta, z)
            # zeta·(h − γy − εz) = zeta·(z[n+1] − z[n])/dt, written without the division
            acc_dt.addcmul_(zeta, h - g * y - epsilon.view(per_channel) * z)
            acc_dt.addcmul_(gy, states[n + 1, :, c:])
            gy.addcmul_(zeta, g, value=-dt)
            torch.mul(zeta, decay, out=gz)
            if spec.coupling == "global":
                back = (a.flatten(1) @ kernel).view(spec.batch, 2 * c, *spec.grid)
            elif spec.coupling == "local":
                back = circular_correlate(a, transposed)
            else:
                continue
            gy += back[:, :c]
            gz += back[:, c:]

        grads: dict[str, torch.Tensor | None] = {}
        wants_kernel = needs["kernel_position"] or needs["kernel_velocity"]
        grad_kernel = None
        if spec.coupling == "global" and wants_kernel:
            grad_kernel = adjoints.reshape(-1, kernel.shape[0]).T @ states[:-1].reshape(
                -1, kernel.shape[1]
            )
        elif spec.coupling == "local" and wants_kernel:
            padded = circular_pad(states[:-1].flatten(0, 1), kernel.shape[-1] // 2)
            flat_adjoints = adjoints.flatten(0, 1)
            weight_grad = nn_grad.conv1d_weight if ndim == 1 else nn_grad.conv2d_weight
            grad_kernel = weight_grad(padded, kernel.shape, flat_adjoints)
        if grad_kernel is not None:
            half = grad_kernel.shape[1] // 2
            for name, part in (("kernel_position", slice(None, half)),
                               ("kernel_velocity", slice(half, None))):  # fmt: skip
                if needs[name]:
                    grads[name] = grad_kernel[:, part].contiguous()
        cell_dims = tuple(range(2, 2 + ndim))
        if needs["bias"]:
            per_cell = adjoints.sum(dim=(0, 1))
            grads["bias"] = per_cell.flatten(1).sum(dim=1) if ctx.bias_ndim == 1 else per_cell
        reduce_dims = (0, *cell_dims)
        if needs["gamma"]:
            grads["gamma"] = -dt * acc_g.sum(dim=reduce_dims)
        if needs["epsilon"]:
            grads["epsilon"] = -dt * acc_e.sum(dim=reduce_dims)
        if needs["dt"] and ctx.dt_dtype is not None:
            grads["dt"] = acc_dt.sum().to(ctx.dt_dtype)
        for name, value in (("drive", adjoints), ("position0", gy), ("velocity0", gz)):
            if needs[name]:
                grads[name] = value
        return gradients(grads)
