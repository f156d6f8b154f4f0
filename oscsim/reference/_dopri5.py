"""Adaptive Dormand–Prince 5(4) with torchdiffeq 0.2.5's step control, in float64.

Order 5 (local extrapolation) with an embedded 4th-order error estimate and a 4th-order
dense output (Dormand & Prince 1980; Shampine 1986). Everything that decides which steps
are taken follows torchdiffeq's ``RKAdaptiveStepsizeODESolver`` (``_impl/rk_common.py``)
and ``_impl/misc.py`` for the state pair ``(position, velocity)``:

- error ratio: for each of position and velocity the RMS over all its entries (batch
  included) of ``err / (atol + rtol·max(|x_n|, |x_{n+1}|))``, then the larger of the two
  (torchdiffeq's ``_mixed_norm``); a step is accepted when the ratio is ≤ 1;
- next step ``h·min(10, max(0.9·ratio^(−1/5), 0.2))``, the lower bound 0.2 replaced by 1
  after an accepted step, and ``10·h`` when the ratio is 0;
- first step by ``_select_initial_step`` (Hairer, Nørsett & Wanner, Sec. II.4), unless
  given (torchdiffeq's ``first_step``);
- input jumps: a step that would pass the next jump time ends on it; after landing on it
  the derivative is re-evaluated one ulp later (so the next step sees the new input);
- stages with ``c = 1`` are evaluated one ulp before the step's end.

The step logic runs in Python (a handful of scalars per step); all array work is in the
Numba kernels of `_kernels`.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Callable

import numba
import numpy as np

from oscsim.errors import IntegrationError
from oscsim.reference import _kernels
from oscsim.reference._inputs import InputSchedule
from oscsim.reference._tableau import DOPRI5
from oscsim.stability import check_frames

if DOPRI5.error is None or DOPRI5.mid is None:  # pragma: no cover - fixed data
    raise ImportError("the dopri5 tableau lacks its error or mid-point weights")
_ERROR_WEIGHTS: np.ndarray = DOPRI5.error
_MID_WEIGHTS: np.ndarray = DOPRI5.mid

SAFETY = 0.9
IFACTOR = 10.0
DFACTOR = 0.2


def _rms_pair(position: np.ndarray, velocity: np.ndarray) -> float:
    """torchdiffeq's ``_mixed_norm`` of the pair: the larger of the two RMS norms."""
    return max(
        math.sqrt(float(np.mean(np.abs(position) ** 2))),
        math.sqrt(float(np.mean(np.abs(velocity) ** 2))),
    )


def optimal_step_size(last_step: float, error_ratio: float) -> float:
    """torchdiffeq's ``_optimal_step_size`` for order 5 with its default factors."""
    if error_ratio == 0:
        return last_step * IFACTOR
    dfactor = 1.0 if error_ratio < 1 else DFACTOR
    factor = min(IFACTOR, max(SAFETY / error_ratio ** (1.0 / 5.0), dfactor))
    return last_step * factor


