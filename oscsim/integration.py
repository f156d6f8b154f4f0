"""One entry point, `integrate`, for every method on any vector field ``f(t, state)``.

Continuous methods go to torchdiffeq (``odeint``; ``odeint_adjoint`` with
``adjoint="backsolve"``; the checkpointed pass of `oscsim.adjoint` with
``adjoint="checkpoint"``, what ``adjoint=True`` means); ``imex`` runs the discrete coRNN
scheme through `oscsim.imex_sequence` (the fused kernel where it applies, the readable
loop elsewhere). Everything is checked before any work is done.
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

from oscsim.adjoint import (
    SolverStatistics,
    backsolve_tolerance,
    checkpointed_imex,
    checkpointed_odeint,
    reconstruction_error,
    resolve_adjoint,
    watch_backsolve,
)
from oscsim.errors import IntegrationError, OscsimInputError
from oscsim.inputs import InputSignal
from oscsim.solvers.imex import imex_sequence
from oscsim.solvers.registry import check_method, is_fixed_step
from oscsim.stability import DEFAULT_MAX_STATE, divergence_error, state_bound

#: The divergence guard reads the state's peak at every this many field evaluations.
GUARD_EVERY = 4
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
    method
        The method it was integrated with.
    dt
        The step it was integrated with (``None`` where none was given).
    options
        Tolerances, interpolation and the adjoint used (``None``, ``"backsolve"`` or
        ``"checkpoint"``).
    stats
        Function evaluations and accepted/rejected steps of the forward pass, and of the
        backward pass once one ran (`oscsim.adjoint.SolverStatistics`); for
        ``adjoint="backsolve"`` also the reconstruction error of the backward solve.
    """

    times: torch.Tensor
    states: tuple[torch.Tensor, ...]
    names: tuple[str, ...]
    method: str
    dt: float | None
    options: dict[str, Any] = field(default_factory=dict)
    stats: SolverStatistics = field(default_factory=SolverStatistics)

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
        """The trajectory as an `xarray.Dataset` (docs/formats.md); ``attrs`` are added to it."""
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
    """Binds an input signal (and a progress bar) to a field, giving torchdiffeq ``f(t, y)``.

    It also counts evaluations and steps into ``stats`` (torchdiffeq calls the
    ``callback_*`` methods on every step; the ``*_adjoint`` ones during backsolve).
    """

    def __init__(
        self,
        field: nn.Module | Any,
        signal: InputSignal | None,
        bar: tqdm | None,
        stats: SolverStatistics,
        adaptive: bool,
    ) -> None:
        super().__init__()
        self.field = field
        self.signal = signal
        self.bar = bar
        self.start = 0.0
        self.stats = stats
        self.adaptive = adaptive
        # The divergence guard: every state the solver evaluates the field at is checked,
        # so a blow-up stops the run at the model time it happens (oscsim.stability).
        self.bound = math.inf
        self.names: tuple[str, ...] = ()
        self.method = ""
        self.dt: float | None = None
        self.last_time = 0.0
        self.calls = 0

    def _guard(self, t: torch.Tensor, state: Any) -> None:
        # Every GUARD_EVERY-th evaluation (for rk4: the state at the start of each step):
        # a blow-up is seen within a step or two, at a few per cent of the field's cost.
        self.calls += 1
        if (self.calls - 1) % GUARD_EVERY:
            return
        tensors = state if isinstance(state, tuple) else (state,)
        with torch.no_grad():
            peaks = []
            for tensor in tensors:
                low, high = torch.aminmax(tensor.detach())  # one pass; NaN propagates
                peaks.append(torch.maximum(high, -low))
            values = torch.stack(peaks).tolist()
        time = float(t.detach()) if isinstance(t, torch.Tensor) else float(t)
        names = self.names or _state_names(None, len(values))
        for name, value in zip(names, values, strict=False):
            if not value <= self.bound:  # NaN compares False: caught too
                raise divergence_error(self.method, time, name, value, self.bound, self.dt)
        self.last_time = time

    def forward(self, t: torch.Tensor, state: Any) -> Any:
        self._guard(t, state)
        self.stats.count_evaluation()
        if self.bar is not None:
            # Adaptive stages may look past the last output time: the bar stops at its end.
            elapsed = min(float(t) - self.start, self.bar.total)
            if elapsed > self.bar.n:
                self.bar.update(elapsed - self.bar.n)
        return self.evaluate(t, state)

    def evaluate(self, t: torch.Tensor, state: Any) -> Any:
        """The field at ``(t, state)``, neither counted nor shown."""
        if self.signal is None:
            return self.field(t, state)
        return self.field(t, state, self.signal(t))

    def callback_step(self, t0: Any, y0: Any, dt: Any) -> None:
        if not self.adaptive:
            self.stats.count_step(accepted=True)

    def callback_step_adjoint(self, t0: Any, y0: Any, dt: Any) -> None:
        self.callback_step(t0, y0, dt)


