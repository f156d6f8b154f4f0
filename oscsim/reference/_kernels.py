"""Numba kernels of the reference solvers (float64, no fastmath, compiled once and cached).

Every array argument has one fixed type (C-contiguous float64 of a fixed rank; the records
are always built the same way), so each kernel compiles to exactly one specialization
whatever the coupling, activation or method. Options are values in the `Network` record,
compared with the named constants below.

All kernels that call one another live in this one file: Numba's on-disk cache keys a
function on its own file only, so a caller in another file could keep a stale copy of an
edited callee.

Layout: the state is ``(B, C, H, W)``; a ring of ``n`` cells is the torus ``1 × n`` (with
a ``1 × k`` kernel the sums are term for term those of the ring). A *row* is one
``(sample, channel, grid row)``; row ``r`` holds the flat elements ``[r·W, (r+1)·W)``.

Stages are computed row by row: a row's task evaluates the stage's acceleration for that
row and then, element-wise, the next stage's state (or the step's result) for the same
row, so a stage is one pass over the rows. The parallel step loops (`rk_steps_parallel`,
`imex_steps_parallel`) share each pass's rows among the threads with one ``prange`` over
contiguous blocks of rows, one parallel region per stage. The ``prange`` body calls a
serial helper (loops written inline in a ``prange`` body are not vectorised by LLVM, a
called function's are). Parallel kernels are only called from Python: a jitted caller
would compile its own copy of every parallel region, which costs seconds.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
from numba import njit, prange

# Coupling kinds, as stored in ``Network.coupling``.
COUPLING_STENCIL = 0  # `local`: one kernel shared by all cells
COUPLING_PER_CELL = 1  # `locally_connected`: a kernel per output cell
COUPLING_DENSE = 2  # `global`: a dense matrix over all cells of all channels
COUPLING_NONE = 3  # `none`

_FLOAT_MAX = 1.7976931348623157e308

# Only the explicit prange loops run in parallel; array expressions stay serial.
_PARALLEL = {
    "comprehension": False,
    "reduction": False,
    "inplace_binop": False,
    "setitem": False,
    "numpy": False,
    "stencil": False,
    "fusion": False,
    "prange": True,
}


class Network(NamedTuple):
    """The network in the kernels' layout; arrays are read-only float64, C-contiguous.

    ``kernel_position``/``kernel_velocity`` are ``(C, C, kh, kw, KH, KW)``: the weight of
    input channel ``c`` at offset ``(a, b)`` for output channel ``o`` at cell ``(i, j)`` is
    ``K[o, c, a, b, i, j]`` with ``(KH, KW) = (H, W)`` per cell, or ``K[o, c, a, b, 0, 0]``
    with ``(KH, KW) = (1, 1)`` shared. ``dense_*`` hold the *transposed* dense matrices,
    ``(C·H·W, C·H·W)`` with ``dense[k, m]`` the weight of input ``k`` in output ``m``, for the
    dense coupling, and ``(0, 0)`` otherwise.
    """

    coupling: int
    tanh: bool
    kernel_position: np.ndarray
    kernel_velocity: np.ndarray
    dense_position: np.ndarray
    dense_velocity: np.ndarray
    gamma: np.ndarray  # (C,)
    epsilon: np.ndarray  # (C,)
    bias: np.ndarray  # (C, H, W)


class Workspace(NamedTuple):
    """Work arrays of one integration (``S`` stages, state shape ``(B, C, H, W)``)."""

    ky: np.ndarray  # (S, B, C, H, W): stage velocities, i.e. the position's derivatives
    kz: np.ndarray  # (S, B, C, H, W): stage accelerations
    ys: np.ndarray  # (2, B, C, H, W): stage positions, alternating (stage 0's is the state)
    scratch: np.ndarray  # (2, B, C, H, W)
    bad: np.ndarray  # (B·C·H,) int64: non-finite entries found per row


def workspace(stages: int, shape: tuple[int, ...]) -> Workspace:
    """Allocate a `Workspace` for ``stages`` stages and states of ``shape`` (B, C, H, W)."""
    return Workspace(
        ky=np.zeros((stages, *shape)),
        kz=np.zeros((stages, *shape)),
        ys=np.zeros((2, *shape)),
        scratch=np.zeros((2, *shape)),
        bad=np.zeros(shape[0] * shape[1] * shape[2], dtype=np.int64),
    )


# ---------------------------------------------------------------------------------------
# tanh
# ---------------------------------------------------------------------------------------
# libm's tanh is a scalar call (~10 ns here) that keeps the loop around it from being
# vectorised; the activation then dominates the whole right-hand side. This version is
# plain arithmetic and selects, so LLVM vectorises it; it is within 1 ulp of the correctly
# rounded tanh on the tests' samples (libm: 2 ulp), so the reference loses no accuracy.
#
# |x| < 0.625: Cephes' odd rational approximation (relative error < 2.5e-16).
# otherwise:   sign(x)·(1 − 2/(e^{2|x|} + 1)), with e^v from fdlibm's argument reduction and
#              rational remainder (< 1 ulp); 2|x| is capped at 40, where tanh rounds to ±1,
#              so 2^k (k ≤ 58) is built exactly from six power-of-two factors.
_LN2_HI = 6.93147180369123816490e-01
_LN2_LO = 1.90821492927058770002e-10
_INV_LN2 = 1.44269504088896338700e00
_EXP_P1 = 1.66666666666666019037e-01
_EXP_P2 = -2.77777777770155933842e-03
_EXP_P3 = 6.61375632143793436117e-05
_EXP_P4 = -1.65339022054652515390e-06
_EXP_P5 = 4.13813679705723846039e-08
_TANH_P0 = -9.64399179425052238628e-01
_TANH_P1 = -9.92877231001918586564e01
_TANH_P2 = -1.61468768441708447952e03
_TANH_Q0 = 1.12811678491632931402e02
_TANH_Q1 = 2.23548839060100448583e03
_TANH_Q2 = 4.84406305325125486048e03


@njit(cache=True, error_model="numpy")
def tanh(x: float) -> float:
    """Hyperbolic tangent of a float64, vectorisable, within 1 ulp (see the comment above)."""
    ax = abs(x)
    x2 = x * x
    numerator = (_TANH_P0 * x2 + _TANH_P1) * x2 + _TANH_P2
    denominator = ((x2 + _TANH_Q0) * x2 + _TANH_Q1) * x2 + _TANH_Q2
    small = x + x * x2 * (numerator / denominator)
    v = 2.0 * ax
    v = v if v < 40.0 else 40.0
    v = v if v == v else 0.0  # NaN: keep the integer conversion below defined
    k = int(v * _INV_LN2 + 0.5)
    hi = v - k * _LN2_HI
    lo = k * _LN2_LO
    r = hi - lo
    r2 = r * r
    c = r - r2 * (_EXP_P1 + r2 * (_EXP_P2 + r2 * (_EXP_P3 + r2 * (_EXP_P4 + r2 * _EXP_P5))))
    mantissa = 1.0 - ((lo - (r * c) / (2.0 - c)) - hi)
    scale = 2.0 if k & 1 else 1.0
    scale *= 4.0 if k & 2 else 1.0
    scale *= 16.0 if k & 4 else 1.0
    scale *= 256.0 if k & 8 else 1.0
    scale *= 65536.0 if k & 16 else 1.0
    scale *= 4294967296.0 if k & 32 else 1.0
    big = 1.0 - 2.0 / (scale * mantissa + 1.0)
    big = big if x >= 0.0 else -big
    result = small if ax < 0.625 else big
    result = x if x == 0.0 else result  # keeps the sign of zero
    return result if x == x else x


@njit(cache=True, error_model="numpy")
def tanh_array(x: np.ndarray, out: np.ndarray) -> None:
    """``out = tanh(x)`` element-wise for 1-D arrays (for the tests and benchmarks)."""
    for i in range(x.shape[0]):
        out[i] = tanh(x[i])


# ---------------------------------------------------------------------------------------
# The vector field, one row at a time:
#     acceleration = act(K_y⋆y + K_z⋆z + d(t) + b) − γ·y − ε·z
# with d(t) = drive[i0] + w·(drive[i1] − drive[i0]) (w = 0 gives drive[i0] exactly).
# ---------------------------------------------------------------------------------------


@njit(cache=True, error_model="numpy")
def _source_row(i: int, a: int, rh: int, height: int) -> int:
    """Grid row read by output row ``i`` at kernel row ``a`` (periodic)."""
    ii = i + a - rh
    if ii < 0:
        ii += height
    elif ii >= height:
        ii -= height
    return ii


@njit(cache=True, error_model="numpy")
def _stencil_interior(
    net: Network, y: np.ndarray, z: np.ndarray, bb: int, o: int, i: int, out: np.ndarray
) -> None:
    """Add the coupling to the outputs ``rw ≤ j < W − rw`` of a row, which need no
    wrap-around along the row.

    Output ``rw + t`` reads input ``b + t``: the loop index starts at 0 and no index can be
    negative, so LLVM vectorises the loop (a possibly negative index makes Numba insert a
    wrap-around select that defeats it). The shared and per-cell kernels get separate loop
    nests so that no branch sits inside them.
    """
    channels, height, width = y.shape[1], y.shape[2], y.shape[3]
    ky, kz = net.kernel_position, net.kernel_velocity
    kh, kw = ky.shape[2], ky.shape[3]
    rh, rw = kh // 2, kw // 2
    inner = width - 2 * rw
    if net.coupling == COUPLING_PER_CELL:
        for c in range(channels):
            for a in range(kh):
                ii = _source_row(i, a, rh, height)
                yrow, zrow = y[bb, c, ii], z[bb, c, ii]
                for b in range(kw):
                    wy, wz = ky[o, c, a, b, i], kz[o, c, a, b, i]
                    for t in range(inner):
                        out[rw + t] += wy[rw + t] * yrow[b + t] + wz[rw + t] * zrow[b + t]
    else:
        for c in range(channels):
            for a in range(kh):
                ii = _source_row(i, a, rh, height)
                yrow, zrow = y[bb, c, ii], z[bb, c, ii]
                for b in range(kw):
                    vy, vz = ky[o, c, a, b, 0, 0], kz[o, c, a, b, 0, 0]
                    for t in range(inner):
                        out[rw + t] += vy * yrow[b + t] + vz * zrow[b + t]


@njit(cache=True, error_model="numpy")
def _stencil_point(
    net: Network, y: np.ndarray, z: np.ndarray, bb: int, o: int, i: int, j: int
) -> float:
    """The coupling at one output cell, wrapping both ways, summed in the interior's order."""
    channels, height, width = y.shape[1], y.shape[2], y.shape[3]
    ky, kz = net.kernel_position, net.kernel_velocity
    kh, kw = ky.shape[2], ky.shape[3]
    rh, rw = kh // 2, kw // 2
    pi = i if net.coupling == COUPLING_PER_CELL else 0
    pj = j if net.coupling == COUPLING_PER_CELL else 0
    total = 0.0
    for c in range(channels):
        for a in range(kh):
            ii = _source_row(i, a, rh, height)
            for b in range(kw):
                jj = _source_row(j, b, rw, width)
                total += (
                    ky[o, c, a, b, pi, pj] * y[bb, c, ii, jj]
                    + kz[o, c, a, b, pi, pj] * z[bb, c, ii, jj]
                )
    return total


