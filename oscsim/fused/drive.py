"""The input map of a sequence model for every step at once, into reused CPU memory.

A sequence model drives the network with ``D(u[n]) = W·u[n]`` for every step; for sMNIST
(B = 120, T = 784, a 16×16 grid) that is a 96 MB tensor per training step, and its
gradient another. Fresh memory of that size costs a page fault per 4 KiB page on first
write (~35 ms per 96 MB on the development machine, more than the matrix product itself),
so on CPU `map_inputs` writes into buffers of `oscsim.fused._workspace`, which are reused
once nothing references them. The arithmetic is PyTorch's ``matmul``.
"""

from __future__ import annotations

from typing import Any

import torch
from torch.autograd.function import once_differentiable

from oscsim.fused._workspace import empty_for


class _MapInputs(torch.autograd.Function):
    @staticmethod
    def forward(ctx: Any, inputs: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
        out = empty_for((*inputs.shape[:-1], weight.shape[0]), inputs)
        torch.matmul(inputs, weight.t(), out=out)
        ctx.save_for_backward(inputs, weight)
        return out

    @staticmethod
    @once_differentiable
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor | None, ...]:
        inputs, weight = ctx.saved_tensors
        grad_inputs = grad_weight = None
        if ctx.needs_input_grad[0]:
            grad_inputs = grad @ weight
        if ctx.needs_input_grad[1]:
            flat_grad = grad.reshape(-1, weight.shape[0])
            grad_weight = flat_grad.t() @ inputs.reshape(-1, weight.shape[1])
        return grad_inputs, grad_weight


def map_inputs(inputs: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """``inputs @ weightᵀ`` (``(..., F) → (..., N)``, ``weight`` ``(N, F)``): the same values
    and gradients as ``torch.nn.functional.linear(inputs, weight)``, with the output in
    reused memory on CPU (module docstring)."""
    return _MapInputs.apply(inputs.contiguous(), weight)
