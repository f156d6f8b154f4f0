"""Property checks that take any solver callable.

A *solver* is a callable::

    solver(params, position0, velocity0, times, *, dt, drive=None, drive_times=None)
        -> (positions, velocities)            # each (S, B, C, *grid), NumPy float64

`torch_solver` and `reference_solver` adapt the torch core and the Numba reference to it;
wrap your own the same way and every check here applies to it.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any, Protocol

import numpy as np

from oscsim.linear import dispersion, grid_wavevectors, kernel_symbol
from oscsim.parameters import NetworkParameters

#: Errors below this fraction of the solution's scale are float64 round-off, not truncation.
ROUND_OFF = 1e-11


class Solver(Protocol):
    """The solver signature the checks call."""

    def __call__(
        self,
        params: NetworkParameters,
        position0: np.ndarray,
        velocity0: np.ndarray,
        times: np.ndarray,
        *,
        dt: float | None,
        drive: np.ndarray | None = None,
        drive_times: np.ndarray | None = None,
    ) -> tuple[np.ndarray, np.ndarray]: ...


class PropertyFailure(AssertionError):
    """A property did not hold; the message gives the measured and the expected values."""


def _solver(run: Callable[..., tuple[np.ndarray, np.ndarray]]) -> Solver:
    """A `Solver` that calls ``run(params, position0, velocity0, times, dt, drive,
    drive_times)``."""

    def solve(params, position0, velocity0, times, *, dt, drive=None, drive_times=None):
        return run(params, position0, velocity0, times, dt, drive, drive_times)

    return solve


def torch_solver(method: str, **options: Any) -> Solver:
    """The torch core (`oscsim.integrate`) in float64 as a `Solver`."""

    def run(params, position0, velocity0, times, dt, drive, drive_times):
        import torch

        from oscsim.integration import integrate
        from oscsim.network import OscillatorNetwork

        network = OscillatorNetwork.from_parameters(params, dtype=torch.float64)
        state0 = (torch.as_tensor(position0), torch.as_tensor(velocity0))
        with torch.no_grad():
            solution = integrate(
                network,
                state0,
                torch.as_tensor(times),
                method=method,
                dt=dt,
                inputs=None if drive is None else torch.as_tensor(drive),
                input_times=None if drive_times is None else torch.as_tensor(drive_times),
                **options,
            )
        return solution.position.numpy(), solution.velocity.numpy()

    return _solver(run)


def reference_solver(method: str, **options: Any) -> Solver:
    """The Numba reference (`oscsim.reference.solve`) as a `Solver`."""

    def run(params, position0, velocity0, times, dt, drive, drive_times):
        from oscsim.reference import solve

        return solve(
            params, position0, velocity0, times, method=method, dt=dt, drive=drive,
            drive_times=drive_times, **options,
        )  # fmt: skip

    return _solver(run)


def _max_relative(actual: np.ndarray, expected: np.ndarray) -> float:
    scale = max(float(np.max(np.abs(expected))), 1e-300)
    return float(np.max(np.abs(actual - expected)) / scale)


def assert_solvers_agree(
    solver: Solver,
    reference: Solver,
    params: NetworkParameters,
    position0: np.ndarray,
    velocity0: np.ndarray,
    times: np.ndarray,
    *,
    dt: float | None,
    rtol: float,
    drive: np.ndarray | None = None,
    drive_times: np.ndarray | None = None,
) -> float:
    """Both solvers give the same states to ``rtol`` (max-norm relative); returns the error."""
    kwargs: dict[str, Any] = {"dt": dt, "drive": drive, "drive_times": drive_times}
    y_a, z_a = solver(params, position0, velocity0, times, **kwargs)
    y_b, z_b = reference(params, position0, velocity0, times, **kwargs)
    error = max(_max_relative(y_a, y_b), _max_relative(z_a, z_b))
    if not error <= rtol:
        raise PropertyFailure(f"solvers differ by {error:.3g} (max-norm relative) > {rtol:.3g}")
    return error


def empirical_order(
    solver: Solver,
    params: NetworkParameters,
    position0: np.ndarray,
    velocity0: np.ndarray,
    *,
    t_end: float = 1.0,
    dts: Sequence[float] = (0.1, 0.05, 0.025, 0.0125),
    exact: Callable[[float], np.ndarray] | None = None,
) -> float:
    """The slope of log(error at ``t_end``) against log(dt) over a refinement sequence.

    The error is against ``exact(t_end)`` (the final position) if given, else against the
    same solver at a step 16 times below the smallest, which leaves the fit unbiased
    for any order ≥ 1 to within a few percent. Returns ``inf`` when the solver is exact to
    round-off at (all but one of) the steps.
    """
    times_for = lambda dt: np.array([0.0, t_end])  # noqa: E731 - two outputs, start and end
    if exact is not None:
        target = exact(t_end)
    else:
        fine = min(dts) / 16
        target = solver(params, position0, velocity0, times_for(fine), dt=fine)[0][-1]
    scale = max(float(np.max(np.abs(target))), 1e-300)
    errors = []
    for dt in dts:
        final = solver(params, position0, velocity0, times_for(dt), dt=dt)[0][-1]
        errors.append(float(np.max(np.abs(final - target))))
    # Errors at round-off level carry no slope (a problem the method solves exactly, such
    # as constant forcing for rk4): fit only the steps above that floor.
    usable = [(dt, e) for dt, e in zip(dts, errors, strict=True) if e > ROUND_OFF * scale]
    if len(usable) < 2:
        return math.inf
    steps, kept = zip(*usable, strict=True)
    return float(np.polyfit(np.log(steps), np.log(kept), 1)[0])


def assert_convergence_order(
    solver: Solver,
    params: NetworkParameters,
    position0: np.ndarray,
    velocity0: np.ndarray,
    *,
    order: float,
    band: float = 0.3,
    **options: Any,
) -> float:
    """`empirical_order` is within ``±band`` of ``order``; returns the fitted order.

    A solver exact to round-off on the drawn problem (`empirical_order` returns ``inf``)
    passes: there is no error left to converge.
    """
    fitted = empirical_order(solver, params, position0, velocity0, **options)
    if math.isfinite(fitted) and abs(fitted - order) > band:
        raise PropertyFailure(f"fitted convergence order {fitted:.3f}, expected {order} ± {band}")
    return fitted


def _check_conservative(params: NetworkParameters) -> None:
    reasons = []
    if params.activation != "identity":
        reasons.append("activation must be 'identity'")
    if params.coupling not in ("local", "none"):
        reasons.append("coupling must be local or none")
    if np.any(params.epsilon != 0):
        reasons.append("epsilon must be 0")
    if params.kernel_velocity is not None and np.any(params.kernel_velocity != 0):
        reasons.append("kernel_velocity must be 0")
    if params.kernel_position is not None and not np.allclose(
        params.kernel_position,
        np.flip(params.kernel_position, axis=tuple(range(2, params.kernel_position.ndim))).swapaxes(
            0, 1
        ),
    ):
        reasons.append("kernel_position must be symmetric (K[o,c,a] = K[c,o,−a])")
    if reasons:
        raise PropertyFailure("the linear network conserves energy only if " + "; ".join(reasons))


def linear_energy(
    params: NetworkParameters, positions: np.ndarray, velocities: np.ndarray
) -> np.ndarray:
    """Energy ``½|z|² + ½⟨y, (Γ − K_y⋆) y⟩`` of the undamped linear network per frame.

    Needs a symmetric position kernel (then ``K_y⋆`` is self-adjoint) and no velocity
    coupling; ``positions``/``velocities`` are ``(S, B, C, *grid)``. Returns ``(S,)``.
    """
    _check_conservative(params)
    stiffness = params.gamma.reshape((1, 1, -1) + (1,) * params.ndim) * positions
    if params.kernel_position is not None:
        import scipy.ndimage

        coupled = np.zeros_like(positions)
        for o in range(params.channels):
            for c in range(params.channels):
                coupled[:, :, o] += scipy.ndimage.correlate(
                    positions[:, :, c],
                    params.kernel_position[o, c].reshape((1, 1) + params.kernel_position.shape[2:]),
                    mode="wrap",
                )
        stiffness = stiffness - coupled
    axes = tuple(range(1, positions.ndim))
    return 0.5 * np.sum(velocities**2, axis=axes) + 0.5 * np.sum(positions * stiffness, axis=axes)


def energy_drift_order(
    solver: Solver,
    params: NetworkParameters,
    position0: np.ndarray,
    velocity0: np.ndarray,
    *,
    t_end: float = 10.0,
    dts: Sequence[float] = (0.1, 0.05, 0.025),
) -> tuple[float, list[float]]:
    """Order of the maximal relative energy drift over ``[0, t_end]`` in ``dt``.

    Returns the fitted order and the drifts; a 4th-order method gives ≈ 4.
    """
    drifts = []
    for dt in dts:
        n = int(round(t_end / dt))
        times = np.arange(n + 1) * dt
        y, z = solver(params, position0, velocity0, times, dt=dt)
        energy = linear_energy(params, y, z)
        drifts.append(float(np.max(np.abs(energy - energy[0])) / abs(energy[0])))
    return float(np.polyfit(np.log(dts), np.log(drifts), 1)[0]), drifts


def slowest_decay_rate(params: NetworkParameters) -> float:
    """The largest real part of any eigenvalue over the grid's Fourier modes (linear network)."""
    rates = [
        float(np.max(dispersion(params, k).real))
        for k in grid_wavevectors(params.grid).reshape(-1, params.ndim)
    ]
    return max(rates)


