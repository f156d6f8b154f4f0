"""The input drive ``d(t)`` as the kernels see it: sample indices and a weight.

The kernels compute ``d(t) = drive[i0] + w·(drive[i1] − drive[i0])``; this module turns
times into ``(i0, i1, w)``:

- zero-order hold: ``i0 = i1 = (number of sample times s_n ≤ t) − 1``, clamped to
  ``[0, T−1]``, ``w = 0`` — so exactly at a sample time the new sample applies;
- linear: between ``s_i ≤ t < s_{i+1}``, ``i0 = i``, ``i1 = i + 1``,
  ``w = (t − s_i)/(s_{i+1} − s_i)``; outside the samples, the first or last sample.

Fixed-step stage times follow torchdiffeq's ``perturb=True`` convention: a stage with
``c = 0`` is evaluated one ulp after ``t_n`` and one with ``c = 1`` one ulp before
``t_{n+1}``, so every stage of the step ``[t_n, t_{n+1})`` sees that interval's input.
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass

import numpy as np

INTERPOLATIONS: tuple[str, ...] = ("zoh", "linear")


@dataclass(frozen=True, eq=False)
class InputSchedule:
    """Samples ``(T, B, C, H, W)`` at increasing ``times`` ``(T,)``, held or interpolated."""

    samples: np.ndarray
    times: np.ndarray
    linear: bool

    @classmethod
    def zero(cls, state_shape: tuple[int, ...]) -> InputSchedule:
        """No input: a single zero sample."""
        return cls(np.zeros((1, *state_shape)), np.zeros(1), linear=False)

    def weights(self, t: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``(i0, i1, w)`` arrays of ``t``'s shape (int64, int64, float64)."""
        t = np.asarray(t, dtype=np.float64)
        last = len(self.times) - 1
        idx = np.searchsorted(self.times, t, side="right") - 1
        i0 = np.clip(idx, 0, last)
        if not self.linear or last == 0:
            return i0, i0.copy(), np.zeros(t.shape)
        inside = (idx >= 0) & (idx < last)
        i1 = np.where(inside, i0 + 1, i0)
        span = self.times[i1] - self.times[i0]
        w = np.where(inside, (t - self.times[i0]) / np.where(inside, span, 1.0), 0.0)
        return i0, i1, w

    def weights_at(self, t: float) -> tuple[int, int, float]:
        """``(i0, i1, w)`` at one time (the same rule as `weights`)."""
        times = self.times
        last = len(times) - 1
        idx = bisect.bisect_right(times, t) - 1
        if idx < 0 or idx >= last or not self.linear:
            i = min(max(idx, 0), last)
            return i, i, 0.0
        return idx, idx + 1, float((t - times[idx]) / (times[idx + 1] - times[idx]))


def stage_times(
    t0: float, dt: float, first: int, stop: int, c: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Step sizes ``(n,)`` and stage times ``(n, S)`` of the steps ``first ≤ k < stop``.

    The grid is ``t_k = t0 + k·dt`` (float64) and ``h_k = t_{k+1} − t_k``; a stage with
    ``0 < c < 1`` is at ``t_k + c·h_k``, one with ``c = 0`` just after ``t_k`` and one with
    ``c = 1`` just before ``t_{k+1}`` (see the module docstring).
    """
    grid = t0 + np.arange(first, stop + 1, dtype=np.float64) * dt
    start, end = grid[:-1, None], grid[1:, None]
    h = grid[1:] - grid[:-1]
    times = start + c[None, :] * h[:, None]
    times = np.where(c[None, :] == 0.0, np.nextafter(start, np.inf), times)
    times = np.where(c[None, :] == 1.0, np.nextafter(end, -np.inf), times)
    return h, times


def grid_times(t0: float, dt: float, first: int, stop: int) -> tuple[np.ndarray, np.ndarray]:
    """Step sizes ``(n,)`` and step start times ``(n, 1)`` (unperturbed), for ``imex``."""
    grid = t0 + np.arange(first, stop + 1, dtype=np.float64) * dt
    return grid[1:] - grid[:-1], grid[:-1, None].copy()