@njit(cache=True, error_model="numpy")
def _stencil_row(
    net: Network, y: np.ndarray, z: np.ndarray, bb: int, o: int, i: int, out: np.ndarray
) -> None:
    """``out[:] = (K_y⋆y + K_z⋆z)[bb, o, i, :]``, circular cross-correlation; every output
    is summed over ``(c, a, b)`` in that order."""
    width = y.shape[3]
    rw = net.kernel_position.shape[3] // 2
    for j in range(width):
        out[j] = 0.0
    _stencil_interior(net, y, z, bb, o, i, out)
    for e in range(rw):
        out[e] = _stencil_point(net, y, z, bb, o, i, e)
        out[width - 1 - e] = _stencil_point(net, y, z, bb, o, i, width - 1 - e)


@njit(cache=True, error_model="numpy")
def _dense_row(
    net: Network, y: np.ndarray, z: np.ndarray, bb: int, o: int, i: int, out: np.ndarray
) -> None:
    """``out[:] = (W_y·y + W_z·z)`` for the outputs of row ``(bb, o, i)``, summed over the
    inputs in their flat ``(channel, *grid)`` order."""
    height, width = y.shape[2], y.shape[3]
    flat_y = y[bb].reshape(y[bb].size)
    flat_z = z[bb].reshape(z[bb].size)
    first = (o * height + i) * width
    wy_all, wz_all = net.dense_position, net.dense_velocity
    for j in range(width):
        out[j] = 0.0
    for k in range(flat_y.shape[0]):
        wy = wy_all[k, first : first + width]
        wz = wz_all[k, first : first + width]
        yk = flat_y[k]
        zk = flat_z[k]
        for j in range(width):
            out[j] += wy[j] * yk + wz[j] * zk


