"""One ICAR training step: the batched teacher-forced path against a frame-by-frame loop.

Both compute the same loss (tests/test_icar.py) of the same model on the same 60-frame
windows: forward, backward and an Adam step. Ours encodes every frame of the window in one
call, precomputes the input convolution ``V⋆u`` of every frame in one call, runs the core
through the fused ``imex`` kernel and decodes every step in one call
(`ICARForecaster.teacher_forced`); the baseline encodes, steps and decodes one frame at a
time (`ICARForecaster.teacher_forced_loop`). Steps alternate after a warm-up so that both
see the same machine load; medians are reported.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F
from oscsim.models.icar import ICARForecaster, build_icar
from oscsim.models.sequence import count_parameters

from oscsim.errors import OscsimInputError


def _step(
    model: ICARForecaster, frames: torch.Tensor, loss_of: Callable[[torch.Tensor], torch.Tensor]
) -> Callable[[], tuple[float, float]]:
    optimizer = torch.optim.Adam(model.parameters(), lr=1.5e-4)

    def step() -> tuple[float, float]:
        started = time.perf_counter()
        optimizer.zero_grad(set_to_none=True)
        loss = F.mse_loss(loss_of(frames), frames[:, 1:])
        loss.backward()
        optimizer.step()
        return time.perf_counter() - started, float(loss.detach())

    return step


def time_training_step(
    core: str = "nwm2d",
    *,
    preset: str = "paper",
    batch: int = 8,
    window: int = 60,
    repeats: int = 5,
    warmup: int = 1,
) -> dict[str, Any]:
    """Median seconds per training step of the batched path and of the frame loop.

    Parameters
    ----------
    core
        ``nwm2d``, ``nwm1d`` or ``cornn``.
    preset
        ``paper`` or ``cpu``.
    batch, window
        Windows per step and frames per window (published: 8 and 60).
    repeats, warmup
        Timed and untimed steps of each (``warmup >= 1``: the first step compares losses).

    Returns
    -------
    dict
        ``ours_s``, ``baseline_s``, ``ratio`` (baseline / ours), ``parameters`` and
        ``loss_relative_difference`` (of the first step's losses).
    """
    if warmup < 1 or repeats < 1:
        raise OscsimInputError(f"warmup and repeats must be >= 1, got {warmup} and {repeats}")
    frames = torch.rand(batch, window, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    fast_model = build_icar(f"icar_{core}", preset=preset, seed=0)
    loop_model = build_icar(f"icar_{core}", preset=preset, seed=0)
    if not isinstance(fast_model, ICARForecaster) or not isinstance(loop_model, ICARForecaster):
        raise TypeError(f"icar_{core} is not an oscillator model")
    fast = _step(fast_model, frames, fast_model.teacher_forced)
    loop = _step(loop_model, frames, loop_model.teacher_forced_loop)
    # Same weights, same windows: the first losses agree to float32 rounding.
    (_, fast_loss), (_, loop_loss) = fast(), loop()
    for _ in range(warmup - 1):
        fast()
        loop()
    ours, baseline = [], []
    for _ in range(repeats):
        ours.append(fast()[0])
        baseline.append(loop()[0])
    ours_s, baseline_s = statistics.median(ours), statistics.median(baseline)
    return {
        "ours_s": ours_s,
        "baseline_s": baseline_s,
        "ratio": baseline_s / ours_s,
        "parameters": count_parameters(fast_model),
        "loss_relative_difference": abs(fast_loss - loop_loss) / abs(loop_loss),
    }


def run(*, quick: bool = False) -> list[dict[str, Any]]:
    """Rows of ``oscsim bench`` (quick: the cpu preset, the paper's batch and window)."""
    preset = "cpu" if quick else "paper"
    rows = []
    for core in ("nwm2d",) if quick else ("nwm2d", "cornn"):
        result = time_training_step(core, preset=preset, repeats=3 if quick else 5)
        rows.append(
            {
                "benchmark": "icar",
                "case": f"training step, {core}, {preset} preset, batch 8 × 60 frames",
                "ours_s": result["ours_s"],
                "baseline": "frame-by-frame loop",
                "baseline_s": result["baseline_s"],
                "ratio": result["ratio"],
                "note": f"{result['parameters']} parameters, {torch.get_num_threads()} threads, "
                f"loss difference {result['loss_relative_difference']:.1e} (relative)",
            }
        )
    return rows