class _Dopri5:
    """One integration: the solver state and the buffers it reuses."""

    def __init__(
        self,
        net: _kernels.Network,
        y: np.ndarray,
        z: np.ndarray,
        t0: float,
        inputs: InputSchedule,
        jump_times: np.ndarray,
        rtol: float,
        atol: float,
        first_step: float | None,
        parallel: bool,
    ) -> None:
        self.net, self.inputs, self.rtol, self.atol = net, inputs, rtol, atol
        self.rk_steps = _kernels.rk_steps_parallel if parallel else _kernels.rk_steps
        self.threads = (numba.get_num_threads(),) if parallel else ()
        self.shape = y.shape
        self.size = y.size
        self.cur_y, self.cur_z = y.copy(), z.copy()  # the state at t_cur
        self.prev_y, self.prev_z = y.copy(), z.copy()  # the state at t_prev
        self.f_cur = np.empty(self.shape)  # acceleration at (cur_y, cur_z) (first same as last)
        self.work = _kernels.workspace(DOPRI5.stages, self.shape)
        self.error_scratch = np.empty(self.size)
        self.no_saves = np.zeros(0, dtype=np.int64)
        self.no_output = np.empty((0, *self.shape))
        self.t_prev = self.t_cur = float(t0)
        self.h_accepted = 0.0
        self.steps_accepted = 0
        self.steps_rejected = 0
        jumps = np.sort(jump_times[jump_times >= t0])
        self.jumps = [float(t) for t in jumps]
        self.next_jump = min(bisect.bisect_right(self.jumps, t0), len(self.jumps) - 1)

        self._acceleration(self.cur_y, self.cur_z, float(t0), self.f_cur)
        self.h = self._initial_step(float(t0)) if first_step is None else first_step

    def _acceleration(self, y: np.ndarray, z: np.ndarray, t: float, out: np.ndarray) -> None:
        i0, i1, w = self.inputs.weights_at(t)
        _kernels.acceleration(self.net, y, z, self.inputs.samples, i0, i1, w, out)

    def _initial_step(self, t0: float) -> float:
        """torchdiffeq's ``_select_initial_step`` with order 4 (``Dopri5Solver.order − 1``)."""
        y0, z0, a0 = self.cur_y, self.cur_z, self.f_cur
        scale_y = self.atol + np.abs(y0) * self.rtol
        scale_z = self.atol + np.abs(z0) * self.rtol
        d0 = _rms_pair(y0 / scale_y, z0 / scale_z)
        d1 = _rms_pair(z0 / scale_y, a0 / scale_z)
        h0 = 1e-6 if d0 < 1e-5 or d1 < 1e-5 else 0.01 * d0 / d1
        y1 = y0 + h0 * z0
        z1 = z0 + h0 * a0
        a1 = np.empty(self.shape)
        self._acceleration(y1, z1, t0 + h0, a1)
        d2 = _rms_pair((z1 - z0) / scale_y, (a1 - a0) / scale_z) / h0
        if d1 <= 1e-15 and d2 <= 1e-15:
            h1 = max(1e-6, h0 * 1e-3)
        else:
            h1 = (0.01 / max(d1, d2)) ** (1.0 / 5.0)
        return min(100 * h0, h1)

    def step(self) -> None:
        """Attempt one step from ``t_cur`` (torchdiffeq's ``_adaptive_step``)."""
        t0 = self.t_cur
        dt = self.h if math.isfinite(self.h) else 0.0
        dt = max(dt, 0.0)
        if not t0 + dt > t0:
            raise IntegrationError(
                f"dopri5: the step size underflowed at t = {t0:.6g} (dt = {dt:g}); the "
                "system is too stiff for these tolerances: loosen rtol/atol or use a "
                "fixed-step method"
            )
        t1 = t0 + dt
        on_jump = False
        if self.jumps:
            jump = self.jumps[self.next_jump]
            on_jump = t0 < jump < t0 + dt
            if on_jump:
                t1 = jump
                dt = t1 - t0

        tab, work = DOPRI5, self.work
        times = np.where(tab.c == 1.0, np.nextafter(t1, -np.inf), t0 + tab.c * dt)
        i0, i1, w = self.inputs.weights(times[None, :])
        work.kz[0] = self.f_cur
        self.rk_steps(
            self.net, tab.a, tab.b, True, False, self.cur_y, self.cur_z, np.array([dt]),
            i0, i1, w, self.inputs.samples, self.no_saves, self.no_output, self.no_output, work,
            *self.threads,
        )  # fmt: skip
        # First same as last: the last stage's state is the step's result.
        new_y = work.ys[(tab.stages - 1) % 2]
        new_z = work.ky[tab.stages - 1]
        ky = work.ky.reshape(tab.stages, self.size)
        kz = work.kz.reshape(tab.stages, self.size)
        sum_y, sum_z = _kernels.error_sums(
            self.cur_y.reshape(self.size), self.cur_z.reshape(self.size),
            new_y.reshape(self.size), new_z.reshape(self.size), ky, kz, _ERROR_WEIGHTS, dt,
            self.rtol, self.atol, self.error_scratch,
        )  # fmt: skip
        ratio = max(math.sqrt(sum_y / self.size), math.sqrt(sum_z / self.size))
        if math.isnan(ratio):
            raise IntegrationError(
                f"dopri5: the state became non-finite (NaN or inf) in a step from t = {t0:.6g} "
                f"(dt = {dt:g}); tighten rtol/atol or check the network's stability "
                "(gamma, epsilon, kernel sizes)"
            )
        if ratio <= 1:
            self.prev_y[...] = self.cur_y
            self.prev_z[...] = self.cur_z
            self.cur_y[...] = new_y
            self.cur_z[...] = new_z
            self.t_prev, self.t_cur, self.h_accepted = t0, t1, dt
            self.steps_accepted += 1
            if on_jump:
                if self.next_jump != len(self.jumps) - 1:
                    self.next_jump += 1
                # Past a discontinuity of the input: take the derivative on its far side.
                after = float(np.nextafter(t1, np.inf))
                self._acceleration(self.cur_y, self.cur_z, after, self.f_cur)
            else:
                self.f_cur[...] = work.kz[tab.stages - 1]
        else:
            self.steps_rejected += 1
        self.h = optimal_step_size(dt, ratio)

    def interpolate(self, t: float, out_y: np.ndarray, out_z: np.ndarray) -> None:
        """The dense output of the last accepted step at ``t`` (``t_prev ≤ t ≤ t_cur``)."""
        s = (t - self.t_prev) / (self.t_cur - self.t_prev)
        stages, size = DOPRI5.stages, self.size
        _kernels.dense_output(
            self.prev_y.reshape(size), self.prev_z.reshape(size),
            self.cur_y.reshape(size), self.cur_z.reshape(size),
            self.work.ky.reshape(stages, size), self.work.kz.reshape(stages, size),
            _MID_WEIGHTS, self.h_accepted, s, out_y.reshape(size), out_z.reshape(size),
        )  # fmt: skip


