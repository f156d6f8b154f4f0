"""Benchmark of the fused `imex` kernel against the per-step loop of the published code.

Two sequence classifiers on random sMNIST-like data (batch 120, 784 steps of 1 feature,
10 classes), each written twice with identical parameters:

- eager: `benchmarks.eager_reference_loop` (a Python loop over the steps, autograd
  through it, as the published coRNN / Neural Wave Machine code does);
- ours: the input map applied to all steps at once (one matrix product), then
  `oscsim.imex_sequence`, then the same readout.

Figures, each a ratio measured in one run:

- time per training step (forward, backward, Adam): eager and fused steps alternate in
  one process after a warm-up, so that both see the same machine load; the median of the
  repetitions is reported, with the process CPU time per step alongside. Measured with
  PyTorch's default thread count and again with one thread: on a loaded machine, threads
  that wait for each other at every tiny operation (the eager loop's) lose far more than
  the load alone explains, and the one-thread ratio is the steadier figure;
- peak memory of a training step: growth of the process's peak resident set size
  (``resource.getrusage(RUSAGE_SELF).ru_maxrss``) over one training step, each model in a
  fresh process whose baseline is taken after a tiny warm-up step (so that Numba's
  compilation is not counted);
- training sequences per second (batch size / median step time);
- the fused kernel's first-call time (Numba compilation, or loading its on-disk cache).

``run()`` returns the rows; ``python -m oscsim.benchmarks.bench_fused [--quick] [--json PATH]``
prints them.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import torch
from oscsim.benchmarks import run_worker, serve_worker, worker_result
from oscsim.benchmarks.eager_reference_loop import EagerCoRNN, EagerNWM2D
from torch import nn

from oscsim import ImexField, imex_sequence, map_inputs

BATCH = 120
STEPS = 784
QUICK_STEPS = 196
CLASSES = 10
MODELS = ("nwm2d", "cornn256")
TITLES = {"nwm2d": "NWM-2D (16×16 torus, 3×3 kernels)", "cornn256": "coRNN-256"}
TARGETS = {"nwm2d": 15.0, "cornn256": 1.0}


class _FusedCore(nn.Module):
    """The oscillator core's tensors, handed to `imex_sequence` as one `ImexField`."""

    kernel_position: torch.Tensor
    kernel_velocity: torch.Tensor
    bias: torch.Tensor
    gamma: torch.Tensor
    epsilon: torch.Tensor

    def field(self, coupling: str) -> ImexField:
        return ImexField(
            coupling, self.kernel_position, self.kernel_velocity, self.bias, self.gamma,
            self.epsilon,
        )  # fmt: skip


class FusedNWM2D(_FusedCore):
    """`EagerNWM2D` with the whole sequence in one `imex_sequence` call."""

    def __init__(self, eager: EagerNWM2D) -> None:
        super().__init__()
        self.grid = eager.grid
        self.dt = eager.dt
        # The input map's bias is the network's bias b (one per cell), as in
        # `models.sequence`: added inside the kernel, so that no bias-filled (T, B, cells)
        # tensor is written and summed.
        inputs, cells = eager.input_map.in_features, eager.input_map.out_features
        self.input_map = nn.Linear(inputs, cells, bias=False)
        with torch.no_grad():
            self.input_map.weight.copy_(eager.input_map.weight)
        self.bias = nn.Parameter(eager.input_map.bias.detach().clone().view(1, *self.grid))
        self.kernel_position = nn.Parameter(eager.conv_y.weight.detach().clone())
        self.kernel_velocity = nn.Parameter(eager.conv_z.weight.detach().clone())
        self.readout = nn.Linear(eager.readout.in_features, eager.readout.out_features)
        self.readout.load_state_dict(eager.readout.state_dict())
        self.register_buffer("gamma", torch.full((1,), eager.gamma))
        self.register_buffer("epsilon", torch.full((1,), eager.epsilon))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        steps, batch, _ = x.shape
        drive = map_inputs(x, self.input_map.weight).view(steps, batch, 1, *self.grid)
        y0 = x.new_zeros(batch, 1, *self.grid)
        y, _ = imex_sequence(self.field("local"), drive, y0, y0, self.dt)
        return self.readout(y.flatten(1))


