"""Gradients through an integration: a checkpointed adjoint, the backsolve diagnostic, statistics.

`integrate` backpropagates in one of three ways (see docs/gradients.md):

- ``adjoint=False``: autograd records every step; exact, memory grows with the steps.
- ``adjoint="checkpoint"`` (what ``True`` means): the forward pass runs without a graph and
  keeps the whole solver state every ``K ≈ √N`` steps; the backward pass recomputes one
  segment of ``K`` steps at a time with autograd and chains the segments' vector–Jacobian
  products. The recomputation repeats the forward arithmetic exactly, so the gradient is
  that of the computed solution: equal to direct backpropagation to rounding, with memory
  ``O(√N)`` states and one extra forward pass of time.
- ``adjoint="backsolve"``: torchdiffeq's ``odeint_adjoint`` integrates the state backwards
  together with its adjoint. Memory is flat, but the backward state drifts from the forward
  one wherever the dynamics amplify errors backwards in time, and its gradient with it; the
  drift is measured after every backward pass (`backsolve_reconstruction_error`).

How the checkpointed pass stays exact for every method: it drives torchdiffeq's own solver
object one step at a time and saves *all* of its state at a checkpoint — the state ``y`` for
fixed-grid Runge–Kutta methods; ``y`` and the derivative history for the Adams methods; for
adaptive methods the Runge–Kutta state (``y``, the FSAL derivative, the dense-output
coefficients, the step times and size — carried with gradients, as direct backpropagation
differentiates them — and the indices of the next forced step and jump). A
segment restarted from a checkpoint therefore takes bit for bit the steps of the forward
pass: the same accepted step times, the same rejections, the same interpolation of the
outputs. (torchdiffeq adapts step sizes without a graph; only the first step, selected from
``f(t0, y0)``, has one, and the step times carry it.) ``imex`` is replayed step by step
with `oscsim.solvers.imex`.
"""

from __future__ import annotations

import abc
import contextlib
import math
import warnings
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

import torch
import torchdiffeq
from torchdiffeq._impl.interp import _interp_evaluate
from torchdiffeq._impl.misc import _check_inputs, _flat_to_shape
from torchdiffeq._impl.odeint import SOLVERS
from torchdiffeq._impl.rk_common import RKAdaptiveStepsizeODESolver, _RungeKuttaState
from torchdiffeq._impl.solvers import FixedGridODESolver

from oscsim.errors import OscsimInputError, OscsimWarning
from oscsim.solvers.imex import imex_loop

#: Values ``integrate(adjoint=...)`` accepts, and what ``True`` means.
ADJOINT_CHOICES: tuple[object, ...] = (False, True, "backsolve", "checkpoint")
DEFAULT_ADJOINT = "checkpoint"

#: Floor of the backsolve reconstruction tolerance (relative RMS error of a state).
BACKSOLVE_TOLERANCE_FLOOR = 1e-6


def resolve_adjoint(adjoint: object) -> str | None:
    """``None`` for direct backpropagation, else ``"backsolve"`` or ``"checkpoint"``.

    Raises
    ------
    OscsimInputError
        For anything but ``False``, ``True``, ``"backsolve"`` and ``"checkpoint"``.
    """
    if adjoint is False:
        return None
    if adjoint is True:
        return DEFAULT_ADJOINT
    if isinstance(adjoint, str) and adjoint in ("backsolve", "checkpoint"):
        return adjoint
    raise OscsimInputError(
        f"adjoint must be False (direct backpropagation), True (= {DEFAULT_ADJOINT!r}), "
        f"'backsolve' or 'checkpoint'; got {adjoint!r}"
    )


def backsolve_tolerance(dtype: torch.dtype, rtol: float, adaptive: bool) -> float:
    """Relative reconstruction error above which backsolve gradients are not trusted.

    ``max(1e-6, 1000·ε, 10·rtol)`` (the last term for adaptive methods only): ``1000·ε``
    covers rounding accumulated over thousands of steps (ε of the state's dtype), ``10·rtol``
    the truncation error the backward solve is allowed by its own tolerance, and ``1e-6``
    is where a state error starts to show in gradients (the vector–Jacobian products are
    evaluated at the reconstructed state, so their relative error is of the order of the
    state's). A larger error means the backward solve no longer follows the forward
    trajectory: the dynamics amplify errors backwards in time.
    """
    tolerance = max(BACKSOLVE_TOLERANCE_FLOOR, 1000.0 * torch.finfo(dtype).eps)
    if adaptive:
        tolerance = max(tolerance, 10.0 * rtol)
    return tolerance