class _AdaptiveDrivenField(_DrivenField):
    """`_DrivenField` with the accept/reject callbacks that only adaptive solvers call.

    (torchdiffeq warns about callbacks a solver does not support, so fixed-step runs use
    the plain class.)
    """

    def callback_accept_step(self, t0: Any, y0: Any, dt: Any) -> None:
        self.stats.count_step(accepted=True)

    def callback_reject_step(self, t0: Any, y0: Any, dt: Any) -> None:
        self.stats.count_step(accepted=False)

    def callback_accept_step_adjoint(self, t0: Any, y0: Any, dt: Any) -> None:
        self.callback_accept_step(t0, y0, dt)

    def callback_reject_step_adjoint(self, t0: Any, y0: Any, dt: Any) -> None:
        self.callback_reject_step(t0, y0, dt)


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
    adjoint: bool | str = False,
    options: Mapping[str, Any] | None = None,
    fused: bool | None = None,
    progress: bool = False,
    max_state: float | None = DEFAULT_MAX_STATE,
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
        How gradients are computed (docs/gradients.md): ``False``, direct backpropagation
        (exact; memory grows with the steps); ``"checkpoint"``, a checkpointed pass (the
        same gradient as direct backpropagation, memory of about √N states, one extra
        forward pass of time; every method but ``scipy_solver``); ``"backsolve"``,
        torchdiffeq's ``odeint_adjoint`` (flat memory, but inexact where the dynamics
        amplify errors backwards in time: its reconstruction error is reported on
        ``Solution.stats`` after the backward pass, with a warning above tolerance;
        continuous methods only). ``True`` means ``"checkpoint"``, the exact one. Both
        adjoints need an `nn.Module` field: its parameters, ``state0`` and ``inputs`` get
        gradients.
    options
        Extra torchdiffeq solver options (they override ours).
    fused
        For ``imex``: use the fused kernel (default where it applies) or force the loop.
    progress
        Show a progress bar in model time.
    max_state
        The divergence guard: the integration stops with `IntegrationError` once a state
        entry exceeds ``max_state · max(1, |state0|, |inputs|, |field.bias|)`` or is not
        finite, at the model time it happens (`oscsim.stability`); ``None`` or ``inf``
        checks finiteness only.

    Returns
    -------
    Solution
        ``states`` at ``times``, each ``(S, B, ...)``.

    Raises
    ------
    OscsimInputError
        On any bad argument (an ``adjoint`` other than ``False``, ``True``,
        ``"backsolve"``, ``"checkpoint"``), before integrating.
    IntegrationError
        If the state passes the ``max_state`` bound or becomes non-finite (naming the model
        time), or the adaptive step underflows (naming the last time reached).
    """
    check_method(method)
    adjoint_mode = resolve_adjoint(adjoint)
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
    bias = getattr(field, "bias", None)
    bound = state_bound(
        max_state, *states, inputs, bias if isinstance(bias, torch.Tensor) else None
    )
    guard = (bound, _state_names(field, len(states)), method, dt)
    if adjoint_mode is not None and not isinstance(field, nn.Module):
        raise OscsimInputError(
            f"adjoint={adjoint!r} needs the field to be a torch.nn.Module (its parameters are "
            "what gets gradients); wrap the function in one, or use adjoint=False"
        )
    stats = SolverStatistics()
    if method == "imex":
        if adjoint_mode == "backsolve":
            raise OscsimInputError(
                "adjoint='backsolve' applies to continuous methods; imex is a discrete "
                "recurrence: use adjoint='checkpoint' (or False; the fused imex backward "
                "already stores only the states)"
            )
        if len(states) != 2 or not hasattr(field, "acceleration"):
            raise OscsimInputError(
                "imex steps second-order systems: give state0 = (position, velocity) and a "
                "field with acceleration(t, position, velocity, drive)"
            )
        result = _integrate_imex(
            field,
            states,
            t,
            cast(float, dt),
            save_steps,
            signal,
            fused,
            progress,
            guard,
            adjoint_mode == "checkpoint",
            stats,
        )
    else:
        result = _integrate_torchdiffeq(
            field,
            states,
            is_tuple,
            t,
            method,
            dt,
            signal,
            rtol,
            atol,
            adjoint_mode,
            options,
            progress,
            guard,
            stats,
        )
    _check_frames(result, t, guard)
    return Solution(
        times=t,
        states=result,
        names=_state_names(field, len(result)),
        method=method,
        dt=dt,
        options={
            "rtol": rtol,
            "atol": atol,
            "interpolation": interpolation,
            "adjoint": adjoint_mode,
        },
        stats=stats,
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


#: imex runs in chunks of this many steps; every step's state is checked against the
#: divergence bound between chunks, so a blow-up is reported at the step it happens.
IMEX_CHUNK = 256

Guard = tuple[float, tuple[str, ...], str, "float | None"]


def _integrate_imex(
    field: Any,
    states: tuple[torch.Tensor, ...],
    t: torch.Tensor,
    dt: float,
    save_steps: list[int],
    signal: InputSignal | None,
    fused: bool | None,
    progress: bool,
    guard: Guard,
    checkpoint: bool,
    stats: SolverStatistics,
) -> tuple[torch.Tensor, ...]:
    position, velocity = states
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
    if checkpoint:
        if fused:
            raise OscsimInputError(
                "fused=True and adjoint='checkpoint' exclude each other: the checkpointed "
                "pass steps the readable imex loop"
            )
        # Checked against the divergence bound by the caller, frame by frame.
        return checkpointed_imex(
            field,
            position,
            velocity,
            dt,
            n_steps,
            save_steps,
            start_time=start,
            drive=drive,
            stats=stats,
        )
    # one acceleration per step, whichever implementation runs
    stats.count_evaluation(n_steps)
    stats.count_step(accepted=True, count=n_steps)
    wanted = set(save_steps)
    positions = [position] if 0 in wanted else []
    velocities = [velocity] if 0 in wanted else []
    bar = tqdm(total=n_steps, disable=not progress, desc="imex", unit="step")
    for first in range(0, n_steps, IMEX_CHUNK):
        count = min(IMEX_CHUNK, n_steps - first)
        chunk_drive = None if drive is None else drive[first : first + count]
        every = list(range(count + 1))
        ys, zs = _imex_chunk(
            field, position, velocity, chunk_drive, dt, count, every, start + first * dt, fused
        )
        times = start + (first + torch.arange(count + 1, dtype=torch.float64)) * dt
        _check_frames((ys, zs), times, guard)
        for local in range(1, count + 1):
            if first + local in wanted:
                positions.append(ys[local])
                velocities.append(zs[local])
        position, velocity = ys[-1], zs[-1]
        bar.update(count)
    bar.close()
    return torch.stack(positions), torch.stack(velocities)


def _imex_chunk(
    field: Any,
    position0: torch.Tensor,
    velocity0: torch.Tensor,
    drive: torch.Tensor | None,
    dt: float,
    n_steps: int,
    save_steps: list[int],
    start: float,
    fused: bool | None,
) -> tuple[torch.Tensor, torch.Tensor]:
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
        progress=False,
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
    adjoint: str | None,
    options: Mapping[str, Any] | None,
    progress: bool,
    guard: Guard,
    stats: SolverStatistics,
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
    adaptive = not is_fixed_step(method)
    func = (_AdaptiveDrivenField if adaptive else _DrivenField)(field, signal, bar, stats, adaptive)
    func.start = t0
    func.bound, func.names, func.method, func.dt = guard
    func.last_time = t0
    y0: Any = states if is_tuple else states[0]
    out: Any
    # The solver settings every route takes.
    solve: dict[str, Any] = {
        "rtol": rtol,
        "atol": atol,
        "method": method,
        "options": solver_options,
    }
    try:
        if adjoint == "checkpoint":
            out = checkpointed_odeint(func, y0, t, **solve, signal=signal, stats=stats)
        elif adjoint == "backsolve":
            adjoint_params: tuple[torch.Tensor, ...] = tuple(
                p for p in field.parameters() if p.requires_grad
            )
            if signal is not None and signal.values.requires_grad:
                adjoint_params = adjoint_params + (signal.values,)
            out = torchdiffeq.odeint_adjoint(
                func,
                y0,
                t,
                **solve,
                adjoint_params=adjoint_params,
                adjoint_options=dict(solver_options),
            )
            outputs = tuple(out) if is_tuple else (out,)
            # Detached: the hooks live on the autograd node, and a reference from them to
            # the outputs (whose grad_fn is that node) would be a cycle no collector frees.
            forward_states = tuple(o.detach() for o in outputs)

            def reconstruct() -> float:
                return reconstruction_error(
                    func.evaluate,
                    forward_states,
                    t,
                    method=method,
                    rtol=rtol,
                    atol=atol,
                    options=dict(solver_options),
                )

            watch_backsolve(
                outputs, reconstruct, stats, backsolve_tolerance(t.dtype, rtol, adaptive)
            )
        else:
            out = torchdiffeq.odeint(func, y0, t, **solve)
    except AssertionError as error:
        if "underflow" in str(error):
            raise IntegrationError(
                f"{method}: the adaptive step size underflowed near model time t = "
                f"{func.last_time:.6g} ({error}); the system is stiff or blowing up there: "
                "loosen rtol/atol, use an implicit method or a fixed-step method with a small "
                "dt, or check gamma, epsilon and the kernels"
            ) from error
        raise
    else:
        if bar is not None:
            # The bar ends at t_end exactly (adding up float steps could fall short of it).
            bar.n = bar.total
            bar.refresh()
    finally:
        if bar is not None:
            bar.close()
        # Backward passes evaluate the field again; the bar is closed by then.
        func.bar = None
    return tuple(out) if is_tuple else (out,)


def _check_frames(result: tuple[torch.Tensor, ...], t: torch.Tensor, guard: Guard) -> None:
    """Raise `divergence_error` for the first output frame past the bound or non-finite."""
    bound, names, method, dt = guard
    with torch.no_grad():  # the common case in one pass without a temporary
        extremes = [torch.aminmax(tensor.detach()) for tensor in result]
        peak = max(max(float(high), -float(low)) for low, high in extremes)
    if peak <= bound:
        return
    first: tuple[int, str, float] | None = None
    for name, tensor in zip(names, result, strict=False):
        with torch.no_grad():
            peaks = tensor.detach().abs().flatten(1).amax(dim=1)
            bad = torch.nonzero(~(peaks <= bound))
        if bad.numel():
            index = int(bad[0, 0])
            if first is None or index < first[0]:
                first = (index, name, float(peaks[index]))
    if first is not None:
        index, name, value = first
        raise divergence_error(method, float(t[index]), name, value, bound, dt)
