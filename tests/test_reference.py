"""The Numba reference solvers (`oscsim.reference`) against independent answers.

Exact Fourier-mode solutions of linear networks, measured convergence orders, scipy's
DOP853, hand-computed input semantics, and equalities between couplings that describe the
same network. Nothing here uses the torch core.
"""

from __future__ import annotations

import math
import subprocess
import sys

import mpmath
import numba
import numpy as np
import pytest
import scipy.integrate
import scipy.linalg

from oscsim.errors import IntegrationError, OscsimInputError
from oscsim.parameters import NetworkParameters
from oscsim.reference import REFERENCE_METHODS, _kernels, _network, solve
from oscsim.reference._inputs import InputSchedule
from oscsim.reference._tableau import DOPRI5, TABLEAUX, ButcherTableau
from tests.helpers import numpy_field, relative_error

RNG = np.random.default_rng(20240611)


# --------------------------------------------------------------------------------------
# Exact solution of a one-channel linear network, mode by mode
# --------------------------------------------------------------------------------------


def _symbol(kernel: np.ndarray | None, grid: tuple[int, ...]) -> np.ndarray:
    """λ(m) = Σ_a K[a]·exp(2πi m·(a − r)/n): the cross-correlation's multiplier on the
    Fourier mode m (numpy's FFT convention), for a ``(k,)``/``(k, k)`` kernel."""
    if kernel is None:
        return np.zeros(grid, dtype=complex)
    periodic = np.zeros(grid)
    r = kernel.shape[-1] // 2
    for offset in np.ndindex(kernel.shape):
        periodic[tuple((a - r) % n for a, n in zip(offset, grid, strict=True))] += kernel[offset]
    return np.fft.ifftn(periodic) * periodic.size


def exact_linear(
    params: NetworkParameters,
    y0: np.ndarray,
    z0: np.ndarray,
    times: np.ndarray,
    forcing: np.ndarray,
) -> tuple[np.ndarray, np.ndarray]:
    """Solution of a one-channel ``identity`` network with a constant input ``forcing``
    (``(1, *grid)``, added to the bias): each Fourier mode solves
    ``Y'' = (λ_y − γ)·Y + (λ_z − ε)·Y' + F``, by the matrix exponential."""
    if params.channels != 1 or params.activation != "identity":
        raise ValueError("exact_linear covers one-channel identity networks")
    kernels = [params.kernel_position, params.kernel_velocity]
    lam_y, lam_z = (_symbol(None if k is None else k[0, 0], params.grid) for k in kernels)
    gamma, epsilon = params.gamma[0], params.epsilon[0]
    force_hat = np.fft.fftn(params.bias_full[0] + forcing[0])
    t0 = times[0]
    ys = np.empty((len(times), *y0.shape))
    zs = np.empty((len(times), *z0.shape))
    for b in range(y0.shape[0]):
        y_hat, z_hat = np.fft.fftn(y0[b, 0]), np.fft.fftn(z0[b, 0])
        out_y = np.empty((len(times), *params.grid), dtype=complex)
        out_z = np.empty_like(out_y)
        for m in np.ndindex(params.grid):
            # (Y, Z, 1)' = M (Y, Z, 1): the constant forcing rides in the last column.
            matrix = np.array(
                [
                    [0.0, 1.0, 0.0],
                    [lam_y[m] - gamma, lam_z[m] - epsilon, force_hat[m]],
                    [0.0, 0.0, 0.0],
                ]
            )
            start = np.array([y_hat[m], z_hat[m], 1.0])
            for k, t in enumerate(times):
                state = scipy.linalg.expm(matrix * (t - t0)) @ start
                out_y[(k, *m)], out_z[(k, *m)] = state[0], state[1]
        axes = tuple(range(1, 1 + params.ndim))
        ys[:, b, 0] = np.fft.ifftn(out_y, axes=axes).real
        zs[:, b, 0] = np.fft.ifftn(out_z, axes=axes).real
    return ys, zs