def measured_decay_rate(
    solver: Solver,
    params: NetworkParameters,
    position0: np.ndarray,
    velocity0: np.ndarray,
    *,
    t_start: float,
    t_end: float,
    dt: float,
) -> float:
    """Slope of log ‖(y, z)‖ over ``[t_start, t_end]`` (per time unit).

    The slope of a norm oscillates with the mode's frequency, so the slope is fitted to
    the running maximum of the norm over each half of the window.
    """
    n = int(round(t_end / dt))
    times = np.arange(n + 1) * dt
    y, z = solver(params, position0, velocity0, times, dt=dt)
    norm = np.sqrt(np.sum(y**2 + z**2, axis=tuple(range(1, y.ndim))))
    late = times >= t_start
    middle = (t_start + t_end) / 2
    first = np.max(norm[late & (times < middle)])
    second = np.max(norm[times >= middle])
    return float(np.log(second / first) / (middle - t_start))


def symbol_is_real(params: NetworkParameters) -> bool:
    """Whether the position kernel's Fourier symbol is real at every grid mode."""
    if params.kernel_position is None:
        return True
    return all(
        np.allclose(kernel_symbol(params.kernel_position, k, params.channels).imag, 0)
        for k in grid_wavevectors(params.grid).reshape(-1, params.ndim)
    )


