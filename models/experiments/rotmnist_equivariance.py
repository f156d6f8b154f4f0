"""Rotating MNIST: forecast a turning digit, then rotate it by shifting the latent wave.

    oscsim experiment rotmnist_equivariance --steps 1500 --out results/forecast/rotmnist

Trains the autoregressive NWM-2D (and, with ``--models``, baselines under the same budget)
on rotating MNIST with the trainer of ``oscsim train``; scores the test forecast (per-step
MSE, VPT over twice the training window); then runs the paper's equivariance demonstration
on NWM-2D: the latent after the observed frames is translated on the torus by ``s·v``
(``v`` the direction and speed of travel measured on validation sequences) and decoded,
and the result is compared with the truly rotated digit, against decoding the unshifted
latent. Writes ``table.md``, ``results.json``, ``rotmnist_forecast.png``,
``rotmnist_mse.png``, ``equivariance.png``, ``latents/rotmnist-nwm2d.nc`` (+ ``.gif``) and
``rotmnist-nwm2d_latent.png`` under ``--out``.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from oscsim.models.equivariance import equivariance_test, estimate_wave_velocity
from oscsim.models.experiments.forecast_table import (
    TABLE_HEADER,
    _row,
    latent_report,
    load_best,
    model_label,
    parse_options,
    scalar_scores,
    score,
    table_run,
    train_or_reuse,
)
from oscsim.models.figures import equivariance_figure, error_curves_figure, forecast_frames_figure
from oscsim.models.forecast import AutoregressiveForecaster
from oscsim.models.forecast_tasks import RotatingMnistForecastTask
from oscsim.models.sequence import count_parameters

from oscsim import OscsimInputError
from oscsim.arguments import ArgumentParser
from oscsim.atomic import write_text_atomic


def main(argv: list[str] | None = None) -> int:
    """Train, score, shift and draw; see the module docstring."""
    parser = ArgumentParser(
        prog=f"oscsim experiment {__name__.rsplit('.', 1)[-1]}", description=__doc__.splitlines()[0]
    )
    parser.add_argument("--models", nargs="+", default=["nwm2d"])
    parser.add_argument("--steps", type=int, default=1500)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--lr", type=float, default=3e-3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--n-train", type=int, default=6000)
    parser.add_argument("--n-eval", type=int, default=256)
    parser.add_argument("--shifts", type=int, default=12, help="shifts s = 0 … N−1 to decode")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--set", action="append", metavar="KEY=VALUE", help="option for all models")
    parser.add_argument("--out", type=Path, default=Path("results/forecast/rotmnist"))
    parser.add_argument(
        "--runs", type=Path, default=Path("runs/forecast/rotmnist"), help="run folders"
    )
    args = parser.parse_args(argv)
    if "nwm2d" not in args.models:
        raise OscsimInputError("--models must include nwm2d (the equivariance test runs on it)")
    torch.set_num_threads(args.threads)
    out: Path = args.out
    out.mkdir(parents=True, exist_ok=True)
    shared = parse_options(args.set)
    started = time.time()
    results: dict[str, Any] = {
        "command": "oscsim experiment rotmnist_equivariance",
        "args": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
        "models": {},
    }
    rows, predictions, curves, vpts = [], {}, {}, {}
    truth = None
    task: RotatingMnistForecastTask | None = None
    for name in args.models:
        folder = args.runs / name
        run = table_run("rotmnist", name, folder, args.steps, args, shared)
        print(f"-- rotmnist / {name}: {args.steps} steps", flush=True)
        summary = train_or_reuse(run)
        loaded_task, model, _ = load_best(folder)
        if not isinstance(loaded_task, RotatingMnistForecastTask):
            raise TypeError(f"{folder} is not a rotating-MNIST run")
        task = loaded_task
        scores = score(task, model)
        truth = scores["truth"][0]
        predictions[name] = scores["predictions"][0]
        curves[name] = scores["mse_curve"]
        vpts[name] = scores["vpt_mean"]
        label = model_label(name, shared)
        rows.append(_row("rotmnist", name, label, summary, scores))
        results["models"][name] = {
            "label": label,
            "parameters": count_parameters(model),
            "steps": summary["steps"],
            "train_wall_seconds": summary["wall_seconds"],
            "test": scalar_scores(scores),
            "test_mse_per_step": scores["mse_curve"].tolist(),
        }
        if name != "nwm2d":
            continue
        if not isinstance(model, AutoregressiveForecaster):
            raise TypeError("nwm2d must be the autoregressive oscillator model")
        results["models"][name]["latents"] = latent_report(
            task, model, out, f"rotmnist-{name}", seed=args.seed, origin="upper"
        )
        with torch.no_grad():
            validation = torch.from_numpy(task.eval_frames("validation")[:128]).float()
            positions, _ = model.latents(validation)
        velocity = estimate_wave_velocity(positions[2:])
        test = torch.from_numpy(task.eval_frames("test")[:64]).float()
        result = equivariance_test(model, test, steps=args.shifts, velocity=velocity)
        summary_eq = result.summary()
        summary_eq["velocity_measured_on"] = "128 validation sequences (all steps after 2)"
        results["equivariance"] = summary_eq
        equivariance_figure(
            result,
            out / "equivariance.png",
            title=(
                f"NWM-2D on rotating MNIST: latent shifted by s·v, v = "
                f"({velocity[0]:+.2f}, {velocity[1]:+.2f}) cells/frame; MSE over s ≥ 1: "
                f"shifted {summary_eq['mse_shifted']:.4f}, unshifted "
                f"{summary_eq['mse_unshifted']:.4f}"
            ),
        )
        print(
            f"   equivariance: v = {velocity}, MSE shifted {summary_eq['mse_shifted']:.4f}, "
            f"unshifted {summary_eq['mse_unshifted']:.4f}, "
            f"model forecast {summary_eq['mse_model_forecast']:.4f}",
            flush=True,
        )
    if task is not None and truth is not None:
        last = len(truth) - 1
        forecast_frames_figure(
            truth,
            predictions,
            sorted({0, 2, 5, 8, 11, 14, 17, 20, last} & set(range(last + 1))),
            out / "rotmnist_forecast.png",
            origin="upper",
            title=f"rotating MNIST: test sample 0, steps after the {task.observed} observed frames",
        )
        error_curves_figure(
            curves,
            out / "rotmnist_mse.png",
            train_horizon=task.horizon,
            vpt=vpts,
            title=f"rotating MNIST: test per-step MSE ({args.n_eval} sequences)",
        )
        note = (
            f"\n\nH = {task.horizon} frames of 20° after {task.observed} observed; the test "
            f"horizon is 2H = {2 * task.horizon}.\n"
        )
    else:
        note = "\n"
    results["total_wall_seconds"] = time.time() - started
    table = "\n".join([TABLE_HEADER, *rows]) + note
    if "equivariance" in results:
        eq = results["equivariance"]
        table += (
            f"\nEquivariance (NWM-2D, {eq['samples']} test digits, shifts 1–{eq['shifts'] - 1}): "
            f"MSE of the decoded shifted latent against the rotated digit "
            f"{eq['mse_shifted']:.4f}; unshifted latent {eq['mse_unshifted']:.4f}; the model's "
            f"own forecast {eq['mse_model_forecast']:.4f}. Latent velocity "
            f"{np.round(eq['velocity_cells_per_frame'], 3).tolist()} cells per frame.\n"
        )
    write_text_atomic(table, out / "table.md")
    write_text_atomic(json.dumps(results, indent=2), out / "results.json")
    print(table)
    return 0