def linear_case(grid: tuple[int, ...], kernel_size: int) -> NetworkParameters:
    """A damped, stable one-channel linear network with a per-cell bias."""
    params = NetworkParameters.random(
        grid, 1, "local", kernel_size=kernel_size, gamma=1.3, epsilon=0.2, activation="identity",
        bias=0.0, rng=7,
    )  # fmt: skip
    return NetworkParameters(
        grid=params.grid,
        channels=1,
        coupling="local",
        kernel_position=0.5 * params.kernel_position,
        kernel_velocity=0.1 * params.kernel_velocity,
        gamma=params.gamma,
        epsilon=params.epsilon,
        bias=RNG.normal(size=(1, *params.grid)) * 0.3,
        activation="identity",
    )


@pytest.mark.parametrize(("grid", "kernel_size"), [((16,), 5), ((6, 10), 3)])
def test_linear_network_matches_exact_fourier_solution(grid, kernel_size):
    params = linear_case(grid, kernel_size)
    y0 = RNG.normal(size=(2, 1, *grid))
    z0 = RNG.normal(size=(2, 1, *grid))
    constant = RNG.normal(size=(1, *grid))
    drive = np.broadcast_to(constant, (1, 2, 1, *grid)).copy()
    times = np.linspace(0.5, 2.5, 5)
    want_y, want_z = exact_linear(params, y0, z0, times, constant)
    kwargs = dict(drive=drive, drive_times=np.array([0.0]))

    y, z = solve(params, y0, z0, times, method="rk4", dt=0.01, **kwargs)
    # Observed ≈ 3e-10 (h = 0.01, modes with |λ − γ| ≲ 2): the bound leaves a factor 30 for
    # the seed, while a third-order mistake (error ~ h³ ≈ 1e-6) would fail it.
    assert relative_error(y, want_y) < 1e-8
    assert relative_error(z, want_z) < 1e-8

    y, z = solve(params, y0, z0, times, method="dopri5", rtol=1e-10, atol=1e-12, **kwargs)
    # Each accepted step's error is kept below rtol = 1e-10 (relative); over the ~30 steps
    # to t = 2.5 the errors add up to at most a few times that (observed ≈ 1e-11).
    assert relative_error(y, want_y) < 3e-10
    assert relative_error(z, want_z) < 3e-10


@pytest.mark.parametrize(("method", "order", "dts"), [
    ("euler", 1, [1 / 50, 1 / 100, 1 / 200, 1 / 400]),
    ("imex", 1, [1 / 50, 1 / 100, 1 / 200, 1 / 400]),
    ("rk4", 4, [1 / 5, 1 / 10, 1 / 20, 1 / 40]),
])  # fmt: skip
def test_convergence_order(method, order, dts):
    params = linear_case((12,), 3)
    y0 = RNG.normal(size=(1, 1, 12))
    z0 = RNG.normal(size=(1, 1, 12))
    times = np.array([0.0, 1.0])
    want_y, _ = exact_linear(params, y0, z0, times, np.zeros((1, 12)))
    errors = []
    for dt in dts:
        y, _ = solve(params, y0, z0, times, method=method, dt=dt)
        errors.append(np.max(np.abs(y[-1] - want_y[-1])))
    slope = np.polyfit(np.log(dts), np.log(errors), 1)[0]
    # The fitted order of a refinement by halves lies within ±0.15 of the method's order
    # once the leading error term dominates (it does from the first dt listed).
    assert abs(slope - order) < 0.15, (method, slope, errors)


# --------------------------------------------------------------------------------------
# A nonlinear network against scipy's DOP853
# --------------------------------------------------------------------------------------