@dataclass
class SolverStatistics:
    """What an integration cost, forward and backward.

    Attributes
    ----------
    function_evaluations, accepted_steps, rejected_steps
        Forward pass: evaluations of the vector field (for ``imex``: of the acceleration,
        one per step), accepted and rejected steps (fixed-step methods reject none).
    backward_function_evaluations, backward_accepted_steps, backward_rejected_steps
        Backward pass, summed over every backward pass through this solution: the adjoint
        solve of ``backsolve``, the recomputation of ``checkpoint`` (whose steps repeat the
        forward ones). ``None`` until a backward pass ran, and for direct backpropagation
        (autograd replays the recorded graph and evaluates nothing).
    checkpoints
        Solver states kept by the checkpointed forward pass (``None`` otherwise).
    backsolve_reconstruction_error
        After a backsolve backward pass: the largest relative RMS error, over the output
        intervals, of the state at an interval's start reconstructed by integrating backwards
        from its end (what the backward solve does; torchdiffeq restarts it from the forward
        state at every output time). ``None`` otherwise.
    backsolve_tolerance
        The threshold of that error (see `backsolve_tolerance`); above it an `OscsimWarning`
        recommends ``adjoint="checkpoint"``.
    """

    function_evaluations: int = 0
    accepted_steps: int = 0
    rejected_steps: int = 0
    backward_function_evaluations: int | None = None
    backward_accepted_steps: int | None = None
    backward_rejected_steps: int | None = None
    checkpoints: int | None = None
    backsolve_reconstruction_error: float | None = None
    backsolve_tolerance: float | None = None

    def __post_init__(self) -> None:
        self._backward = False

    def start_backward(self) -> None:
        """Count what follows as backward work."""
        self._backward = True
        if self.backward_function_evaluations is None:
            self.backward_function_evaluations = 0
            self.backward_accepted_steps = 0
            self.backward_rejected_steps = 0

    def end_backward(self) -> None:
        """Count what follows as forward work again."""
        self._backward = False

    def count_evaluation(self, count: int = 1) -> None:
        """Record ``count`` evaluations of the vector field."""
        if self._backward:
            self.backward_function_evaluations = (self.backward_function_evaluations or 0) + count
        else:
            self.function_evaluations += count

    def count_step(self, accepted: bool, count: int = 1) -> None:
        """Record ``count`` accepted or rejected steps."""
        if self._backward:
            if accepted:
                self.backward_accepted_steps = (self.backward_accepted_steps or 0) + count
            else:
                self.backward_rejected_steps = (self.backward_rejected_steps or 0) + count
        elif accepted:
            self.accepted_steps += count
        else:
            self.rejected_steps += count


class _State(NamedTuple):
    """A solver state: tensors carried with gradients, and everything else."""

    tensors: tuple[torch.Tensor, ...]
    meta: tuple[Any, ...]


#: ``(output index, tensors of that output)`` emitted by a step.
_Outputs = list[tuple[int, tuple[torch.Tensor, ...]]]


class _Machine(abc.ABC):
    """A solver run one step at a time, with a state that can be saved and restored."""

    expected_steps: int | None = None

    @abc.abstractmethod
    def begin(self, inputs: tuple[torch.Tensor, ...]) -> tuple[_State, _Outputs]:
        """The state before the first step, from the initial tensors."""

    @abc.abstractmethod
    def step(self, state: _State) -> tuple[_State, _Outputs]:
        """One step from ``state``."""

    @abc.abstractmethod
    def done(self, state: _State) -> bool:
        """Whether every output has been emitted."""

    @contextlib.contextmanager
    def bind(self, extras: tuple[torch.Tensor, ...]) -> Iterator[None]:
        """Use ``extras`` (inputs or drive) for the duration of the block."""
        yield


