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

A stage works on a block of rows: the acceleration of all of them, then element-wise the
next stage's state (or the step's result) for them. (Interleaving the two row by row, so
that each row stays in L1, measured slower: the per-row overheads cost more than reading
the block again from L2.) The parallel step loops (`rk_steps_parallel`,
`imex_steps_parallel`) share each stage's rows among the threads with one ``prange`` over
contiguous blocks of rows, one parallel region per stage. The ``prange`` body calls a
serial helper (loops written inline in a ``prange`` body are not vectorised by LLVM, a
called function's are). Parallel kernels are only called from Python: a jitted caller
would compile its own copy of every parallel region, which costs seconds.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np
from llvmlite import ir as llvm_ir
from numba import njit, prange, types
from numba.extending import intrinsic

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
# plain arithmetic and selects, so LLVM vectorises it. Against the exact tanh (mpmath) on
# the tests' samples it is within 1.31 ulp (libm allows itself 2), so the reference loses
# no accuracy.
#
# |x| < 0.625: x + x³·N(x²)/D(x²), Cephes' odd rational approximation (relative error
#              < 2.5e-16).
# otherwise:   sign(x)·(1 − 2/(e^v + 1)) with v = 2|x|, capped at 40 (where tanh rounds to
#              ±1): v = k·ln 2 + r, |r| ≤ ln2/2, and fdlibm's e^r = 1 + r + r·c/(2 − c) with
#              c = r − r²·P(r²). Over the common denominator g = 2 − c,
#              2/(e^v + 1) = 2g/(2^k·(g + (g·r + r·c)) + g).
# Division is the slowest vector operation here, so the two branches share one, their
# operands selected first (one division where there were three: the activation loop ~25 %
# faster), and 2^k (0 ≤ k ≤ 58) is put together from its bits rather than multiplied up.
# LLVM's choice to vectorise this is fragile (writing P(r²) in Estrin's form instead made
# the loop scalar and a step 2.5× slower): time any change.
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


@intrinsic
def _float_from_bits(typingctx: Any, bits: Any) -> Any:
    """The float64 whose IEEE bits are the int64 ``bits`` (a reinterpretation)."""

    def codegen(context: Any, builder: Any, signature: Any, args: Any) -> Any:
        return builder.bitcast(args[0], llvm_ir.DoubleType())

    return types.float64(types.int64), codegen


@njit(cache=True, error_model="numpy")
def tanh(x: float) -> float:
    """Hyperbolic tangent of a float64, vectorisable, within 1.31 ulp (see the comment
    above)."""
    ax = abs(x)
    x2 = x * x
    numerator = (_TANH_P0 * x2 + _TANH_P1) * x2 + _TANH_P2
    denominator = ((x2 + _TANH_Q0) * x2 + _TANH_Q1) * x2 + _TANH_Q2
    v = 2.0 * ax
    v = v if v < 40.0 else 40.0
    v = v if v == v else 0.0  # NaN: keep the integer conversion below defined
    k = int(v * _INV_LN2 + 0.5)
    r = (v - k * _LN2_HI) - k * _LN2_LO
    r2 = r * r
    c = r - r2 * (_EXP_P1 + r2 * (_EXP_P2 + r2 * (_EXP_P3 + r2 * (_EXP_P4 + r2 * _EXP_P5))))
    g = 2.0 - c
    scale = _float_from_bits((k + 1023) << 52)  # 2^k
    small = ax < 0.625
    q = (numerator if small else 2.0 * g) / (
        denominator if small else scale * (g + (g * r + r * c)) + g
    )
    big = 1.0 - q
    big = big if x >= 0.0 else -big
    result = x + x * x2 * q if small else big
    result = x if x == 0.0 else result  # keeps the sign of zero
    return result if x == x else x


@njit(cache=True, error_model="numpy")
def tanh_array(x: np.ndarray, out: np.ndarray) -> None:
    """``out = tanh(x)`` element-wise for 1-D arrays (for the tests and benchmarks)."""
    for i in range(x.shape[0]):
        out[i] = tanh(x[i])


# ---------------------------------------------------------------------------------------
# The vector field, a block of rows at a time:
#     acceleration = act(K_y⋆y + K_z⋆z + d(t) + b) − γ·y − ε·z
# with d(t) = drive[i0] + w·(drive[i1] − drive[i0]) (w = 0 gives drive[i0] exactly).
#
# The helpers see the state as rows, ``(rows, W)`` (`_as_rows`; stage arrays
# ``(S, rows, W)``), work on the rows ``first ≤ row < stop``, index whole arrays and take
# no views. Numba counts a reference, an atomic operation, for every view taken and every
# array handed to a function, and removes only the counts it can pair off: those of the
# innermost helpers, not those of a helper that calls others. Counted on every row they
# cost ~10 % of a step, so the helpers that call others loop over the rows themselves.
# The helpers are inlined, but for `_acceleration_rows`, which its callers share.
# ---------------------------------------------------------------------------------------


@njit(cache=True, error_model="numpy")
def _as_rows(x: np.ndarray) -> np.ndarray:
    """A C-contiguous ``(..., W)`` array as ``(rows, W)``."""
    return x.reshape(x.size // x.shape[-1], x.shape[-1])


@njit(cache=True, error_model="numpy")
def _as_stage_rows(x: np.ndarray) -> np.ndarray:
    """A C-contiguous ``(S, ..., W)`` array as ``(S, rows, W)``."""
    return x.reshape(x.shape[0], x.size // (x.shape[0] * x.shape[-1]), x.shape[-1])


@njit(cache=True, error_model="numpy", inline="always")
def _source_row(i: int, a: int, rh: int, height: int) -> int:
    """Grid row read by output row ``i`` at kernel row ``a`` (periodic)."""
    ii = i + a - rh
    if ii < 0:
        ii += height
    elif ii >= height:
        ii -= height
    return ii


@njit(cache=True, error_model="numpy")
def _pad_scratch(net: Network, width: int) -> np.ndarray:
    """Scratch for `_stencil_rows` on rows of ``width`` cells (one per thread)."""
    return np.empty((2, width + 2 * (net.kernel_position.shape[3] // 2)))


@njit(cache=True, error_model="numpy", inline="always")
def _pad_row(x: np.ndarray, r: int, rw: int, pad: np.ndarray, p: int) -> None:
    """``pad[p] = [x[r, W − rw:], x[r], x[r, :rw]]``: row ``r`` of ``W ≥ rw`` cells with
    ``rw`` cells of periodic wrap-around on each side, so that output ``j`` reads
    ``pad[p, j + b]``. ``rw`` must be visibly non-negative (``max(·, 0)``): otherwise
    Numba's wrap-around of negative indices keeps the copy from being vectorised."""
    width = x.shape[1]
    for j in range(width):
        pad[p, rw + j] = x[r, j]
    for e in range(rw):
        pad[p, e] = x[r, width - rw + e]
        pad[p, rw + width + e] = x[r, e]


@njit(cache=True, error_model="numpy", inline="always")
def _taps_shared(
    ky: np.ndarray, kz: np.ndarray, o: int, c: int, a: int, pad: np.ndarray,
    out: np.ndarray, r: int,
) -> None:  # fmt: skip
    """``out[r, j] += Σ_b (K_y[o, c, a, b]·pad[0, j + b] + K_z[o, c, a, b]·pad[1, j + b])``,
    term by term in ascending ``b``.

    Three taps per pass over the row: each output is loaded and stored once per three terms
    instead of once per term, with the same additions in the same order.
    """
    width, kw = out.shape[1], ky.shape[3]
    for t in range(kw // 3):
        b = 3 * t
        u0, u1, u2 = ky[o, c, a, b, 0, 0], ky[o, c, a, b + 1, 0, 0], ky[o, c, a, b + 2, 0, 0]
        v0, v1, v2 = kz[o, c, a, b, 0, 0], kz[o, c, a, b + 1, 0, 0], kz[o, c, a, b + 2, 0, 0]
        for j in range(width):
            acc = out[r, j] + (u0 * pad[0, b + j] + v0 * pad[1, b + j])
            acc = acc + (u1 * pad[0, b + 1 + j] + v1 * pad[1, b + 1 + j])
            out[r, j] = acc + (u2 * pad[0, b + 2 + j] + v2 * pad[1, b + 2 + j])
    for b in range(kw - kw % 3, kw):
        u0, v0 = ky[o, c, a, b, 0, 0], kz[o, c, a, b, 0, 0]
        for j in range(width):
            out[r, j] = out[r, j] + (u0 * pad[0, b + j] + v0 * pad[1, b + j])


@njit(cache=True, error_model="numpy", inline="always")
def _taps_per_cell(
    ky: np.ndarray, kz: np.ndarray, o: int, c: int, a: int, i: int, pad: np.ndarray,
    out: np.ndarray, r: int,
) -> None:  # fmt: skip
    """`_taps_shared` with a weight per output cell, ``K[o, c, a, b, i, j]``."""
    width, kw = out.shape[1], ky.shape[3]
    for t in range(kw // 3):
        b = 3 * t
        for j in range(width):
            acc = out[r, j] + (ky[o, c, a, b, i, j] * pad[0, b + j]
                               + kz[o, c, a, b, i, j] * pad[1, b + j])  # fmt: skip
            acc = acc + (ky[o, c, a, b + 1, i, j] * pad[0, b + 1 + j]
                         + kz[o, c, a, b + 1, i, j] * pad[1, b + 1 + j])  # fmt: skip
            out[r, j] = acc + (ky[o, c, a, b + 2, i, j] * pad[0, b + 2 + j]
                               + kz[o, c, a, b + 2, i, j] * pad[1, b + 2 + j])  # fmt: skip
    for b in range(kw - kw % 3, kw):
        for j in range(width):
            out[r, j] = out[r, j] + (ky[o, c, a, b, i, j] * pad[0, b + j]
                                     + kz[o, c, a, b, i, j] * pad[1, b + j])  # fmt: skip


@njit(cache=True, error_model="numpy", inline="always")
def _stencil_rows(
    coupling: int, ky: np.ndarray, kz: np.ndarray, y: np.ndarray, z: np.ndarray,
    channels: int, height: int, pad: np.ndarray, out: np.ndarray, first: int, stop: int,
) -> None:  # fmt: skip
    """``out[row] = (K_y⋆y + K_z⋆z)[row]``, circular cross-correlation, for the rows
    ``first ≤ row < stop``; every output is summed over ``(c, a, b)`` in that order, from 0.

    ``pad`` ``(2, W + 2·rw)`` is scratch: each input row is copied there with its
    wrap-around (`_pad_row`), so that the edge cells take the same vectorised loop as the
    interior ones.
    """
    kh, kw = ky.shape[2], ky.shape[3]
    rh, rw = kh // 2, max(kw // 2, 0)
    for row in range(first, stop):
        sample_first = row - row % (channels * height)  # the sample's first row
        o = (row // height) % channels
        i = row % height
        for j in range(out.shape[1]):
            out[row, j] = 0.0
        for c in range(channels):
            for a in range(kh):
                source = sample_first + c * height + _source_row(i, a, rh, height)
                _pad_row(y, source, rw, pad, 0)
                _pad_row(z, source, rw, pad, 1)
                if coupling == COUPLING_PER_CELL:
                    _taps_per_cell(ky, kz, o, c, a, i, pad, out, row)
                else:
                    _taps_shared(ky, kz, o, c, a, pad, out, row)


@njit(cache=True, error_model="numpy", inline="always")
def _dense_rows(
    wy: np.ndarray, wz: np.ndarray, y: np.ndarray, z: np.ndarray, channels: int,
    height: int, out: np.ndarray, first: int, stop: int,
) -> None:  # fmt: skip
    """``out[row] = (W_y·y + W_z·z)`` for the outputs of the rows ``first ≤ row < stop``,
    summed over the inputs of the row's sample in their flat ``(channel, *grid)`` order."""
    width = y.shape[1]
    sample_rows = channels * height
    for row in range(first, stop):
        sample_first = row - row % sample_rows
        column = max((row - sample_first) * width, 0)  # visibly non-negative: vectorised
        for j in range(width):
            out[row, j] = 0.0
        for q in range(sample_rows):
            for jj in range(width):
                k = q * width + jj
                yk = y[sample_first + q, jj]
                zk = z[sample_first + q, jj]
                for j in range(width):
                    out[row, j] += wy[k, column + j] * yk + wz[k, column + j] * zk


@njit(cache=True, error_model="numpy", inline="always")
def _activate_rows(
    use_tanh: bool, y: np.ndarray, z: np.ndarray, drive: np.ndarray, i0: int, i1: int,
    w: float, bias: np.ndarray, gamma: np.ndarray, epsilon: np.ndarray, height: int,
    out: np.ndarray, first: int, stop: int,
) -> None:  # fmt: skip
    """``out[row] = act(out[row] + d + b) − γ·y[row] − ε·z[row]`` for the rows
    ``first ≤ row < stop``, with ``d = drive[i0, row] + w·(drive[i1, row] − drive[i0, row])``
    and ``b`` (``bias`` as `_as_rows`), ``γ``, ``ε`` those of the row's grid row and
    channel."""
    for row in range(first, stop):
        grid_row = row % bias.shape[0]  # the row within its sample: channel·H + i
        channel = grid_row // height
        g, e = gamma[channel], epsilon[channel]
        if use_tanh:
            for j in range(out.shape[1]):
                d = drive[i0, row, j] + w * (drive[i1, row, j] - drive[i0, row, j])
                pre = out[row, j] + d + bias[grid_row, j]
                out[row, j] = tanh(pre) - g * y[row, j] - e * z[row, j]
        else:
            for j in range(out.shape[1]):
                d = drive[i0, row, j] + w * (drive[i1, row, j] - drive[i0, row, j])
                pre = out[row, j] + d + bias[grid_row, j]
                out[row, j] = pre - g * y[row, j] - e * z[row, j]


@njit(cache=True, error_model="numpy")
def _acceleration_rows(
    net: Network, y: np.ndarray, z: np.ndarray, drive: np.ndarray, i0: int, i1: int,
    w: float, pad: np.ndarray, out: np.ndarray, first: int, stop: int,
) -> None:  # fmt: skip
    """The acceleration at the state ``(y, z)`` into ``out``, rows ``first ≤ row < stop``.

    ``y``, ``z``, ``out`` are ``(rows, W)`` (`_as_rows`), ``drive`` ``(T, rows, W)``
    (`_as_stage_rows`), ``pad`` is `_pad_scratch`. Not inlined: its callers share one
    compiled copy (it is called once per stage, so the call costs nothing).
    """
    coupling, use_tanh, ky, kz, dy, dz, gamma, epsilon, bias = net
    channels, height = bias.shape[0], bias.shape[1]
    bias_rows = _as_rows(bias)
    if coupling == COUPLING_STENCIL or coupling == COUPLING_PER_CELL:
        _stencil_rows(coupling, ky, kz, y, z, channels, height, pad, out, first, stop)
    elif coupling == COUPLING_DENSE:
        _dense_rows(dy, dz, y, z, channels, height, out, first, stop)
    else:
        for row in range(first, stop):
            for j in range(out.shape[1]):
                out[row, j] = 0.0
    _activate_rows(use_tanh, y, z, drive, i0, i1, w, bias_rows, gamma, epsilon, height, out,
                   first, stop)  # fmt: skip


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
    rows = _as_rows(out)
    first = np.int64(0)  # not the literal 0, which would compile a second specialization
    _acceleration_rows(
        net, _as_rows(y), _as_rows(z), _as_stage_rows(drive), i0, i1, w,
        _pad_scratch(net, y.shape[3]), rows, first, rows.shape[0],
    )  # fmt: skip


# ---------------------------------------------------------------------------------------
# Element-wise stage arithmetic, on rows (`_as_rows` layouts)
# ---------------------------------------------------------------------------------------


@njit(cache=True, error_model="numpy", inline="always")
def _combine_rows(
    base: np.ndarray, k: np.ndarray, coefficients: np.ndarray, count: int, h: float,
    out: np.ndarray, first: int, stop: int,
) -> None:  # fmt: skip
    """``out[row] = base[row] + Σ_{s<count} k[s, row]·(coefficients[s]·h)`` (``count ≥ 1``)
    for ``first ≤ row < stop``, the sum taken first, in stage order; ``out`` must not
    overlap ``base`` or ``k``."""
    width = out.shape[1]
    for row in range(first, stop):
        weight = coefficients[0] * h
        for j in range(width):
            out[row, j] = k[0, row, j] * weight
        for s in range(1, count):
            weight = coefficients[s] * h
            for j in range(width):
                out[row, j] += k[s, row, j] * weight
        for j in range(width):
            out[row, j] = base[row, j] + out[row, j]


@njit(cache=True, error_model="numpy", inline="always")
def _count_nonfinite(y: np.ndarray, z: np.ndarray, bad: np.ndarray, first: int, stop: int) -> None:
    """``bad[row]`` = the number of entries of ``y[row]`` and ``z[row]`` that are not finite."""
    for row in range(first, stop):
        count = 0
        for j in range(y.shape[1]):
            count += 0 if abs(y[row, j]) <= _FLOAT_MAX else 1
        for j in range(z.shape[1]):
            count += 0 if abs(z[row, j]) <= _FLOAT_MAX else 1
        bad[row] = count


@njit(cache=True, error_model="numpy", inline="always")
def _copy_rows(src: np.ndarray, dst: np.ndarray, first: int, stop: int) -> None:
    for row in range(first, stop):
        for j in range(src.shape[1]):
            dst[row, j] = src[row, j]


@njit(cache=True, error_model="numpy")
def _rk_rows(
    net: Network, a: np.ndarray, b: np.ndarray, s: int, fsal: bool, combine: bool,
    y: np.ndarray, z: np.ndarray, h: float, i0: int, i1: int, w: float,
    drive: np.ndarray, work: Workspace, new_y: np.ndarray, new_z: np.ndarray,
    first: int, stop: int,
) -> None:  # fmt: skip
    """Stage ``s`` of an explicit RK step for the rows ``first ≤ row < stop``: their
    acceleration, then the next stage's state for them, or after the last stage the step's
    result (into ``new_*``: other rows may still be reading ``y`` and ``z``)."""
    stages = b.shape[0]
    pad = _pad_scratch(net, y.shape[3])
    y_rows, z_rows = _as_rows(y), _as_rows(z)
    ky, kz, ys = _as_stage_rows(work.ky), _as_stage_rows(work.kz), _as_stage_rows(work.ys)
    position = y_rows if s == 0 else ys[s % 2]
    velocity = z_rows if s == 0 else ky[s]
    velocity_0, accel = ky[0], kz[s]
    last = s + 1 == stages
    next_y = _as_rows(new_y) if last else ys[(s + 1) % 2]
    next_z = _as_rows(new_z) if last else ky[s + 1]
    weights = b if last else a[s + 1]
    count = stages if last else s + 1
    if s == 0:
        _copy_rows(z_rows, velocity_0, first, stop)
    if not (fsal and s == 0):  # first same as last: kz[0] is given
        _acceleration_rows(
            net, position, velocity, _as_stage_rows(drive), i0, i1, w, pad, accel, first, stop
        )
    if not last or combine:
        _combine_rows(y_rows, ky, weights, count, h, next_y, first, stop)
        _combine_rows(z_rows, kz, weights, count, h, next_z, first, stop)
    if last and combine:
        _count_nonfinite(next_y, next_z, work.bad, first, stop)


@njit(cache=True, error_model="numpy")
def _imex_rows(
    net: Network, y: np.ndarray, z: np.ndarray, h: float, i0: int, i1: int, w: float,
    drive: np.ndarray, work: Workspace, new_y: np.ndarray, new_z: np.ndarray,
    first: int, stop: int,
) -> None:  # fmt: skip
    """One IMEX step for the rows ``first ≤ row < stop``, into ``new_*``."""
    pad = _pad_scratch(net, y.shape[3])
    y_rows, z_rows = _as_rows(y), _as_rows(z)
    new_y_rows, new_z_rows = _as_rows(new_y), _as_rows(new_z)
    accel = _as_rows(work.kz[0])
    _acceleration_rows(
        net, y_rows, z_rows, _as_stage_rows(drive), i0, i1, w, pad, accel, first, stop
    )
    _imex_update(y_rows, z_rows, accel, h, new_y_rows, new_z_rows, first, stop)
    _count_nonfinite(new_y_rows, new_z_rows, work.bad, first, stop)


@njit(cache=True, error_model="numpy", inline="always")
def _imex_update(
    y: np.ndarray, z: np.ndarray, accel: np.ndarray, h: float, new_y: np.ndarray,
    new_z: np.ndarray, first: int, stop: int,
) -> None:  # fmt: skip
    """``new_z = z + h·accel``, then ``new_y = y + h·new_z``, rows ``first ≤ row < stop``."""
    for row in range(first, stop):
        for j in range(y.shape[1]):
            new_z[row, j] = z[row, j] + h * accel[row, j]
        for j in range(y.shape[1]):
            new_y[row, j] = y[row, j] + h * new_z[row, j]


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
    flat_src, flat_dst = src.reshape(src.size), dst.reshape(dst.size)
    # An explicit loop: slice assignment compiles a shape-mismatch error path, which costs
    # seconds of compile time.
    for j in range(flat_src.shape[0]):
        flat_dst[j] = flat_src[j]


@njit(cache=True, error_model="numpy")
def _start(y: np.ndarray, z: np.ndarray, save_after: np.ndarray, out_y: np.ndarray,
           out_z: np.ndarray, work: Workspace) -> tuple:  # fmt: skip
    """Save the initial state where due; return the next slot, the current state ``(y, z)``
    and the buffers the first step writes (the step loops swap the two pairs every step)."""
    saved = _save(np.int64(0), save_after, np.int64(0), y, z, out_y, out_z)
    return saved, y, z, work.scratch[0], work.scratch[1]


@njit(cache=True, error_model="numpy")
def _finish(swaps: int, y: np.ndarray, z: np.ndarray, cur_y: np.ndarray,
            cur_z: np.ndarray) -> int:  # fmt: skip
    """After ``swaps`` swaps of the buffers, leave the current state in ``(y, z)``; -1 (what
    the step loops return when every step was finite)."""
    if swaps % 2 == 1:
        _copy(cur_y, y)
        _copy(cur_z, z)
    return -1


@njit(cache=True, error_model="numpy")
def _after_step(n: int, y: np.ndarray, z: np.ndarray, cur_y: np.ndarray, cur_z: np.ndarray,
                work: Workspace, saved: int, save_after: np.ndarray, out_y: np.ndarray,
                out_z: np.ndarray) -> int:  # fmt: skip
    """Step ``n`` made ``(cur_y, cur_z)`` the state (the ``n + 1``-th swap): save it where
    due and return the next slot; or, if it is not finite, leave it in ``(y, z)`` and
    return -1 (the loop stops)."""
    if work.bad.sum() > 0:
        return _finish(n + 1, y, z, cur_y, cur_z)
    return _save(saved, save_after, n + 1, cur_y, cur_z, out_y, out_z)


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
    saved, cur_y, cur_z, new_y, new_z = _start(y, z, save_after, out_y, out_z, work)
    for n in range(h.shape[0]):
        for s in range(b.shape[0]):
            _rk_rows(net, a, b, s, fsal, combine, cur_y, cur_z, h[n], i0[n, s], i1[n, s],
                     w[n, s], drive, work, new_y, new_z, first_row, rows)  # fmt: skip
        if not combine:
            continue
        cur_y, cur_z, new_y, new_z = new_y, new_z, cur_y, cur_z
        saved = _after_step(n, y, z, cur_y, cur_z, work, saved, save_after, out_y, out_z)
        if saved < 0:
            return n
    return _finish(h.shape[0] if combine else 0, y, z, cur_y, cur_z)


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
    saved, cur_y, cur_z, new_y, new_z = _start(y, z, save_after, out_y, out_z, work)
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
            saved = _after_step(n, y, z, cur_y, cur_z, work, saved, save_after, out_y, out_z)
            if saved < 0:
                return n
    return _finish(h.shape[0] if combine else 0, y, z, cur_y, cur_z)


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
    saved, cur_y, cur_z, new_y, new_z = _start(y, z, save_after, out_y, out_z, work)
    for n in range(h.shape[0]):
        _imex_rows(net, cur_y, cur_z, h[n], i0[n, 0], i1[n, 0], w[n, 0], drive, work,
                   new_y, new_z, first_row, rows)  # fmt: skip
        cur_y, cur_z, new_y, new_z = new_y, new_z, cur_y, cur_z
        saved = _after_step(n, y, z, cur_y, cur_z, work, saved, save_after, out_y, out_z)
        if saved < 0:
            return n
    return _finish(h.shape[0], y, z, cur_y, cur_z)


@njit(cache=True, error_model="numpy", parallel=_PARALLEL)
def imex_steps_parallel(
    net: Network, y: np.ndarray, z: np.ndarray, h: np.ndarray, i0: np.ndarray,
    i1: np.ndarray, w: np.ndarray, drive: np.ndarray, save_after: np.ndarray,
    out_y: np.ndarray, out_z: np.ndarray, work: Workspace, threads: int,
) -> int:  # fmt: skip
    """`imex_steps` with each step's rows shared among ``threads`` blocks, run in parallel."""
    rows = y.shape[0] * y.shape[1] * y.shape[2]
    parts = min(rows, threads)
    saved, cur_y, cur_z, new_y, new_z = _start(y, z, save_after, out_y, out_z, work)
    for n in range(h.shape[0]):
        hn, i0n, i1n, wn = h[n], i0[n, 0], i1[n, 0], w[n, 0]
        for part in prange(parts):
            k = np.int64(part)  # the prange index may be unsigned
            _imex_rows(net, cur_y, cur_z, hn, i0n, i1n, wn, drive, work, new_y, new_z,
                       k * rows // parts, (k + 1) * rows // parts)  # fmt: skip
        cur_y, cur_z, new_y, new_z = new_y, new_z, cur_y, cur_z
        saved = _after_step(n, y, z, cur_y, cur_z, work, saved, save_after, out_y, out_z)
        if saved < 0:
            return n
    return _finish(h.shape[0], y, z, cur_y, cur_z)


# ---------------------------------------------------------------------------------------
# Dormand–Prince helpers: error norm and dense output (serial; once per step)
# ---------------------------------------------------------------------------------------


@njit(cache=True, error_model="numpy")
def _weighted_sum(k: np.ndarray, weights: np.ndarray, stages: int, h: float,
                  out: np.ndarray) -> None:  # fmt: skip
    """``out = Σ_{j < stages} k[j]·(h·weights[j])``, summed in the order of ``j``."""
    weight = h * weights[0]
    for m in range(out.shape[0]):
        out[m] = k[0, m] * weight
    for j in range(1, stages):
        weight = h * weights[j]
        for m in range(out.shape[0]):
            out[m] += k[j, m] * weight


@njit(cache=True, error_model="numpy")
def _error_sum(x0: np.ndarray, x1: np.ndarray, k: np.ndarray, weights: np.ndarray, h: float,
               rtol: float, atol: float, scratch: np.ndarray) -> float:  # fmt: skip
    _weighted_sum(k, weights, weights.shape[0], h, scratch)
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
    _weighted_sum(k, mid, k.shape[0], h, out)
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
