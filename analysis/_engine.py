"""One pass over a signal that yields every statistic of the wave report.

The analysis of a 1000-frame 256×256 recording must cost little more than its Hilbert
transform, and a recording larger than memory must stream. So all reductions run in one
fused pass over spatial blocks (the whole grid for NumPy data; dask chunks extended by a
periodic halo for dask data), each block yielding a `Partial` that adds up:

- per block and field: remove the time mean, band-pass, ``rfft`` along time, the analytic
  signal; then, a few frames at a time (so that the temporaries stay in cache): k, ω,
  speed, wavelength, direction and the local directionality (PGD), added to fine histograms
  (`analysis._histogram`) weighted by the amplitude. k and ω come from the window
  estimator (`_window_rates`: amplitude-weighted phase steps summed over a few frames and
  cells, computed on each batch of frames with a margin of frames around it), or from
  one-sample phase differences. The window estimator keeps the analytic signal of the
  block while the statistics are gathered, no more memory than the phase stage before it
  needs (analytic signal, phase and amplitude: 16 bytes per point);
- the power of every temporal frequency (for the k–ω spectrum) and the phase of a few
  frames (for the spatially shuffled null of `percent_waves`), gathered whole afterwards.

Precision: the signal is filtered in float64, then transformed and analysed in float32
(complex64). Phases then carry errors of about 1e-6 rad — far below the 0.1 % resolution
of the histograms — while the transforms and the trigonometry run about twice as fast and
each block needs half the memory. The per-point functions of `analysis.fields` keep the
input's precision.

`finish` turns the summed partials into numbers. The dominant k–ω mode is found by branch
and bound: temporal frequencies are visited by decreasing total power, which by Parseval
bounds the power of any single (ω, k) bin at that frequency, so the search stops as soon as
no unvisited frequency can beat the best bin found — exact, usually after a handful of 2-D
FFTs. With NumPy data the one-sided spectra are kept from the pass; with dask data a
second, cheaper pass fetches the strongest frequencies, and the report says whether the
bound proved the result.
"""

from __future__ import annotations

import math
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import scipy.fft
from oscsim.analysis import _histogram as H
from oscsim.analysis import _kernels as K
from oscsim.analysis._validate import SignalInfo, time_spread

#: Points per batch of frames in the per-point stage: small enough to stay in cache.
BATCH_POINTS = 1 << 18
#: Null samples for the shuffled copy: about this many (time, cell) points.
NULL_POINTS = 1 << 20
#: PGD at or above 1 − ONE_TOL counts as exactly 1 (all gradients parallel).
ONE_TOL = 1e-9
#: Strongest temporal frequencies fetched by the second pass for dask data.
DASK_CANDIDATES = 6

LOG = H.LogBins()
SIGNED = H.SignedLogBins()
ANGLE = H.LinearBins(-math.pi, math.pi, 1 << 14)
UNIT = H.LinearBins(0.0, 1.0, 1 << 12)
PGD_EDGES = np.append(UNIT.edges, 1.0 + ONE_TOL)


@dataclass(frozen=True)
class Options:
    """Settings of a pass, fixed for all blocks."""

    nd: int
    n_frames: int
    dt: float
    band: tuple[float, float] | None
    window: int
    null_frames: tuple[int, ...]
    estimator: str = "window"
    local: tuple[int, int] = (3, 5)

    @property
    def radius(self) -> tuple[int, int]:
        r = self.window // 2
        return (r if self.nd == 2 else 0, r)

    @property
    def local_halo(self) -> int:
        """Cells the window estimator needs on each spatial side (0 for one sample)."""
        return self.local[1] // 2 + 1 if self.estimator == "window" else 0

    @property
    def halo(self) -> tuple[int, int]:
        """Cells of neighbours a block needs on each side, (y, x)."""
        ry, rx = self.radius
        h = self.local_halo
        return (max(ry + 1, h) if self.nd == 2 else 0, max(rx + 1, h))


