"""Analyse a dask-chunked recording larger than half the machine's memory, and show peak RSS.

The recording (a plane wave plus noise, float64, by default 1600 frames on a 1024×1024
torus: 13.4 GB) is generated lazily chunk by chunk, chunked along space with every frame
in each chunk, and never exists whole. `analysis.wave_report` streams over it. The script
prints the data size, the machine's memory, the wall time, the peak resident memory of the
process (``ru_maxrss``) and the recovered wave parameters against the truth, as JSON.

Run ``python -m oscsim.benchmarks.analysis_large_dask [--frames N --size N --chunk N]``. Not part
of the test suite (it takes minutes).
"""

from __future__ import annotations

import argparse
import json
import math
import resource
import time

import numpy as np
import xarray as xr

DT = 0.1
M = (5, -7)  # wave numbers (y, x) in cycles per grid side
OMEGA = 1.3


def _mem_total() -> int:
    with open("/proc/meminfo") as fh:
        for line in fh:
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError("no MemTotal in /proc/meminfo")


def recording(frames: int, size: int, chunk: int):
    """A lazy ``cos(k·x − ω·t) + 0.1·noise`` of shape (time, y, x), chunked along space."""
    import dask.array as dsa

    k = [2 * math.pi * m / size for m in M]

    def block(block_info=None) -> np.ndarray:
        (t0, t1), (y0, y1), (x0, x1) = block_info[None]["array-location"]
        t = (np.arange(t0, t1) * DT)[:, None, None]
        y = np.arange(y0, y1)[None, :, None]
        x = np.arange(x0, x1)[None, None, :]
        rng = np.random.default_rng([y0, x0])
        out = np.cos(k[0] * y + k[1] * x - OMEGA * t)
        out += 0.1 * rng.standard_normal(out.shape)
        return out

    arr = dsa.map_blocks(
        block,
        dtype=np.float64,
        chunks=((frames,), (chunk,) * (size // chunk), (chunk,) * (size // chunk)),
    )
    return xr.DataArray(
        arr, dims=("time", "y", "x"), coords={"time": np.arange(frames) * DT}, name="position"
    ), k


def main(argv: list[str] | None = None) -> int:
    import dask

    from oscsim import analysis

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=1600)
    parser.add_argument("--size", type=int, default=1024)
    parser.add_argument("--chunk", type=int, default=128)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args(argv)
    data, k = recording(args.frames, args.size, args.chunk)
    total = _mem_total()
    t0 = time.perf_counter()
    with dask.config.set(scheduler="threads", num_workers=args.workers):
        report = analysis.wave_report(data)
    wall = time.perf_counter() - t0
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    kn = math.hypot(*k)
    result = {
        "shape": list(data.shape),
        "dtype": str(data.dtype),
        "data_bytes": int(data.nbytes),
        "data_GiB": data.nbytes / 2**30,
        "machine_memory_GiB": total / 2**30,
        "data_over_half_memory": data.nbytes > total / 2,
        "chunks": [c[0] for c in data.chunks],
        "wall_s": wall,
        "peak_rss_GiB": peak / 2**30,
        "peak_rss_over_data": peak / data.nbytes,
        "speed": {"median": report["speed"]["median"], "truth": OMEGA / kn},
        "wavelength": {"median": report["wavelength"]["median"], "truth": 2 * math.pi / kn},
        "omega": {"median": report["omega"]["median"], "truth": OMEGA},
        "direction_deg": {
            "median": report["direction_deg"]["median"],
            "truth": math.degrees(math.atan2(k[0], k[1])),
        },
        "percent_waves": report["percent_waves"],
        "dominant_mode": report["dominant_mode"],
    }
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
