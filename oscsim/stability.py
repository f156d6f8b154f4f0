"""Blow-ups caught while they happen, and fixed steps checked against stability before work.

Two guards (docs/reliability.md):

- **A bound on the state.** Every integration (torch: every method, ``imex`` fused or
  not; the Numba reference: ``euler``, ``rk4``, ``imex``, ``dopri5``) stops with an
  `IntegrationError` as soon as ``|position|`` or ``|velocity|`` exceeds

  .. math:: \\text{bound} = \\text{max\\_state} \\cdot \\max(1, \\|y_0\\|_\\infty,
            \\|z_0\\|_\\infty, \\|b\\|_\\infty, \\|u\\|_\\infty)

  (initial state, bias, drive), ``max_state`` = `DEFAULT_MAX_STATE` unless configured
  (``[solver] max_state``; ``inf`` switches it off). A damped network with a bounded
  activation stays far inside it; a state that grows a millionfold is either a numerical
  instability or a network that is not worth integrating further as configured.
- **A stability estimate before fixed-step work** (`check_step_stability`): for
  ``local`` and ``none`` coupling, each Fourier mode of the network linearised at its bias
  (`oscsim.linear`) is a ``2C×2C`` linear system ``A(k)``; one step of the method
  multiplies it by ``R(h·A(k))``. When the spectral radius of ``R`` exceeds the exact
  growth ``exp(h·max Re s(k))`` so that over the run the linearised solution would grow
  spuriously by more than ``max_state``, the run is **refused** (exit status 2) with the
  largest stable ``dt`` found; more than `WARN_GROWTH` gives an `OscsimWarning`.

This module needs only NumPy (and `oscsim.linear`): the Numba reference uses it too.
"""

from __future__ import annotations

import math
import warnings
from typing import Any

import numpy as np

from oscsim.errors import IntegrationError, OscsimInputError, OscsimWarning
from oscsim.parameters import NetworkParameters

#: Default of ``[solver] max_state`` (see the module docstring).
DEFAULT_MAX_STATE = 1e6
#: A predicted spurious growth over the run above this warns (above ``max_state``: refused).
WARN_GROWTH = 1e2
#: Stability polynomials of the explicit Runge–Kutta methods (as many stages as their
#: order, so ``R(w) = Σ_{j ≤ p} w^j / j!``): method → order ``p``.
RK_ORDERS = {"euler": 1, "midpoint": 2, "heun2": 2, "heun3": 3, "rk4": 4}
#: Fixed-step methods whose stability region is estimated (the Adams methods are not).
ESTIMATED_METHODS = (*RK_ORDERS, "imex")


def amplitude(value: Any) -> float:
    """``max |value|`` as a float (NumPy arrays, torch tensors, numbers; 0 for ``None``)."""
    if value is None:
        return 0.0
    if hasattr(value, "detach"):
        value = value.detach()
        return float(value.abs().max()) if value.numel() else 0.0
    array = np.asarray(value, dtype=np.float64)
    return float(np.max(np.abs(array))) if array.size else 0.0


def state_bound(max_state: float | None, *values: Any) -> float:
    """``max_state · max(1, max |v| for v in values)``; ``inf`` when there is no bound."""
    if max_state is None or math.isinf(max_state):
        return math.inf
    if not (max_state > 0):
        raise OscsimInputError(f"max_state must be > 0 (inf: no bound), got {max_state!r}")
    scale = max([1.0, *(amplitude(v) for v in values)])
    return float(max_state) * scale


#: Methods that choose their own step (the advice differs: their step is not the cause).
ADAPTIVE = ("dopri5", "dopri8", "bosh3", "fehlberg2", "adaptive_heun", "scipy_solver")


def divergence_error(
    method: str, time: float, quantity: str, value: float, bound: float, dt: float | None
) -> IntegrationError:
    """The error for a state past its bound (or non-finite) at model time ``time``."""
    grew = (
        "became NaN or infinite"
        if not math.isfinite(value)
        else f"reached {value:.3g}, past the bound {bound:.3g}"
    )
    if method in ADAPTIVE:
        advice = (
            "an adaptive method follows the true solution, so the network itself grows: "
            "check gamma, epsilon, the kernels and the drive (a linear mode with a positive "
            "growth rate grows without bound; a bounded activation such as tanh limits it)"
        )
    else:
        step = f" (now {dt:g})" if dt is not None else ""
        advice = (
            f"reduce dt{step}, or use an adaptive method (dopri5), or the imex scheme if the "
            "network is stiff (large gamma, strong coupling); if it still grows, check gamma, "
            "epsilon and the kernels"
        )
    return IntegrationError(
        f"{method}: the {quantity} {grew} by model time t = {time:.6g}; the integration "
        f"diverged: {advice}. [solver] max_state sets the bound (max_state × the largest "
        "initial, bias or drive amplitude)"
    )