class _FixedGridMachine(_Machine):
    """torchdiffeq's fixed-grid solvers (Runge–Kutta and Adams), as in their ``integrate``."""

    def __init__(self, solver: FixedGridODESolver, t: torch.Tensor) -> None:
        self.solver = solver
        self.t = t
        self.grid = solver.grid_constructor(solver.func, solver.y0, t)
        self.expected_steps = len(self.grid) - 1
        self.history = hasattr(solver, "prev_f")

    def _save(self, y: torch.Tensor, i: int, j: int) -> _State:
        if self.history:
            solver: Any = self.solver
            return _State((y, *solver.prev_f), (i, j, solver.prev_t))
        return _State((y,), (i, j, None))

    def begin(self, inputs: tuple[torch.Tensor, ...]) -> tuple[_State, _Outputs]:
        (y0,) = inputs
        if self.history:
            solver: Any = self.solver
            solver.prev_f.clear()
            solver.prev_t = None
        return self._save(y0, 0, 1), [(0, (y0,))]

    def step(self, state: _State) -> tuple[_State, _Outputs]:
        solver: Any = self.solver
        y0 = state.tensors[0]
        i, j, prev_t = state.meta
        if self.history:
            solver.prev_f.clear()
            solver.prev_f.extend(state.tensors[1:])
            solver.prev_t = prev_t
        t0, t1 = self.grid[i], self.grid[i + 1]
        dt = t1 - t0
        solver.func.callback_step(t0, y0, dt)
        dy, f0 = solver._step_func(solver.func, t0, dt, t1, y0)
        y1 = y0 + dy
        outputs: _Outputs = []
        t = self.t
        while j < len(t) and t1 >= t[j]:
            if solver.interp == "linear":
                value = solver._linear_interp(t0, t1, y0, y1, t[j])
            else:
                f1 = solver.func(t1, y1)
                value = solver._cubic_hermite_interp(t0, y0, f0, t1, y1, f1, t[j])
            outputs.append((j, (value,)))
            j += 1
        return self._save(y1, i + 1, j), outputs

    def done(self, state: _State) -> bool:
        return bool(state.meta[0] == len(self.grid) - 1)


class _AdaptiveMachine(_Machine):
    """torchdiffeq's adaptive Runge–Kutta solvers, as in their ``integrate``/``_advance``."""

    def __init__(self, solver: RKAdaptiveStepsizeODESolver, t: torch.Tensor) -> None:
        self.solver = solver
        self.t = t.to(solver.dtype)

    def _save(self, rk: Any, i: int) -> _State:
        solver: Any = self.solver
        # The times are carried with gradients too: torchdiffeq selects the first step with
        # a graph (it depends on f(t0, y0)), and through it every later step time, so
        # direct backpropagation differentiates the step times with respect to the
        # parameters; the checkpointed pass must do the same to equal it.
        return _State(
            (rk.y1, rk.f1, rk.t0, rk.t1, rk.dt, *rk.interp_coeff),
            (solver.next_step_index, solver.next_jump_index, i),
        )

    def begin(self, inputs: tuple[torch.Tensor, ...]) -> tuple[_State, _Outputs]:
        (y0,) = inputs
        solver: Any = self.solver
        solver.y0 = y0
        solver._before_integrate(self.t)
        return self._save(solver.rk_state, 1), [(0, (y0,))]

    def step(self, state: _State) -> tuple[_State, _Outputs]:
        solver: Any = self.solver
        y1, f1, t0, t1, dt, *coefficients = state.tensors
        solver.next_step_index, solver.next_jump_index, i = state.meta
        rk = solver._adaptive_step(_RungeKuttaState(y1, f1, t0, t1, dt, list(coefficients)))
        outputs: _Outputs = []
        t = self.t
        while i < len(t) and not bool(t[i] > rk.t1):
            outputs.append((i, (_interp_evaluate(rk.interp_coeff, rk.t0, rk.t1, t[i]),)))
            i += 1
        return self._save(rk, i), outputs

    def done(self, state: _State) -> bool:
        return bool(state.meta[-1] == len(self.t))


