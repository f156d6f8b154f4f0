"""Benchmark: training throughput on 2 processes (DDP, gloo) against 1 process.

``oscsim train adding --model nwm2d`` steps (the fused `imex` kernel) on a global batch
split over 2 processes with `DistributedDataParallel`, against the same steps on one
process. Both sides are spawned the same way (`oscsim.models.distributed.launch`), each
process with ``cores / processes`` torch threads, and time the same optimiser steps
after two warm-up steps; the ratio is of samples per second.

Run ``python -m oscsim.benchmarks.bench_distributed [--quick] [--json]``.
"""

from __future__ import annotations

import json
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any


def _settings(quick: bool) -> dict[str, Any]:
    return {
        "task": "adding",
        "model": "nwm2d",
        "seed": 0,
        "epochs": 1,
        "batch_size": 64,
        "lr": 0.02,
        "seq_len": 100 if quick else 300,
        "limit_eval": 16,
        "progress": False,
    }


def _timed_steps(folder: str, quick: bool, steps: int) -> None:
    """One process of the benchmark: warm up, then time ``steps`` optimiser steps."""
    from oscsim.models.distributed import join_from_environment, leave
    from oscsim.models.runs import build_run
    from oscsim.models.training import RunConfig, Trainer

    context = join_from_environment("cpu")
    try:
        run = RunConfig(**_settings(quick), out=str(Path(folder) / "run"))
        task, model = build_run(run)
        trainer = Trainer(run, task, model, distributed=context)
        seconds = 0.0
        for index in range(steps + 2):
            x, y = task.train_batch(0, index, run.batch_size)
            if context is not None:
                x, y = context.shard(x, y)
            start = time.perf_counter()
            trainer._train_step(x.float(), y.float())
            if index >= 2:
                seconds += time.perf_counter() - start
        if context is None or context.is_writer:
            world = 1 if context is None else context.world_size
            (Path(folder) / f"nproc{world}.json").write_text(json.dumps({"seconds": seconds}))
    finally:
        leave()


def run(*, quick: bool = False) -> list[dict[str, Any]]:
    """Time 1 and 2 processes; one row."""
    from oscsim.models.distributed import launch

    steps = 5 if quick else 20
    folder = Path(tempfile.mkdtemp(prefix="oscsim-bench-ddp-"))
    try:
        seconds = {}
        for nproc in (1, 2):
            launch(nproc, _timed_steps, str(folder), quick, steps)
            seconds[nproc] = json.loads((folder / f"nproc{nproc}.json").read_text())["seconds"]
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    settings = _settings(quick)
    samples = steps * settings["batch_size"]
    return [
        {
            "benchmark": "distributed",
            "case": f"adding T={settings['seq_len']} NWM-2D, batch {settings['batch_size']}, "
            f"{steps} steps, 2 processes (gloo)",
            "ours_s": seconds[2],
            "baseline": "1 process",
            "baseline_s": seconds[1],
            "ratio": seconds[1] / seconds[2],
            "note": f"{samples / seconds[1]:.0f} samples/s on 1 process, "
            f"{samples / seconds[2]:.0f} on 2",
        }
    ]


def main() -> None:
    """Command-line entry: print the row (or JSON)."""
    from oscsim.benchmarks import script_main

    script_main(__doc__.splitlines()[0], run)


if __name__ == "__main__":
    main()
