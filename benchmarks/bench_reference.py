"""Benchmark: the Numba reference solver (`oscsim.reference`) against NumPy and SciPy.

Problem (issue 3): a ``local`` network on a 128×128 torus, one channel, 3×3 kernels, tanh,
``rk4`` (the 3/8 rule) with dt = 0.01 for 10 000 steps, one sample, float64 — the example
network of docs/formats.md (a Laplacian coupling of positions) from a Gaussian bump. Rows:

- Numba ``rk4`` against the same RK4 written in plain NumPy with ``np.roll`` stencils
  (`benchmarks.numpy_rk4`). Both run the same trajectory in alternating chunks, so that
  changes in the machine's load hit both alike; the ratio is of the summed times.
- Numba ``rk4`` against ``scipy.integrate.solve_ivp`` at the loosest tolerance (tried in
  decades) whose error, against an rk4 run with dt/4, is no larger than rk4's own. RK45 and
  DOP853 are both calibrated and timed; the faster is the baseline. ``solve_ivp`` runs on a
  shorter horizon and its time is scaled per unit of model time (said in the note).
- rk4 steps per second and cell-updates per second from 32×32 to 512×512, serial and with
  both cores (``prange``), each against NumPy at the same size.
- Batch scaling on 64×64: time per step for B samples against B times one sample.
- First-call compile time of the kernels (a fresh process with an empty Numba cache), and
  the time to load them from the cache in another fresh process.

Targets: Numba rk4 ≥ 5× the NumPy baseline and ≥ 20× ``solve_ivp``. With ``quick=True``
the runs are shorter (500 steps for the main comparison).

Run ``python -m oscsim.benchmarks.bench_reference [--quick]``.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import textwrap
import time
from typing import Any

import numba
import numpy as np
import scipy.integrate
from oscsim.benchmarks import numpy_rk4

from oscsim.parameters import NetworkParameters
from oscsim.reference import (
    PARALLEL_MIN_SIZE,
    RK4_THREE_EIGHTHS,
    InputSchedule,
    build_network,
    integrate_fixed,
)

BENCHMARK = "reference"
DT = 0.01
TARGET_NUMPY = 5.0
TARGET_SOLVE_IVP = 20.0
_TOLERANCES = (1e-5, 1e-6, 1e-7, 1e-8, 1e-9, 1e-10, 1e-11)


# The example network of docs/formats.md: a discrete Laplacian for K_y, no velocity coupling.
LAPLACIAN = np.array([[0.0, 1.0, 0.0], [1.0, -4.0, 1.0], [0.0, 1.0, 0.0]])


def _problem(size: int, batch: int = 1) -> tuple[NetworkParameters, np.ndarray, np.ndarray]:
    """The benchmark network (docs/formats.md's example: Laplacian K_y, zero K_z, γ = 1, ε = 0.1,
    tanh) on a ``size × size`` torus, from a Gaussian bump of width ``size/16`` cells."""
    params = NetworkParameters(
        grid=(size, size), channels=1, coupling="local",
        kernel_position=LAPLACIAN[None, None], kernel_velocity=np.zeros((1, 1, 3, 3)),
        gamma=1.0, epsilon=0.1, bias=0.0, activation="tanh",  # type: ignore[arg-type]
    )  # fmt: skip
    x = np.arange(size) - size / 2
    bump = np.exp(-(x[:, None] ** 2 + x[None, :] ** 2) / (2 * (size / 16) ** 2))
    position = np.broadcast_to(bump, (batch, 1, size, size)).copy()
    return params, position, np.zeros_like(position)


class _Rk4:
    """The reference rk4 on one problem, advanced ``steps`` at a time (no argument checks
    or output allocation in the timed part: the same path `solve` takes)."""

    def __init__(self, params: NetworkParameters, y: np.ndarray, z: np.ndarray, parallel: bool):
        self.net = build_network(params)
        self.y, self.z = y.copy(), z.copy()
        self.inputs = InputSchedule.zero(y.shape)
        self.parallel = parallel
        self.t = 0.0

    def advance(self, steps: int) -> float:
        """Advance by ``steps`` steps of size `DT`; the wall time taken."""
        out = np.empty((2, *self.y.shape))
        out2 = np.empty_like(out)
        start = time.perf_counter()
        integrate_fixed(
            self.net, RK4_THREE_EIGHTHS, self.y, self.z, 0.0, DT, np.array([0, steps]),
            self.inputs, out, out2, lambda n: None, parallel=self.parallel,
        )  # fmt: skip
        return time.perf_counter() - start

    def run(self, steps: int) -> tuple[np.ndarray, np.ndarray]:
        """Run ``steps`` steps from the current state; return the final state."""
        self.advance(steps)
        return self.y.copy(), self.z.copy()


def _row(
    case: str, ours_s: float, baseline: str, baseline_s: float | None, note: str
) -> dict[str, Any]:
    ratio = None if baseline_s is None or ours_s <= 0 else baseline_s / ours_s
    return {
        "benchmark": BENCHMARK,
        "case": case,
        "ours_s": ours_s,
        "baseline": baseline,
        "baseline_s": baseline_s,
        "ratio": ratio,
        "note": note,
    }


def _load() -> str:
    return (
        f"load {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores"
        if hasattr(os, "getloadavg")
        else ""
    )


def _parallel_default(size: int) -> bool:
    """Whether ``solve(threads=2)`` pays for rk4 on a one-channel ``size × size`` state: from
    `PARALLEL_MIN_SIZE` entries (fixed-step methods advance one sample at a time, so the
    batch size does not enter), with at least two Numba threads."""
    return size * size >= PARALLEL_MIN_SIZE and numba.get_num_threads() >= 2


def bench_numpy(steps: int, chunk: int) -> tuple[dict[str, Any], float]:
    """Numba rk4 against NumPy rk4 on the main problem, in alternating chunks."""
    params, y0, z0 = _problem(128)
    parallel = _parallel_default(128)
    _Rk4(params, y0, z0, parallel).advance(1)  # compile or load the kernels, untimed
    ours = _Rk4(params, y0, z0, parallel)
    y, z = y0.copy(), z0.copy()
    ours_s = baseline_s = 0.0
    ratios = []
    done = 0
    while done < steps:
        n = min(chunk, steps - done)
        a = ours.advance(n)
        start = time.perf_counter()
        y, z = numpy_rk4.rk4(params, y, z, DT, n)
        b = time.perf_counter() - start
        ours_s, baseline_s = ours_s + a, baseline_s + b
        ratios.append(b / a)
        done += n
    difference = float(np.max(np.abs(ours.y - y)))
    note = (
        f"{steps} steps, 128×128, 3×3, tanh, dt={DT}, "
        f"{'2 threads' if ours.parallel else 'serial'}; "
        f"chunks of {chunk} alternated, median chunk ratio {np.median(ratios):.1f}; "
        f"max |Δy| = {difference:.1e}; target ≥ {TARGET_NUMPY:g}×; {_load()}"
    )
    row = _row(f"rk4 128×128, {steps} steps", ours_s, "NumPy rk4 (np.roll)", baseline_s, note)
    return row, ours_s


def _calibrate(
    params: NetworkParameters,
    y0: np.ndarray,
    z0: np.ndarray,
    horizon: float,
    methods: tuple[str, ...],
) -> dict[str, Any]:
    """rk4's error over ``horizon`` and, per solve_ivp method, the loosest decade of rtol
    that is as accurate."""
    steps = round(horizon / DT)
    # An rk4 run with dt/4 stands in for the exact solution: its error is 4⁴ = 256 times
    # smaller than rk4's at dt.
    ref_y, ref_z = _run_rk4_dt(params, y0, z0, DT / 4, 4 * steps)
    y, z = _Rk4(params, y0, z0, parallel=False).run(steps)
    rk4_error = max(np.max(np.abs(y - ref_y)), np.max(np.abs(z - ref_z)))
    rhs = numpy_rk4.flat_rhs(params, y0.shape)
    u0 = np.concatenate([y0.ravel(), z0.ravel()])
    size = y0.size
    chosen: dict[str, Any] = {"rk4_error": rk4_error}
    for method in methods:
        for rtol in _TOLERANCES:
            sol = scipy.integrate.solve_ivp(
                rhs, (0.0, horizon), u0, method=method, rtol=rtol, atol=rtol * 1e-2
            )
            error = max(
                np.max(np.abs(sol.y[:size, -1] - ref_y.ravel())),
                np.max(np.abs(sol.y[size:, -1] - ref_z.ravel())),
            )
            if error <= rk4_error:
                chosen[method] = (rtol, error)
                break
    return chosen


def _run_rk4_dt(
    params: NetworkParameters, y0: np.ndarray, z0: np.ndarray, dt: float, steps: int
) -> tuple[np.ndarray, np.ndarray]:
    net = build_network(params)
    y, z = y0.copy(), z0.copy()
    out = np.empty((2, *y.shape))
    integrate_fixed(
        net, RK4_THREE_EIGHTHS, y, z, 0.0, dt, np.array([0, steps]), InputSchedule.zero(y.shape),
        out, out.copy(), lambda n: None, parallel=False,
    )  # fmt: skip
    return y, z


def bench_solve_ivp(
    steps: int, ours_s: float, horizon: float, methods: tuple[str, ...] = ("RK45", "DOP853")
) -> dict[str, Any]:
    """Numba rk4 (``ours_s`` for ``steps`` steps) against solve_ivp at rk4's accuracy, with
    the faster of ``methods``."""
    params, y0, z0 = _problem(128)
    chosen = _calibrate(params, y0, z0, min(horizon, 1.0), methods)
    rhs = numpy_rk4.flat_rhs(params, y0.shape)
    u0 = np.concatenate([y0.ravel(), z0.ravel()])
    timings = {}
    for method in methods:
        if method not in chosen:
            continue
        rtol = chosen[method][0]
        start = time.perf_counter()
        sol = scipy.integrate.solve_ivp(
            rhs, (0.0, horizon), u0, method=method, rtol=rtol, atol=rtol * 1e-2
        )
        elapsed = time.perf_counter() - start
        timings[method] = (elapsed * (steps * DT) / horizon, rtol, sol.nfev)
    if not timings:
        return _row("rk4 vs solve_ivp", ours_s, "solve_ivp", None,
                    f"no tolerance down to {_TOLERANCES[-1]:g} reached rk4's error")  # fmt: skip
    best = min(timings, key=lambda m: timings[m][0])
    scaled, rtol, nfev = timings[best]
    others = ", ".join(f"{m} {t[0]:.1f} s at rtol {t[1]:g}" for m, t in timings.items())
    note = (
        f"solve_ivp({best}, rtol={rtol:g}, atol={rtol * 1e-2:g}), the loosest decade as accurate "
        f"as rk4 at dt={DT} over t∈[0, 1] (rk4 error {chosen['rk4_error']:.1e}); timed on "
        f"t∈[0, {horizon:g}] ({nfev} evaluations) and scaled to t∈[0, {steps * DT:g}]; "
        f"{others}; target ≥ {TARGET_SOLVE_IVP:g}×; {_load()}"
    )
    return _row(f"rk4 128×128, {steps} steps", ours_s, f"solve_ivp {best}", scaled, note)


def bench_sizes(sizes: tuple[int, ...], work: float) -> list[dict[str, Any]]:
    """Steps per second at each size, serial and on both cores, against NumPy."""
    rows = []
    for size in sizes:
        params, y0, z0 = _problem(size)
        steps = max(5, int(work / (size * size)))
        timed = {}
        for parallel in (False, True):
            if parallel and numba.get_num_threads() < 2:
                continue
            solver = _Rk4(params, y0, z0, parallel)
            solver.advance(1)
            timed[parallel] = min(solver.advance(steps) for _ in range(2)) / steps
        numpy_steps = max(2, steps // 8)
        start = time.perf_counter()
        numpy_rk4.rk4(params, y0, z0, DT, numpy_steps)
        numpy_s = (time.perf_counter() - start) / numpy_steps
        chosen = _parallel_default(size) and True in timed
        ours = timed[chosen]
        threads = ", ".join(
            f"{'2 threads' if p else 'serial'} {size * size / t:.3g}" for p, t in timed.items()
        )
        note = (
            f"cell-updates/s (one rk4 step of one cell): {threads}; the row uses "
            f"{'2 threads' if chosen else 'serial'} (threads=2 from {PARALLEL_MIN_SIZE} "
            f"entries); {_load()}"
        )
        rows.append(_row(f"rk4 step {size}×{size}", ours, "NumPy rk4 step", numpy_s, note))
    return rows


def bench_batch(batches: tuple[int, ...], steps: int) -> list[dict[str, Any]]:
    """Time per step on 64×64 for B samples against B times the one-sample time, the two
    timed alternately (best of three each) so that load changes hit both alike."""
    rows = []
    params1, y1, z1 = _problem(64, 1)
    single = _Rk4(params1, y1, z1, _parallel_default(64))
    single.advance(1)
    for batch in batches:
        params, y0, z0 = _problem(64, batch)
        parallel = _parallel_default(64)
        solver = _Rk4(params, y0, z0, parallel)
        solver.advance(1)
        batched_s, single_s = [], []
        for _ in range(3):
            batched_s.append(solver.advance(steps) / steps)
            single_s.append(single.advance(steps) / steps)
        per_step = min(batched_s)
        note = (
            f"{batch * 64 * 64 / per_step:.3g} cell-updates/s, "
            f"{'2 threads' if parallel else 'serial'}; {_load()}"
        )
        rows.append(
            _row(
                f"rk4 step 64×64, batch {batch}", per_step, f"{batch} × batch 1",
                batch * min(single_s), note,
            )
        )  # fmt: skip
    return rows


_COMPILE_SCRIPT = textwrap.dedent(
    """
    import json, sys, time
    import numpy as np
    t = time.perf_counter()
    from oscsim import NetworkParameters
    from oscsim.reference import solve
    timings = {"import": time.perf_counter() - t}
    params = NetworkParameters.random((8, 8), 1, "local", kernel_size=3)
    y0 = np.ones((1, 1, 8, 8)); z0 = np.zeros_like(y0); times = np.array([0.0, 0.1])
    for name in sys.argv[1].split(","):
        method, threads = ("rk4", 2) if name == "parallel" else (name, 1)  # prange kernels
        t = time.perf_counter()
        solve(params, y0, z0, times, method=method, dt=0.01, threads=threads)
        timings[name] = time.perf_counter() - t
    print(json.dumps(timings))
    """
)


def bench_compile(methods: tuple[str, ...]) -> list[dict[str, Any]]:
    """First-call time with an empty Numba cache, against the first call with a warm one."""
    with tempfile.TemporaryDirectory() as cache:
        env = {**os.environ, "NUMBA_CACHE_DIR": cache}
        runs = []
        for _ in range(2):  # the first compiles and fills the cache, the second loads it
            result = subprocess.run(
                [sys.executable, "-c", _COMPILE_SCRIPT, ",".join(methods)],
                capture_output=True, text=True, env=env, check=True,
            )  # fmt: skip
            runs.append(json.loads(result.stdout.strip().splitlines()[-1]))
    rows = []
    for key in runs[0]:
        if key == "import":
            continue
        # A compile time is reported as a time; a ratio to the warm call would mean nothing.
        label = "rk4 with 2 threads (prange kernels)" if key == "parallel" else key
        rows.append(
            _row(
                f"first call, {label}", runs[0][key], "the same with the cache warm",
                runs[1][key],
                f"compile time of the kernels this call needs beyond earlier rows (fresh "
                f"process, empty NUMBA_CACHE_DIR); one specialization each; {_load()}",
            )
            | {"ratio": None}
        )  # fmt: skip
    return rows


def run(*, quick: bool = False) -> list[dict[str, Any]]:
    """All the rows (see the module docstring); ``quick`` shortens every run."""
    steps = 500 if quick else 10_000
    main, ours_s = bench_numpy(steps, chunk=250 if quick else 500)
    # Quick: DOP853 only (RK45 was 2–5× slower at these tolerances in every full run).
    methods = ("DOP853",) if quick else ("RK45", "DOP853")
    rows = [main, bench_solve_ivp(steps, ours_s, 1.0 if quick else 5.0, methods)]
    sizes = (32, 128, 512) if quick else (32, 64, 128, 256, 512)
    rows += bench_sizes(sizes, work=2e6 if quick else 2e7)
    rows += bench_batch((1, 4, 16) if quick else (1, 4, 16, 64), steps=20 if quick else 100)
    rows += bench_compile(("rk4",) if quick else ("rk4", "imex", "dopri5", "parallel"))
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="shorter runs")
    parser.add_argument("--json", action="store_true", help="print the rows as JSON")
    args = parser.parse_args(argv)
    rows = run(quick=args.quick)
    if args.json:
        print(json.dumps(rows, indent=2, default=float))
    else:
        from oscsim.benchmarks import format_table

        print(format_table(rows))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
