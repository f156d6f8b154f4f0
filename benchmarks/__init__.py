"""Benchmarks behind ``oscsim bench``.

Each module ``bench_<topic>.py`` exposes ``run(*, quick=False) -> list[dict]``; every row
times our code and its baseline on the same problem in the same run and reports their
ratio (``baseline_s / ours_s``: above 1 means we are faster).
"""

from __future__ import annotations

import argparse
import importlib
import json
import platform
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

#: Benchmark modules in the order the table shows them.
BENCHMARKS: tuple[str, ...] = (
    "reference",
    "fused",
    "sequence_step",
    "analysis",
    "adjoint",
    "sweep",
    "distributed",
    "icar",
    "rotating",
)

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


def script_main(description: str, run: Callable[..., list[dict[str, Any]]]) -> None:
    """Command-line entry of a benchmark script: ``--quick``, ``--json``; print its rows.

    Parameters
    ----------
    description
        The ``--help`` line (the script's docstring summary).
    run
        The script's ``run(quick=...)``.
    """
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    rows = run(quick=args.quick)
    print(json.dumps(rows, indent=2) if args.json else format_table(rows))


def run_worker(module: str, task: dict[str, Any]) -> subprocess.CompletedProcess[str]:
    """Run one measurement in a fresh interpreter: ``python -m oscsim.benchmarks.MODULE``.

    The child gets ``--worker`` with `task` as JSON (see `serve_worker`) and runs from the
    repository root, so that its peak memory and thread settings are its own.
    """
    root = Path(__file__).resolve().parent.parent
    return subprocess.run(
        [sys.executable, "-m", f"oscsim.benchmarks.{module}", "--worker", json.dumps(task)],
        cwd=root,
        capture_output=True,
        text=True,
        check=False,
    )


def worker_result(proc: subprocess.CompletedProcess[str]) -> dict[str, Any]:
    """The JSON object a worker printed last."""
    result: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    return result


def serve_worker(
    worker: str | None, handlers: dict[str, Callable[[dict[str, Any]], dict[str, Any]]]
) -> bool:
    """In a worker (``--worker TASK``): print the JSON result of TASK's ``kind`` handler.

    Returns
    -------
    bool
        Whether this process was a worker (so the caller returns at once).
    """
    if not worker:
        return False
    task = json.loads(worker)
    print(json.dumps(handlers[task["kind"]](task)))
    return True


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
        module = importlib.import_module(f"oscsim.benchmarks.bench_{name}")
        mode = "quick" if quick else "full"
        print(f"running oscsim.benchmarks.bench_{name} ({mode}) …", flush=True)
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
        from oscsim.atomic import write_text_atomic

        write_text_atomic(json.dumps({"rows": rows, "quick": quick}, indent=2, default=float), out)
    for line in failed:
        print(f"failed: {line}")
    return 1 if failed else 0