class _SignalBinding:
    """Swaps the sample values of an input signal (the tensor that gets gradients)."""

    def __init__(self, signal: Any) -> None:
        self.signal = signal

    @contextlib.contextmanager
    def __call__(self, extras: tuple[torch.Tensor, ...]) -> Iterator[None]:
        if self.signal is None or not extras:
            yield
            return
        original = self.signal.values
        self.signal.values = extras[0]
        try:
            yield
        finally:
            self.signal.values = original


class _TorchdiffeqMachine(_Machine):
    """A torchdiffeq machine whose input signal's samples are an input of the checkpoint."""

    def __init__(self, inner: _Machine, signal: Any) -> None:
        self.inner = inner
        self.expected_steps = inner.expected_steps
        self._binding = _SignalBinding(signal)

    def begin(self, inputs: tuple[torch.Tensor, ...]) -> tuple[_State, _Outputs]:
        return self.inner.begin(inputs)

    def step(self, state: _State) -> tuple[_State, _Outputs]:
        return self.inner.step(state)

    def done(self, state: _State) -> bool:
        return self.inner.done(state)

    @contextlib.contextmanager
    def bind(self, extras: tuple[torch.Tensor, ...]) -> Iterator[None]:
        with self._binding(extras):
            yield


class _ImexMachine(_Machine):
    """The ``imex`` recurrence, one step of `oscsim.solvers.imex.imex_loop` at a time."""

    def __init__(
        self,
        field: Any,
        dt: float,
        n_steps: int,
        save_steps: Sequence[int],
        start: float,
        has_drive: bool,
        stats: SolverStatistics,
    ) -> None:
        self.field = field
        self.dt = dt
        self.expected_steps = self.n_steps = n_steps
        self.start = start
        self.has_drive = has_drive
        self.stats = stats
        self.drive: torch.Tensor | None = None
        # output index of every saved step (a step may be requested more than once)
        self.outputs_at: dict[int, list[int]] = {}
        for index, step in enumerate(save_steps):
            self.outputs_at.setdefault(int(step), []).append(index)

    def _emit(self, n: int, y: torch.Tensor, z: torch.Tensor) -> _Outputs:
        return [(index, (y, z)) for index in self.outputs_at.get(n, [])]

    def begin(self, inputs: tuple[torch.Tensor, ...]) -> tuple[_State, _Outputs]:
        y0, z0 = inputs
        return _State((y0, z0), (0,)), self._emit(0, y0, z0)

    def step(self, state: _State) -> tuple[_State, _Outputs]:
        y, z = state.tensors
        (n,) = state.meta
        drive = None if self.drive is None else self.drive[n : n + 1]
        # start + n·dt is the time imex_loop gives step n of a whole run
        positions, velocities = imex_loop(
            self.field, y, z, self.dt, 1, [1], start_time=self.start + n * self.dt, drive=drive
        )
        self.stats.count_evaluation()
        self.stats.count_step(accepted=True)
        y, z = positions[0], velocities[0]
        return _State((y, z), (n + 1,)), self._emit(n + 1, y, z)

    def done(self, state: _State) -> bool:
        return bool(state.meta[0] == self.n_steps)

    @contextlib.contextmanager
    def bind(self, extras: tuple[torch.Tensor, ...]) -> Iterator[None]:
        previous = self.drive
        self.drive = extras[0] if self.has_drive else None
        try:
            yield
        finally:
            self.drive = previous


def _initial_interval(expected_steps: int | None) -> int:
    return max(1, math.ceil(math.sqrt(expected_steps))) if expected_steps else 8


