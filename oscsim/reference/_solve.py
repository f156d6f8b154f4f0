"""`solve`: argument checks and dispatch to the fixed-step or the adaptive reference solver."""

from __future__ import annotations

import math
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, cast

import numba
import numpy as np

from oscsim.errors import OscsimInputError
from oscsim.parameters import NetworkParameters
from oscsim.reference import _network
from oscsim.reference._dopri5 import integrate_dopri5
from oscsim.reference._fixed_step import integrate_fixed
from oscsim.reference._inputs import INTERPOLATIONS, InputSchedule
from oscsim.reference._tableau import EULER, RK4_THREE_EIGHTHS, ButcherTableau
from oscsim.stability import DEFAULT_MAX_STATE, state_bound

REFERENCE_METHODS: tuple[str, ...] = ("euler", "rk4", "imex", "dopri5")
"""Methods of the Numba reference `solve`."""

# None stands for the IMEX scheme, which is not a Runge–Kutta tableau.
_FIXED_STEP: dict[str, ButcherTableau | None] = {
    "euler": EULER,
    "rk4": RK4_THREE_EIGHTHS,
    "imex": None,
}

# Output times may miss the fixed-step grid by this much, relative to max(1, |t|).
GRID_TOLERANCE = 1e-9

#: The state size (entries per variable a kernel call advances: C·N for the fixed-step
#: methods, B·C·N for dopri5) from which ``threads=2`` pays: below it a parallel region's
#: start and join cost more than they save.
PARALLEL_MIN_SIZE = 1 << 14


def check_threads(threads: Any) -> int:
    """``threads`` if it is an integer >= 1, else an `OscsimInputError`."""
    if isinstance(threads, bool) or not isinstance(threads, int) or threads < 1:
        raise OscsimInputError(f"threads must be an integer >= 1, got {threads!r}")
    return threads


@contextmanager
def numba_threads(threads: int) -> Iterator[int]:
    """Run the block with ``min(threads, NUMBA_NUM_THREADS)`` Numba threads; yield that count."""
    before = numba.get_num_threads()
    count = min(threads, numba.config.NUMBA_NUM_THREADS)
    numba.set_num_threads(count)
    try:
        yield count
    finally:
        numba.set_num_threads(before)


def _float_array(name: str, value: Any) -> np.ndarray:
    try:
        array = np.array(value, dtype=np.float64, order="C", copy=True)
    except (TypeError, ValueError) as exc:
        raise OscsimInputError(f"{name} must be an array of numbers: {exc}") from None
    return array


def _check_finite(name: str, array: np.ndarray) -> None:
    if not np.all(np.isfinite(array)):
        raise OscsimInputError(f"{name} contains NaN or inf; give finite values")


def _check_increasing(name: str, array: np.ndarray) -> None:
    if array.ndim != 1 or array.size == 0:
        raise OscsimInputError(f"{name} must be a non-empty 1-D array, got shape {array.shape}")
    _check_finite(name, array)
    if np.any(np.diff(array) <= 0):
        raise OscsimInputError(f"{name} must be strictly increasing")


def _positive_float(name: str, value: Any, *, allow_zero: bool = False) -> float:
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise OscsimInputError(f"{name} must be a number, got {value!r}") from None
    if not math.isfinite(number) or number < 0 or (number == 0 and not allow_zero):
        bound = ">= 0" if allow_zero else "> 0"
        raise OscsimInputError(f"{name} must be finite and {bound}, got {value!r}")
    return number


def _grid_steps(times: np.ndarray, dt: float) -> np.ndarray:
    """Step counts of the output times on ``t0 + n·dt``, or an error naming the misfit."""
    elapsed = times - times[0]
    steps = np.rint(elapsed / dt)
    misfit = np.abs(elapsed - steps * dt)
    bad = np.flatnonzero(misfit > GRID_TOLERANCE * np.maximum(1.0, np.abs(times)))
    if bad.size:
        k = int(bad[0])
        raise OscsimInputError(
            f"times[{k}] = {float(times[k])!r} is not on the fixed-step grid t0 + n·dt "
            f"(t0 = {float(times[0])!r}, dt = {dt!r}); choose times that are multiples of dt "
            "after times[0], or a dt that divides their spacing"
        )
    return steps.astype(np.int64)