@dataclass
class Partial:
    """Summable results of one or more blocks."""

    speed: np.ndarray = field(default_factory=lambda: np.zeros(LOG.n))
    wavelength: np.ndarray = field(default_factory=lambda: np.zeros(LOG.n))
    wavelength_count: np.ndarray = field(default_factory=lambda: np.zeros(LOG.n))
    omega: np.ndarray = field(default_factory=lambda: np.zeros(SIGNED.n))
    direction: np.ndarray = field(default_factory=lambda: np.zeros(ANGLE.n))
    pgd: np.ndarray = field(default_factory=lambda: np.zeros(UNIT.n + 1))
    weight: float = 0.0
    weight_cos: float = 0.0
    weight_sin: float = 0.0
    points: int = 0
    power: np.ndarray | None = None
    # largest change over time of any cell, and largest magnitude (checked blocks only)
    spread: float = 0.0
    scale: float = 0.0
    # (lead offsets, (y0, x0), theta of shape (*lead_block, n_null, Y, X)) per block
    null: list[tuple[tuple[int, ...], tuple[int, int], np.ndarray]] = field(default_factory=list)
    # one-sided spectra (F, Y, X) per field, scaled by 2 on (0, Nyquist): NumPy data only
    spectra: list[np.ndarray] = field(default_factory=list)

    def merge(self, other: Partial) -> Partial:
        for name in ("speed", "wavelength", "wavelength_count", "omega", "direction", "pgd"):
            getattr(self, name).__iadd__(getattr(other, name))
        self.weight += other.weight
        self.weight_cos += other.weight_cos
        self.weight_sin += other.weight_sin
        self.points += other.points
        self.spread = max(self.spread, other.spread)
        self.scale = max(self.scale, other.scale)
        if other.power is not None:
            self.power = other.power.copy() if self.power is None else self.power + other.power
        self.null.extend(other.null)
        self.spectra.extend(other.spectra)
        return self


def merge_all(parts: list[Partial]) -> Partial:
    total = parts[0]
    for p in parts[1:]:
        total.merge(p)
    return total


def _as_fields(block: np.ndarray, n_lead: int, nd: int) -> tuple[np.ndarray, tuple[int, ...]]:
    """Reshape ``(*lead, T, *space)`` to ``(L, T, Y, X)`` (a ring gets Y = 1)."""
    lead_shape = block.shape[:n_lead]
    rest = block.shape[n_lead:]
    if nd == 1:
        rest = (rest[0], 1, rest[1])
    return block.reshape((-1, *rest)), lead_shape


_TWO_PI32 = np.float32(2 * math.pi)
_INV_TWO_PI32 = np.float32(1 / (2 * math.pi))


def _wrap(d: np.ndarray) -> np.ndarray:
    """Phase differences wrapped to [−π, π], in place: arg(e^{i·d})."""
    turns = d * _INV_TWO_PI32
    np.rint(turns, out=turns)
    turns *= _TWO_PI32
    d -= turns
    return d


def _wrap_halo(x: np.ndarray, hy: int, hx: int) -> None:
    """Fill the halo of ``x[:, hy:-hy, hx:-hx]`` periodically, in place."""
    ny, nx = x.shape[1] - 2 * hy, x.shape[2] - 2 * hx
    if hx:
        x[:, hy : hy + ny, :hx] = x[:, hy : hy + ny, nx : nx + hx]
        x[:, hy : hy + ny, hx + nx :] = x[:, hy : hy + ny, hx : 2 * hx]
    if hy:
        x[:, :hy] = x[:, ny : ny + hy]
        x[:, hy + ny :] = x[:, hy : 2 * hy]


def _box_valid(x: np.ndarray, width: int, axis: int, n: int) -> np.ndarray:
    """Moving sums of `width` cells along `axis`, keeping the `n` complete windows."""
    index = [slice(None)] * x.ndim
    index[axis] = slice(0, n)
    out = x[tuple(index)].copy()
    for j in range(1, width):
        index[axis] = slice(j, j + n)
        out += x[tuple(index)]
    return out


