"""Benchmark: the whole wave analysis against the scipy Hilbert transform alone.

Target (issue 4): analysing a 1000-frame 256×256 recording (`analysis.wave_report`: the
analytic signal, k, ω, speed, wavelength, direction, their amplitude-weighted medians and
IQRs, percent_waves with its shuffled null, percent_long_waves and the dominant k–ω mode)
takes less than 3× as long as ``scipy.signal.hilbert(data, axis=0)`` on the same array.
Both are timed in the same run, alternately, `repeat` times; the ratio is of the best
times (the least disturbed by other load), and the ratio of the medians is shown too.

Run ``python -m oscsim.benchmarks.bench_analysis [--frames N --size N --repeat N --json]``.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import time
from typing import Any

import numpy as np
import scipy.signal
import xarray as xr

TARGET_RATIO = 3.0


def make_recording(frames: int = 1000, size: int = 256, seed: int = 0) -> xr.DataArray:
    """A plane wave with noise on a ``size × size`` torus, float64, dt = 0.1."""
    rng = np.random.default_rng(seed)
    dt = 0.1
    t = np.arange(frames) * dt
    y = np.arange(size)[:, None]
    x = np.arange(size)[None, :]
    k = 2 * math.pi * np.array([3, -5]) / size
    s = np.empty((frames, size, size))
    for i, ti in enumerate(t):
        s[i] = np.cos(k[0] * y + k[1] * x - 1.3 * ti)
    s += 0.3 * rng.standard_normal(s.shape)
    return xr.DataArray(s, dims=("time", "y", "x"), coords={"time": t}, name="position")


def run(*, quick: bool = False) -> list[dict[str, Any]]:
    """The `oscsim bench` row: 1000×256×256 (quick: 250×128×128), best of 3 (quick: 2)."""
    frames, size, repeat = (250, 128, 2) if quick else (1000, 256, 3)
    result = measure(frames, size, repeat)
    return [
        {
            "benchmark": "analysis",
            "case": f"wave_report, {frames}×{size}×{size} float64",
            "ours_s": min(result["analysis_s"]),
            "baseline": "scipy.signal.hilbert alone",
            "baseline_s": min(result["hilbert_s"]),
            "ratio": min(result["hilbert_s"]) / min(result["analysis_s"]),
            "note": (
                f"analysis takes {result['ratio']:.2f}× the Hilbert transform "
                f"(target < {TARGET_RATIO:g}×; medians {result['ratio_of_medians']:.2f}×)"
            ),
        }
    ]


def measure(frames: int = 1000, size: int = 256, repeat: int = 3) -> dict[str, Any]:
    """Time `wave_report` and `scipy.signal.hilbert` alternately; return the figures."""
    from oscsim import analysis

    data = make_recording(frames, size)
    values = data.values
    analysis.wave_report(data.isel(time=slice(0, 64)))  # import and plan once, untimed
    hilbert_s: list[float] = []
    analysis_s: list[float] = []
    report: dict[str, Any] = {}
    for _ in range(repeat):
        t0 = time.perf_counter()
        h = scipy.signal.hilbert(values, axis=0)
        hilbert_s.append(time.perf_counter() - t0)
        del h
        t0 = time.perf_counter()
        report = analysis.wave_report(data)
        analysis_s.append(time.perf_counter() - t0)
    ratio = min(analysis_s) / min(hilbert_s)
    return {
        "name": "analysis_vs_hilbert",
        "shape": [frames, size, size],
        "dtype": str(values.dtype),
        "repeat": repeat,
        "hilbert_s": hilbert_s,
        "analysis_s": analysis_s,
        "ratio": ratio,
        "ratio_of_medians": statistics.median(analysis_s) / statistics.median(hilbert_s),
        "target": TARGET_RATIO,
        "passed": ratio < TARGET_RATIO,
        "cpu_count": os.cpu_count(),
        "load_average": list(os.getloadavg()) if hasattr(os, "getloadavg") else None,
        "speed_median": report["speed"]["median"],
        "percent_waves": report["percent_waves"],
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=1000)
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--json", action="store_true", help="print the result as JSON")
    args = parser.parse_args(argv)
    result = measure(args.frames, args.size, args.repeat)
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        print(
            f"wave_report vs scipy.signal.hilbert on {result['shape']} {result['dtype']}: "
            f"{min(result['analysis_s']):.2f} s vs {min(result['hilbert_s']):.2f} s "
            f"(best of {result['repeat']}) -> ratio {result['ratio']:.2f} "
            f"(medians {result['ratio_of_medians']:.2f}; target < {TARGET_RATIO:g}; "
            f"{'PASS' if result['passed'] else 'FAIL'})"
        )
    return 0 if result["passed"] else 1


if __name__ == "__main__":
    raise SystemExit(main())
