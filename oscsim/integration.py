"""One entry point, `integrate`, for every method on any vector field ``f(t, state)``.

Continuous methods go to torchdiffeq (``odeint``, or ``odeint_adjoint`` with
``adjoint=True``); ``imex`` runs the discrete coRNN scheme through `oscsim.imex_sequence`
(the fused kernels where they apply, the readable loop elsewhere).
Everything is checked before any work is done.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, cast

import numpy as np
import torch
import torchdiffeq
from torch import nn
from tqdm.auto import tqdm

from oscsim.errors import IntegrationError, OscsimInputError
from oscsim.inputs import InputSignal
from oscsim.solvers.imex import imex_sequence
from oscsim.solvers.registry import check_method, is_fixed_step

#: How far (relative) an output time may sit from the fixed-step grid and still be on it.
GRID_TOLERANCE = 1e-9


@dataclass
class Solution:
    """The states of an integration at the requested times.

    Attributes
    ----------
    times
        ``(S,)`` output times.
    states
        One tensor per state variable, each ``(S, B, ...)`` (time first).
    names
        Names of the state variables (``("position", "velocity")`` for the network).
    method, dt
        How it was integrated.
    """

    times: torch.Tensor
    states: tuple[torch.Tensor, ...]
    names: tuple[str, ...]
    method: str
    dt: float | None
    options: dict[str, Any] = field(default_factory=dict)

    def __getitem__(self, name: str) -> torch.Tensor:
        if name not in self.names:
            raise KeyError(f"no state variable {name!r}; this solution has {self.names}")
        return self.states[self.names.index(name)]

    @property
    def position(self) -> torch.Tensor:
        """Positions ``(S, B, C, *grid)``."""
        return self["position"]

    @property
    def velocity(self) -> torch.Tensor:
        """Velocities ``(S, B, C, *grid)``."""
        return self["velocity"]

    def to_dataset(self, **attrs: Any) -> Any:
        """The trajectory as an `xarray.Dataset` (DESIGN §3); ``attrs`` are added to it."""
        from oscsim.io import trajectory_dataset

        return trajectory_dataset(
            self.times.detach().cpu().numpy(),
            self.position.detach().cpu().numpy(),
            self.velocity.detach().cpu().numpy(),
            method=self.method,
            dt=self.dt,
            **attrs,
        )


class _DrivenField(nn.Module):
    """Binds an input signal (and a progress bar) to a field, giving torchdiffeq ``f(t, y)``."""

    def __init__(
        self, field: nn.Module | Any, signal: InputSignal | None, bar: tqdm | None
    ) -> None:
        super().__init__()
        self.field = field
        self.signal = signal
        self.bar = bar
        self.start = 0.0

    def forward(self, t: torch.Tensor, state: Any) -> Any:
        if self.bar is not None:
            elapsed = float(t) - self.start
            if elapsed > self.bar.n:
                self.bar.update(elapsed - self.bar.n)
        if self.signal is None:
            return self.field(t, state)
        return self.field(t, state, self.signal(t))


def _as_state(
    state0: torch.Tensor | Sequence[torch.Tensor],
) -> tuple[tuple[torch.Tensor, ...], bool]:
    if isinstance(state0, torch.Tensor):
        states: tuple[torch.Tensor, ...] = (state0,)
        is_tuple = False
    elif (
        isinstance(state0, (tuple, list))
        and state0
        and all(isinstance(s, torch.Tensor) for s in state0)
    ):
        states, is_tuple = tuple(state0), True
    else:
        raise OscsimInputError(
            "state0 must be a tensor or a tuple of tensors (for the network: (position, "
            f"velocity), each (B, C, *grid)); got {type(state0).__name__}"
        )
    first = states[0]
    for name, s in zip(_state_names(None, len(states)), states, strict=True):
        if not s.is_floating_point():
            raise OscsimInputError(f"state {name} must be floating point, got {s.dtype}")
        if s.dtype != first.dtype or s.device != first.device:
            raise OscsimInputError(
                f"every state tensor must share dtype and device; {name} is {s.dtype} on "
                f"{s.device}, the first is {first.dtype} on {first.device}"
            )
        if s.dim() < 1:
            raise OscsimInputError(f"state {name} needs a batch dimension, got a scalar")
    return states, is_tuple


def _state_names(field: Any, count: int) -> tuple[str, ...]:
    names = getattr(field, "state_names", None)
    if names is not None and len(names) == count:
        return tuple(names)
    return tuple(f"state{i}" for i in range(count))


def _check_field(field: Any, dtype: torch.dtype, device: torch.device) -> None:
    if not callable(field):
        raise OscsimInputError(f"field must be callable as f(t, state), got {type(field).__name__}")
    if isinstance(field, nn.Module):
        for name, tensor in list(field.named_parameters()) + list(field.named_buffers()):
            if tensor.is_floating_point() and tensor.dtype != dtype:
                raise OscsimInputError(
                    f"the field's {name} is {tensor.dtype} but the state is {dtype}: call "
                    f"field.to({dtype}) or give the state as {tensor.dtype}"
                )
            if tensor.device != device:
                raise OscsimInputError(
                    f"the field's {name} is on {tensor.device} but the state is on {device}: "
                    f"call field.to({str(device)!r})"
                )


def _as_times(times: Any, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    t = torch.as_tensor(
        np.asarray(times, dtype=np.float64) if not isinstance(times, torch.Tensor) else times
    )
    t = t.to(dtype=dtype, device=device)
    if t.dim() != 1 or t.shape[0] < 2:
        raise OscsimInputError(
            f"times must be a 1-D sequence of at least 2 times (the first is the initial "
            f"time), got shape {tuple(t.shape)}"
        )
    if not bool(torch.all(torch.isfinite(t))) or not bool(torch.all(t[1:] > t[:-1])):
        raise OscsimInputError("times must be finite and strictly increasing")
    return t


def _grid_steps(times: torch.Tensor, dt: float) -> list[int]:
    offsets = ((times - times[0]) / dt).double().cpu().numpy()
    steps = np.rint(offsets)
    off_grid = np.abs(offsets - steps) > GRID_TOLERANCE * np.maximum(1.0, np.abs(offsets))
    if np.any(off_grid):
        bad = float(times[int(np.argmax(off_grid))])
        raise OscsimInputError(
            f"time {bad} is not on the fixed-step grid t0 + n·dt (dt = {dt}): choose times "
            "that are multiples of dt from the first, or an adaptive method"
        )
    return [int(s) for s in steps]


def integrate(
    field: nn.Module | Any,
    state0: torch.Tensor | Sequence[torch.Tensor],
    times: torch.Tensor | Sequence[float] | np.ndarray,
    *,
    method: str = "dopri5",
    dt: float | None = None,
    inputs: torch.Tensor | None = None,
    input_times: torch.Tensor | Sequence[float] | np.ndarray | None = None,
    input_dt: float | None = None,
    interpolation: str = "zoh",
    rtol: float = 1e-7,
    atol: float = 1e-9,
    adjoint: bool = False,
    options: Mapping[str, Any] | None = None,
    fused: bool | None = None,
    progress: bool = False,
) -> Solution:
    """Integrate ``d state/dt = field(t, state[, u(t)])`` and return the states at ``times``.

    Parameters
    ----------
    field
        A vector field ``f(t, state)`` (``f(t, state, u)`` when ``inputs`` are given), for
        example an `OscillatorNetwork`; any `nn.Module` works, also with ``adjoint=True``.
        ``imex`` needs ``field.acceleration(t, y, z, drive)`` and a ``(y, z)`` state.
    state0
        A tensor or a tuple of tensors, each ``(B, ...)``; the dtype (float32/float64) and
        device (CPU/CUDA) of the whole computation follow it.
    times
        ``(S,)`` increasing output times; ``times[0]`` is the initial time.
    method
        Any torchdiffeq method (``euler``, ``rk4``, ``dopri5``, …) or ``imex``.
    dt
        Step for fixed-step methods (required there; output times must lie on the grid
        ``t0 + n·dt``); the first step tried by adaptive ones.
    inputs
        ``(T, B, ...)`` input samples, turned into ``u(t)`` by ``interpolation``.
    input_times, input_dt
        Sample times of ``inputs`` (``(T,)``), or their spacing from ``times[0]``
        (default: ``dt``).
    interpolation
        ``"zoh"`` (zero-order hold) or ``"linear"``.
    rtol, atol
        Tolerances of adaptive methods.
    adjoint
        Backpropagate with the adjoint method (`torchdiffeq.odeint_adjoint`): memory
        independent of the number of steps.
    options
        Extra torchdiffeq solver options (they override ours).
    fused
        For ``imex``: use the fused kernel (default where it applies) or force the loop.
    progress
        Show a progress bar in model time.

    Returns
    -------
    Solution
        ``states`` at ``times``, each ``(S, B, ...)``.

    Raises
    ------
    OscsimInputError
        On any bad argument, before integrating.
    IntegrationError
        If the state becomes non-finite or the adaptive step underflows.
    """
    check_method(method)
    states, is_tuple = _as_state(state0)
    dtype, device = states[0].dtype, states[0].device
    _check_field(field, dtype, device)
    t = _as_times(times, dtype, device)
    fixed = is_fixed_step(method)
    if dt is not None and (not math.isfinite(dt) or dt <= 0):
        raise OscsimInputError(f"dt must be a positive number, got {dt}")
    if fixed and dt is None:
        raise OscsimInputError(f"method {method!r} takes a fixed step: give dt > 0")
    save_steps = _grid_steps(t, dt) if fixed and dt is not None else []
    signal = _input_signal(inputs, input_times, input_dt, dt, t, states[0], interpolation)
    if method == "imex":
        if adjoint:
            raise OscsimInputError(
                "adjoint=True applies to continuous methods; imex is a discrete recurrence "
                "(its fused backward already stores only the states)"
            )
        if len(states) != 2 or not hasattr(field, "acceleration"):
            raise OscsimInputError(
                "imex steps second-order systems: give state0 = (position, velocity) and a "
                "field with acceleration(t, position, velocity, drive)"
            )
        result = _integrate_imex(
            field, states, t, cast(float, dt), save_steps, signal, fused, progress
        )
    else:
        result = _integrate_torchdiffeq(
            field, states, is_tuple, t, method, dt, signal, rtol, atol, adjoint, options, progress
        )
    _check_finite(result, t)
    return Solution(
        times=t,
        states=result,
        names=_state_names(field, len(result)),
        method=method,
        dt=dt,
        options={"rtol": rtol, "atol": atol, "interpolation": interpolation, "adjoint": adjoint},
    )


def _input_signal(
    inputs: torch.Tensor | None,
    input_times: Any,
    input_dt: float | None,
    dt: float | None,
    t: torch.Tensor,
    first_state: torch.Tensor,
    interpolation: str,
) -> InputSignal | None:
    if inputs is None:
        if input_times is not None or input_dt is not None:
            raise OscsimInputError("input_times/input_dt were given without inputs")
        return None
    if not isinstance(inputs, torch.Tensor) or inputs.dim() < 2:
        raise OscsimInputError(
            "inputs must be a tensor of shape (T, B, ...), time first, got "
            f"{getattr(inputs, 'shape', type(inputs).__name__)}"
        )
    if inputs.shape[1] != first_state.shape[0]:
        raise OscsimInputError(
            f"inputs have batch size {inputs.shape[1]} (dim 1) but the state has "
            f"{first_state.shape[0]}; inputs are (T, B, ...)"
        )
    if inputs.dtype != first_state.dtype or inputs.device != first_state.device:
        raise OscsimInputError(
            f"inputs are {inputs.dtype} on {inputs.device}; the state is {first_state.dtype} "
            f"on {first_state.device}"
        )
    if input_times is not None:
        sample_times = torch.as_tensor(
            np.asarray(input_times) if not isinstance(input_times, torch.Tensor) else input_times
        ).to(dtype=t.dtype, device=t.device)
    else:
        spacing = input_dt if input_dt is not None else dt
        if spacing is None or spacing <= 0:
            raise OscsimInputError(
                "give input_times or input_dt > 0 (the spacing of the input samples)"
            )
        steps = torch.arange(inputs.shape[0], dtype=t.dtype, device=t.device)
        sample_times = t[0] + steps * spacing
    return InputSignal(inputs, sample_times, interpolation)


def _integrate_imex(
    field: Any,
    states: tuple[torch.Tensor, ...],
    t: torch.Tensor,
    dt: float,
    save_steps: list[int],
    signal: InputSignal | None,
    fused: bool | None,
    progress: bool,
) -> tuple[torch.Tensor, ...]:
    position0, velocity0 = states
    n_steps = save_steps[-1]
    start = float(t[0])
    drive = None
    if signal is not None:
        step_times = start + torch.arange(n_steps, dtype=t.dtype, device=t.device) * dt
        samples = signal.at(step_times)  # (N, B, ...)
        if hasattr(field, "drive_term"):
            mapped = field.drive_term(samples.flatten(0, 1))
            drive = mapped.reshape(n_steps, samples.shape[1], *mapped.shape[1:])
        else:
            drive = samples
    return imex_sequence(
        field,
        drive,
        position0,
        velocity0,
        dt,
        n_steps=n_steps,
        save_steps=save_steps,
        fused=fused,
        start_time=start,
        progress=progress,
    )


def _integrate_torchdiffeq(
    field: Any,
    states: tuple[torch.Tensor, ...],
    is_tuple: bool,
    t: torch.Tensor,
    method: str,
    dt: float | None,
    signal: InputSignal | None,
    rtol: float,
    atol: float,
    adjoint: bool,
    options: Mapping[str, Any] | None,
    progress: bool,
) -> tuple[torch.Tensor, ...]:
    t0, t_end = float(t[0]), float(t[-1])
    solver_options: dict[str, Any] = {}
    if is_fixed_step(method):
        solver_options["step_size"] = dt
        if signal is not None:
            # Stages at a step's ends are nudged inside the step, so a zero-order-hold
            # input is seen as constant over [t_n, t_n + dt) — what imex and the Numba
            # reference do too.
            solver_options["perturb"] = True
    else:
        if dt is not None:
            solver_options["first_step"] = dt
        if signal is not None:
            jumps = signal.jump_times(t0, t_end)
            if jumps.numel():
                solver_options["jump_t"] = jumps
    solver_options.update(options or {})
    bar = (
        tqdm(
            total=t_end - t0,
            desc=method,
            unit="t",
            bar_format="{l_bar}{bar}| t={n:.3g}/{total:.3g} [{elapsed}<{remaining}]",
        )
        if progress
        else None
    )
    func = _DrivenField(field, signal, bar)
    func.start = t0
    y0: Any = states if is_tuple else states[0]
    try:
        if adjoint:
            if not isinstance(field, nn.Module):
                raise OscsimInputError("adjoint=True needs the field to be a torch.nn.Module")
            adjoint_params: tuple[torch.Tensor, ...] = tuple(
                p for p in field.parameters() if p.requires_grad
            )
            if signal is not None and signal.values.requires_grad:
                adjoint_params = adjoint_params + (signal.values,)
            out = torchdiffeq.odeint_adjoint(
                func,
                y0,
                t,
                rtol=rtol,
                atol=atol,
                method=method,
                options=solver_options,
                adjoint_params=adjoint_params,
                adjoint_options=dict(solver_options),
            )
        else:
            out = torchdiffeq.odeint(
                func, y0, t, rtol=rtol, atol=atol, method=method, options=solver_options
            )
    except AssertionError as error:
        if "underflow" in str(error):
            raise IntegrationError(
                f"{method}: the adaptive step size underflowed ({error}); the system is "
                "stiff or blowing up there: loosen rtol/atol, use a fixed-step method with "
                "a small dt, or check the parameters"
            ) from error
        raise
    finally:
        if bar is not None:
            bar.close()
    return tuple(out) if is_tuple else (out,)


def _check_finite(result: tuple[torch.Tensor, ...], t: torch.Tensor) -> None:
    for tensor in result:
        finite = torch.isfinite(tensor.detach()).flatten(1).all(dim=1)
        if not bool(finite.all()):
            first = int(torch.nonzero(~finite)[0, 0])
            raise IntegrationError(
                f"the state became NaN or infinite by t = {float(t[first]):g} (first bad "
                f"output frame {first}); reduce dt (or tighten rtol/atol), lower the coupling "
                "or input gain, or raise the damping epsilon"
            )
