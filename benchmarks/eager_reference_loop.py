"""The per-step baseline of `bench_fused`: models written the way the published code writes them.

Both classifiers run a Python loop over the sequence with autograd through every step, as
the reference implementations of coRNN (Rusch & Mishra, ``coRNN.py``) and of the Neural
Wave Machine do. Each step pays PyTorch's per-call cost for a handful of tiny operations;
that cost, not the arithmetic, is what the fused kernel (`oscsim.fused`) removes.

- `EagerNWM2D`: ``nn.Linear(n_inp, h·w)`` maps each input element onto a 16×16 torus,
  ``nn.Conv2d(1, 1, 3, padding=1, padding_mode="circular", bias=False)`` couples position
  and velocity, tanh, readout ``nn.Linear`` of the final position.
- `EagerCoRNN`: the published coRNN cell, ``nn.Linear(n_inp + n_hid + n_hid, n_hid)`` on
  the concatenation ``[u, z, y]``, tanh, readout ``nn.Linear`` of the final position.

The step is the same `imex` scheme as `oscsim.imex_sequence`::

    z ← z + dt·(tanh(K_y⋆y + K_z⋆z + V·u + b) − γ·y − ε·z)
    y ← y + dt·z
"""

from __future__ import annotations

import torch
from torch import nn


class _Oscillators(nn.Module):
    """The step ``dt`` and the fixed stiffness ``gamma`` and damping ``epsilon`` of both
    models (keyword arguments; the coRNN sMNIST values by default)."""

    def __init__(self, *, dt: float = 0.042, gamma: float = 2.7, epsilon: float = 4.7) -> None:
        super().__init__()
        self.dt, self.gamma, self.epsilon = dt, gamma, epsilon


class EagerNWM2D(_Oscillators):
    """A 1-channel Neural Wave Machine on an ``h×w`` torus, stepped one input at a time.

    Parameters
    ----------
    n_inp, n_out
        Input features per time step and number of classes.
    grid
        ``(h, w)`` of the torus.
    kernel_bias
        Give both kernels a bias, as the published sequence models do.
    constants
        ``dt``, ``gamma``, ``epsilon`` (`_Oscillators`).
    """

    def __init__(
        self,
        n_inp: int = 1,
        n_out: int = 10,
        grid: tuple[int, int] = (16, 16),
        *,
        kernel_bias: bool = False,
        **constants: float,
    ) -> None:
        super().__init__(**constants)
        self.grid = grid
        h, w = grid
        self.input_map = nn.Linear(n_inp, h * w)
        self.conv_y = nn.Conv2d(1, 1, 3, padding=1, padding_mode="circular", bias=kernel_bias)
        self.conv_z = nn.Conv2d(1, 1, 3, padding=1, padding_mode="circular", bias=kernel_bias)
        self.readout = nn.Linear(h * w, n_out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``x`` of shape ``(T, B, n_inp)`` → logits ``(B, n_out)``."""
        batch = x.shape[1]
        h, w = self.grid
        y = x.new_zeros(batch, 1, h, w)
        z = x.new_zeros(batch, 1, h, w)
        for t in range(x.shape[0]):
            u = self.input_map(x[t]).view(batch, 1, h, w)
            z = z + self.dt * (
                torch.tanh(self.conv_y(y) + self.conv_z(z) + u) - self.gamma * y - self.epsilon * z
            )
            y = y + self.dt * z
        return self.readout(y.flatten(1))


class EagerCoRNN(_Oscillators):
    """The published coRNN classifier (``n_hid`` units, globally coupled), stepped in Python.

    Parameters
    ----------
    n_inp, n_hid, n_out
        Input features per step, hidden units, classes.
    constants
        ``dt``, ``gamma``, ``epsilon`` (`_Oscillators`).
    """

    def __init__(
        self, n_inp: int = 1, n_hid: int = 256, n_out: int = 10, **constants: float
    ) -> None:
        super().__init__(**constants)
        self.n_hid = n_hid
        self.i2h = nn.Linear(n_inp + n_hid + n_hid, n_hid)
        self.readout = nn.Linear(n_hid, n_out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``x`` of shape ``(T, B, n_inp)`` → logits ``(B, n_out)``."""
        hy = x.new_zeros(x.shape[1], self.n_hid)
        hz = x.new_zeros(x.shape[1], self.n_hid)
        for t in range(x.shape[0]):
            hz = hz + self.dt * (
                torch.tanh(self.i2h(torch.cat((x[t], hz, hy), 1)))
                - self.gamma * hy
                - self.epsilon * hz
            )
            hy = hy + self.dt * hz
        return self.readout(hy)