def integrate_dopri5(
    net: _kernels.Network,
    y: np.ndarray,
    z: np.ndarray,
    times: np.ndarray,
    inputs: InputSchedule,
    jump_times: np.ndarray,
    rtol: float,
    atol: float,
    out_y: np.ndarray,
    out_z: np.ndarray,
    advance_frames: Callable[[int], None],
    *,
    first_step: float | None,
    parallel: bool,
    bound: float = math.inf,
) -> dict[str, int]:
    """Integrate from ``times[0]`` and write the state at every ``times[k]`` into ``out_*[k]``.

    ``first_step`` replaces the automatic choice of the first step (torchdiffeq's
    ``first_step`` option); ``parallel`` selects the multi-threaded stage kernel. Every
    accepted state is checked against ``bound`` (`oscsim.stability`). Returns the counts of
    accepted and rejected steps.

    Raises
    ------
    IntegrationError
        If the state stops being finite, passes ``bound``, or the step size underflows.
    """
    out_y[0] = y
    out_z[0] = z
    advance_frames(1)
    if len(times) == 1:
        return {"accepted": 0, "rejected": 0}
    solver = _Dopri5(
        net, y, z, float(times[0]), inputs, jump_times, rtol, atol, first_step, parallel
    )
    for k in range(1, len(times)):
        t = float(times[k])
        while t > solver.t_cur:
            accepted = solver.steps_accepted
            solver.step()
            if solver.steps_accepted > accepted:
                check_frames(
                    {"position": solver.cur_y[None], "velocity": solver.cur_z[None]},
                    np.array([solver.t_cur]),
                    bound,
                    "dopri5",
                    None,
                )
        solver.interpolate(t, out_y[k], out_z[k])
        advance_frames(1)
    return {"accepted": solver.steps_accepted, "rejected": solver.steps_rejected}
