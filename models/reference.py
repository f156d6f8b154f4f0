"""The published sequence models of the Neural Wave Machines paper, parameter for parameter.

The ``reference`` preset of `oscsim.models.sequence.build_sequence_model`. Every model runs
the coRNN ``imex`` recurrence, one step per input element, from zero position ``y`` and
velocity ``z``::

    a[n]   = W_x·u[n] + b_x + K_y ⋆ y[n] + c_y + K_z ⋆ z[n] + c_z
    z[n+1] = z[n] + dt·(tanh(a[n]) − γ·y[n] − ε·z[n])
    y[n+1] = y[n] + dt·z[n+1]
    output = W_o·y[T] + b_o

and differ in the coupling ``K`` (``⋆`` is circular cross-correlation, PyTorch's ``conv2d``
with circular padding):

``nwm2d``
    ``N = s·s`` cells on an ``s×s`` torus (``s = ⌊√hidden⌋``), one 3×3 kernel with a bias
    ``c`` on position and one on velocity.
``nwm1d``
    The same ``s×s`` grid read as ``s`` independent rings of ``s`` cells: 1×3 kernels, one
    kernel (and bias) shared by every ring. ``rings=1`` gives a single ring of ``hidden``.
``uncoupled``
    No coupling between cells; each cell feeds its own position and velocity back inside the
    ``tanh`` with a fixed weight 1 (the published model stores those two weights with
    ``.to(device)``, which on a GPU leaves them out of the trained parameters).
``cornn``
    The original coRNN: one dense layer ``[W_x | W_z | W_y]`` with bias over the
    concatenation ``(u, z, y)`` (global coupling).

Every weight and bias starts from PyTorch's default initialisation: uniform on
``±1/sqrt(fan_in)`` (kernels ±1/3, input map ±1/sqrt(F), readout ±1/sqrt(N)).

The state dict of a published model maps onto these models through `PUBLISHED_LAYOUTS`
(see `load_published_state`); the models compute with the fused kernel of `oscsim.fused`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from oscsim import ImexField, OscsimInputError, imex_sequence, map_inputs

#: The model kinds of the reference preset.
REFERENCE_KINDS = ("nwm2d", "nwm1d", "uncoupled", "cornn")

#: Published state-dict key → key of `ReferenceSequenceModel`, per kind. The published layout
#: is ``cell.Wx`` (input map), ``cell.Wy`` (position kernel), ``cell.Wz`` (velocity kernel),
#: ``cell.i2h`` (coRNN's dense layer over ``(u, z, y)``) and ``readout``.
PUBLISHED_LAYOUTS: dict[str, dict[str, str]] = {
    "nwm2d": {
        "cell.Wx.weight": "input_map.weight",
        "cell.Wx.bias": "input_map.bias",
        "cell.Wy.weight": "position_kernel.weight",
        "cell.Wy.bias": "position_kernel.bias",
        "cell.Wz.weight": "velocity_kernel.weight",
        "cell.Wz.bias": "velocity_kernel.bias",
        "readout.weight": "readout.weight",
        "readout.bias": "readout.bias",
    },
    "cornn": {
        "cell.i2h.weight": "recurrent.weight",
        "cell.i2h.bias": "recurrent.bias",
        "readout.weight": "readout.weight",
        "readout.bias": "readout.bias",
    },
    "uncoupled": {
        "cell.Wx.weight": "input_map.weight",
        "cell.Wx.bias": "input_map.bias",
        "readout.weight": "readout.weight",
        "readout.bias": "readout.bias",
    },
}
PUBLISHED_LAYOUTS["nwm1d"] = dict(PUBLISHED_LAYOUTS["nwm2d"])


class ReferenceSequenceModel(nn.Module):
    """A published sequence model (module docstring): ``(B, T, F) → (B, outputs)``.

    Parameters
    ----------
    kind
        ``"nwm2d"``, ``"nwm1d"``, ``"uncoupled"`` or ``"cornn"``.
    input_size
        Features per step ``F``.
    output_size
        Classes (logits) or regression targets.
    hidden
        Oscillators requested; the torus models use ``⌊√hidden⌋²`` of them, as published.
    dt, gamma, epsilon
        Step, stiffness γ and damping ε (fixed).
    rings
        ``nwm1d`` only: rings of ``hidden // rings`` cells (default ``⌊√hidden⌋``, the
        published multi-ring model; 1 for a single ring).
    kernel_size
        Side of the NWM kernels (3 as published).
    kernel_bias
        Whether the NWM kernels carry a bias (as published for the MNIST and adding models;
        the published IMDB models have none).

    Attributes
    ----------
    grid : tuple of int
        The grid the fused kernel runs on: ``(s, s)``, ``(rings, n)`` or ``(hidden,)``.
    cells : int
        Number of oscillators ``N``.
    """

    gamma: torch.Tensor
    epsilon: torch.Tensor
    self_feedback: torch.Tensor

    def __init__(
        self,
        kind: str,
        input_size: int,
        output_size: int,
        *,
        hidden: int = 256,
        dt: float,
        gamma: float,
        epsilon: float,
        rings: int | None = None,
        kernel_size: int = 3,
        kernel_bias: bool = True,
    ) -> None:
        super().__init__()
        if kind not in REFERENCE_KINDS:
            raise OscsimInputError(
                f"kind={kind!r} is not a reference model; choose one of "
                + ", ".join(REFERENCE_KINDS)
            )
        for name, value in (("input_size", input_size), ("output_size", output_size)):
            if value < 1:
                raise OscsimInputError(f"{name} must be positive, got {value}")
        if hidden < 1:
            raise OscsimInputError(f"hidden must be positive, got {hidden}")
        if kernel_size < 1 or kernel_size % 2 == 0:
            raise OscsimInputError(f"kernel_size must be odd and positive, got {kernel_size}")
        if rings is not None and kind != "nwm1d":
            raise OscsimInputError(f"rings applies to nwm1d only, not {kind}")
        self.kind = kind
        self.input_size = input_size
        self.dt = float(dt)
        side = math.isqrt(hidden)
        if kind == "nwm2d":
            self.grid: tuple[int, ...] = (side, side)
        elif kind == "nwm1d":
            if rings is None:  # the published ⌊√hidden⌋ rings of ⌊√hidden⌋ cells
                rings, per_ring = side, side
            elif rings < 1 or hidden % rings:
                raise OscsimInputError(
                    f"rings={rings} must be positive and divide hidden={hidden} "
                    "(nwm1d is rings of hidden // rings cells)"
                )
            else:
                per_ring = hidden // rings
            self.grid = (per_ring,) if rings == 1 else (rings, per_ring)
        else:
            self.grid = (hidden,)
        self.cells = math.prod(self.grid)
        if kind in ("nwm2d", "nwm1d") and min(self.grid[-1], self.grid[0]) < kernel_size:
            raise OscsimInputError(
                f"hidden={hidden} gives a grid {self.grid} smaller than the kernel ({kernel_size})"
            )
        self.register_buffer("gamma", torch.tensor([float(gamma)]))
        self.register_buffer("epsilon", torch.tensor([float(epsilon)]))
        # Modules are created in the published order (input map, velocity kernel, position
        # kernel, readout), so one torch seed gives the published initial weights.
        if kind == "cornn":
            self.recurrent = nn.Linear(input_size + 2 * self.cells, self.cells)
        else:
            self.input_map = nn.Linear(input_size, self.cells)
        if kind in ("nwm2d", "nwm1d"):
            shape = (kernel_size, kernel_size) if kind == "nwm2d" else (1, kernel_size)
            self.velocity_kernel = nn.Conv2d(1, 1, shape, bias=kernel_bias)
            self.position_kernel = nn.Conv2d(1, 1, shape, bias=kernel_bias)
        self.readout = nn.Linear(self.cells, output_size)
        if kind == "uncoupled":
            self.register_buffer("self_feedback", torch.ones(1, 1, 1))

    # ------------------------------------------------------------------------------------

    def _input_weight(self) -> torch.Tensor:
        if self.kind == "cornn":
            return self.recurrent.weight[:, : self.input_size]
        return self.input_map.weight

    def _kernel(self, conv: nn.Conv2d) -> torch.Tensor:
        weight = conv.weight
        if self.kind == "nwm2d":
            return weight
        if len(self.grid) == 1:  # a single ring: the (1, k) kernel as a ring kernel
            return weight[:, :, 0, :]
        # Rings along the last axis of the grid: a (1, k) kernel is a (k, k) one whose other
        # rows are zero, so no cell sees its neighbouring rings.
        pad = weight.shape[-1] // 2
        return F.pad(weight, (0, 0, pad, pad))

    def coupling(self) -> tuple[str, torch.Tensor | None, torch.Tensor | None, torch.Tensor]:
        """The coupling name, ``K_y``, ``K_z`` and the bias in the fused kernel's layout.

        Returns
        -------
        coupling
            ``"local"`` or ``"global"``.
        kernel_position, kernel_velocity
            ``(1, 1, k, k)`` or ``(1, 1, k)`` for local, ``(N, N)`` for global coupling.
        bias
            ``(1, *grid)``: the input map's bias plus the kernels' biases.
        """
        if self.kind == "cornn":
            weight, f, n = self.recurrent.weight, self.input_size, self.cells
            bias = self.recurrent.bias.reshape(1, *self.grid)
            return "global", weight[:, f + n :], weight[:, f : f + n], bias
        bias = self.input_map.bias.reshape(1, *self.grid)
        if self.kind == "uncoupled":
            return "local", self.self_feedback, self.self_feedback, bias
        # Both kernels' biases are constants added to every cell, like the input bias.
        bias = bias + _bias(self.position_kernel) + _bias(self.velocity_kernel)
        return (
            "local",
            self._kernel(self.position_kernel),
            self._kernel(self.velocity_kernel),
            bias,
        )

    def hidden_states(
        self, x: torch.Tensor, *, return_sequence: bool = False
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Position and velocity ``(B, 1, *grid)`` after the last step (or ``(T, …)`` each)."""
        if x.dim() != 3 or x.shape[-1] != self.input_size:
            raise OscsimInputError(
                f"inputs must be (batch, time, {self.input_size}), got {tuple(x.shape)}"
            )
        batch, steps, _ = x.shape
        drive = map_inputs(x.transpose(0, 1), self._input_weight())
        drive = drive.reshape(steps, batch, 1, *self.grid)
        zeros = drive.new_zeros(drive.shape[1:])
        coupling, k_y, k_z, bias = self.coupling()
        field = ImexField(coupling, k_y, k_z, bias, self.gamma, self.epsilon)
        # The fused kernel where it applies (local, global, none), the readable loop otherwise.
        return imex_sequence(field, drive, zeros, zeros, self.dt, return_sequence=return_sequence)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Outputs ``(B, outputs)`` from the position after the last step."""
        position, _ = self.hidden_states(x)
        return self.readout(position.flatten(1))


def _bias(conv: nn.Conv2d) -> torch.Tensor | float:
    return 0.0 if conv.bias is None else conv.bias


def published_shapes(model: ReferenceSequenceModel) -> dict[str, tuple[int, ...]]:
    """Shapes of the published state dict that maps onto ``model``."""
    own = {name: tuple(t.shape) for name, t in model.named_parameters()}
    return {key: own[target] for key, target in _layout(model).items()}


def _layout(model: ReferenceSequenceModel) -> dict[str, str]:
    own = dict(model.named_parameters())
    return {k: v for k, v in PUBLISHED_LAYOUTS[model.kind].items() if v in own}


def published_hidden(kind: str, state: Mapping[str, Any]) -> int:
    """The number of oscillators of a published state dict (from its readout)."""
    weight = state.get("readout.weight")
    if not isinstance(weight, torch.Tensor) or weight.dim() != 2:
        raise OscsimInputError(
            f"not a published {kind} state dict: it has no 2-D tensor 'readout.weight' "
            f"(keys: {', '.join(sorted(state)) or 'none'})"
        )
    return int(weight.shape[1])


def load_published_state(model: ReferenceSequenceModel, state: Mapping[str, Any]) -> None:
    """Copy a published model's state dict into ``model`` (same kind and sizes).

    Parameters
    ----------
    model
        The reference model to fill.
    state
        ``{name: tensor}`` as the published code's ``model.state_dict()`` holds it.

    Raises
    ------
    OscsimInputError
        Keys missing or unexpected (both are named), a value that is not a tensor, or a
        shape that differs from the model's.
    """
    layout = _layout(model)
    missing = sorted(set(layout) - set(state))
    unexpected = sorted(set(state) - set(layout))
    if missing or unexpected:
        raise OscsimInputError(
            f"not the published {model.kind} layout: "
            + "; ".join(
                part
                for part in (
                    f"missing keys {missing}" if missing else "",
                    f"unexpected keys {unexpected}" if unexpected else "",
                )
                if part
            )
            + f" (expected exactly {sorted(layout)})"
        )
    shapes = published_shapes(model)
    own = dict(model.named_parameters())
    with torch.no_grad():
        for key, target in layout.items():
            value = state[key]
            if not isinstance(value, torch.Tensor) or not value.is_floating_point():
                raise OscsimInputError(
                    f"{key} must be a floating tensor, got {type(value).__name__}"
                )
            if tuple(value.shape) != shapes[key]:
                raise OscsimInputError(
                    f"{key} has shape {tuple(value.shape)}, the {model.kind} model with "
                    f"{model.cells} cells and {model.input_size} input(s) needs {shapes[key]}"
                )
            own[target].copy_(value)
