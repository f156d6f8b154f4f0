"""Benchmark: a 16-point sweep on a 2-worker Dask cluster against the same points in series.

Target (issue 21): ``oscsim sweep`` over 16 points on 2 workers at least 1.7× faster than
running the same 16 points one after another in one process, on a 2-core machine, with
every stored point bit for bit equal to ``oscsim simulate`` of that point alone.

Both sides do the same work per point (`oscsim.sweep.run_point`: simulate, write the
point's region of a zarr store, mark it done) with one torch thread per point; the serial
side runs it in this process, the sweep on a `LocalCluster` of 2 worker processes
(`oscsim.sweep.local_cluster`). The cluster is started and its workers have imported
oscsim before the clock starts (its start-up time is reported apart), as a long sweep
pays it once. The row also reports the measured inputs of the scaling estimate in the
docs: the cost of one point, the store's write throughput and the scheduler's overhead
per task (no-op tasks on the same cluster).

Run ``python -m oscsim.benchmarks.bench_sweep [--quick] [--json]``.
"""

from __future__ import annotations

import json
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

TARGET_RATIO = 1.7
POINTS = 16


def _base(quick: bool) -> dict[str, Any]:
    return {
        "network": {"grid": [32, 32], "gamma": 1.0, "epsilon": 0.1},
        "initial": {"kind": "random", "seed": 1},
        "solver": {
            "method": "rk4",
            "dt": 0.01,
            "t_end": 4.0 if quick else 30.0,
            "save_every": 10,
            "progress": False,
        },
    }


def _warm() -> bool:
    """What a worker pays once before its first point: imports and first calls."""
    import tempfile

    import zarr  # noqa: F401 - imported by the first region write otherwise

    from oscsim.config import parse_config
    from oscsim.simulation import simulate

    tiny = {"network": {"grid": [8, 8]}, "solver": {"t_end": 0.1, "progress": False}}
    with tempfile.TemporaryDirectory() as folder:
        simulate(parse_config(tiny)).to_zarr(f"{folder}/warm.zarr", consolidated=False)
    return True


def _noop(value: int) -> int:
    return value


def run(*, quick: bool = False) -> list[dict[str, Any]]:
    """Time the sweep and the serial loop; one row."""
    import torch
    import xarray as xr
    from distributed import Client

    from oscsim.config import parse_config
    from oscsim.simulation import simulate
    from oscsim.sweep import build_sweep, local_cluster, run_point, run_sweep, write_template

    sweep = build_sweep(_base(quick), ["network.gamma=0.5:2:4", "network.epsilon=0:0.3:4"])
    if sweep.n_points != POINTS:
        raise RuntimeError(f"the benchmark grid has {sweep.n_points} points, not {POINTS}")
    folder = Path(tempfile.mkdtemp(prefix="oscsim-bench-sweep-"))
    try:
        # serial: the same per-point work, one after another, in this process
        threads = torch.get_num_threads()
        torch.set_num_threads(1)
        serial_store = folder / "serial.zarr"
        write_template(sweep, serial_store)
        start = time.perf_counter()
        results = [
            run_point(
                str(serial_store),
                p,
                sweep.index(p),
                list(sweep.dims),
                sweep.configs[p].to_json(),
                1,
            )
            for p in range(POINTS)
        ]
        serial_s = time.perf_counter() - start
        if any(r["status"] != "done" for r in results):
            raise RuntimeError(f"a serial point failed: {results}")
        per_point = float(np.median([r["seconds"] for r in results]))
        write_s = sum(r["write_seconds"] for r in results)
        written = sum(r["bytes"] for r in results)

        started = time.perf_counter()
        cluster, _ = local_cluster(2)
        client = Client(cluster)
        try:
            client.run(_warm)
            startup_s = time.perf_counter() - started
            noop = time.perf_counter()
            client.gather(client.map(_noop, range(400), pure=False))
            overhead = (time.perf_counter() - noop) / 400
            sweep_store = folder / "sweep.zarr"
            start = time.perf_counter()
            outcome = run_sweep(
                sweep, sweep_store, client, pending=range(POINTS), torch_threads=1, progress=False
            )
            sweep_s = time.perf_counter() - start
        finally:
            client.close()
            cluster.close()
        if outcome.failed:
            raise RuntimeError(f"sweep points failed: {outcome.failed}")

        # every stored point bit for bit equal to simulate() of its configuration alone
        ds = xr.open_zarr(sweep_store, consolidated=False)
        equal = True
        for point in range(POINTS):
            alone = simulate(parse_config(json.loads(sweep.configs[point].to_json())))
            index = dict(zip(sweep.dims, sweep.index(point), strict=True))
            for var in ("position", "velocity"):
                equal &= bool(np.array_equal(ds[var].isel(index).values, alone[var].values))
        torch.set_num_threads(threads)
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    ratio = serial_s / sweep_s
    return [
        {
            "benchmark": "sweep",
            "case": f"{POINTS} points 32×32 rk4 "
            f"{sweep.configs[0].solver.t_end / sweep.configs[0].solver.dt:.0f} steps, "
            "2 workers",
            "ours_s": sweep_s,
            "baseline": "same points in series, one process",
            "baseline_s": serial_s,
            "ratio": ratio,
            "note": (
                f"target ≥ {TARGET_RATIO}×: {'met' if ratio >= TARGET_RATIO else 'NOT met'}; "
                f"bit-for-bit equal to simulate alone: {'yes' if equal else 'NO'}; "
                f"per point {per_point:.2f} s, store writes "
                f"{written / 2**20 / max(write_s, 1e-9):.0f} MiB/s, scheduler "
                f"{overhead * 1e3:.1f} ms/task, cluster start {startup_s:.1f} s"
            ),
            "per_point_s": per_point,
            "write_mib_per_s": written / 2**20 / max(write_s, 1e-9),
            "scheduler_s_per_task": overhead,
            "cluster_start_s": startup_s,
            "bit_for_bit": equal,
        }
    ]


def main() -> None:
    """Command-line entry: print the row (or JSON)."""
    from oscsim.benchmarks import script_main

    script_main(__doc__.splitlines()[0], run)


if __name__ == "__main__":
    main()
