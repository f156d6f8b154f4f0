"""What each way of backpropagating through `integrate` costs, and how exact it is.

One training step (forward, backward, Adam) of a 64×64 `OscillatorNetwork` (one channel,
3×3 local kernels, the default random ones, tanh), integrated with ``rk4`` at dt 0.05 for
100, 400 and 1,600 steps from a random batch of 8 states, the loss the mean square of the
final position against a fixed target; float32, as training runs. For each of
``adjoint=False`` (direct backpropagation), ``"backsolve"`` and ``"checkpoint"``:

- time of the step: the second of two steps, each configuration in a fresh process (the
  three methods of one horizon run one after the other, so that they see about the same
  machine load);
- peak memory of the step: the growth of the process's peak resident set size
  (``ru_maxrss``) over its resident size just before the first step, in that fresh process
  (after a warm-up step on 4 steps)
  (PyTorch keeps no statistics of its CPU allocator, and ``tracemalloc`` does not see its
  allocations);
- gradient error: the relative error ``‖g − g_direct‖ / ‖g_direct‖`` of the gradient of
  every parameter together against direct backpropagation, in float64 on the same network
  with a batch of 1 (float64 direct backpropagation of 1,600 steps at batch 8 would need
  about 19 GiB).

``ratio`` in the rows is direct's time over the method's (above 1: faster than direct).

    python -m oscsim.benchmarks.bench_adjoint [--steps 100 400 1600] [--json PATH]
"""

from __future__ import annotations

import argparse
import json
import resource
import time
import warnings
from pathlib import Path
from typing import Any

import torch
from oscsim.benchmarks import format_table, run_worker, serve_worker, worker_result

from oscsim.errors import OscsimWarning
from oscsim.integration import integrate
from oscsim.network import OscillatorNetwork

GRID = (64, 64)
BATCH = 8
DT = 0.05
STEPS = (100, 400, 1600)
QUICK_STEPS = (100, 400)
METHODS: tuple[bool | str, ...] = (False, "backsolve", "checkpoint")
NAMES: dict[bool | str, str] = {
    False: "direct",
    "backsolve": "backsolve",
    "checkpoint": "checkpoint",
}


def _problem(batch: int, dtype: torch.dtype) -> tuple[OscillatorNetwork, tuple, torch.Tensor]:
    net = OscillatorNetwork(GRID, 1, bias=0.1, seed=0, dtype=dtype)
    generator = torch.Generator().manual_seed(0)
    shape = (batch, 1, *GRID)
    y0 = 0.1 * torch.randn(shape, generator=generator, dtype=dtype)
    z0 = 0.1 * torch.randn(shape, generator=generator, dtype=dtype)
    target = torch.randn(shape, generator=generator, dtype=dtype)
    return net, (y0, z0), target


def _loss(
    net: OscillatorNetwork, state0: tuple, target: torch.Tensor, steps: int, adjoint: bool | str
):
    sol = integrate(net, state0, [0.0, steps * DT], method="rk4", dt=DT, adjoint=adjoint)
    return ((sol.position[-1] - target) ** 2).mean(), sol


def _rss_mib() -> float:
    with open("/proc/self/statm") as statm:
        pages = int(statm.read().split()[1])
    return pages * resource.getpagesize() / 2**20


def _step_worker(steps: int, adjoint: bool | str) -> dict[str, Any]:
    """Time and peak memory of one float32 training step (run in a fresh process)."""
    torch.set_num_threads(1)
    net, state0, target = _problem(BATCH, torch.float32)
    optimizer = torch.optim.Adam(net.parameters(), lr=1e-3)

    def step(n: int) -> Any:
        optimizer.zero_grad(set_to_none=True)
        loss, sol = _loss(net, state0, target, n, adjoint)
        with warnings.catch_warnings():
            # the backsolve diagnostic may warn; here only its cost counts
            warnings.simplefilter("ignore", OscsimWarning)
            loss.backward()
        optimizer.step()
        return sol

    step(4)
    before = _rss_mib()
    started = time.perf_counter()
    sol = step(steps)
    first_seconds = time.perf_counter() - started
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux
    # The time is that of a second step: the first one also pays for the process's first
    # touch of its memory, which a training run pays once.
    started = time.perf_counter()
    step(steps)
    seconds = time.perf_counter() - started
    return {
        "seconds": seconds,
        "first_step_seconds": first_seconds,
        "peak_mib": max(0.0, peak - before),
        "function_evaluations": sol.stats.function_evaluations,
        "backward_function_evaluations": sol.stats.backward_function_evaluations,
        "checkpoints": sol.stats.checkpoints,
    }


