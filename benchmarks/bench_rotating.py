"""Training step of the published rotating-MNIST model: batched and fused against per frame.

The model is `oscsim.models.rotating.PublishedRotatingNWM` (the 36×36 torus and the 24 rings
of 54), on random frames in [0, 1] of 18-frame clips at the published batch of 128. Each
training step (loss, backward, SGD with momentum) is written twice with the same
parameters, data and posterior draws:

- ours: `PublishedRotatingNWM.loss`: encoder and decoder on all frames in one call each,
  the Gaussian head and the driving correlation with hand-written adjoints, the recurrence
  in one call of `oscsim.fused.imex_sequence`;
- baseline: `oscsim.models.rotating.published_loop_loss`, the published per-frame loop
  (``torch.distributions``, padded convolutions, one frame at a time).

After a warm-up the two steps alternate, so both see the same machine load; the median of
the repetitions is reported, with one thread and with PyTorch's default thread count. Their
losses are checked equal to float32 rounding first (the test suite checks this too).

``python -m oscsim.benchmarks.bench_rotating [--quick]`` prints the rows.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from collections.abc import Callable
from typing import Any

import torch
from oscsim.models.rotating import CELLS, build_published_model, published_loop_loss

BATCH = 128
FRAMES = 18
BASELINE = "published per-frame loop"


def _steps(name: str, batch: int) -> tuple[Callable[[], float], Callable[[], float], float]:
    model = build_published_model(name, seed=0)
    gen = torch.Generator().manual_seed(0)
    x = torch.rand(batch, FRAMES, 28 * 28, generator=gen)
    noise = torch.randn(batch, FRAMES, 2 * CELLS, generator=gen)
    noise0 = torch.randn(batch, 2 * CELLS, generator=gen)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.0, momentum=0.9)
    with torch.no_grad():
        ours = float(model.loss(x, noise, noise0)[0])
        theirs = float(published_loop_loss(model, x, noise, noise0))
    mismatch = abs(ours - theirs) / abs(theirs)
    if mismatch > 1e-5:
        raise RuntimeError(f"batched loss {ours} differs from the loop's {theirs}")

    def fused() -> float:
        started = time.perf_counter()
        optimizer.zero_grad(set_to_none=True)
        model.loss(x, noise, noise0)[0].backward()
        optimizer.step()
        return time.perf_counter() - started

    def loop() -> float:
        started = time.perf_counter()
        optimizer.zero_grad(set_to_none=True)
        published_loop_loss(model, x, noise, noise0).backward()
        optimizer.step()
        return time.perf_counter() - started

    return fused, loop, mismatch


def run(*, quick: bool = False) -> list[dict[str, Any]]:
    """Rows of `oscsim.benchmarks.ROW_KEYS`; ``quick`` measures the 2-D model only, fewer times."""
    repeats = 2 if quick else 5
    names = ("published2d",) if quick else ("published2d", "published1d")
    default_threads = torch.get_num_threads()
    rows: list[dict[str, Any]] = []
    for name in names:
        for threads in sorted({1, default_threads}):
            torch.set_num_threads(threads)
            try:
                fused, loop, mismatch = _steps(name, BATCH)
                fused(), loop()  # warm-up: Numba compilation or its cache, allocator
                ours, base = [], []
                for _ in range(repeats):
                    ours.append(fused())
                    base.append(loop())
            finally:
                torch.set_num_threads(default_threads)
            ours_s, base_s = statistics.median(ours), statistics.median(base)
            rows.append(
                {
                    "benchmark": "rotating",
                    "case": f"{name} training step, B={BATCH}, T={FRAMES}, "
                    f"{threads} thread{'s' * (threads > 1)}",
                    "ours_s": ours_s,
                    "baseline": BASELINE,
                    "baseline_s": base_s,
                    "ratio": base_s / ours_s,
                    "note": f"median of {repeats}, alternating; losses agree to "
                    f"{mismatch:.1e} (relative); target ≥ 1.5×",
                }
            )
    return rows


def main(argv: list[str] | None = None) -> int:
    """Print the rows (``--quick``: fewer repetitions); ``--json PATH`` also writes them."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--json", default=None)
    args = parser.parse_args(argv)
    rows = run(quick=args.quick)
    from oscsim.benchmarks import format_table

    print(format_table(rows))
    if args.json:
        with open(args.json, "w", encoding="utf-8") as handle:
            json.dump(rows, handle, indent=2)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