class FusedCoRNN(_FusedCore):
    """`EagerCoRNN` with the whole sequence in one `imex_sequence` call (``global``).

    The cell's ``i2h`` acts on ``[u, z, y]``; its columns split into the input map ``V``
    (with the bias), ``K_z`` and ``K_y``: the same parameters, the same model.
    """

    def __init__(self, eager: EagerCoRNN) -> None:
        super().__init__()
        n_hid = eager.n_hid
        n_inp = eager.i2h.in_features - 2 * n_hid
        weight = eager.i2h.weight.detach()
        self.n_hid, self.dt = n_hid, eager.dt
        self.input_map = nn.Linear(n_inp, n_hid)
        with torch.no_grad():
            self.input_map.weight.copy_(weight[:, :n_inp])
            self.input_map.bias.copy_(eager.i2h.bias)
        self.kernel_velocity = nn.Parameter(weight[:, n_inp : n_inp + n_hid].clone())
        self.kernel_position = nn.Parameter(weight[:, n_inp + n_hid :].clone())
        self.readout = nn.Linear(n_hid, eager.readout.out_features)
        self.readout.load_state_dict(eager.readout.state_dict())
        self.register_buffer("bias", torch.zeros(1))
        self.register_buffer("gamma", torch.full((1,), eager.gamma))
        self.register_buffer("epsilon", torch.full((1,), eager.epsilon))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        steps, batch, _ = x.shape
        drive = self.input_map(x).view(steps, batch, 1, self.n_hid)
        y0 = x.new_zeros(batch, 1, self.n_hid)
        y, _ = imex_sequence(self.field("global"), drive, y0, y0, self.dt)
        return self.readout(y.flatten(1))


def build(model: str, seed: int = 0) -> tuple[nn.Module, nn.Module]:
    """The eager model and its fused twin, with equal parameters."""
    torch.manual_seed(seed)
    if model == "nwm2d":
        eager_nwm = EagerNWM2D()
        return eager_nwm, FusedNWM2D(eager_nwm)
    eager_cornn = EagerCoRNN()
    return eager_cornn, FusedCoRNN(eager_cornn)