class _Checkpointed(torch.autograd.Function):
    """Forward without a graph keeping √N states; backward recomputes segment by segment."""

    @staticmethod
    def forward(
        ctx: Any,
        machine: _Machine,
        stats: SolverStatistics,
        n_inputs: int,
        n_extras: int,
        *tensors: torch.Tensor,
    ) -> tuple[torch.Tensor, ...]:
        inputs = tensors[:n_inputs]
        extras = tensors[n_inputs : n_inputs + n_extras]
        results: dict[int, tuple[torch.Tensor, ...]] = {}
        interval = _initial_interval(machine.expected_steps)
        # (steps taken, state after them); None: start from the inputs themselves
        checkpoints: list[tuple[int, _State | None]] = [(0, None)]
        with torch.no_grad(), machine.bind(extras):
            state, outputs = machine.begin(inputs)
            results.update(outputs)
            steps = 0
            while not machine.done(state):
                state, outputs = machine.step(state)
                results.update(outputs)
                steps += 1
                if steps % interval == 0 and not machine.done(state):
                    checkpoints.append((steps, state))
                    if len(checkpoints) > 2 * interval + 1:
                        # Horizon unknown in advance (adaptive steps): keep ~√N states by
                        # doubling the segment length and thinning the checkpoints.
                        interval *= 2
                        checkpoints = [c for c in checkpoints if c[0] % interval == 0]
        stats.checkpoints = len(checkpoints)
        ctx.machine = machine
        ctx.stats = stats
        ctx.n_inputs = n_inputs
        ctx.n_extras = n_extras
        ctx.checkpoints = checkpoints
        ctx.total_steps = steps
        ctx.params = tensors[n_inputs + n_extras :]
        ctx.save_for_backward(*tensors)
        count = len(results)
        parts = len(results[0])
        return tuple(torch.stack([results[j][p] for j in range(count)]) for p in range(parts))

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx: Any, *grad_outputs: torch.Tensor | None) -> tuple[Any, ...]:
        machine: _Machine = ctx.machine
        stats: SolverStatistics = ctx.stats
        tensors = ctx.saved_tensors
        n_inputs, n_extras = ctx.n_inputs, ctx.n_extras
        inputs = tensors[:n_inputs]
        extras = tensors[n_inputs : n_inputs + n_extras]
        params = [p for p in ctx.params if p.requires_grad]
        extra_leaves = tuple(e.detach().requires_grad_(e.requires_grad) for e in extras)
        wanted_extras = [e for e in extra_leaves if e.requires_grad]
        param_grads: list[torch.Tensor | None] = [None] * len(params)
        extra_grads: list[torch.Tensor | None] = [None] * len(wanted_extras)
        carry: tuple[torch.Tensor | None, ...] | None = None
        checkpoints = ctx.checkpoints
        stats.start_backward()
        try:
            for index in range(len(checkpoints) - 1, -1, -1):
                first, saved = checkpoints[index]
                last = checkpoints[index + 1][0] if index + 1 < len(checkpoints) else None
                with torch.enable_grad(), machine.bind(extra_leaves):
                    if saved is None:
                        leaves = tuple(x.detach().requires_grad_(True) for x in inputs)
                        state, outputs = machine.begin(leaves)
                    else:
                        leaves = tuple(x.detach().requires_grad_(True) for x in saved.tensors)
                        state, outputs = _State(leaves, saved.meta), []
                    steps = first
                    while (steps != last) if last is not None else not machine.done(state):
                        state, new = machine.step(state)
                        outputs.extend(new)
                        steps += 1
                roots: list[torch.Tensor] = []
                grads: list[torch.Tensor] = []
                if carry is not None:
                    for tensor, grad in zip(state.tensors, carry, strict=True):
                        if grad is not None and tensor.requires_grad:
                            roots.append(tensor)
                            grads.append(grad)
                for j, values in outputs:
                    for part, value in enumerate(values):
                        grad_part = grad_outputs[part]
                        if grad_part is not None and value.requires_grad:
                            roots.append(value)
                            grads.append(grad_part[j])
                targets = [*leaves, *wanted_extras, *params]
                found: tuple[torch.Tensor | None, ...]
                if roots:
                    found = torch.autograd.grad(roots, targets, grads, allow_unused=True)
                else:
                    found = tuple(None for _ in targets)
                carry = tuple(found[: len(leaves)])
                offset = len(leaves)
                for k in range(len(wanted_extras)):
                    extra_grads[k] = _add(extra_grads[k], found[offset + k])
                offset += len(wanted_extras)
                for k in range(len(params)):
                    param_grads[k] = _add(param_grads[k], found[offset + k])
        finally:
            stats.end_backward()
        input_grads = list(carry) if carry is not None else [None] * n_inputs
        extras_out: list[torch.Tensor | None] = []
        wanted = iter(extra_grads)
        for leaf in extra_leaves:
            extras_out.append(next(wanted) if leaf.requires_grad else None)
        params_out: list[torch.Tensor | None] = []
        found_params = iter(param_grads)
        for p in ctx.params:
            params_out.append(next(found_params) if p.requires_grad else None)
        return (None, None, None, None, *input_grads, *extras_out, *params_out)