def block_pass(
    block: np.ndarray,
    *,
    n_lead: int,
    lead_offset: tuple[int, ...],
    space_offset: tuple[int, int],
    periodic: bool,
    opts: Options,
    keep_spectra: bool = False,
    check: bool = False,
    threads: int = 1,
) -> Partial:
    """Statistics of one block of ``(*lead, time, *space)``.

    With ``periodic=False`` the block carries a halo of `Options.halo` cells on each
    spatial side (from `dask.array.overlap.overlap`, periodic at the grid's edges) and
    results cover its interior; with ``periodic=True`` the block is the whole grid.
    `threads` workers share the per-frame stage (NumPy releases the GIL in it).
    """
    fields_, lead_shape = _as_fields(block, n_lead, opts.nd)
    hy, hx = opts.halo
    ay, ax = (0, 0) if periodic else (hy, hx)  # halo inside the block itself
    n_t = fields_.shape[1]
    ny = fields_.shape[2] - 2 * ay
    nx = fields_.shape[3] - 2 * ax
    null_idx = np.asarray(opts.null_frames, dtype=np.intp)
    null_theta = np.empty((fields_.shape[0], len(null_idx), ny, nx), dtype=np.float32)
    batch = max(1, BATCH_POINTS // ((ny + 2 * hy) * (nx + 2 * hx)))
    starts = list(range(0, n_t, batch))
    # The window estimator recomputes 2·(frames // 2 + 1) frames around each batch: batches
    # of at least 4 times that keep the overhead at or under a quarter.
    window = opts.estimator == "window"
    sbatch = max(batch, 8 * (opts.local[0] // 2 + 1)) if window else batch
    sstarts = list(range(0, n_t, sbatch))
    parts = [Partial() for _ in range(max(1, min(threads, len(starts))))]
    pool = ThreadPoolExecutor(len(parts)) if len(parts) > 1 else None

    try:
        if check:
            spread, scale = time_spread(fields_[:, :, ay : ay + ny, ax : ax + nx], 1)
            parts[0].spread, parts[0].scale = spread, scale
        for li in range(fields_.shape[0]):
            # Filtered in float64, transformed in float32 (see the module docstring).
            s = K.prepare(fields_[li], 0, opts.band, opts.dt, check).astype(np.float32)
            spec = scipy.fft.rfft(s, axis=0, workers=K.FFT_WORKERS)
            del s
            inner = spec[:, ay : ay + ny, ax : ax + nx]
            power = np.einsum("fyx,fyx->f", inner.real, inner.real, dtype=np.float64)
            power += np.einsum("fyx,fyx->f", inner.imag, inner.imag, dtype=np.float64)
            p0 = parts[0]
            p0.power = power if p0.power is None else p0.power + power
            a = K.spectrum_to_analytic(spec, n_t, 0)
            if keep_spectra:
                p0.spectra.append(spec)
            del spec, inner
            # Phase (with its halo) and amplitude of every frame, float32: errors ~1e-7 rad,
            # and the trigonometry vectorises and moves half the bytes.
            theta = np.empty((n_t, ny + 2 * hy, nx + 2 * hx), dtype=np.float32)
            amp = np.empty((n_t, ny, nx), dtype=np.float32)

            def polar(j: int, a=a, theta=theta, amp=amp) -> None:
                for t0 in starts[j :: len(parts)]:
                    t1 = min(t0 + batch, n_t)
                    seg = a[t0:t1]  # complex64 already
                    th = theta[t0:t1]
                    if periodic:
                        np.arctan2(seg.imag, seg.real, out=th[:, hy : hy + ny, hx : hx + nx])
                        _wrap_halo(th, hy, hx)
                        np.abs(seg, out=amp[t0:t1])
                    else:
                        np.arctan2(seg.imag, seg.real, out=th)
                        np.abs(seg[:, ay : ay + ny, ax : ax + nx], out=amp[t0:t1])

            def stats(j: int, a=a, theta=theta, amp=amp) -> None:
                for t0 in sstarts[j :: len(parts)]:
                    t1 = min(t0 + sbatch, n_t)
                    rates = (
                        _window_rates(a, opts, t0, t1, periodic, (ay, ax), (ny, nx))
                        if window
                        else None
                    )
                    _frames(parts[j], theta, amp, opts, t0, t1, rates)

            _run(pool, polar, len(parts))
            if not window:
                del a
            null_theta[li] = theta[null_idx, hy : hy + ny, hx : hx + nx]
            _run(pool, stats, len(parts))
            del theta, amp
            if window:
                del a
    finally:
        if pool is not None:
            pool.shutdown()

    part = merge_all(parts)
    part.null.append(
        (lead_offset, space_offset, null_theta.reshape(*lead_shape, *null_theta.shape[1:]))
    )
    return part


def _run(pool: ThreadPoolExecutor | None, fn, n: int) -> None:
    """fn(0), …, fn(n-1) on the pool (or inline), re-raising the first error."""
    if pool is None:
        fn(0)
    else:
        list(pool.map(fn, range(n)))


def _window_rates(
    a: np.ndarray,
    opts: Options,
    t0: int,
    t1: int,
    periodic: bool,
    inside: tuple[int, int],
    interior: tuple[int, int],
) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """ω, k_x and k_y (None on a ring) of the window estimator at frames ``t0..t1-1``.

    The same sums as `analysis._kernels.local_phase_sums` (so the same numbers as the
    per-point functions, to float32 rounding), computed on the batch with its halo and only
    where the windows are complete: `a` is the block's analytic signal ``(T, Y', X')`` whose
    interior ``interior`` starts at ``inside`` (a halo of that many cells around it), or
    the whole periodic grid when `periodic`.
    """
    n_t = a.shape[0]
    rt, rs = opts.local[0] // 2, opts.local[1] // 2
    ny, nx = interior
    ay, ax = inside
    h = rs + 1
    hy = h if opts.nd == 2 else 0
    # frames t0 − rt − 1 … t1 + rt, zero outside the recording (zero products, so the
    # time windows are clipped at its ends)
    e0, e1 = t0 - rt - 1, t1 + rt + 1
    f0, f1 = max(e0, 0), min(e1, n_t)
    ext = np.zeros((e1 - e0, ny + 2 * hy, nx + 2 * h), dtype=a.dtype)
    if periodic:
        ext[f0 - e0 : f1 - e0] = np.pad(a[f0:f1], ((0, 0), (hy, hy), (h, h)), mode="wrap")
    else:
        ext[f0 - e0 : f1 - e0] = a[f0:f1, ay - hy : ay + ny + hy, ax - h : ax + nx + h]
    ry = rs if opts.nd == 2 else 0
    wy = 2 * ry + 1
    core_y = slice(hy - ry, hy + ny + ry)
    core_x = slice(h - rs, h + nx + rs)

    # time: Q(t) = a(t+1)·conj(a(t−1)) for t in t0 − rt … t1 + rt − 1
    q = ext[2:, core_y, core_x] * np.conj(ext[:-2, core_y, core_x])
    for t_end, (u, v) in ((0, (1, 0)), (n_t - 1, (n_t - 1, n_t - 2))):
        i = t_end - (e0 + 1)
        if 0 <= i < q.shape[0]:
            q[i] = K._end_step(ext[u - e0, core_y, core_x] * np.conj(ext[v - e0, core_y, core_x]))
    q = _box_valid(q, 2 * rt + 1, 0, t1 - t0)
    q = _box_valid(_box_valid(q, wy, 1, ny), 2 * rs + 1, 2, nx)
    omega = np.arctan2(q.imag, q.real).astype(np.float32, copy=False)
    omega *= np.float32(0.5 / opts.dt)
    del q

    mid = ext[1:-1]
    # x: steps a(x'+1)·conj(a(x')) for x' = x − rs − 1 … x + rs
    p = mid[:, core_y, 1:] * np.conj(mid[:, core_y, :-1])
    p = _box_valid(_box_valid(p, 2 * rt + 1, 0, t1 - t0), 2 * rs + 2, 2, nx)
    p = _box_valid(p, wy, 1, ny)
    kx = np.arctan2(p.imag, p.real).astype(np.float32, copy=False)
    np.negative(kx, out=kx)
    ky = None
    if opts.nd == 2:
        p = mid[:, 1:, core_x] * np.conj(mid[:, :-1, core_x])
        p = _box_valid(_box_valid(p, 2 * rt + 1, 0, t1 - t0), 2 * rs + 2, 1, ny)
        p = _box_valid(p, 2 * rs + 1, 2, nx)
        ky = np.arctan2(p.imag, p.real).astype(np.float32, copy=False)
        np.negative(ky, out=ky)
    return omega, kx, ky


def _frames(
    part: Partial,
    theta: np.ndarray,
    amp_all: np.ndarray,
    opts: Options,
    t0: int,
    t1: int,
    rates: tuple[np.ndarray, np.ndarray, np.ndarray | None] | None = None,
) -> None:
    """Add frames ``t0..t1-1`` to `part`.

    `theta` is the phase ``(T, Y + 2·hy, X + 2·hx)`` with its halo, `amp_all` the amplitude
    ``(T, Y, X)`` of the interior; `rates` are ω, k_x, k_y of the window estimator (None:
    the one-sample differences of `theta`).
    """
    hy, hx = opts.halo
    ry, rx = opts.radius
    n_t = theta.shape[0]
    ny, nx = amp_all.shape[1:]
    lo, hi = max(t0 - 1, 0), min(t1 + 1, n_t)
    amp = amp_all[t0:t1]
    tb = theta[t0:t1]
    rows = slice(hy - ry, hy + ny + ry)
    cols = slice(hx - rx, hx + nx + rx)
    # ∇θ on the interior plus the PGD window: arg(a[x+1]·conj(a[x−1])) / 2 = wrap(Δθ) / 2
    gx = _wrap(tb[:, rows, 2:] - tb[:, rows, :-2])
    gx *= 0.5
    gy: np.ndarray | None = None
    if opts.nd == 2:
        gy = _wrap(tb[:, 2:, cols] - tb[:, :-2, cols])
        gy *= 0.5
        norm = np.sqrt(gx * gx + gy * gy)
    else:
        norm = np.abs(gx)
    inner = (slice(None), slice(ry, ry + ny), slice(rx, rx + nx))
    kn = norm[inner]

    if rates is None:
        # ω at frames t0..t1-1: the mean of the wrapped differences to the previous and the
        # next frame (one-sided at the ends).
        th_in = theta[lo:hi, hy : hy + ny, hx : hx + nx]
        d = _wrap(th_in[1:] - th_in[:-1])
        d *= np.float32(1.0 / opts.dt)
        if t0 == 0:
            d = np.concatenate([d[:1], d])
        if t1 == n_t:
            d = np.concatenate([d, d[-1:]])
        omega = d[1:] + d[:-1]
        omega *= 0.5
        del th_in, d
        # ∇θ = −k
        grad = [gx[inner]] if gy is None else [gx[inner], gy[inner]]
        k_norm = kn
    else:
        omega, kx_w, ky_w = rates
        grad = [-kx_w] if ky_w is None else [-kx_w, -ky_w]
        k_norm = np.abs(kx_w) if ky_w is None else np.hypot(kx_w, ky_w)

    with np.errstate(divide="ignore", invalid="ignore"):
        inv_k = np.float32(1.0) / k_norm
        speed = np.abs(omega) * inv_k
        wavelength = inv_k * _TWO_PI32
        # The direction of v = ω·k/|k|² with k = −∇θ: that of −sign(ω)·∇θ.
        sign = np.sign(omega)
        np.negative(sign, out=sign)
        vx = grad[0] * sign
        if len(grad) == 2:
            vy = grad[1] * sign
            direction = np.arctan2(vy, vx)
        else:
            direction = np.where(vx < 0, np.float32(math.pi), np.float32(0.0))
    del sign, vx, grad

    amp_flat = amp.ravel().astype(np.float64)
    part.weight += float(amp_flat.sum())
    # (ufunc reductions, not np.dot: BLAS threads would spin against the worker threads)
    part.weight_cos += float(np.add.reduce(amp * np.cos(direction), axis=None, dtype=np.float64))
    if gy is not None:
        part.weight_sin += float(
            np.add.reduce(amp * np.sin(direction), axis=None, dtype=np.float64)
        )
    part.points += amp.size
    part.speed += np.bincount(LOG.index(speed).ravel(), amp_flat, LOG.n)
    wl_idx = LOG.index(wavelength).ravel()
    part.wavelength += np.bincount(wl_idx, amp_flat, LOG.n)
    part.wavelength_count += np.bincount(wl_idx, minlength=LOG.n)
    part.omega += np.bincount(SIGNED.index(omega).ravel(), amp_flat, SIGNED.n)
    part.direction += np.bincount(ANGLE.index(direction).ravel(), amp_flat, ANGLE.n)
    del speed, wavelength, omega, direction, wl_idx, amp_flat

    # Local phase-gradient directionality: |Σ∇θ| / Σ|∇θ| over the window.
    wx, wy = 2 * rx + 1, 2 * ry + 1
    sx = _box_valid(_box_valid(gx, wx, 2, nx), wy, 1, ny)
    sn = _box_valid(_box_valid(norm, wx, 2, nx), wy, 1, ny)
    if gy is not None:
        sy = _box_valid(_box_valid(gy, wx, 2, nx), wy, 1, ny)
        resultant = np.sqrt(sx * sx + sy * sy)
    else:
        resultant = np.abs(sx)
    with np.errstate(divide="ignore", invalid="ignore"):
        pgd = resultant / sn
    pidx = UNIT.index(pgd)
    pidx[pgd >= 1.0 - ONE_TOL] = UNIT.n
    pidx[~(sn > 0)] = 0
    part.pgd += np.bincount(pidx.ravel(), minlength=UNIT.n + 1)


def block_spectrum_bins(
    block: np.ndarray,
    *,
    n_lead: int,
    bins: tuple[int, ...],
    opts: Options,
) -> np.ndarray:
    """The one-sided temporal spectrum of a block (no halo) at frequency `bins`.

    Returns ``(L, len(bins), Y, X)`` complex, unscaled (as ``rfft``).
    """
    fields_, _ = _as_fields(block, n_lead, opts.nd)
    out = []
    for li in range(fields_.shape[0]):
        s = K.prepare(fields_[li], 0, opts.band, opts.dt, False).astype(np.float32)
        spec = scipy.fft.rfft(s, axis=0, workers=K.FFT_WORKERS)
        out.append(spec[list(bins)])
    return np.stack(out)


# ----------------------------------------------------------------------------- finishing


def _scale(f: int, n_t: int) -> float:
    """The factor `spectrum_to_analytic` applied to one-sided bin `f`."""
    return 2.0 if 1 <= f < (n_t + 1) // 2 else 1.0


def assemble_null(part: Partial, lead_shape: tuple[int, ...], grid: tuple[int, int]) -> np.ndarray:
    """The gathered null frames as ``(L, n_null, Y, X)``."""
    n_null = part.null[0][2].shape[len(lead_shape)]
    full = np.empty((*lead_shape, n_null, *grid), dtype=np.float32)
    for lead_off, (y0, x0), theta in part.null:
        index = tuple(
            slice(o, o + n) for o, n in zip(lead_off, theta.shape[: len(lead_shape)], strict=False)
        )
        ys, xs = theta.shape[-2:]
        full[(*index, slice(None), slice(y0, y0 + ys), slice(x0, x0 + xs))] = theta
    return full.reshape(-1, n_null, *grid)


def null_thresholds(theta: np.ndarray, nd: int, window: int, seed: int) -> tuple[float, float, int]:
    """99th percentiles of PGD and wavelength on a spatially shuffled copy of the phase.

    `theta` is ``(L, n_null, Y, X)``; each field's cells are permuted once (the same
    permutation for all its frames), seeded by `seed`.
    """
    rng = np.random.default_rng(seed)
    pgd_all, wl_all = [], []
    for th in theta:
        n_null, ny, nx = th.shape
        perm = rng.permutation(ny * nx)
        shuffled = th.reshape(n_null, -1)[:, perm].reshape(n_null, ny, nx)
        u = np.exp(1j * shuffled.astype(np.float64))
        if nd == 1:
            u = u[:, 0, :]
        grads = [K.phase_gradient(u, axis) for axis in range(-nd, 0)]
        pgd_all.append(K.directionality(grads, nd, window).ravel())
        norm = np.sqrt(sum(g * g for g in grads))
        with np.errstate(divide="ignore"):
            wl_all.append((2 * math.pi / norm).ravel())
    pgd = np.concatenate(pgd_all)
    wl = np.minimum(np.concatenate(wl_all), np.finfo(np.float64).max)
    pgd_thr = float(np.percentile(pgd, 99))
    if pgd_thr >= 1.0 - ONE_TOL:
        pgd_thr = 1.0
    return pgd_thr, float(np.percentile(wl, 99)), int(pgd.size)


def _share_above(hist: np.ndarray, edges: np.ndarray, threshold: float) -> float:
    """Share of `hist` at or above `threshold`, interpolating inside its bin."""
    total = float(hist.sum())
    if not total > 0:
        return math.nan
    i = int(np.searchsorted(edges, threshold, side="right")) - 1
    if i < 0:
        return 1.0
    if i >= len(hist):
        return 0.0
    lo, hi = edges[i], edges[i + 1]
    frac = min(max((hi - threshold) / (hi - lo), 0.0), 1.0) if hi > lo else 0.0
    return float((hist[i + 1 :].sum() + frac * hist[i]) / total)


def _stats(values: list[float]) -> dict[str, float]:
    q25, med, q75 = values
    return {"median": med, "q25": q25, "q75": q75, "iqr": q75 - q25}


def circular_summary(part: Partial) -> dict[str, float]:
    """Circular statistics of the amplitude-weighted directions (radians).

    ``mean`` = arg Σ w·e^{iφ}; ``resultant_length`` R = |Σ w·e^{iφ}| / Σ w in [0, 1];
    ``circular_std`` = sqrt(−2 ln R) (Mardia & Jupp 2000, §2.3.4: the spread of a wrapped
    normal; inf for R = 0); ``median``: the circular median, the angle that halves the
    weight on the circle, read from the histogram cut opposite the mean. No linear
    quantiles of angles: a spread across ±π stays a small spread.
    """
    mean_dir = math.atan2(part.weight_sin, part.weight_cos)
    r = math.hypot(part.weight_sin, part.weight_cos) / part.weight if part.weight > 0 else 0.0
    r = min(r, 1.0)
    (med,) = H.circular_quantiles(part.direction, ANGLE, mean_dir, (0.5,))
    return {
        "mean": mean_dir if r > 0 else math.nan,
        "median": med if r > 0 else math.nan,
        "resultant_length": r,
        "circular_std": math.sqrt(-2.0 * math.log(r)) if r > 0 else math.inf,
    }


def summarise(part: Partial) -> dict[str, dict[str, float]]:
    """Amplitude-weighted median, quartiles and IQR of speed, wavelength, ω, direction."""
    qs = (0.25, 0.5, 0.75)
    out = {
        "speed": _stats(H.quantiles(part.speed, LOG.edges, qs)),
        "wavelength": _stats(H.quantiles(part.wavelength, LOG.edges, qs)),
        "omega": _stats(H.quantiles(part.omega, SIGNED.edges, qs)),
    }
    out["frequency"] = {k: v / (2 * math.pi) for k, v in out["omega"].items()}
    out["direction"] = circular_summary(part)
    out["direction_deg"] = {
        k: (v if k == "resultant_length" else math.degrees(v)) for k, v in out["direction"].items()
    }
    return out


def wave_shares(part: Partial, pgd_thr: float, wl_thr: float) -> tuple[float, float]:
    """percent_waves and percent_long_waves from the histograms and the null thresholds."""
    waves = 100.0 * _share_above(part.pgd, PGD_EDGES, pgd_thr)
    long_waves = 100.0 * _share_above(part.wavelength_count, LOG.edges, wl_thr)
    return waves, long_waves


def dominant_mode(
    power: np.ndarray,
    slices,
    candidates: list[int],
    n_t: int,
    n_cells: int,
    dt: float,
    nd: int,
) -> dict[str, Any]:
    """The (ω > 0, k) bin of largest power in the k–ω spectrum, by branch and bound.

    `power[f]` is the power of temporal bin `f` summed over cells (unscaled); `slices(f)`
    returns the fields' spectra at bin `f` as ``(L, Y, X)``, scaled by `_scale`;
    `candidates` are the bins that may be visited, by decreasing power.
    """
    best, best_f, best_k = -1.0, -1, (0, 0)
    exact = False
    cache: dict[int, np.ndarray] = {}

    def spatial_power(f: int) -> np.ndarray:
        if f not in cache:
            x = slices(f)
            p = scipy.fft.fft2(x, axes=(-2, -1), workers=K.FFT_WORKERS)
            p2 = p.real.astype(np.float64) ** 2 + p.imag.astype(np.float64) ** 2
            cache[f] = p2.sum(axis=0) / _scale(f, n_t) ** 2
        return cache[f]

    visited = set()
    for f in candidates:
        if n_cells * power[f] < best:
            exact = True
            break
        p = spatial_power(f)
        visited.add(f)
        m = int(np.argmax(p))
        if p.flat[m] > best:
            best, best_f = float(p.flat[m]), f
            best_k = tuple(int(i) for i in np.unravel_index(m, p.shape))  # type: ignore[assignment]
    else:
        remaining = [f for f in range(1, len(power)) if f not in visited]
        exact = not remaining or n_cells * float(np.max(power[remaining])) <= best
    if best_f < 0:
        return {"exact": exact, "omega": None}
    # Sub-bin refinement of ω from the neighbouring frequencies: for a tone under the
    # rectangular window the amplitudes fall as a sinc, and the offset δ from bin f obeys
    # |X(f+1)| / |X(f)| = δ / (1 − δ) (towards the larger neighbour).
    shift = 0.0
    if 1 < best_f < len(power) - 1:
        try:
            am = math.sqrt(float(spatial_power(best_f - 1)[best_k]))
            ap = math.sqrt(float(spatial_power(best_f + 1)[best_k]))
        except KeyError:
            am = ap = 0.0
        a0 = math.sqrt(best)
        shift = ap / (a0 + ap) if ap >= am else -am / (a0 + am)
    grid = cache[best_f].shape
    freqs = [np.fft.fftfreq(n)[i] for n, i in zip(grid, best_k, strict=False)]
    ky, kx = (-2 * math.pi * f for f in freqs)
    if nd == 1:
        ky = 0.0
    omega = 2 * math.pi * (best_f + shift) / (n_t * dt)
    kn = math.hypot(kx, ky)
    total = n_cells * float(power[1:].sum())
    mode: dict[str, Any] = {
        "k_x": kx,
        "omega": omega,
        "frequency": omega / (2 * math.pi),
        "phase_speed": omega / kn if kn > 0 else None,
        "wavelength": 2 * math.pi / kn if kn > 0 else None,
        "direction": math.atan2(ky, kx) if kn > 0 else None,
        "power_fraction": best / total if total > 0 else None,
        "exact": bool(exact),
    }
    if nd == 2:
        mode["k_y"] = ky
    mode["direction_deg"] = None if mode["direction"] is None else math.degrees(mode["direction"])
    return mode


def null_frame_indices(n_frames: int, n_fields: int, n_cells: int) -> tuple[int, ...]:
    """Evenly spaced frames (away from the ends) for about `NULL_POINTS` null samples."""
    n = int(min(n_frames, max(1, math.ceil(NULL_POINTS / max(1, n_fields * n_cells)))))
    frames = np.linspace(0, n_frames - 1, n + 2)[1:-1].round().astype(int)
    return tuple(sorted(set(int(f) for f in frames)))


def make_options(
    info: SignalInfo,
    band,
    window: int,
    estimator: str = "window",
    local: tuple[int, int] = (3, 5),
) -> Options:
    n_fields = int(np.prod([info.sizes[d] for d in info.lead])) if info.lead else 1
    n_cells = int(np.prod(info.grid))
    return Options(
        nd=info.ndim,
        n_frames=info.n_frames,
        dt=info.dt,
        band=None if band is None else (float(band[0]), float(band[1])),
        window=int(window),
        null_frames=null_frame_indices(info.n_frames, n_fields, n_cells),
        estimator=estimator,
        local=local,
    )
