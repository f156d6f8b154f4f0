"""Benchmarks behind ``oscsim bench``.

Each module ``bench_<topic>.py`` exposes ``run(*, quick=False) -> list[dict]``; every row
times our code and its baseline on the same problem in the same run and reports their
ratio (``baseline_s / ours_s``: above 1 means we are faster).
"""

from __future__ import annotations

import importlib
import json
import platform
import time
from pathlib import Path
from typing import Any

import numpy as np

#: Benchmark modules in the order the table shows them.
BENCHMARKS: tuple[str, ...] = ("reference", "fused", "analysis", "rotating")

ROW_KEYS = ("benchmark", "case", "ours_s", "baseline", "baseline_s", "ratio", "note")


def _format_seconds(value: Any) -> str:
    if not isinstance(value, (int, float)) or not np.isfinite(value):
        return "—"
    if value >= 1:
        return f"{value:.2f} s"
    if value >= 1e-3:
        return f"{value * 1e3:.1f} ms"
    return f"{value * 1e6:.0f} µs"


def format_table(rows: list[dict[str, Any]]) -> str:
    """The rows as a markdown table."""
    lines = [
        "| benchmark | case | ours | baseline | baseline time | ratio | note |",
        "|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        ratio = row.get("ratio")
        ratio_text = f"{ratio:.1f}×" if isinstance(ratio, (int, float)) else "—"
        lines.append(
            f"| {row.get('benchmark', '')} | {row.get('case', '')} | "
            f"{_format_seconds(row.get('ours_s'))} | {row.get('baseline', '')} | "
            f"{_format_seconds(row.get('baseline_s'))} | {ratio_text} | {row.get('note', '')} |"
        )
    return "\n".join(lines)


def run_benchmarks(
    *, only: list[str] | None = None, quick: bool = False, out: str | None = None
) -> int:
    """Run the benchmarks (all, or those whose name contains one of ``only``), print the table."""
    selected = [name for name in BENCHMARKS if not only or any(o in name for o in only)]
    if not selected:
        from oscsim.errors import OscsimInputError

        raise OscsimInputError(
            f"--only {only} matches no benchmark; available: {', '.join(BENCHMARKS)}"
        )
    rows: list[dict[str, Any]] = []
    failed: list[str] = []
    start = time.perf_counter()
    for name in selected:
        module = importlib.import_module(f"benchmarks.bench_{name}")
        print(f"running benchmarks.bench_{name} ({'quick' if quick else 'full'}) …", flush=True)
        try:
            new_rows = module.run(quick=quick)
        except Exception as error:  # noqa: BLE001 - one failing benchmark must not hide the rest
            failed.append(f"bench_{name}: {type(error).__name__}: {error}")
            print(f"  failed: {failed[-1]}", flush=True)
            continue
        print(format_table(new_rows), flush=True)
        rows.extend(new_rows)
    table = format_table(rows)
    print()
    print(
        f"oscsim bench on {platform.processor() or platform.machine()}, "
        f"{len(rows)} rows in {time.perf_counter() - start:.0f} s"
    )
    print(table)
    if out is not None:
        Path(out).write_text(json.dumps({"rows": rows, "quick": quick}, indent=2, default=float))
    for line in failed:
        print(f"failed: {line}")
    return 1 if failed else 0