def _add(total: torch.Tensor | None, new: torch.Tensor | None) -> torch.Tensor | None:
    if new is None:
        return total
    return new if total is None else total + new


def _parameters(field: Any) -> tuple[torch.Tensor, ...]:
    return tuple(p for p in field.parameters() if p.requires_grad)


def checkpointed_odeint(
    func: torch.nn.Module,
    y0: torch.Tensor | tuple[torch.Tensor, ...],
    t: torch.Tensor,
    *,
    rtol: float,
    atol: float,
    method: str,
    options: dict[str, Any],
    signal: Any,
    stats: SolverStatistics,
) -> torch.Tensor | tuple[torch.Tensor, ...]:
    """`torchdiffeq.odeint` with a checkpointed backward pass (same result, same gradient).

    Parameters
    ----------
    func
        ``f(t, y)``, an `nn.Module`: its parameters, ``y0`` and ``signal.values`` (when
        ``signal`` is an `InputSignal`) get gradients.
    y0
        A tensor or a tuple of tensors, as for ``odeint``.
    t
        ``(S,)`` increasing output times.
    rtol, atol, method, options
        As for ``odeint``.
    signal
        The input signal ``func`` reads, or ``None``.
    stats
        Receives the checkpoint count and the backward statistics.

    Returns
    -------
    Tensor or tuple of Tensors
        The states at ``t``, shaped as ``odeint`` shapes them.

    Raises
    ------
    OscsimInputError
        For a method the checkpointed pass cannot step (``scipy_solver``).
    """
    solver_class = SOLVERS[method]
    if not issubclass(solver_class, (FixedGridODESolver, RKAdaptiveStepsizeODESolver)):
        raise OscsimInputError(
            f"adjoint='checkpoint' steps torchdiffeq's own solvers; {method!r} runs outside "
            "PyTorch and has no gradient: use another method"
        )
    shapes, wrapped, flat_y0, t_checked, rtol_t, atol_t, method, opts, _, _ = _check_inputs(
        func, y0, t, rtol, atol, method, dict(options), None, SOLVERS
    )
    solver = solver_class(func=wrapped, y0=flat_y0.detach(), rtol=rtol_t, atol=atol_t, **opts)
    inner: _Machine
    if isinstance(solver, FixedGridODESolver):
        inner = _FixedGridMachine(solver, t_checked)
    else:
        inner = _AdaptiveMachine(solver, t_checked)
    extras: tuple[torch.Tensor, ...] = ()
    if signal is not None:
        extras = (signal.values,)
    machine = _TorchdiffeqMachine(inner, signal)
    (solution,) = _Checkpointed.apply(
        machine, stats, 1, len(extras), flat_y0, *extras, *_parameters(func)
    )
    if shapes is not None:
        return tuple(_flat_to_shape(solution, (len(t),), shapes))
    return solution


def checkpointed_imex(
    field: Any,
    position0: torch.Tensor,
    velocity0: torch.Tensor,
    dt: float,
    n_steps: int,
    save_steps: Sequence[int],
    *,
    start_time: float,
    drive: torch.Tensor | None,
    stats: SolverStatistics,
) -> tuple[torch.Tensor, torch.Tensor]:
    """``imex`` with a checkpointed backward pass; arguments as `oscsim.solvers.imex.imex_loop`.

    Returns
    -------
    positions, velocities
        ``(len(save_steps), B, ...)`` each; gradients reach ``position0``, ``velocity0``,
        ``drive`` and the field's parameters.
    """
    machine = _ImexMachine(field, dt, n_steps, save_steps, start_time, drive is not None, stats)
    extras = (drive,) if drive is not None else ()
    positions, velocities = _Checkpointed.apply(
        machine, stats, 2, len(extras), position0, velocity0, *extras, *_parameters(field)
    )
    return positions, velocities


