"""The ``oscsim`` command line (DESIGN §6).

Bad input exits with status 2 and one line on stderr, any other failure with status 1;
``--debug`` shows the traceback instead.
"""

from __future__ import annotations

import argparse
import json
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


def _cmd_train(args: argparse.Namespace) -> int:
    from oscsim.models.cli import train_command

    return train_command(args)


def _cmd_evaluate(args: argparse.Namespace) -> int:
    from oscsim.models.cli import evaluate_command

    return evaluate_command(args)


def _cmd_bench(args: argparse.Namespace) -> int:
    from oscsim.benchmarks import run_benchmarks

    return run_benchmarks(only=args.only, quick=args.quick, out=args.out)


EXPERIMENTS = (
    "forecast_table",
    "forecast_seeds",
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

    path = fetch_mnist(args.cache_dir)
    print(f"MNIST ready at {path}")
    return 0


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
    return parser


TRAIN_TASKS = ("smnist", "psmnist", "adding", "rotmnist", "mass_spring", "pendulum", "two_body")


def _add_train_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("task", choices=TRAIN_TASKS, help="what to learn")
    parser.add_argument(
        "--model",
        default="nwm2d",
        help="nwm2d | nwm1d | cornn | uncoupled | lstm; forecasting also nwm2d_ode | cornn_ode; "
        "rotmnist also published2d | published1d (the published VAE recipe)",
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
