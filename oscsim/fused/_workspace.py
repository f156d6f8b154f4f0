"""Reuse of the large buffers of the fused kernels across calls.

A training step of NWM-2D allocates buffers of ~100 MB (the drive gradient, the saved
states). Fresh memory comes from the operating system as untouched pages, and the first
write to each page costs a page fault: ~45 ms of CPU per 96 MB on the development
machine, as much as the arithmetic of a whole forward pass. This cache keeps such buffers
once nothing references them any more and hands them out again for the same size, as
PyTorch's CUDA caching allocator does for device memory.

A buffer is a NumPy byte array owned by the cache; callers receive a tensor made by
`torch.from_numpy` on a typed view of it. PyTorch keeps that view object alive for as long
as any tensor shares the memory, so the buffer is idle exactly when a weak reference to
the view has died. Nothing is handed out twice while in use.
"""

from __future__ import annotations

import math
import threading
import weakref

import numpy as np
import torch

_MIN_BYTES = 1 << 20  # smaller buffers come from the ordinary allocator
_MAX_IDLE_BYTES = 1 << 30  # idle buffers beyond this are released, oldest first

_NUMPY = {torch.float32: np.float32, torch.float64: np.float64}


class _Buffer:
    __slots__ = ("memory", "user")

    def __init__(self, nbytes: int) -> None:
        self.memory = np.empty(nbytes, dtype=np.uint8)
        self.user: weakref.ref[np.ndarray] | None = None

    @property
    def idle(self) -> bool:
        return self.user is None or self.user() is None


_lock = threading.Lock()
_buffers: list[_Buffer] = []


def empty(shape: tuple[int, ...], dtype: torch.dtype, *, zero: bool = False) -> torch.Tensor:
    """An uninitialised (or zeroed) CPU tensor, from an idle cached buffer where one fits."""
    nbytes = math.prod(shape) * torch.empty((), dtype=dtype).element_size()
    if nbytes < _MIN_BYTES:
        maker = torch.zeros if zero else torch.empty
        return maker(shape, dtype=dtype)
    with _lock:
        found = next((b for b in _buffers if b.memory.nbytes == nbytes and b.idle), None)
        if found is None:
            found = _Buffer(nbytes)
            _buffers.append(found)
            idle = [b for b in _buffers if b is not found and b.idle]
            excess = sum(b.memory.nbytes for b in idle) - _MAX_IDLE_BYTES
            for b in idle:
                if excess <= 0:
                    break
                excess -= b.memory.nbytes
                _buffers.remove(b)
        array = found.memory.view(_NUMPY[dtype]).reshape(shape)
        found.user = weakref.ref(array)
    if zero:
        array.fill(0)
    return torch.from_numpy(array)


def clear() -> None:
    """Release every idle buffer (buffers in use are released when their tensors die)."""
    with _lock:
        _buffers[:] = [b for b in _buffers if not b.idle]


def empty_for(shape: tuple[int, ...], like: torch.Tensor) -> torch.Tensor:
    """An uninitialised tensor of ``like``'s dtype and device: from the cache for float CPU
    tensors (no fresh pages to fault in), from the ordinary allocator otherwise."""
    if like.device.type == "cpu" and like.dtype in _NUMPY:
        return empty(shape, like.dtype)
    return torch.empty(shape, dtype=like.dtype, device=like.device)
