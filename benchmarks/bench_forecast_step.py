"""What one training step costs each forecasting model, measured in one process.

``models.experiments.forecast_table`` gives every model the same number of optimiser
steps. This script says what such a step costs each of them, so that a budget in steps can
be read as a budget in time. The models are built as ``oscsim train SYSTEM --model M --set
...`` builds them and train on the same batches (forward, backward, Adam). After a warm-up
their steps alternate, so that all of them see the same machine load; the median over the
repetitions is reported with its ratio to the first model's (NWM-2D by default).

    python -m oscsim.benchmarks.bench_forecast_step --system pendulum \\
        --set latent_norm=true --set feedback=prediction [--set nwm2d:channels=2]

Options take the ``--set`` syntax of ``forecast_table`` (``MODEL:KEY=VALUE`` for one model).
The default is one torch thread, as the forecasting runs use. Not part of the test suite.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from collections.abc import Callable
from typing import Any

import torch
from oscsim.models.experiments.forecast_table import options_for, parse_options
from oscsim.models.runs import build_run
from oscsim.models.sequence import count_parameters
from oscsim.models.training import RunConfig


def _trainer(
    system: str, model_name: str, options: dict[str, Any], batch_size: int, out: str
) -> tuple[Callable[[], float], int]:
    """A closure that runs one training step of ``model_name`` on a fixed batch."""
    run = RunConfig(
        task=system,
        model=model_name,
        seed=0,
        epochs=1,
        batch_size=batch_size,
        lr=3e-3,
        out=out,
        model_options={**options, "n_train": batch_size, "n_eval": 8},
    )
    task, model = build_run(run)
    x, y = task.train_batch(0, 0, batch_size)
    optimizer = torch.optim.Adam(model.parameters(), lr=run.lr)

    def step() -> float:
        started = time.perf_counter()
        optimizer.zero_grad(set_to_none=True)
        task.loss(model(x), y).backward()
        optimizer.step()
        return time.perf_counter() - started

    return step, count_parameters(model)


def run(
    system: str,
    models: list[str],
    shared: dict[str, Any],
    *,
    batch_size: int = 16,
    repeats: int = 10,
    warmup: int = 2,
) -> dict[str, Any]:
    """Median seconds per training step of every model, and its ratio to the first model's."""
    with tempfile.TemporaryDirectory() as out:
        steps = {}
        parameters = {}
        for name in models:
            steps[name], parameters[name] = _trainer(
                system, name, options_for(name, shared), batch_size, out
            )
        for _ in range(warmup):
            for step in steps.values():
                step()
        times: dict[str, list[float]] = {name: [] for name in models}
        for _ in range(repeats):
            for name, step in steps.items():
                times[name].append(step())
    medians = {name: statistics.median(values) for name, values in times.items()}
    reference = models[0]
    return {
        "system": system,
        "batch_size": batch_size,
        "threads": torch.get_num_threads(),
        "repeats": repeats,
        "options": shared,
        "models": {
            name: {
                "parameters": parameters[name],
                "seconds_per_step": medians[name],
                f"ratio_to_{reference}": medians[name] / medians[reference],
            }
            for name in models
        },
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--system", default="pendulum")
    parser.add_argument("--models", nargs="+", default=["nwm2d", "cornn", "lstm"])
    parser.add_argument("--set", action="append", metavar="[MODEL:]KEY=VALUE")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    result = run(
        args.system,
        args.models,
        parse_options(args.set),
        batch_size=args.batch_size,
        repeats=args.repeats,
    )
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