def test_dopri5_matches_scipy_dop853_on_a_tanh_network():
    params = NetworkParameters.random(
        (5, 6), 2, "local", kernel_size=3, gamma=[1.0, 0.6], epsilon=[0.1, 0.3],
        bias=RNG.normal(size=(2, 5, 6)) * 0.5, rng=3,
    )  # fmt: skip
    y0 = RNG.normal(size=(1, 2, 5, 6))
    z0 = RNG.normal(size=(1, 2, 5, 6))
    times = np.linspace(0.0, 3.0, 7)
    y, z = solve(params, y0, z0, times, method="dopri5", rtol=1e-10, atol=1e-12)
    reference = scipy.integrate.solve_ivp(
        numpy_field(params), (0.0, 3.0), np.concatenate([y0.ravel(), z0.ravel()]),
        method="DOP853", t_eval=times, rtol=1e-13, atol=1e-15,
    )  # fmt: skip
    size = y0.size
    want_y = reference.y[:size].T.reshape(y.shape)
    want_z = reference.y[size:].T.reshape(z.shape)
    # DOP853 at rtol 1e-13 is exact here to ~1e-12; dopri5 at rtol 1e-10 keeps each step's
    # error below 1e-10 (relative), and over the steps to t = 3 these errors add up to at
    # most ~10·rtol in this damped system (observed ≈ 7e-11).
    assert relative_error(y, want_y) < 1e-9
    assert relative_error(z, want_z) < 1e-9


# --------------------------------------------------------------------------------------
# Couplings that describe the same network
# --------------------------------------------------------------------------------------


def _dense_from_local(kernel: np.ndarray, grid: tuple[int, ...]) -> np.ndarray:
    """The (C·N × C·N) matrix of the circular cross-correlation with ``kernel``."""
    channels = kernel.shape[0]
    k = kernel.shape[-1]
    r = k // 2
    cells = list(np.ndindex(grid))
    n = len(cells)
    dense = np.zeros((channels * n, channels * n))
    for o in range(channels):
        for c in range(channels):
            for p, cell in enumerate(cells):
                for offset in np.ndindex((k,) * len(grid)):
                    source = tuple(
                        (x + a - r) % g for x, a, g in zip(cell, offset, grid, strict=True)
                    )
                    q = np.ravel_multi_index(source, grid)
                    dense[o * n + p, c * n + q] += kernel[(o, c, *offset)]
    return dense


@pytest.mark.parametrize("grid", [(7,), (4, 5)])
def test_global_coupling_with_the_local_matrix_equals_local(grid):
    local = NetworkParameters.random(grid, 2, "local", kernel_size=3, bias=0.2, rng=11)
    dense = NetworkParameters(
        grid=grid, channels=2, coupling="global",
        kernel_position=_dense_from_local(local.kernel_position, grid),
        kernel_velocity=_dense_from_local(local.kernel_velocity, grid),
        gamma=local.gamma, epsilon=local.epsilon, bias=local.bias,
    )  # fmt: skip
    y0 = RNG.normal(size=(2, 2, *grid))
    z0 = RNG.normal(size=(2, 2, *grid))
    times = np.array([0.0, 0.5, 1.0])
    want = solve(local, y0, z0, times, method="rk4", dt=0.05)
    got = solve(dense, y0, z0, times, method="rk4", dt=0.05)
    # Same sums in a different order (the dense rows add zeros and run over all cells):
    # rounding differences of a few ulp per evaluation, over 20 steps.
    np.testing.assert_allclose(got[0], want[0], rtol=0, atol=1e-12)
    np.testing.assert_allclose(got[1], want[1], rtol=0, atol=1e-12)


@pytest.mark.parametrize("grid", [(9,), (5, 7)])
def test_locally_connected_with_identical_kernels_equals_local(grid):
    local = NetworkParameters.random(grid, 2, "local", kernel_size=3, rng=12)
    ndim = len(grid)

    def per_cell(kernel: np.ndarray) -> np.ndarray:
        expanded = kernel.reshape(2, 2, *(1,) * ndim, *kernel.shape[2:])
        return np.broadcast_to(expanded, (2, 2, *grid, *kernel.shape[2:])).copy()

    untied = NetworkParameters(
        grid=grid, channels=2, coupling="locally_connected",
        kernel_position=per_cell(local.kernel_position),
        kernel_velocity=per_cell(local.kernel_velocity),
        gamma=local.gamma, epsilon=local.epsilon, bias=local.bias,
    )  # fmt: skip
    y0 = RNG.normal(size=(1, 2, *grid))
    z0 = RNG.normal(size=(1, 2, *grid))
    times = np.array([0.0, 1.0])
    for method in ("rk4", "imex"):
        want = solve(local, y0, z0, times, method=method, dt=0.05)
        got = solve(untied, y0, z0, times, method=method, dt=0.05)
        # The same products summed in the same order: equal up to the last bit, which the
        # tolerance allows for in case the vectorised and scalar code round differently.
        np.testing.assert_allclose(got[0], want[0], rtol=0, atol=1e-14)