def data(steps: int, batch: int = BATCH, seed: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
    """Random sMNIST-like inputs (T, B, 1) in [0, 1) and labels (B,)."""
    generator = torch.Generator().manual_seed(seed)
    x = torch.rand(steps, batch, 1, generator=generator)
    labels = torch.randint(0, CLASSES, (batch,), generator=generator)
    return x, labels


class Trainer:
    """One model, its Adam optimiser and one training step on fixed data."""

    def __init__(self, module: nn.Module, lr: float = 2.1e-3) -> None:
        self.module = module
        self.optimizer = torch.optim.Adam(module.parameters(), lr=lr)

    def step(self, x: torch.Tensor, labels: torch.Tensor) -> tuple[float, float]:
        """Run one training step; return (wall seconds, process CPU seconds)."""
        wall, cpu = time.perf_counter(), time.process_time()
        self.optimizer.zero_grad(set_to_none=True)
        loss = nn.functional.cross_entropy(self.module(x), labels)
        loss.backward()
        self.optimizer.step()
        return time.perf_counter() - wall, time.process_time() - cpu


def _time_worker(model: str, steps: int, repeats: int, threads: int) -> dict[str, Any]:
    if threads:
        torch.set_num_threads(threads)
    eager, fused = build(model)
    x, labels = data(steps)
    with torch.no_grad():
        agreement = float((eager(x[:64]) - fused(x[:64])).abs().max())
    tiny_x, tiny_labels = data(4, batch=2)
    start = time.perf_counter()
    Trainer(build(model)[1]).step(tiny_x, tiny_labels)
    first_call = time.perf_counter() - start
    runs = {"eager": Trainer(eager), "fused": Trainer(fused)}
    for trainer in runs.values():
        trainer.step(x, labels)
    times: dict[str, list[tuple[float, float]]] = {name: [] for name in runs}
    for _ in range(repeats):
        for name, trainer in runs.items():
            times[name].append(trainer.step(x, labels))
    return {
        "wall": {name: statistics.median(t[0] for t in ts) for name, ts in times.items()},
        "cpu": {name: statistics.median(t[1] for t in ts) for name, ts in times.items()},
        "all_wall": {name: [t[0] for t in ts] for name, ts in times.items()},
        "first_call_s": first_call,
        "logit_max_abs_diff": agreement,
        "threads": torch.get_num_threads(),
        "load_average": os.getloadavg(),
    }


def _memory_worker(model: str, impl: str, steps: int) -> dict[str, Any]:
    eager, fused = build(model)
    trainer = Trainer(eager if impl == "eager" else fused)
    trainer.step(*data(4, batch=2))
    x, labels = data(steps)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    trainer.step(x, labels)
    after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return {"peak_growth_mib": (after - before) / 1024}  # ru_maxrss is in KiB on Linux


def _in_subprocess(task: dict[str, Any]) -> dict[str, Any]:
    proc = run_worker("bench_fused", task)
    if proc.returncode != 0:
        raise RuntimeError(f"benchmark worker {task} failed:\n{proc.stderr[-2000:]}")
    return worker_result(proc)


BASELINE = "eager per-step loop (published code's style)"


def _time_row(case: str, ours_s: float, baseline_s: float, note: str) -> dict[str, Any]:
    return {
        "benchmark": "fused",
        "case": case,
        "ours_s": ours_s,
        "baseline": BASELINE,
        "baseline_s": baseline_s,
        "ratio": baseline_s / ours_s,
        "note": note,
    }


def _value_row(
    case: str, ours: float, baseline: float, unit: str, note: str, *, higher_is_better: bool
) -> dict[str, Any]:
    """A row for a quantity other than time; the values are in the note and in
    ``ours_value``/``baseline_value``; ``ratio`` > 1 still means ours is better."""
    return {
        "benchmark": "fused",
        "case": case,
        "ours_s": None,
        "baseline": BASELINE,
        "baseline_s": None,
        "ratio": ours / baseline if higher_is_better else baseline / ours,
        "note": f"ours {ours:.4g} {unit}, baseline {baseline:.4g} {unit}; {note}",
        "ours_value": ours,
        "baseline_value": baseline,
        "unit": unit,
    }


def run(*, quick: bool = False) -> list[dict[str, Any]]:
    """Measure every row; ``quick`` uses 196 steps instead of 784 and fewer repetitions.

    Rows follow `benchmarks.ROW_KEYS`: ``case``, ``ours_s`` and ``baseline_s`` (seconds,
    ``None`` for memory and throughput rows, whose values are in ``note``, ``ours_value``
    and ``baseline_value``), ``ratio`` (> 1: the fused kernel is better), ``note`` (how it
    was measured, the target where there is one).
    """
    steps = QUICK_STEPS if quick else STEPS
    repeats = 2 if quick else 3
    size = f"B={BATCH}, T={steps}" + (" (quick: T=784 in the full run)" if quick else "")
    rows: list[dict[str, Any]] = []
    for model in MODELS:
        title = TITLES[model]
        timings = [
            _in_subprocess(
                {"kind": "time", "model": model, "steps": steps, "repeats": repeats, "threads": n}
            )
            for n in (0, 1)  # 0: PyTorch's default
        ]
        memory = {
            impl: _in_subprocess({"kind": "memory", "model": model, "impl": impl, "steps": steps})
            for impl in ("fused", "eager")
        }
        for timing in timings:
            wall, cpu = timing["wall"], timing["cpu"]
            load = ", ".join(f"{v:.1f}" for v in timing["load_average"])
            threads = timing["threads"]
            rows.append(
                _time_row(
                    f"{title}: training step, {threads} thread{'s' * (threads > 1)}",
                    wall["fused"],
                    wall["eager"],
                    f"{size}; median of {repeats} alternating steps; CPU s/step fused "
                    f"{cpu['fused']:.3f}, eager {cpu['eager']:.3f}; target ≥ "
                    f"{TARGETS[model]:g}×; load average {load}; logits agree to "
                    f"{timing['logit_max_abs_diff']:.1e}",
                )
            )
        timing = timings[0]
        wall = timing["wall"]
        rows.append(
            _value_row(
                f"{title}: training sequences per second",
                BATCH / wall["fused"],
                BATCH / wall["eager"],
                "seq/s",
                f"{size}; batch size over the median step time, {timing['threads']} threads",
                higher_is_better=True,
            )
        )
        rows.append(
            _value_row(
                f"{title}: peak memory of a training step",
                memory["fused"]["peak_growth_mib"],
                memory["eager"]["peak_growth_mib"],
                "MiB",
                f"{size}; growth of ru_maxrss over one step, fresh process each",
                higher_is_better=False,
            )
        )
        rows.append(
            {
                "benchmark": "fused",
                "case": f"{title}: fused kernel first call",
                "ours_s": timing["first_call_s"],
                "baseline": "—",
                "baseline_s": None,
                "ratio": None,
                "note": "Numba compilation, or loading its on-disk cache (not in the step times)",
            }
        )
    return rows


def _format(rows: list[dict[str, Any]]) -> str:
    from oscsim.benchmarks import format_table

    return format_table(rows)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="T=196 and fewer repetitions")
    parser.add_argument("--json", help="also write the rows here")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    handlers = {
        "time": lambda t: _time_worker(t["model"], t["steps"], t["repeats"], t["threads"]),
        "memory": lambda t: _memory_worker(t["model"], t["impl"], t["steps"]),
    }
    if serve_worker(args.worker, handlers):
        return 0
    rows = run(quick=args.quick)
    print(_format(rows))
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
