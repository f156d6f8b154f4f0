"""Fixed-step reference solvers: ``euler``, ``rk4`` (3/8 rule) and the coRNN ``imex`` scheme.

Steps lie on ``t_n = t0 + n·dt``; each output time is one of them. The step loop runs in
Numba (`_kernels.rk_steps`, `_kernels.imex_steps`, or their parallel versions), one sample
at a time, over chunks of at most ``CHUNK`` steps whose step sizes and input weights are
prepared here.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numba
import numpy as np

from oscsim.errors import IntegrationError
from oscsim.reference import _kernels
from oscsim.reference._inputs import InputSchedule, grid_times, stage_times
from oscsim.reference._tableau import ButcherTableau
from oscsim.stability import check_frames

CHUNK = 4096


def integrate_fixed(
    net: _kernels.Network,
    tableau: ButcherTableau | None,
    y: np.ndarray,
    z: np.ndarray,
    t0: float,
    dt: float,
    steps: np.ndarray,
    inputs: InputSchedule,
    out_y: np.ndarray,
    out_z: np.ndarray,
    advance_frames: Callable[[int], None],
    *,
    parallel: bool,
    bound: float = math.inf,
) -> None:
    """Integrate ``(y, z)`` (``(B, C, H, W)``, modified in place) with an explicit RK
        ``tableau`` or, for ``tableau=None``, the ``imex`` scheme.

        ``steps`` ``(S,)`` gives for each output frame its step count from ``t0`` (ascending);
        frame ``k`` is written to ``out_y[k]``, ``out_z[k]``. ``advance_frames(n)`` is called as
        frames complete (the progress bar). ``parallel`` selects the multi-threaded kernels.
    After each chunk the saved frames and the state are checked against ``bound``
    (`oscsim.stability`).

        Raises
        ------
        IntegrationError
            If the state stops being finite or passes ``bound``.
    """
    stages = 1 if tableau is None else tableau.stages
    batch = y.shape[0]
    sample_shape = (1, *y.shape[1:])
    # Samples are independent under a fixed step, so each is advanced on its own: one
    # sample's work arrays stay in cache, where a whole batch's would not (measured: a
    # batch of 16 on 64×64 cost twice as much per sample when advanced together).
    work = _kernels.workspace(stages, sample_shape)
    drives = [np.ascontiguousarray(inputs.samples[:, b : b + 1]) for b in range(batch)]
    threads = (numba.get_num_threads(),) if parallel else ()
    done = int(np.searchsorted(steps, 0, side="right"))
    out_y[:done] = y
    out_z[:done] = z
    advance_frames(done)
    total = int(steps[-1])
    first = 0
    while first < total:
        stop = min(first + CHUNK, total)
        frame_stop = int(np.searchsorted(steps, stop, side="right"))
        save_after = steps[done:frame_stop] - first
        slot_y = np.empty((frame_stop - done, *sample_shape))
        slot_z = np.empty_like(slot_y)
        if tableau is None:
            h, times = grid_times(t0, dt, first, stop)
        else:
            h, times = stage_times(t0, dt, first, stop, tableau.c)
        i0, i1, w = inputs.weights(times)
        failures = []
        for b in range(batch):
            yb, zb = y[b : b + 1], z[b : b + 1]  # contiguous views, advanced in place
            if tableau is None:
                imex = _kernels.imex_steps_parallel if parallel else _kernels.imex_steps
                failed = imex(
                    net, yb, zb, h, i0, i1, w, drives[b], save_after, slot_y, slot_z, work,
                    *threads,
                )  # fmt: skip
            else:
                rk = _kernels.rk_steps_parallel if parallel else _kernels.rk_steps
                failed = rk(
                    net, tableau.a, tableau.b, False, True, yb, zb, h, i0, i1, w, drives[b],
                    save_after, slot_y, slot_z, work, *threads,
                )  # fmt: skip
            out_y[done:frame_stop, b] = slot_y[:, 0]
            out_z[done:frame_stop, b] = slot_z[:, 0]
            if failed >= 0:
                failures.append(failed)
        if failures:
            n = first + min(failures)
            method = "imex" if tableau is None else tableau.name
            raise IntegrationError(
                f"{method}: the state became non-finite (NaN or inf) in the step from "
                f"t = {t0 + n * dt:.6g} to t = {t0 + (n + 1) * dt:.6g}; reduce dt (now {dt:g}) "
                "or check the network's stability (gamma, epsilon, kernel sizes)"
            )
        method = "imex" if tableau is None else tableau.name
        check_frames(
            {"position": out_y[done:frame_stop], "velocity": out_z[done:frame_stop]},
            t0 + steps[done:frame_stop] * dt,
            bound,
            method,
            dt,
        )
        check_frames({"position": y[None], "velocity": z[None]}, np.array([t0 + stop * dt]),
                     bound, method, dt)  # fmt: skip
        advance_frames(frame_stop - done)
        done = frame_stop
        first = stop