def check_frames(
    frames: dict[str, np.ndarray],
    times: np.ndarray,
    bound: float,
    method: str,
    dt: float | None,
) -> None:
    """Raise `divergence_error` for the first frame (axis 0) past ``bound`` or non-finite."""
    first: tuple[int, str, float] | None = None
    for name, array in frames.items():
        peaks = np.max(np.abs(array.reshape(array.shape[0], -1)), axis=1)
        bad = np.flatnonzero(~(peaks <= bound))
        if bad.size and (first is None or bad[0] < first[0]):
            first = (int(bad[0]), name, float(peaks[bad[0]]))
    if first is not None:
        index, name, value = first
        raise divergence_error(method, float(times[index]), name, value, bound, dt)


# ---------------------------------------------------------------------------------------
# the stability estimate


def _symbols(kernel: np.ndarray | None, grid: tuple[int, ...], channels: int) -> np.ndarray:
    """``Λ(k)`` for every FFT wave vector of ``grid``: ``(M, C, C)`` complex.

    The kernel is laid on the grid at offsets ``a − r`` (mod n); ``Σ_a K_a e^{ik(a−r)}`` is
    then ``N·ifft`` of it (the sign of the exponent is ifft's), the same symbol as
    `oscsim.linear.kernel_symbol` for each wave vector.
    """
    modes = int(np.prod(grid))
    if kernel is None:
        return np.zeros((modes, channels, channels), dtype=np.complex128)
    size = kernel.shape[-1]
    r = size // 2
    laid = np.zeros((channels, channels, *grid))
    for index in np.ndindex(*(size,) * len(grid)):
        at = tuple((a - r) % n for a, n in zip(index, grid, strict=True))
        laid[(slice(None), slice(None), *at)] += kernel[(slice(None), slice(None), *index)]
    axes = tuple(range(2, 2 + len(grid)))
    symbol = np.fft.ifftn(laid, axes=axes) * modes
    return np.moveaxis(symbol.reshape(channels, channels, modes), -1, 0)


#: Largest state (channels × cells) whose ``global`` coupling is estimated: one dense
#: eigenvalue problem of twice this size (about a second at 1024, growing as its cube).
GLOBAL_ESTIMATE_CELLS = 1024


def _global_matrix(params: NetworkParameters) -> np.ndarray:
    """The whole linearised system ``(1, 2CN, 2CN)`` of a ``global`` network.

    A dense coupling has no Fourier modes: ``d/dt (y, z) = A (y, z)`` with
    ``A = [[0, I], [g·W_y − γ, g·W_z − ε]]`` over the state flattened in (channel, cell)
    order, ``g`` the activation's slope at the bias per channel (as for the modes).
    """
    from oscsim.linear import _gain

    cells = int(np.prod(params.grid))
    n = params.channels * cells
    per_row = np.repeat(_gain(params), cells)[:, None]
    gamma = np.repeat(np.asarray(params.gamma, dtype=float), cells)
    epsilon = np.repeat(np.asarray(params.epsilon, dtype=float), cells)
    a = np.zeros((1, 2 * n, 2 * n), dtype=np.complex128)
    a[0, :n, n:] = np.eye(n)
    a[0, n:, :n] = per_row * np.asarray(params.kernel_position, dtype=float) - np.diag(gamma)
    a[0, n:, n:] = per_row * np.asarray(params.kernel_velocity, dtype=float) - np.diag(epsilon)
    return a


def mode_matrices(params: NetworkParameters) -> np.ndarray:
    """``A(k)`` of every Fourier mode, ``(M, 2C, 2C)`` (see `oscsim.linear.mode_matrix`).

    For ``global`` coupling, the one matrix of the whole system, ``(1, 2CN, 2CN)``.
    """
    from oscsim.linear import _gain

    if params.coupling == "global":
        return _global_matrix(params)
    c, grid = params.channels, tuple(params.grid)
    gain = _gain(params)[None, :, None]
    if params.coupling == "none":
        grid = (1,) * len(grid)  # every mode is the same
    position = _symbols(params.kernel_position, grid, c)
    velocity = _symbols(params.kernel_velocity, grid, c)
    m = position.shape[0]
    a = np.zeros((m, 2 * c, 2 * c), dtype=np.complex128)
    a[:, :c, c:] = np.eye(c)
    a[:, c:, :c] = gain * position - np.diag(params.gamma)
    a[:, c:, c:] = gain * velocity - np.diag(params.epsilon)
    return a


