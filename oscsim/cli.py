"""The ``oscsim`` command line (docs/getting-started.md#command-line).

Bad input exits with status 2 and one line on stderr, before any work; a failed
computation (a divergence, for example) with status 1 and one line; Ctrl-C with 130 and
SIGTERM with 143, leaving nothing half-written. ``--debug`` shows the traceback instead.
What is promised and how it is tested: docs/reliability.md.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import traceback
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from oscsim.arguments import (
    EXIT_BAD_INPUT,
    ArgumentParser,
    finite_float,
    nonnegative_int,
    positive_float,
    positive_int,
)
from oscsim.errors import OscsimInputError

EXIT_FAILURE = 1
EXIT_INTERRUPTED = 130
EXIT_TERMINATED = 143


def _cmd_demo(args: argparse.Namespace) -> int:
    from oscsim.atomic import check_output_path
    from oscsim.demo import run_demo

    check_output_path(args.out, directory=True, replace=False)
    run_demo(Path(args.out))
    return 0


def _cmd_simulate(args: argparse.Namespace) -> int:
    from oscsim.config import load_config
    from oscsim.io import check_trajectory_output, write_trajectory
    from oscsim.simulation import check_resources, simulate

    config = load_config(args.config, args.set or [])
    out = check_trajectory_output(args.out or config.output.path)
    check_resources(config, out)
    ds = simulate(config)
    write_trajectory(ds, out)
    print(f"wrote {out} ({ds.sizes['time']} frames, {ds.sizes['sample']} sample(s))")
    return 0


def _cmd_analyze(args: argparse.Namespace) -> int:
    from oscsim.analysis import analyze_dataset
    from oscsim.sweep import is_sweep_store

    if is_sweep_store(args.path):
        return _analyze_sweep(args)
    from oscsim.atomic import check_output_path
    from oscsim.io import open_trajectory

    if args.band is not None and not 0 <= args.band[0] < args.band[1]:
        raise OscsimInputError(
            f"--band {args.band[0]:g} {args.band[1]:g}: give 0 <= LOW < HIGH (cycles per time unit)"
        )
    if args.out is not None:
        check_output_path(args.out, directory=True, replace=False)
    out_dir = None if args.out is None else Path(args.out)
    # Opened lazily: a recording larger than memory streams through the dask engine.
    with open_trajectory(args.path) as ds:
        if args.var not in ds.data_vars:
            raise OscsimInputError(
                f"--var {args.var!r}: {args.path!r} has no such variable; it has "
                f"{', '.join(map(str, ds.data_vars))}"
            )
        report = analyze_dataset(
            ds,
            var=args.var,
            band=tuple(args.band) if args.band else None,
            out_dir=out_dir,
            estimator=args.estimator,
            published=args.published,
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

    if args.out is not None:
        from oscsim.atomic import check_output_path

        check_output_path(args.out)
    return run_benchmarks(only=args.only, quick=args.quick, out=args.out)


EXPERIMENTS = (
    "forecast_table",
    "forecast_seeds",
    "icar_vpt",
    "rotmnist_equivariance",
    "rotmnist_waves",
    "sequence_table",
)


def _cmd_experiment(args: argparse.Namespace) -> int:
    import importlib

    module = importlib.import_module(f"oscsim.models.experiments.{args.name}")
    return int(module.main(args.arguments))


def _cmd_data(args: argparse.Namespace) -> int:
    from oscsim.models.data.mnist import fetch_mnist

    if args.cache_dir is not None:
        from oscsim.atomic import check_output_path

        check_output_path(args.cache_dir, directory=True, replace=False)
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
    parser = ArgumentParser(
        prog="oscsim",
        description="Simulate, train and analyse topographic coupled oscillator networks.",
    )
    parser.add_argument("--debug", action="store_true", help="show tracebacks on errors")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    demo = sub.add_parser("demo", help="simulate and analyse a traveling wave (no arguments)")
    demo.add_argument("--out", default="oscsim-demo", help="output folder (default oscsim-demo/)")
    demo.set_defaults(handler=_cmd_demo)

    sim = sub.add_parser("simulate", help="integrate a TOML configuration, write a trajectory")
    sim.add_argument("config", help="TOML configuration (docs/formats.md#configuration)")
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
        type=finite_float,
        metavar=("LOW", "HIGH"),
        help="band-pass in cycles per time unit before the Hilbert transform",
    )
    ana.add_argument(
        "--estimator",
        choices=("window", "one_sample"),
        default="window",
        help="local estimator of k and ω (default window: 3 frames × 5 cells)",
    )
    ana.add_argument(
        "--published",
        action="store_true",
        help="add percent waves of the published band-pass (0.2-0.4 Nyquist)",
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
    evaluate.add_argument(
        "--batch-size",
        type=positive_int,
        default=None,
        help="items per forward pass (default: the task's; the metrics do not depend on it)",
    )
    evaluate.add_argument(
        "--limit", type=positive_int, default=None, help="evaluate on the first N items"
    )
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

    _add_import_reference(sub)

    data = sub.add_parser("data", help="fetch data sets for offline use")
    data.add_argument("name", choices=("mnist",), help="data set")
    data.add_argument(
        "--cache-dir", default=None, help="where to keep it (default ~/.cache/oscsim)"
    )
    data.set_defaults(handler=_cmd_data)
    _add_sweep_parser(sub)
    return parser


def _add_train_arguments(parser: argparse.ArgumentParser) -> None:
    # Tasks and models are named in one place, the registry (it imports no torch).
    from oscsim.models.registry import TASKS, model_help

    parser.add_argument("task", choices=tuple(TASKS), help="what to learn")
    parser.add_argument("--model", default=None, help=model_help())
    parser.add_argument("--out", default=None, help="run folder (default runs/TASK-MODEL-sSEED)")
    parser.add_argument(
        "--epochs", type=positive_int, default=None, help="epochs (default: published)"
    )
    parser.add_argument(
        "--max-steps", type=positive_int, default=None, help="stop after N optimiser steps"
    )
    parser.add_argument("--batch-size", type=positive_int, default=None)
    parser.add_argument(
        "--lr", type=positive_float, default=None, help="learning rate (default: published)"
    )
    parser.add_argument("--seed", type=nonnegative_int, default=None, help="default 0")
    parser.add_argument(
        "--resume",
        action="store_true",
        help="continue OUT/last.safetensors exactly (task, model and options must match)",
    )
    parser.add_argument(
        "--limit-train", type=positive_int, default=None, help="use the first N training items"
    )
    parser.add_argument(
        "--limit-eval", type=positive_int, default=None, help="use the first N eval items"
    )
    parser.add_argument(
        "--seq-len", type=positive_int, default=None, help="adding problem length T"
    )
    parser.add_argument(
        "--set", action="append", metavar="KEY=VALUE", help="override a model or task option"
    )
    parser.add_argument("--device", default="cpu")
    parser.add_argument(
        "--checkpoint-every",
        type=positive_int,
        default=50,
        help="steps between checkpoints (default 50)",
    )
    parser.add_argument(
        "--stop-when-converged",
        action="store_true",
        help="adding problem: stop at the first evaluation below the convergence threshold",
    )
    parser.add_argument(
        "--clip-grad-norm",
        type=finite_float,
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


def _add_import_reference(sub: Any) -> None:
    """``oscsim import-reference``: weights of the published sequence code → a checkpoint."""
    command = sub.add_parser(
        "import-reference",
        help="turn a state_dict saved by the published sequence code into an oscsim checkpoint",
    )
    command.add_argument("file", help="the state_dict file (torch.save of model.state_dict())")
    # The published sequence code whose state dicts map one to one onto the reference models.
    command.add_argument("--task", required=True, choices=("smnist", "psmnist", "adding"))
    command.add_argument("--model", required=True, choices=("nwm2d", "nwm1d", "cornn"))
    command.add_argument(
        "--set", action="append", metavar="KEY=VALUE", help="model option, e.g. rings=16"
    )
    command.add_argument("--seed", type=int, default=0, help="seed of the data split (default 0)")
    command.add_argument(
        "--permutation",
        default=None,
        help="psmnist: the pixel order the model was trained with (.npy or text, 784 integers)",
    )
    command.add_argument("--out", required=True, help="checkpoint file to write (must not exist)")

    def handler(args: argparse.Namespace) -> int:
        from oscsim.models.cli import import_reference_command

        return import_reference_command(args)

    command.set_defaults(handler=handler)


class Terminated(BaseException):
    """SIGTERM arrived: unwinds like `KeyboardInterrupt`, so atomic writers clean up."""


def _raise_on_sigterm(signum: int, frame: Any) -> None:
    raise Terminated


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit status.

    0 on success; 2 for bad input (one line on stderr, before any work); 1 for a failed
    computation (e.g. `oscsim.IntegrationError`: one line with the model time and advice);
    130 after Ctrl-C and 143 after SIGTERM (nothing half-written is left).
    """
    from oscsim.atomic import OutputPathError

    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exit:  # --help (0) or a bad argument (2, one line already printed)
        return exit.code if isinstance(exit.code, int) else EXIT_BAD_INPUT
    previous = signal.getsignal(signal.SIGTERM)
    try:
        signal.signal(signal.SIGTERM, _raise_on_sigterm)
    except ValueError:  # not the main thread: leave SIGTERM alone
        previous = None
    shown = warnings.showwarning
    warnings.showwarning = _one_line_warning(args.command, shown)
    try:
        return int(args.handler(args))
    except SystemExit as exit:  # an experiment's own options: --help (0) or a one-line error
        return exit.code if isinstance(exit.code, int) else EXIT_BAD_INPUT
    # AnalysisInputError is a ValueError; a missing input file, FileNotFoundError.
    except (OscsimInputError, OutputPathError, ValueError, FileNotFoundError) as error:
        return _report(args, error, EXIT_BAD_INPUT, "error")
    except KeyboardInterrupt:
        print(f"oscsim {args.command}: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except Terminated:
        print(f"oscsim {args.command}: terminated", file=sys.stderr)
        return EXIT_TERMINATED
    except MemoryError:
        print(
            f"oscsim {args.command}: failed: out of memory; make the problem smaller",
            file=sys.stderr,
        )
        return EXIT_FAILURE
    except Exception as error:  # noqa: BLE001 - the one place that turns failures into a status
        return _report(args, error, EXIT_FAILURE, "failed")
    finally:
        warnings.showwarning = shown
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)


def _one_line_warning(command: str, fallback: Any) -> Any:
    """Show oscsim's own warnings as ``oscsim COMMAND: warning: ...`` on one line."""
    from oscsim.errors import OscsimWarning

    def show(message: Any, category: Any, filename: str, lineno: int, *rest: Any) -> None:
        if isinstance(category, type) and issubclass(category, OscsimWarning):
            print(f"oscsim {command}: warning: {_one_line(message)}", file=sys.stderr)
        else:
            fallback(message, category, filename, lineno, *rest)

    return show


def _report(args: argparse.Namespace, error: BaseException, status: int, kind: str) -> int:
    if args.debug:
        traceback.print_exc()
    elif status == EXIT_BAD_INPUT:
        print(f"oscsim {args.command}: error: {_one_line(error)}", file=sys.stderr)
    else:
        print(
            f"oscsim {args.command}: failed: {type(error).__name__}: {_one_line(error)} "
            "(rerun with --debug for the traceback)",
            file=sys.stderr,
        )
    return status


def _one_line(error: BaseException) -> str:
    return " ".join(str(error).split()) or type(error).__name__


if __name__ == "__main__":
    raise SystemExit(main())