@njit(cache=True, error_model="numpy")
def _activate_row(
    net: Network,
    y: np.ndarray,
    z: np.ndarray,
    d0: np.ndarray,
    d1: np.ndarray,
    w: float,
    bias: np.ndarray,
    gamma: float,
    epsilon: float,
    out: np.ndarray,
) -> None:
    """``out = act(out + (d0 + w·(d1 − d0)) + bias) − γ·y − ε·z`` along one row."""
    if net.tanh:
        for j in range(out.shape[0]):
            drive = d0[j] + w * (d1[j] - d0[j])
            out[j] = tanh(out[j] + drive + bias[j]) - gamma * y[j] - epsilon * z[j]
    else:
        for j in range(out.shape[0]):
            drive = d0[j] + w * (d1[j] - d0[j])
            out[j] = (out[j] + drive + bias[j]) - gamma * y[j] - epsilon * z[j]


@njit(cache=True, error_model="numpy")
def _acceleration_row(
    net: Network,
    y: np.ndarray,
    z: np.ndarray,
    drive: np.ndarray,
    i0: int,
    i1: int,
    w: float,
    out: np.ndarray,
    row: int,
) -> None:
    """Row ``row`` of the acceleration at the state ``(y, z)``, written into ``out``."""
    channels, height = y.shape[1], y.shape[2]
    bb = row // (channels * height)
    o = (row // height) % channels
    i = row % height
    orow = out[bb, o, i]
    if net.coupling == COUPLING_STENCIL or net.coupling == COUPLING_PER_CELL:
        _stencil_row(net, y, z, bb, o, i, orow)
    elif net.coupling == COUPLING_DENSE:
        _dense_row(net, y, z, bb, o, i, orow)
    else:
        for j in range(orow.shape[0]):
            orow[j] = 0.0
    _activate_row(
        net,
        y[bb, o, i],
        z[bb, o, i],
        drive[i0, bb, o, i],
        drive[i1, bb, o, i],
        w,
        net.bias[o, i],
        net.gamma[o],
        net.epsilon[o],
        orow,
    )


@njit(cache=True, error_model="numpy")
def acceleration(
    net: Network,
    y: np.ndarray,
    z: np.ndarray,
    drive: np.ndarray,
    i0: int,
    i1: int,
    w: float,
    out: np.ndarray,
) -> None:
    """Write the acceleration ``dz/dt`` at ``(y, z)`` (each ``(B, C, H, W)``) into ``out``
    (serially; for the few evaluations outside the step loops)."""
    for row in range(y.shape[0] * y.shape[1] * y.shape[2]):
        _acceleration_row(net, y, z, drive, i0, i1, w, out, row)


# ---------------------------------------------------------------------------------------
# Element-wise stage arithmetic, one row at a time
# ---------------------------------------------------------------------------------------


@njit(cache=True, error_model="numpy")
def _combine_row(
    base: np.ndarray, k: np.ndarray, coefficients: np.ndarray, count: int, h: float,
    bb: int, o: int, i: int, out: np.ndarray,
) -> None:  # fmt: skip
    """``out = base + Σ_{j<count} k[j, bb, o, i]·(coefficients[j]·h)`` (``count ≥ 1``), the
    sum taken first, in stage order; ``out`` must not overlap ``base`` or ``k``."""
    width = out.shape[0]
    weight = coefficients[0] * h
    first = k[0, bb, o, i]
    for j in range(width):
        out[j] = first[j] * weight
    for s in range(1, count):
        weight = coefficients[s] * h
        ks = k[s, bb, o, i]
        for j in range(width):
            out[j] += ks[j] * weight
    for j in range(width):
        out[j] = base[j] + out[j]


@njit(cache=True, error_model="numpy")
def _count_nonfinite(x: np.ndarray) -> int:
    bad = 0
    for j in range(x.shape[0]):
        bad += 0 if abs(x[j]) <= _FLOAT_MAX else 1
    return bad


@njit(cache=True, error_model="numpy")
def _copy_row(src: np.ndarray, dst: np.ndarray) -> None:
    # An explicit loop: slice assignment compiles a shape-mismatch error path, which costs
    # seconds of compile time.
    for j in range(src.shape[0]):
        dst[j] = src[j]


@njit(cache=True, error_model="numpy")
def _rk_rows(
    net: Network, a: np.ndarray, b: np.ndarray, s: int, fsal: bool, combine: bool,
    y: np.ndarray, z: np.ndarray, h: float, i0: int, i1: int, w: float,
    drive: np.ndarray, work: Workspace, new_y: np.ndarray, new_z: np.ndarray,
    first: int, stop: int,
) -> None:  # fmt: skip
    """Stage ``s`` of an explicit RK step for the rows ``first ≤ row < stop``: each row's
    acceleration, then the next stage's state for that row, or after the last stage the
    step's result (into ``new_*``: other rows may still be reading ``y`` and ``z``)."""
    channels, height = y.shape[1], y.shape[2]
    stages = b.shape[0]
    for row in range(first, stop):
        bb = row // (channels * height)
        o = (row // height) % channels
        i = row % height
        if s == 0:
            position, velocity = y, z
            _copy_row(z[bb, o, i], work.ky[0, bb, o, i])
        else:
            position, velocity = work.ys[s % 2], work.ky[s]
        if not (fsal and s == 0):  # first same as last: kz[0] is given
            _acceleration_row(net, position, velocity, drive, i0, i1, w, work.kz[s], row)
        if s + 1 < stages:
            c = a[s + 1]
            _combine_row(
                y[bb, o, i], work.ky, c, s + 1, h, bb, o, i, work.ys[(s + 1) % 2, bb, o, i]
            )
            _combine_row(z[bb, o, i], work.kz, c, s + 1, h, bb, o, i, work.ky[s + 1, bb, o, i])
        elif combine:
            _combine_row(y[bb, o, i], work.ky, b, stages, h, bb, o, i, new_y[bb, o, i])
            _combine_row(z[bb, o, i], work.kz, b, stages, h, bb, o, i, new_z[bb, o, i])
            work.bad[row] = _count_nonfinite(new_y[bb, o, i]) + _count_nonfinite(new_z[bb, o, i])


@njit(cache=True, error_model="numpy")
def _imex_rows(
    net: Network, y: np.ndarray, z: np.ndarray, h: float, i0: int, i1: int, w: float,
    drive: np.ndarray, work: Workspace, new_y: np.ndarray, new_z: np.ndarray,
    first: int, stop: int,
) -> None:  # fmt: skip
    """One IMEX step for the rows ``first ≤ row < stop``, into ``new_*``."""
    channels, height = y.shape[1], y.shape[2]
    acc = work.kz[0]
    for row in range(first, stop):
        bb = row // (channels * height)
        o = (row // height) % channels
        i = row % height
        _acceleration_row(net, y, z, drive, i0, i1, w, acc, row)
        arow, yrow, zrow = acc[bb, o, i], y[bb, o, i], z[bb, o, i]
        nyrow, nzrow = new_y[bb, o, i], new_z[bb, o, i]
        for j in range(arow.shape[0]):
            nzrow[j] = zrow[j] + h * arow[j]
        for j in range(arow.shape[0]):
            nyrow[j] = yrow[j] + h * nzrow[j]
        work.bad[row] = _count_nonfinite(nyrow) + _count_nonfinite(nzrow)


@njit(cache=True, error_model="numpy")
def _save(saved: int, save_after: np.ndarray, done: int, y: np.ndarray, z: np.ndarray,
          out_y: np.ndarray, out_z: np.ndarray) -> int:  # fmt: skip
    """Copy the state into every output slot due after ``done`` steps; the next slot."""
    while saved < save_after.shape[0] and save_after[saved] == done:
        _copy(y, out_y[saved])
        _copy(z, out_z[saved])
        saved += 1
    return saved


@njit(cache=True, error_model="numpy")
def _copy(src: np.ndarray, dst: np.ndarray) -> None:
    """``dst[...] = src`` for C-contiguous arrays of one shape."""
    _copy_row(src.reshape(src.size), dst.reshape(dst.size))


# The step loops, each in a serial and a parallel version. They differ only in how a
# stage's rows are visited (a `range` or a `prange` over contiguous blocks of rows); they
# are separate functions because Numba's cache cannot tell two compilations of one
# function apart by their `parallel` flag. The parallel one is compiled only when a
# problem is large enough to use it (`_solve.PARALLEL_MIN_SIZE`).


@njit(cache=True, error_model="numpy")
def rk_steps(
    net: Network, a: np.ndarray, b: np.ndarray, fsal: bool, combine: bool,
    y: np.ndarray, z: np.ndarray, h: np.ndarray, i0: np.ndarray, i1: np.ndarray,
    w: np.ndarray, drive: np.ndarray, save_after: np.ndarray,
    out_y: np.ndarray, out_z: np.ndarray, work: Workspace,
) -> int:  # fmt: skip
    """Take ``len(h)`` explicit Runge–Kutta steps (tableau ``a``, ``b``) from ``(y, z)``.

    Step ``n`` has size ``h[n]``; its stage ``s`` sees the input weights
    ``(i0[n, s], i1[n, s], w[n, s])``. With ``combine`` the state ``(y, z)``
    (``(B, C, H, W)``) is advanced in place and copied to ``out_*[k]`` for every ``k`` with
    ``save_after[k] == n + 1`` (ascending). Without it (one step of an adaptive method) the
    state is left alone, and the last stage's state stays in ``work.ys[(S − 1) % 2]`` and
    ``work.ky[S − 1]``. With ``fsal`` ``work.kz[0]`` must already hold the acceleration at
    ``(y, z)``. Returns ``-1``, or the index of the first step after which the state is
    not finite (the loop stops there).
    """
    rows = y.shape[0] * y.shape[1] * y.shape[2]
    first_row = np.int64(0)  # not the literal 0, so that helpers get one specialization
    saved = _save(first_row, save_after, first_row, y, z, out_y, out_z)
    cur_y, cur_z, new_y, new_z = y, z, work.scratch[0], work.scratch[1]
    swapped = False
    for n in range(h.shape[0]):
        for s in range(b.shape[0]):
            _rk_rows(net, a, b, s, fsal, combine, cur_y, cur_z, h[n], i0[n, s], i1[n, s],
                     w[n, s], drive, work, new_y, new_z, first_row, rows)  # fmt: skip
        if combine:
            cur_y, cur_z, new_y, new_z = new_y, new_z, cur_y, cur_z
            swapped = not swapped
            if work.bad.sum() > 0:
                if swapped:
                    _copy(cur_y, y)
                    _copy(cur_z, z)
                return n
            saved = _save(saved, save_after, n + 1, cur_y, cur_z, out_y, out_z)
    if swapped:
        _copy(cur_y, y)
        _copy(cur_z, z)
    return -1


@njit(cache=True, error_model="numpy", parallel=_PARALLEL)
def rk_steps_parallel(
    net: Network, a: np.ndarray, b: np.ndarray, fsal: bool, combine: bool,
    y: np.ndarray, z: np.ndarray, h: np.ndarray, i0: np.ndarray, i1: np.ndarray,
    w: np.ndarray, drive: np.ndarray, save_after: np.ndarray,
    out_y: np.ndarray, out_z: np.ndarray, work: Workspace, threads: int,
) -> int:  # fmt: skip
    """`rk_steps` with each stage's rows shared among ``threads`` blocks, run in parallel
    (``numba.get_num_threads()``; it is an argument because a jitted call to it cannot be
    cached)."""
    rows = y.shape[0] * y.shape[1] * y.shape[2]
    parts = min(rows, threads)
    first_row = np.int64(0)  # not the literal 0, so that helpers get one specialization
    saved = _save(first_row, save_after, first_row, y, z, out_y, out_z)
    cur_y, cur_z, new_y, new_z = y, z, work.scratch[0], work.scratch[1]
    swapped = False
    for n in range(h.shape[0]):
        for s in range(b.shape[0]):
            hn, i0s, i1s, ws = h[n], i0[n, s], i1[n, s], w[n, s]
            for part in prange(parts):
                k = np.int64(part)  # the prange index may be unsigned
                first, stop = k * rows // parts, (k + 1) * rows // parts
                _rk_rows(net, a, b, s, fsal, combine, cur_y, cur_z, hn, i0s, i1s, ws, drive,
                         work, new_y, new_z, first, stop)  # fmt: skip
        if combine:
            cur_y, cur_z, new_y, new_z = new_y, new_z, cur_y, cur_z
            swapped = not swapped
            if work.bad.sum() > 0:
                if swapped:
                    _copy(cur_y, y)
                    _copy(cur_z, z)
                return n
            saved = _save(saved, save_after, n + 1, cur_y, cur_z, out_y, out_z)
    if swapped:
        _copy(cur_y, y)
        _copy(cur_z, z)
    return -1


@njit(cache=True, error_model="numpy")
def imex_steps(
    net: Network, y: np.ndarray, z: np.ndarray, h: np.ndarray, i0: np.ndarray,
    i1: np.ndarray, w: np.ndarray, drive: np.ndarray, save_after: np.ndarray,
    out_y: np.ndarray, out_z: np.ndarray, work: Workspace,
) -> int:  # fmt: skip
    """Take ``len(h)`` coRNN IMEX steps from ``(y, z)`` (advanced in place):
    ``z ← z + h·a(y, z, d(t_n))``, then ``y ← y + h·z`` with the new ``z``. The input of
    step ``n`` is ``(i0[n, 0], i1[n, 0], w[n, 0])``. Saving and return value as
    `rk_steps`."""
    rows = y.shape[0] * y.shape[1] * y.shape[2]
    first_row = np.int64(0)  # not the literal 0, so that helpers get one specialization
    saved = _save(first_row, save_after, first_row, y, z, out_y, out_z)
    cur_y, cur_z, new_y, new_z = y, z, work.scratch[0], work.scratch[1]
    swapped = False
    for n in range(h.shape[0]):
        _imex_rows(net, cur_y, cur_z, h[n], i0[n, 0], i1[n, 0], w[n, 0], drive, work,
                   new_y, new_z, first_row, rows)  # fmt: skip
        cur_y, cur_z, new_y, new_z = new_y, new_z, cur_y, cur_z
        swapped = not swapped
        if work.bad.sum() > 0:
            if swapped:
                _copy(cur_y, y)
                _copy(cur_z, z)
            return n
        saved = _save(saved, save_after, n + 1, cur_y, cur_z, out_y, out_z)
    if swapped:
        _copy(cur_y, y)
        _copy(cur_z, z)
    return -1


@njit(cache=True, error_model="numpy", parallel=_PARALLEL)
def imex_steps_parallel(
    net: Network, y: np.ndarray, z: np.ndarray, h: np.ndarray, i0: np.ndarray,
    i1: np.ndarray, w: np.ndarray, drive: np.ndarray, save_after: np.ndarray,
    out_y: np.ndarray, out_z: np.ndarray, work: Workspace, threads: int,
) -> int:  # fmt: skip
    """`imex_steps` with each step's rows shared among ``threads`` blocks, run in parallel."""
    rows = y.shape[0] * y.shape[1] * y.shape[2]
    parts = min(rows, threads)
    first_row = np.int64(0)  # not the literal 0, so that helpers get one specialization
    saved = _save(first_row, save_after, first_row, y, z, out_y, out_z)
    cur_y, cur_z, new_y, new_z = y, z, work.scratch[0], work.scratch[1]
    swapped = False
    for n in range(h.shape[0]):
        hn, i0n, i1n, wn = h[n], i0[n, 0], i1[n, 0], w[n, 0]
        for part in prange(parts):
            k = np.int64(part)  # the prange index may be unsigned
            _imex_rows(net, cur_y, cur_z, hn, i0n, i1n, wn, drive, work, new_y, new_z,
                       k * rows // parts, (k + 1) * rows // parts)  # fmt: skip
        cur_y, cur_z, new_y, new_z = new_y, new_z, cur_y, cur_z
        swapped = not swapped
        if work.bad.sum() > 0:
            if swapped:
                _copy(cur_y, y)
                _copy(cur_z, z)
            return n
        saved = _save(saved, save_after, n + 1, cur_y, cur_z, out_y, out_z)
    if swapped:
        _copy(cur_y, y)
        _copy(cur_z, z)
    return -1


# ---------------------------------------------------------------------------------------
# Dormand–Prince helpers: error norm and dense output (serial; once per step)
# ---------------------------------------------------------------------------------------


@njit(cache=True, error_model="numpy")
def _error_sum(x0: np.ndarray, x1: np.ndarray, k: np.ndarray, weights: np.ndarray, h: float,
               rtol: float, atol: float, scratch: np.ndarray) -> float:  # fmt: skip
    weight = h * weights[0]
    for m in range(x0.shape[0]):
        scratch[m] = k[0, m] * weight
    for j in range(1, weights.shape[0]):
        weight = h * weights[j]
        for m in range(x0.shape[0]):
            scratch[m] += k[j, m] * weight
    total = 0.0
    for m in range(x0.shape[0]):
        ratio = scratch[m] / (atol + rtol * max(abs(x0[m]), abs(x1[m])))
        total += ratio * ratio
    return total


@njit(cache=True, error_model="numpy")
def error_sums(
    y0: np.ndarray, z0: np.ndarray, y1: np.ndarray, z1: np.ndarray, ky: np.ndarray,
    kz: np.ndarray, weights: np.ndarray, h: float, rtol: float, atol: float,
    scratch: np.ndarray,
) -> tuple[float, float]:  # fmt: skip
    """Sums of squares of ``err / (atol + rtol·max(|x0|, |x1|))`` over the position and over
    the velocity, where ``err = Σ_j k[j]·(h·weights[j])``; flat ``(M,)``/``(S, M)`` arrays,
    ``scratch`` is ``(M,)``."""
    sum_y = _error_sum(y0, y1, ky, weights, h, rtol, atol, scratch)
    sum_z = _error_sum(z0, z1, kz, weights, h, rtol, atol, scratch)
    return sum_y, sum_z


@njit(cache=True, error_model="numpy")
def _dense(x0: np.ndarray, x1: np.ndarray, k: np.ndarray, mid: np.ndarray, h: float, s: float,
           out: np.ndarray) -> None:  # fmt: skip
    last = k.shape[0] - 1
    weight = h * mid[0]
    for m in range(x0.shape[0]):
        out[m] = k[0, m] * weight
    for j in range(1, k.shape[0]):
        weight = h * mid[j]
        for m in range(x0.shape[0]):
            out[m] += k[j, m] * weight
    for m in range(x0.shape[0]):
        y0 = x0[m]
        y1 = x1[m]
        y_mid = y0 + out[m]
        f0 = k[0, m]
        f1 = k[last, m]
        c4 = 2.0 * h * (f1 - f0) - 8.0 * (y1 + y0) + 16.0 * y_mid
        c3 = h * (5.0 * f0 - 3.0 * f1) + 18.0 * y0 + 14.0 * y1 - 32.0 * y_mid
        c2 = h * (f1 - 4.0 * f0) - 11.0 * y0 - 5.0 * y1 + 16.0 * y_mid
        c1 = h * f0
        total = y0 + s * c1
        power = s * s
        total = total + power * c2
        power = power * s
        total = total + power * c3
        power = power * s
        out[m] = total + power * c4


@njit(cache=True, error_model="numpy")
def dense_output(
    y0: np.ndarray, z0: np.ndarray, y1: np.ndarray, z1: np.ndarray, ky: np.ndarray,
    kz: np.ndarray, mid: np.ndarray, h: float, s: float, out_y: np.ndarray,
    out_z: np.ndarray,
) -> None:  # fmt: skip
    """The quartic interpolant of a step of size ``h`` at the fraction ``s`` ∈ [0, 1].

    It matches ``x0``, ``x1``, the end slopes ``k[0]``, ``k[-1]`` and the mid-point
    ``x0 + h·Σ k_j·mid_j`` (Shampine 1986; torchdiffeq's ``_interp_fit`` and
    ``_interp_evaluate``, term for term). Flat ``(M,)``/``(S, M)`` arrays.
    """
    _dense(y0, y1, ky, mid, h, s, out_y)
    _dense(z0, z1, kz, mid, h, s, out_z)
