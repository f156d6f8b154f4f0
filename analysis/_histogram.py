"""Weighted quantiles from fine histograms, so that statistics merge across chunks.

Sorting 65 million values to take a weighted median costs more than the whole rest of the
analysis, and cannot be done chunk by chunk. Instead each chunk adds its values to fixed,
fine histograms, the histograms of all chunks add up, and quantiles are read off the sum.

- `LogBins` bins positive values by their floating-point bits: the exponent and the top
  `MANTISSA_BITS` bits of the mantissa, i.e. bins whose width is at most 2**-10 (0.1 %) of
  their value, from 2**-40 to 2**40 (values outside go to the end bins). Reading a
  quantile interpolates inside its bin, so the error is well under 0.1 %.
- `SignedLogBins` mirrors them for values of either sign (angular frequency).
- `LinearBins` covers a fixed interval (angles, the directionality in [0, 1]).
"""

from __future__ import annotations

import math

import numpy as np

MANTISSA_BITS = 10
MIN_EXP, MAX_EXP = -40, 40


def _clip(idx: np.ndarray, n: int) -> np.ndarray:
    """Clip bin indices to [0, n) in place (np.clip's Python wrapper costs more here)."""
    np.maximum(idx, 0, out=idx)
    return np.minimum(idx, n - 1, out=idx)


class LinearBins:
    """`n` equal bins on ``[lo, hi]``; values outside are clipped to the end bins."""

    def __init__(self, lo: float, hi: float, n: int) -> None:
        self.lo, self.hi, self.n = float(lo), float(hi), int(n)
        self.edges = np.linspace(self.lo, self.hi, self.n + 1)

    def index(self, v: np.ndarray) -> np.ndarray:
        scale = self.n / (self.hi - self.lo)
        # An undefined value (NaN: a point of zero amplitude) lands in an end bin, where its
        # weight, the amplitude, is zero; the cast would only warn about it.
        with np.errstate(invalid="ignore"):
            idx = ((v - self.lo) * scale).astype(np.int32)
        return _clip(idx, self.n)


class LogBins:
    """Bins of relative width 2**-MANTISSA_BITS for positive values (see module docstring)."""

    def __init__(self) -> None:
        self.n = (MAX_EXP - MIN_EXP) << MANTISSA_BITS
        i = np.arange(self.n + 1, dtype=np.int64) + ((MIN_EXP + 1023) << MANTISSA_BITS)
        self.edges = (i << (52 - MANTISSA_BITS)).view(np.float64)

    def index(self, v: np.ndarray) -> np.ndarray:
        """Bin of each value; zero, negative and tiny values go to bin 0, inf and NaN last."""
        if v.dtype == np.float32:
            idx = v.view(np.int32) >> (23 - MANTISSA_BITS)
            idx -= (MIN_EXP + 127) << MANTISSA_BITS
        else:
            bits = np.asarray(v, dtype=np.float64).view(np.int64)
            idx = (bits >> (52 - MANTISSA_BITS)) - ((MIN_EXP + 1023) << MANTISSA_BITS)
        # Negative floats have the sign bit set (negative integers): they go to bin 0.
        return _clip(idx, self.n)


class SignedLogBins:
    """`LogBins` mirrored about zero: ``2·n`` bins, the middle edge at 0."""

    def __init__(self) -> None:
        self.pos = LogBins()
        self.n = 2 * self.pos.n
        e = self.pos.edges
        self.edges = np.concatenate([-e[:0:-1], [0.0], e[1:]])

    def index(self, v: np.ndarray) -> np.ndarray:
        if v.dtype == np.float32:
            # Integer arithmetic on the bits: |v|'s bin m, then n + m or n − 1 − m.
            bits = v.view(np.int32)
            sign = bits >> 31  # −1 for negative values, 0 otherwise
            m = (bits & 0x7FFFFFFF) >> (23 - MANTISSA_BITS)
            m -= (MIN_EXP + 127) << MANTISSA_BITS
            _clip(m, self.pos.n)
            m ^= sign  # −m − 1 where negative
            m += self.pos.n
            return m
        idx = self.pos.index(np.abs(v))
        return np.where(v < 0, self.pos.n - 1 - idx, self.pos.n + idx)


def histogram(bins: LinearBins | LogBins | SignedLogBins, v: np.ndarray, w=None) -> np.ndarray:
    """Counts (or summed weights `w`) of `v` in `bins`, as float64 of length ``bins.n``."""
    idx = bins.index(v).ravel()
    weights = None if w is None else np.asarray(w, dtype=np.float64).ravel()
    return np.bincount(idx, weights=weights, minlength=bins.n).astype(np.float64, copy=False)


def quantiles(hist: np.ndarray, edges: np.ndarray, qs) -> list[float]:
    """Quantiles `qs` (in [0, 1]) of the distribution in `hist`, interpolating in a bin."""
    total = float(hist.sum())
    if not total > 0:
        return [math.nan for _ in qs]
    cum = np.cumsum(hist)
    out = []
    for q in qs:
        target = q * total
        i = int(np.searchsorted(cum, target, side="left"))
        i = min(i, len(hist) - 1)
        below = cum[i - 1] if i > 0 else 0.0
        frac = (target - below) / hist[i] if hist[i] > 0 else 0.5
        lo, hi = edges[i], edges[i + 1]
        out.append(float(lo + min(max(frac, 0.0), 1.0) * (hi - lo)))
    return out


def circular_quantiles(hist: np.ndarray, bins: LinearBins, mean_angle: float, qs) -> list[float]:
    """Quantiles of angles binned on [−π, π], measured from the cut opposite `mean_angle`.

    The circle is cut where the distribution is thinnest in the usual case, opposite its
    mean direction; results are wrapped to (−π, π].
    """
    cut = mean_angle + math.pi
    c = int(bins.index(np.array([(cut + math.pi) % (2 * math.pi) - math.pi]))[0])
    rolled = np.roll(hist, -c)
    edges = bins.edges
    unwrapped = np.concatenate([edges[c:-1], edges[: c + 1] + 2 * math.pi])
    values = quantiles(rolled, unwrapped, qs)
    return [float((v + math.pi) % (2 * math.pi) - math.pi) for v in values]


def share_at_least(hist: np.ndarray, bins: LinearBins, threshold: float) -> float:
    """Share of the counts in `hist` at or above `threshold` (interpolated inside a bin)."""
    total = float(hist.sum())
    if not total > 0:
        return math.nan
    i = int(bins.index(np.array([threshold]))[0])
    lo, hi = bins.edges[i], bins.edges[i + 1]
    frac_above = min(max((hi - threshold) / (hi - lo), 0.0), 1.0)
    return float((hist[i + 1 :].sum() + frac_above * hist[i]) / total)