def test_locally_connected_uses_each_cells_own_kernel():
    """Zero every cell's kernel but one: only that cell couples."""
    grid = (5, 6)
    kernel = np.zeros((1, 1, *grid, 3, 3))
    kernel[0, 0, 2, 4, 0, 2] = 1.0  # cell (2, 4) reads y at (1, 5)
    params = NetworkParameters(
        grid=grid, channels=1, coupling="locally_connected", kernel_position=kernel,
        kernel_velocity=np.zeros_like(kernel), gamma=0.0, epsilon=0.0, bias=0.0,
        activation="identity",
    )  # fmt: skip
    y0 = np.zeros((1, 1, *grid))
    y0[0, 0, 1, 5] = 2.0
    z0 = np.zeros_like(y0)
    _, z = solve(params, y0, z0, np.array([0.0, 0.1]), method="euler", dt=0.1)
    expected = np.zeros_like(y0)
    expected[0, 0, 2, 4] = 0.1 * 2.0  # one Euler step of z' = K⋆y
    np.testing.assert_allclose(z[-1], expected, rtol=0, atol=1e-15)


def test_local_kernel_orientation_matches_the_convention():
    """out[i, j] = Σ K[a, b]·y[i + a − 1, j + b − 1] on a 3×3 kernel, with wrap-around."""
    grid = (4, 5)
    kernel = np.zeros((1, 1, 3, 3))
    kernel[0, 0, 0, 2] = 1.0  # reads y[i − 1, j + 1]
    params = NetworkParameters(
        grid=grid, channels=1, coupling="local", kernel_position=kernel,
        kernel_velocity=np.zeros_like(kernel), gamma=0.0, epsilon=0.0, bias=0.0,
        activation="identity",
    )  # fmt: skip
    y0 = RNG.normal(size=(1, 1, *grid))
    _, z = solve(params, y0, np.zeros_like(y0), np.array([0.0, 1.0]), method="euler", dt=1.0)
    expected = np.roll(y0, shift=(1, -1), axis=(2, 3))  # expected[i, j] = y[i − 1, j + 1]
    np.testing.assert_allclose(z[-1], expected, rtol=0, atol=1e-15)


# --------------------------------------------------------------------------------------
# Input semantics
# --------------------------------------------------------------------------------------


def _free_particle() -> NetworkParameters:
    """z' = d(t) + b, y' = z: the state integrates the input exactly."""
    return NetworkParameters(
        grid=(3,), channels=1, coupling="none", kernel_position=None, kernel_velocity=None,
        gamma=0.0, epsilon=0.0, bias=0.0, activation="identity",
    )  # fmt: skip


SAMPLES = np.array([1.0, 3.0, -2.0])
SAMPLE_TIMES = np.array([0.0, 1.0, 2.0])


def _drive() -> np.ndarray:
    return np.broadcast_to(SAMPLES[:, None, None, None], (3, 1, 1, 3)).copy()


@pytest.mark.parametrize("method", ["euler", "rk4", "dopri5"])
def test_zero_order_hold_input_by_hand(method):
    # d = 1 on [0, 1), 3 on [1, 2), −2 from 2 on: z(2.5) = 1 + 3 − 1 = 3 and
    # y(2.5) = ∫z = 1/2 + (1 + 3/2) + (4·1/2 − 1/4) = 4.75.
    y, z = solve(
        _free_particle(), np.zeros((1, 1, 3)), np.zeros((1, 1, 3)), np.array([0.0, 2.5]),
        method=method, dt=0.25, drive=_drive(), drive_times=SAMPLE_TIMES, rtol=1e-10,
        atol=1e-12,
    )  # fmt: skip
    # Euler is exact for z (a step sees one constant input); rk4 and dopri5 integrate the
    # piecewise polynomials exactly when no step straddles a jump. Rounding only.
    np.testing.assert_allclose(z[-1], 3.0, rtol=0, atol=1e-12)
    if method != "euler":
        np.testing.assert_allclose(y[-1], 4.75, rtol=0, atol=1e-12)