def solve(
    params: NetworkParameters,
    position0: Any,
    velocity0: Any,
    times: Any,
    *,
    method: str = "rk4",
    dt: float | None = None,
    drive: Any = None,
    drive_times: Any = None,
    interpolation: str = "zoh",
    rtol: float = 1e-7,
    atol: float = 1e-9,
    progress: bool = False,
    max_state: float | None = DEFAULT_MAX_STATE,
    threads: int = 1,
) -> tuple[np.ndarray, np.ndarray]:
    r"""Integrate an oscillator network in float64 with a Numba reference solver.

    The system (docs/model.md), for position ``y`` and velocity ``z`` of shape ``(B, C, *grid)``:

    .. math::

        \dot y = z, \qquad
        \dot z = \mathrm{act}(K_y \star y + K_z \star z + d(t) + b) - \gamma y - \varepsilon z

    Parameters
    ----------
    params
        The network (coupling, kernels, ``gamma``, ``epsilon``, ``bias``, activation).
    position0, velocity0
        Initial state, each ``(B, C, *grid)``.
    times
        ``(S,)`` strictly increasing output times; ``times[0]`` is the initial time.
    method
        ``"euler"`` (order 1), ``"rk4"`` (Kutta's 3/8 rule, order 4, torchdiffeq's
        ``rk4``), ``"imex"`` (the coRNN scheme, order 1) or ``"dopri5"`` (adaptive
        Dormand–Prince 5(4) with torchdiffeq's step control).
    dt
        Step of the fixed-step methods (required there); steps lie on ``t0 + n·dt`` and
        every output time must be one of them (within ``1e-9·max(1, |t|)``). For ``dopri5``
        an optional first step (torchdiffeq's ``first_step``); without it the first step is
        chosen from the initial state.
    drive, drive_times
        Optional input already mapped onto the grid: samples ``(T, B, C, *grid)`` at the
        strictly increasing times ``(T,)``. No drive means zero input.
    interpolation
        ``"zoh"``: ``d(t)`` is the last sample at or before ``t`` (the first before it);
        ``"linear"``: linear between samples, held outside them.
    rtol, atol
        Relative and absolute tolerance of ``dopri5`` (ignored otherwise).
    progress
        Show a progress bar over output frames.
    max_state
        Divergence guard: stop with `IntegrationError` once ``|position|`` or ``|velocity|``
        exceeds ``max_state · max(1, |position0|, |velocity0|, |bias|, |drive|)``, at the
        model time it happens (`oscsim.stability`); ``None`` or ``inf``: finiteness only.
    threads
        Numba threads. ``1`` (the default) runs the serial kernels, whose speed does not
        depend on what else the machine runs; ``n >= 2`` runs the multi-threaded kernels
        on ``min(n, NUMBA_NUM_THREADS)`` threads, which pay from about `PARALLEL_MIN_SIZE`
        entries per kernel call on otherwise idle cores (a parallel kernel joins its
        threads at every stage: under load it waits on descheduled threads and runs
        several times slower). The results are the same to the last bit either way.

    Returns
    -------
    positions, velocities
        Each ``(S, B, C, *grid)`` float64: the state at every entry of ``times``.

    Raises
    ------
    OscsimInputError
        For a bad argument, before any work.
    IntegrationError
        If the state passes the ``max_state`` bound or becomes non-finite (or ``dopri5``'s
        step size underflows), naming the model time.

    Notes
    -----
    Fixed-step stages with ``c = 0`` and ``c = 1`` see the input one ulp inside the step
    (torchdiffeq's ``perturb=True``), so a zero-order-hold input is constant over each
    step; ``imex`` reads the input at ``t_n``. ``dopri5`` treats the sample times inside
    ``(times[0], times[-1])`` as jumps: no step crosses one.

    Examples
    --------
    >>> import numpy as np
    >>> from oscsim import NetworkParameters
    >>> from oscsim.reference import solve
    >>> params = NetworkParameters.random([8], coupling="none", gamma=1.0, epsilon=0.0,
    ...                                   activation="identity")
    >>> y0 = np.ones((1, 1, 8)); z0 = np.zeros((1, 1, 8))
    >>> y, z = solve(params, y0, z0, np.array([0.0, np.pi]), method="rk4", dt=np.pi / 1000)
    >>> bool(np.allclose(y[-1], -1.0, atol=1e-9))
    True
    """
    threads = check_threads(threads)
    if not isinstance(params, NetworkParameters):
        raise OscsimInputError(
            f"params must be an oscsim.NetworkParameters, got {type(params).__name__}"
        )
    if method not in REFERENCE_METHODS:
        raise OscsimInputError(
            f"method must be one of {', '.join(REFERENCE_METHODS)}; got {method!r}"
        )
    if interpolation not in INTERPOLATIONS:
        raise OscsimInputError(
            f"interpolation must be one of {', '.join(INTERPOLATIONS)}; got {interpolation!r}"
        )
    y = _float_array("position0", position0)
    z = _float_array("velocity0", velocity0)
    expected = params.state_shape
    if y.ndim != 1 + len(expected) or y.shape[1:] != expected or y.shape[0] < 1:
        raise OscsimInputError(
            f"position0 must have shape (B, {', '.join(map(str, expected))}) = (batch, "
            f"channels, *grid) for this network, got {y.shape}"
        )
    if z.shape != y.shape:
        raise OscsimInputError(
            f"velocity0 must have the shape of position0 {y.shape}, got {z.shape}"
        )
    _check_finite("position0", y)
    _check_finite("velocity0", z)
    t = _float_array("times", times)
    _check_increasing("times", t)

    batch = y.shape[0]
    height, width = _network.grid2d(params.grid)
    shape2d = (batch, params.channels, height, width)
    if drive is None:
        if drive_times is not None:
            raise OscsimInputError("drive_times was given without drive; give both or neither")
        inputs = InputSchedule.zero(shape2d)
        jumps = np.zeros(0)
    else:
        if drive_times is None:
            raise OscsimInputError("drive was given without drive_times; give both")
        samples = _float_array("drive", drive)
        sample_times = _float_array("drive_times", drive_times)
        _check_increasing("drive_times", sample_times)
        want = (len(sample_times), *y.shape)
        if samples.shape != want:
            raise OscsimInputError(
                f"drive must have shape (T, B, C, *grid) = {want} (T = len(drive_times)), "
                f"got {samples.shape}"
            )
        _check_finite("drive", samples)
        inputs = InputSchedule(
            samples.reshape((len(sample_times), *shape2d)),
            sample_times,
            linear=interpolation == "linear",
        )
        jumps = sample_times[(sample_times > t[0]) & (sample_times < t[-1])]

    tableau = _FIXED_STEP.get(method)
    step = None if dt is None else _positive_float("dt", dt)
    if method == "dopri5":
        rtol = _positive_float("rtol", rtol, allow_zero=True)
        atol = _positive_float("atol", atol)
        steps = np.zeros(0, dtype=np.int64)
    else:
        if step is None:
            raise OscsimInputError(
                f"dt is required for the fixed-step method {method!r}; give dt > 0"
            )
        steps = _grid_steps(t, step)

    bound = state_bound(max_state, y, z, params.bias_full, drive)
    net = _network.build(params)
    y = y.reshape(shape2d)
    z = z.reshape(shape2d)
    out_y = np.empty((len(t), *shape2d))
    out_z = np.empty((len(t), *shape2d))

    from tqdm.auto import tqdm

    with (
        numba_threads(threads) as count,
        tqdm(
            total=len(t), disable=not progress, desc=f"oscsim reference {method}", unit="frame"
        ) as bar,
    ):
        parallel = count > 1
        if method == "dopri5":
            integrate_dopri5(
                net, y, z, t, inputs, jumps, rtol, atol, out_y, out_z, bar.update,
                first_step=step, parallel=parallel, bound=bound,
            )  # fmt: skip
        else:
            integrate_fixed(
                net,
                tableau,
                y,
                z,
                float(t[0]),
                cast(float, step),
                steps,
                inputs,
                out_y,
                out_z,
                bar.update,
                parallel=parallel,
                bound=bound,
            )

    final = (len(t), *y.shape[:2], *params.grid)
    return out_y.reshape(final), out_z.reshape(final)