def cornn_energy(
    params: NetworkParameters, position: np.ndarray, velocity: np.ndarray, dt: float
) -> np.ndarray:
    """``E_n = (1 − γΔt²)|z_n|² + γ|y_n|²`` per sample (summed over oscillators)."""
    per_channel = (1, -1) + (1,) * params.ndim
    gamma = params.gamma.reshape(per_channel)
    axes = tuple(range(1, position.ndim))
    return np.sum((1 - gamma * dt**2) * velocity**2 + gamma * position**2, axis=axes)


def cornn_bound_holds(params: NetworkParameters, dt: float) -> bool:
    """Whether ``dt`` meets the condition of the coRNN energy estimate: Δt ≤ ε/γ, εΔt ≤ 1, ε > 0."""
    gamma, epsilon = params.gamma, params.epsilon
    return bool(np.all(gamma * dt <= epsilon) and np.all(epsilon * dt <= 1) and np.all(epsilon > 0))


def assert_cornn_energy_bound(
    params: NetworkParameters,
    positions: np.ndarray,
    velocities: np.ndarray,
    *,
    dt: float,
    drive_bound: float = 1.0,
) -> None:
    """The coRNN energy estimate for the ``imex`` scheme with a bounded activation.

    For ``z_{n+1} = (1 − εΔt) z_n + Δt(σ_n − γ y_n)``, ``y_{n+1} = y_n + Δt z_{n+1}`` with
    ``|σ_n| ≤ s`` elementwise (``s = 1`` for tanh), Δt ≤ ε/γ and εΔt ≤ 1, multiplying the
    velocity update by ``z_{n+1}`` and completing squares (as in Rusch & Mishra's
    Proposition 3.1) gives, per channel with ``m`` oscillators,

        E_n ≤ E_0 + m s² t_n / ε,     E = (1 − γΔt²)|z|² + γ|y|²

    ``positions``/``velocities`` are ``(S, B, C, *grid)`` at steps ``0 … S−1``.
    """
    if params.activation != "tanh":
        raise PropertyFailure("the energy bound needs a bounded activation (tanh)")
    if not cornn_bound_holds(params, dt):
        raise PropertyFailure(f"dt = {dt} does not meet Δt ≤ ε/γ and εΔt ≤ 1 for every channel")
    per_channel = (1, 1, -1) + (1,) * params.ndim
    gamma = params.gamma.reshape(per_channel)
    energy_per_channel = np.sum(
        (1 - gamma * dt**2) * velocities**2 + gamma * positions**2,
        axis=tuple(range(3, positions.ndim)),
    )  # (S, B, C)
    m = int(np.prod(params.grid))
    steps = np.arange(positions.shape[0]).reshape(-1, 1, 1)
    bound = energy_per_channel[:1] + m * drive_bound**2 * steps * dt / params.epsilon.reshape(
        1, 1, -1
    )
    # Rounding in float64 adds at most ~1e-12 relative to either side.
    excess = energy_per_channel - bound * (1 + 1e-12)
    if np.any(excess > 0):
        worst = np.unravel_index(int(np.argmax(excess)), excess.shape)
        raise PropertyFailure(
            f"energy {float(energy_per_channel[worst]):.6g} exceeds the coRNN bound "
            f"{float(bound[worst]):.6g} at step {worst[0]}"
        )