@pytest.mark.parametrize("method", ["rk4", "dopri5"])
def test_linear_input_by_hand(method):
    # d(t) = 1 + 2t on [0, 1], 3 − 5(t − 1) on [1, 2], −2 after: z(2.5) = 2 + 0.5 − 1 = 1.5.
    # y(2.5) = ∫z: ∫_0^1 (t + t²) = 5/6; ∫_0^1 (2 + 3s − 2.5s²) = 3.5 − 5/6;
    # ∫_0^0.5 (2.5 − 2s) = 1: y(2.5) = 4.5.
    y, z = solve(
        _free_particle(), np.zeros((1, 1, 3)), np.zeros((1, 1, 3)), np.array([0.0, 2.5]),
        method=method, dt=0.25, drive=_drive(), drive_times=SAMPLE_TIMES,
        interpolation="linear", rtol=1e-10, atol=1e-12,
    )  # fmt: skip
    # Polynomial pieces of degree ≤ 3 in y: exact for both methods up to rounding.
    np.testing.assert_allclose(z[-1], 1.5, rtol=0, atol=1e-12)
    np.testing.assert_allclose(y[-1], 4.5, rtol=0, atol=1e-12)


def test_imex_reads_the_input_at_the_start_of_each_step():
    dt = 0.25
    y, z = solve(
        _free_particle(), np.zeros((1, 1, 3)), np.zeros((1, 1, 3)), np.arange(11) * dt,
        method="imex", dt=dt, drive=_drive(), drive_times=SAMPLE_TIMES,
    )  # fmt: skip
    step_input = SAMPLES[np.minimum(np.arange(10) // 4, 2)]  # d(t_n), t_n = n/4
    want_z = np.concatenate([[0.0], np.cumsum(dt * step_input)])
    want_y = np.concatenate([[0.0], np.cumsum(dt * want_z[1:])])  # y uses the new z
    np.testing.assert_allclose(z[:, 0, 0, 0], want_z, rtol=0, atol=1e-14)
    np.testing.assert_allclose(y[:, 0, 0, 0], want_y, rtol=0, atol=1e-14)


def test_input_schedule_boundaries():
    samples = np.zeros((3, 1, 1, 1, 1))
    times = np.array([0.5, 1.5, 2.5])
    zoh = InputSchedule(samples, times, linear=False)
    i0, i1, w = zoh.weights(np.array([0.0, 0.5, 1.4999, 1.5, 9.0]))
    np.testing.assert_array_equal(i0, [0, 0, 0, 1, 2])  # before s_0: sample 0
    np.testing.assert_array_equal(i1, i0)
    np.testing.assert_array_equal(w, 0.0)
    linear = InputSchedule(samples, times, linear=True)
    i0, i1, w = linear.weights(np.array([0.0, 1.0, 1.5, 2.5, 9.0]))
    np.testing.assert_array_equal(i0, [0, 0, 1, 2, 2])
    np.testing.assert_array_equal(i1, [0, 1, 2, 2, 2])
    np.testing.assert_allclose(w, [0.0, 0.5, 0.0, 0.0, 0.0], rtol=0, atol=1e-15)
    for t in (0.0, 1.0, 1.5, 2.5, 9.0):
        a = linear.weights(np.array([t]))
        assert linear.weights_at(t) == (int(a[0][0]), int(a[1][0]), float(a[2][0]))


# --------------------------------------------------------------------------------------
# Building blocks: tableaux, tanh, the parallel kernels
# --------------------------------------------------------------------------------------


def test_tableaux_check_themselves():
    for tableau in TABLEAUX.values():
        np.testing.assert_allclose(tableau.a.sum(axis=1), tableau.c, atol=1e-15)
    assert DOPRI5.first_same_as_last
    with pytest.raises(ValueError, match="rows of a"):
        ButcherTableau(name="bad", order=1, c=[0.0, 0.5], a=[[0, 0], [0.4, 0]], b=[0.5, 0.5])
    with pytest.raises(ValueError, match="sum to"):
        ButcherTableau(name="bad", order=1, c=[0.0], a=[[0.0]], b=[0.9])
    with pytest.raises(ValueError, match="lower triangular"):
        ButcherTableau(name="bad", order=1, c=[0.5], a=[[0.5]], b=[1.0])


def _tanh_ulp_errors(x: np.ndarray, got: np.ndarray) -> np.ndarray:
    """|got − tanh(x)| in units in the last place of the exact value, tanh(x) from mpmath
    at 113 bits and carried as hi + lo (two doubles), so the difference is exact."""
    mpmath.mp.prec = 113
    exact = [mpmath.tanh(mpmath.mpf(float(v))) for v in x]
    hi = np.array([float(e) for e in exact])
    lo = np.array([float(e - mpmath.mpf(h)) for e, h in zip(exact, hi, strict=True)])
    # The ulp of |tanh| just below hi (so 2^-53, not 2^-52, at hi = ±1).
    ulp = np.spacing(np.nextafter(np.abs(hi), 0.0))
    return np.abs((got - hi) - lo) / ulp


def test_tanh_is_within_1_5_ulp_of_the_exact_value():
    x = np.concatenate([
        RNG.uniform(-25, 25, 20_000), RNG.uniform(-1, 1, 20_000),
        RNG.uniform(0.55, 0.75, 10_000), -RNG.uniform(0.55, 0.75, 10_000),
        np.geomspace(1e-300, 30, 4_000), -np.geomspace(1e-300, 30, 4_000),
        np.nextafter(0.625, [-1.0, 2.0]), [0.624, 0.626, 19.0, 20.0, 21.0, 1e300, 5e-324],
    ])  # fmt: skip
    out = np.empty_like(x)
    _kernels.tanh_array(x, out)
    # Observed 1.31 ulp, near |x| = 0.63 (the version with three divisions: 1.29); glibc's
    # tanh is specified to 2 ulp. 1.5 ulp leaves room for the rounding of other samples.
    assert _tanh_ulp_errors(x, out).max() <= 1.5
    special = np.array([-0.0, 0.0, np.inf, -np.inf, np.nan])
    out = np.empty_like(special)
    _kernels.tanh_array(special, out)
    assert math.copysign(1.0, out[0]) == -1.0 and out[0] == 0.0
    assert math.copysign(1.0, out[1]) == 1.0 and out[1] == 0.0
    assert out[2] == 1.0 and out[3] == -1.0 and np.isnan(out[4])


def _acceleration_by_hand(
    params: NetworkParameters, y: np.ndarray, z: np.ndarray, drive: np.ndarray, w: float
) -> np.ndarray:
    """The `identity` acceleration of a `local` or `locally_connected` network, each output
    summed over (c, a, b) in that order from 0, as the kernels promise, with NumPy rolls;
    ``y``, ``z`` are (B, C, H, W), ``drive`` (2, B, C, H, W) mixed with weight ``w``."""
    net = _network.build(params)
    k_pos, k_vel = net.kernel_position, net.kernel_velocity
    channels, kh, kw = k_pos.shape[1], k_pos.shape[2], k_pos.shape[3]
    coupled = np.zeros_like(y)
    for o in range(channels):
        total = np.zeros_like(y[:, 0])
        for c in range(channels):
            for a in range(kh):
                for b in range(kw):
                    # shifted[i, j] = x[i + a − kh // 2, j + b − kw // 2], periodic
                    shift = (kh // 2 - a, kw // 2 - b)
                    ys = np.roll(y[:, c], shift, axis=(1, 2))
                    zs = np.roll(z[:, c], shift, axis=(1, 2))
                    total = total + (k_pos[o, c, a, b] * ys + k_vel[o, c, a, b] * zs)
        coupled[:, o] = total
    d = drive[0] + w * (drive[1] - drive[0])
    gamma = net.gamma[None, :, None, None]
    epsilon = net.epsilon[None, :, None, None]
    return (coupled + d + net.bias[None]) - gamma * y - epsilon * z


@pytest.mark.parametrize(
    ("grid", "coupling", "kernel_size"),
    [((11,), "local", 5), ((5, 7), "local", 1), ((5, 7), "local", 3), ((5, 7), "local", 5),
     ((8, 9), "local", 7), ((6, 7), "locally_connected", 3), ((7, 8), "locally_connected", 5)],
)  # fmt: skip
def test_coupling_sums_every_output_in_order(grid, coupling, kernel_size):
    """The stencil kernels (three taps per pass, edges read through a wrapped copy of the
    row) give exactly the plain sum in (c, a, b) order, for kernels of every width modulo 3."""
    params = NetworkParameters.random(
        grid, 2, coupling, kernel_size=kernel_size, gamma=[0.7, 1.3], epsilon=[0.2, 0.1],
        bias=RNG.normal(size=(2, *grid)), activation="identity", rng=kernel_size,
    )  # fmt: skip
    shape = (2, 2, *(grid if len(grid) == 2 else (1, *grid)))
    y, z = RNG.normal(size=shape), RNG.normal(size=shape)
    drive = RNG.normal(size=(2, *shape))
    out = np.empty(shape)
    _kernels.acceleration(_network.build(params), y, z, drive, 0, 1, 0.3, out)
    # The same products and sums in the same order: equal to the last bit.
    np.testing.assert_array_equal(out, _acceleration_by_hand(params, y, z, drive, 0.3))


@pytest.mark.slow
@pytest.mark.skipif(numba.get_num_threads() < 2, reason="the parallel kernels need 2 threads")
def test_parallel_kernels_equal_the_serial_ones():
    params = NetworkParameters.random((6, 8), 2, "local", kernel_size=3, bias=0.1, rng=5)
    y0 = RNG.normal(size=(2, 2, 6, 8))
    z0 = RNG.normal(size=(2, 2, 6, 8))
    times = np.array([0.0, 0.5, 1.0])
    drive = RNG.normal(size=(3, 2, 2, 6, 8))
    kwargs = dict(dt=0.05, drive=drive, drive_times=np.array([0.0, 0.3, 0.7]))
    serial = {
        m: solve(params, y0, z0, times, method=m, **kwargs) for m in ("rk4", "imex", "dopri5")
    }
    # The threaded kernels, asked for explicitly (threads=1 is the default).
    for method, want in serial.items():
        got = solve(params, y0, z0, times, method=method, threads=2, **kwargs)
        # Rows are only shared out among threads, each computed as before: same bits.
        np.testing.assert_array_equal(got[0], want[0])
        np.testing.assert_array_equal(got[1], want[1])


# --------------------------------------------------------------------------------------
# Interface
# --------------------------------------------------------------------------------------


def test_outputs_at_every_time_with_the_initial_state_first():
    params = NetworkParameters.random((8,), 3, "local", kernel_size=3, rng=1)
    y0 = RNG.normal(size=(2, 3, 8))
    z0 = RNG.normal(size=(2, 3, 8))
    times = 1.0 + 0.1 * np.arange(6)
    for method in REFERENCE_METHODS:
        y, z = solve(params, y0, z0, times, method=method, dt=0.05, progress=True)
        assert y.shape == z.shape == (6, 2, 3, 8)
        np.testing.assert_array_equal(y[0], y0)
        np.testing.assert_array_equal(z[0], z0)
        assert np.all(np.isfinite(y))
    # Frames are samples of one trajectory: stopping early gives the same frames.
    full = solve(params, y0, z0, times, method="rk4", dt=0.05)
    part = solve(params, y0, z0, times[:3], method="rk4", dt=0.05)
    np.testing.assert_array_equal(full[0][:3], part[0])


def test_non_finite_state_raises_integration_error():
    kernel = np.full((1, 1, 3), 1e3)
    params = NetworkParameters(
        grid=(5,), channels=1, coupling="local", kernel_position=kernel,
        kernel_velocity=np.zeros_like(kernel), gamma=0.0, epsilon=0.0, bias=0.0,
        activation="identity",
    )  # fmt: skip
    y0 = np.ones((1, 1, 5))
    for method in ("euler", "imex"):
        with pytest.raises(IntegrationError, match=r"non-finite.*t = .*reduce dt"):
            solve(params, y0, np.zeros_like(y0), np.array([0.0, 1000.0]), method=method, dt=1.0)


PARAMS = NetworkParameters.random((6,), 1, "local", kernel_size=3, rng=0)
STATE = np.zeros((1, 1, 6))
GOOD = dict(params=PARAMS, position0=STATE, velocity0=STATE, times=np.array([0.0, 1.0]))


@pytest.mark.parametrize(("change", "message"), [
    (dict(params="not parameters"), "params must be"),
    (dict(position0=np.zeros((1, 6))), "position0 must have shape"),
    (dict(position0=np.zeros((1, 2, 6))), "position0 must have shape"),
    (dict(velocity0=np.zeros((2, 1, 6))), "velocity0 must have the shape"),
    (dict(position0=np.full((1, 1, 6), np.nan)), "position0 contains NaN"),
    (dict(times=np.array([0.0, 1.0, 1.0])), "times must be strictly increasing"),
    (dict(times=np.array([])), "times must be a non-empty 1-D array"),
    (dict(method="rk45"), "method must be one of euler, rk4, imex, dopri5"),
    (dict(interpolation="cubic"), "interpolation must be one of zoh, linear"),
    (dict(dt=None), "dt is required"),
    (dict(dt=-0.1), "dt must be finite and > 0"),
    (dict(dt=0.3), r"times\[1\] = 1.0 is not on the fixed-step grid"),
    (dict(drive=np.zeros((2, 1, 1, 6))), "drive was given without drive_times"),
    (dict(drive_times=np.array([0.0])), "drive_times was given without drive"),
    (dict(drive=np.zeros((2, 1, 1, 5)), drive_times=np.array([0.0, 1.0])), "drive must have shape"),
    (dict(drive=np.zeros((2, 1, 1, 6)), drive_times=np.array([1.0, 0.0])), "drive_times must be"),
    (dict(method="dopri5", atol=0.0), "atol must be finite and > 0"),
    (dict(method="dopri5", rtol=-1.0), "rtol must be finite and >= 0"),
])  # fmt: skip
def test_bad_arguments_raise_input_errors(change, message):
    arguments = {**GOOD, "dt": 0.1, **change}
    positional = [arguments.pop(k) for k in ("params", "position0", "velocity0", "times")]
    with pytest.raises(OscsimInputError, match=message):
        solve(*positional, **arguments)


def test_the_reference_package_does_not_import_torch():
    code = "import oscsim.reference, sys; assert 'torch' not in sys.modules, 'torch imported'"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


def test_threads_is_an_explicit_checked_option():
    """Threads come from the ``threads`` argument (default 1), never from the machine's load:
    the same answer to the last bit for every setting, and a bad value refused first."""
    params = NetworkParameters.random((6,), 1, "local", kernel_size=3, rng=2)
    y0 = RNG.normal(size=(1, 1, 6))
    z0 = np.zeros_like(y0)
    times = np.array([0.0, 0.2])
    want = solve(params, y0, z0, times, method="rk4", dt=0.05)
    got = solve(params, y0, z0, times, method="rk4", dt=0.05, threads=1)
    np.testing.assert_array_equal(got[0], want[0])
    for bad in (0, -1, 1.5, True, "2"):
        with pytest.raises(OscsimInputError, match="threads must be an integer >= 1"):
            solve(params, y0, z0, times, method="rk4", dt=0.05, threads=bad)