def amplification(method: str, a: np.ndarray, h: float) -> np.ndarray:
    """``R(h·A)`` of one step of ``method`` for each ``A`` in ``a`` (``(M, 2C, 2C)``)."""
    n = a.shape[-1]
    eye = np.broadcast_to(np.eye(n), a.shape)
    if method == "imex":
        c = n // 2
        p, q = a[:, c:, :c], a[:, c:, c:]
        small = np.broadcast_to(np.eye(c), p.shape)
        r = np.empty_like(a)
        r[:, :c, :c] = small + h * h * p
        r[:, :c, c:] = h * (small + h * q)
        r[:, c:, :c] = h * p
        r[:, c:, c:] = small + h * q
        return r
    order = RK_ORDERS[method]
    term = np.array(eye, dtype=np.complex128)
    total = np.array(eye, dtype=np.complex128)
    for j in range(1, order + 1):
        term = term @ (h * a) / j
        total = total + term
    return total


def _log_excess(method: str, a: np.ndarray, h: float, t_end: float) -> np.ndarray:
    """Per mode: log of the spurious growth over ``t_end`` (numerical over exact, ≥ 1)."""
    radius = np.max(np.abs(np.linalg.eigvals(amplification(method, a, h))), axis=-1)
    exact = np.max(np.linalg.eigvals(a).real, axis=-1) * h
    with np.errstate(divide="ignore"):
        per_step = np.log(radius) - np.maximum(exact, 0.0)
    return np.maximum(per_step, 0.0) * (t_end / h)


def check_step_stability(
    params: NetworkParameters,
    method: str,
    dt: float,
    t_end: float,
    max_state: float = DEFAULT_MAX_STATE,
) -> float | None:
    """Estimate whether ``method`` with step ``dt`` is stable on the linearised network.

    Parameters
    ----------
    params
        The network (``local`` and ``none`` coupling are estimated mode by mode, ``global``
        as one dense system up to `GLOBAL_ESTIMATE_CELLS` channels × cells; others, and
        larger global networks, pass and rely on the run-time bound).
    method, dt
        A fixed-step method (``euler``, ``midpoint``, ``heun2``, ``heun3``, ``rk4``,
        ``imex``; others pass) and its step.
    t_end
        Length of the run in model time.
    max_state
        The state bound factor; a predicted spurious growth above it is refused.

    Returns
    -------
    float or None
        The predicted spurious growth factor over the run (``None`` where not estimated).

    Raises
    ------
    OscsimInputError
        If the linearised run would grow spuriously by more than ``max_state`` (it would
        end in the divergence error): names the rate, the method and a stable ``dt`` or
        another method.

    Warns
    -----
    OscsimWarning
        If the predicted spurious growth exceeds `WARN_GROWTH`.
    """
    if method not in ESTIMATED_METHODS or params.coupling not in ("local", "none", "global"):
        return None
    if (
        params.coupling == "global"
        and params.channels * int(np.prod(params.grid)) > GLOBAL_ESTIMATE_CELLS
    ):
        return None
    a = mode_matrices(params)
    excess = _log_excess(method, a, dt, t_end)
    worst = int(np.argmax(excess))
    growth = float(excess[worst])
    limit = math.log(max_state) if math.isfinite(max_state) else math.inf
    rate = float(np.max(np.abs(np.linalg.eigvals(a[worst]))))
    if growth > limit:
        suspects = a[np.argsort(excess)[-256:]]
        stable = _largest_stable_step(method, suspects, dt, t_end, math.log(WARN_GROWTH))
        advice = (
            f"dt <= {stable:.3g}"
            if stable is not None
            else f"no dt keeps {method} stable on this network's least damped modes"
        )
        raise OscsimInputError(
            f"solver.dt = {dt:g} is outside the stability region of {method} for this "
            f"network: its fastest linearised mode has rate |s| = {rate:.3g} per time unit "
            f"(|s|·dt = {rate * dt:.3g}), and the run would grow spuriously by about "
            f"10^{growth / math.log(10):.0f} by t_end. Use {advice}, an adaptive method "
            "(dopri5), or set solver.stability_check = false to run anyway"
        )
    if growth > math.log(WARN_GROWTH):
        warnings.warn(
            f"solver.dt = {dt:g} is near the stability limit of {method} for this network "
            f"(fastest linearised rate {rate:.3g}; predicted spurious growth about "
            f"{math.exp(growth):.3g}× over the run): results may be inaccurate",
            OscsimWarning,
            stacklevel=2,
        )
    return math.exp(min(growth, 700.0))


def _largest_stable_step(
    method: str, a: np.ndarray, dt: float, t_end: float, limit: float
) -> float | None:
    """Bisection (in log dt) for the largest step below ``dt`` with growth ≤ ``limit``."""
    low = dt
    for _ in range(40):
        low /= 2
        if float(np.max(_log_excess(method, a, low, t_end))) <= limit:
            break
    else:
        return None
    high = low * 2
    for _ in range(20):
        middle = math.sqrt(low * high)
        if float(np.max(_log_excess(method, a, middle, t_end))) <= limit:
            low = middle
        else:
            high = middle
    return low
