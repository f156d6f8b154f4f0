"""The ``oscsim`` command line (DESIGN §6).

Bad input exits with status 2 and one line on stderr, any other failure with status 1;
``--debug`` shows the traceback instead.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import traceback
from collections.abc import Sequence
from pathlib import Path
from typing import Any

EXIT_BAD_INPUT = 2
EXIT_FAILURE = 1


def _cmd_demo(args: argparse.Namespace) -> int:
    from oscsim.demo import run_demo

    run_demo(Path(args.out))
    return 0


def _cmd_simulate(args: argparse.Namespace) -> int:
    from oscsim.config import load_config
    from oscsim.io import write_trajectory
    from oscsim.simulation import simulate

    config = load_config(args.config, args.set or [])
    out = Path(args.out or config.output.path)
    if out.suffix not in (".nc", ".zarr"):
        from oscsim.errors import OscsimInputError

        raise OscsimInputError(f"--out {str(out)!r} must end in .nc or .zarr")
    ds = simulate(config)
    write_trajectory(ds, out)
    print(f"wrote {out} ({ds.sizes['time']} frames, {ds.sizes['sample']} sample(s))")
    return 0


def _cmd_analyze(args: argparse.Namespace) -> int:
    from oscsim.analysis import analyze_dataset
    from oscsim.io import read_trajectory
    from oscsim.sweep import is_sweep_store

    if is_sweep_store(args.path):
        return _analyze_sweep(args)

    ds = read_trajectory(args.path)
    out_dir = None if args.out is None else Path(args.out)
    report = analyze_dataset(
        ds, var=args.var, band=tuple(args.band) if args.band else None, out_dir=out_dir
    )
    if args.json:
        print(json.dumps(report, indent=2, sort_keys=True))
    else:
        from oscsim.demo import format_report

        print(format_report(report))
    return 0


def _analyze_sweep(args: argparse.Namespace) -> int:
    """``oscsim analyze STORE.zarr`` on a sweep store: metrics over the sweep, phase diagrams."""
    import numpy as np
    import xarray as xr

    from oscsim.analysis.sweep import sweep_metrics, write_phase_diagrams
    from oscsim.atomic import atomic_target
    from oscsim.sweep import predicted_speeds

    store = Path(args.path)
    ds = xr.open_zarr(store, consolidated=False)  # lazy: points are read chunk by chunk
    dims = list(json.loads(ds.attrs["sweep_dims"]))
    metrics = sweep_metrics(
        ds,
        dims,
        var=args.var,
        band=tuple(args.band) if args.band else None,
        progress=sys.stderr.isatty(),
    )
    vectors = metrics["dominant_wavevector"].values
    shape = vectors.shape[:-1]
    predicted = predicted_speeds(ds, vectors.reshape(-1, vectors.shape[-1])).reshape(shape)
    metrics["predicted_speed"] = (dims, predicted)
    metrics["predicted_speed"].attrs.update(
        {
            "units": "cell / time",
            "long_name": "phase speed of the linearised network at the dominant wave vector",
        }
    )
    metrics.attrs["store"] = str(store)
    out = Path(args.out) if args.out else store.with_name(f"{store.stem}-analysis")
    out.mkdir(parents=True, exist_ok=True)
    target = out / "sweep_metrics.nc"
    with atomic_target(target) as tmp:
        metrics.to_netcdf(tmp, engine="h5netcdf")
    figures = write_phase_diagrams(metrics, out, predicted=metrics["predicted_speed"])
    table = metrics[["speed", "dominant_phase_speed", "predicted_speed", "wavelength"]]
    frame = table.to_dataframe() if hasattr(table, "to_dataframe") else table
    if args.json:
        print(json.dumps(json.loads(frame.reset_index().to_json(orient="records")), indent=2))
    else:
        print(frame.to_string(float_format=lambda v: f"{v:.4g}"))
    done = int(np.isfinite(metrics["speed"].values).sum())
    print(
        f"analysed {done} of {metrics['speed'].size} points → {target}, "
        + ", ".join(str(p) for p in figures)
    )
    return 0


def _cmd_train(args: argparse.Namespace) -> int:
    from oscsim.models.cli import train_command

    return train_command(args)


def _cmd_evaluate(args: argparse.Namespace) -> int:
    from oscsim.models.cli import evaluate_command

    return evaluate_command(args)


def _cmd_bench(args: argparse.Namespace) -> int:
    from oscsim.benchmarks import run_benchmarks

    return run_benchmarks(only=args.only, quick=args.quick, out=args.out)


EXPERIMENTS = ("forecast_table", "forecast_seeds", "rotmnist_equivariance", "sequence_table")


def _cmd_experiment(args: argparse.Namespace) -> int:
    import importlib

    module = importlib.import_module(f"oscsim.models.experiments.{args.name}")
    return int(module.main(args.arguments))


def _cmd_data(args: argparse.Namespace) -> int:
    from oscsim.models.data.mnist import fetch_mnist

    path = fetch_mnist(args.cache_dir)
    print(f"MNIST ready at {path}")
    return 0


# --------------------------------------------------------------------------------------
# oscsim sweep (docs/guide/sweeps.md)


def _cmd_sweep(args: argparse.Namespace) -> int:
    from oscsim.errors import OscsimInputError
    from oscsim.sweep import (
        check_resources,
        load_sweep,
        local_cluster,
        pending_points,
        run_sweep,
        worker_memory_limit,
    )

    out = Path(args.out)
    if out.suffix != ".zarr":
        raise OscsimInputError(f"--out {str(out)!r} must end in .zarr (one zarr store)")
    if args.workers is not None and args.workers < 1:
        raise OscsimInputError(f"--workers must be >= 1, got {args.workers}")
    if args.workers is not None and args.scheduler:
        raise OscsimInputError("--workers starts a local cluster; leave it out with --scheduler")
    sweep = load_sweep(args.config, args.grid or [], args.set or [])
    pending = pending_points(sweep, out, resume=args.resume)
    if not pending:
        print(f"{out}: all {sweep.n_points} points are done; nothing to compute")
        return 0
    from distributed import Client

    if args.scheduler:
        client = Client(args.scheduler)
        cluster = None
        torch_threads = 1
        check_resources(sweep, out, worker_memory=worker_memory_limit(client), pending=len(pending))
    else:
        from distributed.system import MEMORY_LIMIT

        workers = args.workers or min(os.cpu_count() or 1, len(pending))
        check_resources(sweep, out, worker_memory=MEMORY_LIMIT // workers, pending=len(pending))
        cluster, torch_threads = local_cluster(workers)
        client = Client(cluster)
    try:
        print(
            f"oscsim sweep: {len(pending)} of {sweep.n_points} points over "
            f"{', '.join(f'{d}={n}' for d, n in zip(sweep.dims, sweep.shape, strict=True))} "
            f"on {len(client.scheduler_info().get('workers', {}))} worker(s) → {out}",
            flush=True,
        )
        result = run_sweep(
            sweep,
            out,
            client,
            pending=pending,
            torch_threads=torch_threads,
            progress=not args.no_progress,
        )
    finally:
        client.close()
        if cluster is not None:
            cluster.close()
    print(
        f"wrote {out}: {result.computed} computed, {result.skipped} already done, "
        f"{len(result.failed)} failed in {result.seconds:.1f} s"
    )
    for point, error in sorted(result.failed.items()):
        print(f"  point {point} ({sweep.index(point)}): {error}", file=sys.stderr)
    return EXIT_FAILURE if result.failed else 0


def _add_sweep_parser(sub: Any) -> None:
    sweep = sub.add_parser(
        "sweep", help="simulate every point of a parameter grid on Dask into one zarr store"
    )
    sweep.add_argument("config", help="TOML configuration: the base every point starts from")
    sweep.add_argument(
        "--grid",
        action="append",
        metavar="KEY=VALUES",
        help="a swept key: KEY=V1,V2,... or KEY=START:STOP:NUM (repeat for a product grid)",
    )
    sweep.add_argument(
        "--set", action="append", metavar="KEY=VALUE", help="override the base, as for simulate"
    )
    sweep.add_argument("--out", required=True, help="the zarr store (.zarr)")
    sweep.add_argument(
        "--workers", type=int, default=None, help="local cluster size (default: one per core)"
    )
    sweep.add_argument(
        "--scheduler", default=None, help="address of a running Dask scheduler instead"
    )
    sweep.add_argument(
        "--resume", action="store_true", help="compute only the points not yet done in --out"
    )
    sweep.add_argument("--no-progress", action="store_true", help="no progress bar")
    sweep.set_defaults(handler=_cmd_sweep)


def build_parser() -> argparse.ArgumentParser:
    """The argument parser with every subcommand."""
    parser = argparse.ArgumentParser(
        prog="oscsim",
        description="Simulate, train and analyse topographic coupled oscillator networks.",
    )
    parser.add_argument("--debug", action="store_true", help="show tracebacks on errors")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    demo = sub.add_parser("demo", help="simulate and analyse a traveling wave (no arguments)")
    demo.add_argument("--out", default="oscsim-demo", help="output folder (default oscsim-demo/)")
    demo.set_defaults(handler=_cmd_demo)

    sim = sub.add_parser("simulate", help="integrate a TOML configuration, write a trajectory")
    sim.add_argument("config", help="TOML configuration (DESIGN §5)")
    sim.add_argument(
        "--set", action="append", metavar="KEY=VALUE", help="override, e.g. network.gamma=0.5"
    )
    sim.add_argument("--out", help="trajectory path, .nc or .zarr (default: output.path)")
    sim.set_defaults(handler=_cmd_simulate)

    ana = sub.add_parser("analyze", help="wave report and figures for a trajectory file")
    ana.add_argument("path", help="trajectory (.nc or .zarr)")
    ana.add_argument("--var", default="position", help="variable to analyse (default position)")
    ana.add_argument(
        "--band",
        nargs=2,
        type=float,
        metavar=("LOW", "HIGH"),
        help="band-pass in cycles per time unit before the Hilbert transform",
    )
    ana.add_argument("--out", help="folder for report.json and figures")
    ana.add_argument("--json", action="store_true", help="print the report as JSON")
    ana.set_defaults(handler=_cmd_analyze)

    train = sub.add_parser("train", help="train a model on a task")
    _add_train_arguments(train)
    train.set_defaults(handler=_cmd_train)

    evaluate = sub.add_parser("evaluate", help="test metrics of a saved checkpoint")
    evaluate.add_argument("checkpoint", help="checkpoint file written by oscsim train")
    evaluate.add_argument("--split", default="test", choices=("validation", "test"))
    evaluate.add_argument("--batch-size", type=int, default=None)
    evaluate.add_argument("--limit", type=int, default=None, help="evaluate on the first N items")
    evaluate.set_defaults(handler=_cmd_evaluate)

    bench = sub.add_parser("bench", help="benchmark table: ratios against baselines, one run")
    bench.add_argument(
        "--quick", action="store_true", help="smaller problems (about a minute each)"
    )
    bench.add_argument(
        "--only", action="append", help="run only benchmarks whose name contains this"
    )
    bench.add_argument("--out", help="also write the rows as JSON here")
    bench.set_defaults(handler=_cmd_bench)

    experiment = sub.add_parser(
        "experiment", help="the experiments behind the results pages (tables over seeds)"
    )
    experiment.add_argument("name", choices=EXPERIMENTS, help="which experiment")
    experiment.add_argument(
        "arguments", nargs=argparse.REMAINDER, help="its own options (NAME --help lists them)"
    )
    experiment.set_defaults(handler=_cmd_experiment)

    data = sub.add_parser("data", help="fetch data sets for offline use")
    data.add_argument("name", choices=("mnist",), help="data set")
    data.add_argument(
        "--cache-dir", default=None, help="where to keep it (default ~/.cache/oscsim)"
    )
    data.set_defaults(handler=_cmd_data)
    _add_sweep_parser(sub)
    return parser


TRAIN_TASKS = ("smnist", "psmnist", "adding", "rotmnist", "mass_spring", "pendulum", "two_body")


def _add_train_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("task", choices=TRAIN_TASKS, help="what to learn")
    parser.add_argument(
        "--model",
        default="nwm2d",
        help="nwm2d | nwm1d | cornn | uncoupled | lstm; forecasting also nwm2d_ode | cornn_ode",
    )
    parser.add_argument("--out", default=None, help="run folder (default runs/TASK-MODEL-sSEED)")
    parser.add_argument("--epochs", type=int, default=None, help="epochs (default: published)")
    parser.add_argument("--max-steps", type=int, default=None, help="stop after N optimiser steps")
    parser.add_argument("--batch-size", type=int, default=None)
    parser.add_argument("--lr", type=float, default=None, help="learning rate (default: published)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--resume", action="store_true", help="continue from OUT/last.pt exactly")
    parser.add_argument(
        "--limit-train", type=int, default=None, help="use the first N training items"
    )
    parser.add_argument("--limit-eval", type=int, default=None, help="use the first N eval items")
    parser.add_argument("--seq-len", type=int, default=None, help="adding problem length T")
    parser.add_argument(
        "--set", action="append", metavar="KEY=VALUE", help="override a model or task option"
    )
    parser.add_argument("--device", default="cpu")
    parser.add_argument(
        "--checkpoint-every", type=int, default=50, help="steps between checkpoints (default 50)"
    )
    parser.add_argument(
        "--stop-when-converged",
        action="store_true",
        help="adding problem: stop at the first evaluation below the convergence threshold",
    )
    parser.add_argument(
        "--clip-grad-norm",
        type=float,
        default=None,
        metavar="MAX",
        help="rescale each gradient to a 2-norm of at most MAX (default: no clipping)",
    )
    # data-parallel training on N processes (docs/guide/sweeps.md)
    parser.add_argument(
        "--nproc",
        type=int,
        default=1,
        metavar="N",
        help="train on N processes with DistributedDataParallel (gloo on CPU, nccl on CUDA); "
        "under torchrun leave it out",
    )


def _raise_on_sigterm(signum: int, frame: Any) -> None:
    # Turn a kill into an exception so that atomic writers remove their temporary files.
    raise SystemExit(128 + signum)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit status."""
    from oscsim.errors import OscsimInputError

    parser = build_parser()
    args = parser.parse_args(argv)
    signal.signal(signal.SIGTERM, _raise_on_sigterm)
    try:
        return int(args.handler(args))
    except (OscsimInputError, ValueError, FileNotFoundError) as error:
        if args.debug:
            traceback.print_exc()
        else:
            print(f"oscsim {args.command}: error: {_one_line(error)}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except KeyboardInterrupt:
        print(f"oscsim {args.command}: interrupted", file=sys.stderr)
        return 130
    except Exception as error:  # noqa: BLE001 - the one place that turns failures into a status
        if args.debug:
            traceback.print_exc()
        else:
            print(
                f"oscsim {args.command}: failed: {type(error).__name__}: {_one_line(error)} "
                "(rerun with --debug for the traceback)",
                file=sys.stderr,
            )
        return EXIT_FAILURE


def _one_line(error: BaseException) -> str:
    return " ".join(str(error).split()) or type(error).__name__


if __name__ == "__main__":
    raise SystemExit(main())