def _gradient_worker(steps: int) -> dict[str, Any]:
    """Gradient errors of backsolve and checkpoint against direct, float64, batch 1."""
    torch.set_num_threads(1)
    net, state0, target = _problem(1, torch.float64)
    params = list(net.parameters())
    result: dict[str, Any] = {}
    grads: dict[str, torch.Tensor] = {}
    for adjoint in METHODS:
        loss, sol = _loss(net, state0, target, steps, adjoint)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", OscsimWarning)
            found = torch.autograd.grad(loss, params)
        grads[NAMES[adjoint]] = torch.cat([g.reshape(-1) for g in found])
        if adjoint == "backsolve":
            result["backsolve_reconstruction_error"] = sol.stats.backsolve_reconstruction_error
            result["backsolve_warned"] = any(issubclass(w.category, OscsimWarning) for w in caught)
        del loss, sol, found
    direct = grads["direct"]
    for name in ("backsolve", "checkpoint"):
        result[f"{name}_error"] = float((grads[name] - direct).norm() / direct.norm())
    return result


def _in_subprocess(task: dict[str, Any]) -> dict[str, Any]:
    proc = run_worker("bench_adjoint", task)
    if proc.returncode != 0:
        return {"failed": f"exit {proc.returncode}: {proc.stderr.strip()[-300:]}"}
    return worker_result(proc)


def run(*, quick: bool = False, steps: tuple[int, ...] | None = None) -> list[dict[str, Any]]:
    """The rows: per horizon, direct, backsolve and checkpoint (time, memory, error)."""
    horizons = steps if steps is not None else (QUICK_STEPS if quick else STEPS)
    rows: list[dict[str, Any]] = []
    for n in horizons:
        measured = {}
        for a in METHODS:
            measured[NAMES[a]] = _in_subprocess({"kind": "step", "steps": n, "adjoint": a})
            # a long run shows each figure as it comes
            print(f"  {n} steps, {NAMES[a]}: {json.dumps(measured[NAMES[a]])}", flush=True)
        errors = _in_subprocess({"kind": "gradient", "steps": n})
        print(f"  {n} steps, gradient errors: {json.dumps(errors)}", flush=True)
        direct = measured["direct"]
        for name in ("direct", "backsolve", "checkpoint"):
            m = measured[name]
            row: dict[str, Any] = {
                "benchmark": "adjoint",
                "case": f"64×64 rk4, {n} steps, {name}",
                "ours_s": m.get("seconds"),
                "baseline": "direct backprop",
                "baseline_s": direct.get("seconds"),
                "steps": n,
                "method": name,
                "peak_mib": m.get("peak_mib"),
                "direct_peak_mib": direct.get("peak_mib"),
                "gradient_error": 0.0 if name == "direct" else errors.get(f"{name}_error"),
                "first_step_s": m.get("first_step_seconds"),
                "function_evaluations": m.get("function_evaluations"),
                "backward_function_evaluations": m.get("backward_function_evaluations"),
                "checkpoints": m.get("checkpoints"),
            }
            if "seconds" in m and "seconds" in direct:
                row["ratio"] = direct["seconds"] / m["seconds"]
            notes = []
            if "failed" in m:
                notes.append(f"failed: {m['failed']}")
            else:
                memory = f"peak {m['peak_mib']:.0f} MiB"
                if name != "direct" and direct.get("peak_mib"):
                    memory += f" ({100 * m['peak_mib'] / direct['peak_mib']:.1f} % of direct)"
                notes.append(memory)
            if name != "direct":
                error = errors.get(f"{name}_error")
                notes.append(
                    f"gradient error {error:.1e}" if error is not None else "gradient error —"
                )
            if name == "backsolve" and errors.get("backsolve_reconstruction_error") is not None:
                notes.append(
                    f"reconstruction error {errors['backsolve_reconstruction_error']:.1e}"
                    + (" (warned)" if errors.get("backsolve_warned") else "")
                )
            row["note"] = "; ".join(notes)
            rows.append(row)
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="100 and 400 steps only")
    parser.add_argument("--steps", type=int, nargs="+", help="horizons (default 100 400 1600)")
    parser.add_argument("--json", help="also write the rows here")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    handlers = {
        "step": lambda task: _step_worker(task["steps"], task["adjoint"]),
        "gradient": lambda task: _gradient_worker(task["steps"]),
    }
    if serve_worker(args.worker, handlers):
        return 0

    rows = run(quick=args.quick, steps=tuple(args.steps) if args.steps else None)
    print(format_table(rows))
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