def _find_node(outputs: Sequence[torch.Tensor], name: str) -> Any:
    """The autograd node named ``name`` closest to ``outputs`` (breadth first)."""
    queue = [o.grad_fn for o in outputs if o.grad_fn is not None]
    seen: set[int] = set()
    while queue:
        node = queue.pop(0)
        if node is None or id(node) in seen:
            continue
        seen.add(id(node))
        if name in type(node).__name__:
            return node
        queue.extend(next_node for next_node, _ in node.next_functions if next_node is not None)
    return None


def watch_backsolve(
    outputs: Sequence[torch.Tensor],
    reconstruct: Callable[[], float],
    stats: SolverStatistics,
    tolerance: float,
) -> None:
    """After every backward pass through ``outputs``: statistics and the drift diagnostic.

    Parameters
    ----------
    outputs
        The tensors ``odeint_adjoint`` returned.
    reconstruct
        Returns the relative reconstruction error (run once the backward pass is done).
    stats
        Receives the backward counts and the error.
    tolerance
        Above it, an `OscsimWarning` recommends ``adjoint="checkpoint"``.
    """
    stats.backsolve_tolerance = tolerance
    node = _find_node(outputs, "OdeintAdjointMethod")
    if node is None:
        # No graph (nothing requires a gradient): there will be no backward pass.
        return

    def before(grad_outputs: Any) -> None:
        stats.start_backward()

    def after(grad_inputs: Any, grad_outputs: Any) -> None:
        stats.end_backward()
        error = reconstruct()
        stats.backsolve_reconstruction_error = error
        if not error <= tolerance:
            warnings.warn(
                f"adjoint='backsolve': integrating the state backwards reconstructs it with a "
                f"relative error of {error:.3g} (tolerance {tolerance:.3g}), so its gradients "
                "are off by about as much or more: the dynamics amplify errors backwards in "
                "time. Use adjoint='checkpoint' for exact gradients in little memory.",
                OscsimWarning,
                stacklevel=2,
            )

    node.register_prehook(before)
    node.register_hook(after)


def reconstruction_error(
    func: Callable[[torch.Tensor, Any], Any],
    states: tuple[torch.Tensor, ...],
    t: torch.Tensor,
    *,
    method: str,
    rtol: float,
    atol: float,
    options: dict[str, Any],
) -> float:
    """Largest relative RMS error of backward reconstructions over the output intervals.

    Each interval ``[t[i-1], t[i]]`` is integrated backwards from the forward state at
    ``t[i]`` with the same method and options (what torchdiffeq's adjoint does for the state
    part of its augmented system) and compared with the forward state at ``t[i-1]``:
    ``rms(reconstructed − forward) / (rms(forward) + atol)``.
    """
    worst = 0.0
    with torch.no_grad():
        for i in range(len(t) - 1, 0, -1):
            end = tuple(s[i].detach() for s in states)
            start = tuple(s[i - 1].detach() for s in states)
            back = torch.stack([t[i], t[i - 1]])
            y_end: Any = end if len(end) > 1 else end[0]
            solved = torchdiffeq.odeint(
                func, y_end, back, rtol=rtol, atol=atol, method=method, options=options
            )
            rebuilt = tuple(s[-1] for s in solved) if len(end) > 1 else (solved[-1],)
            difference = torch.cat(
                [(r - s).reshape(-1) for r, s in zip(rebuilt, start, strict=True)]
            )
            reference = torch.cat([s.reshape(-1) for s in start])
            rms_difference = float(difference.pow(2).mean().sqrt())
            rms_reference = float(reference.pow(2).mean().sqrt())
            error = rms_difference / (rms_reference + atol)
            if not math.isfinite(error):
                return math.inf
            worst = max(worst, error)
    return worst
