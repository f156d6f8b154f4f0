"""Forecasting over seeds: one system's table from several `forecast_table` runs.

    oscsim experiment forecast_seeds runs/pn/out-s0 runs/pn/out-s1 runs/pn/out-s2 \\
        --system pendulum --out results/forecast/pendulum_seeds

Each directory is the ``--out`` of one ``forecast_table`` call with its own ``--seed`` (a
seed draws the weights and the train, validation and test trajectories). Every run must have
trained the same models with the same settings apart from the seed; otherwise the rows would
not compare like with like, and the command stops and says which setting differs.

A variant of one model can be compared with baselines trained earlier without training them
again (training is deterministic for a seed and its settings):

    oscsim experiment forecast_seeds runs/pch4/out-s0 runs/pch4/out-s1 \
        runs/pch4/out-s2 --system pendulum --out results/forecast/pendulum_closed_loop_ch4 \
        --baselines results/forecast/pendulum_closed_loop/s0 \
        results/forecast/pendulum_closed_loop/s1 results/forecast/pendulum_closed_loop/s2

Each ``--baselines`` folder holds a finished result of one seed; every model it has that the
result of the same seed lacks joins that result (a seed without such a folder must have
trained every model itself), provided that it was trained on the same trajectories (seed,
``observed``, ``horizon``, ``n_train``, ``n_eval``) with the same budget (steps, batch size,
learning rate) and protocol (``feedback``, ``latent_norm``, ``decoder_output``). The entry
records the folder it came from. ``--models nwm2d cornn`` pools only those models, for
seeds that did not train every model of the others.

It writes, under ``--out``:

- ``table.md``: per model the test VPT of each seed, the mean over seeds ± their standard
  deviation, and the forecast MSE inside and beyond the trained window (mean over seeds);
  then, for NWM-2D against each baseline, the per-trajectory difference in VPT (the test
  trajectories of a seed are the same for every model, so the difference is paired), its
  mean and standard error over all trajectories of all seeds;
- ``results.json`` with the same numbers;
- ``<system>_mse_seeds.png``: the per-step test MSE of each model, averaged over seeds.

A seed's VPT is noisy (its trajectories differ in energy, and high-energy pendulums that
rotate rather than swing are forecast far worse by every model); several seeds and the paired
difference say whether one model is ahead by more than that noise.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np
from oscsim.models.figures import error_curves_figure

from oscsim import OscsimInputError
from oscsim.arguments import ArgumentParser
from oscsim.atomic import write_text_atomic

#: Entry fields that must agree between seeds for their rows to be pooled.
SHARED_SETTINGS = ("steps", "batch_size", "lr", "observed", "horizon", "model_options")
#: The model every baseline is compared with.
REFERENCE_MODEL = "nwm2d"
#: Settings a baseline taken from another folder must share with the run of its seed: the
#: budget and window (the pooled settings other than the model's own options) ...
BASELINE_SETTINGS = tuple(key for key in SHARED_SETTINGS if key != "model_options")
#: ... and, of the model options, the data (``n_train``, ``n_eval``) and the protocol that
#: every model of a table runs under.
MATCHING_OPTIONS = ("n_train", "n_eval", "feedback", "latent_norm", "decoder_output")


def _read_result(folder: Path, system: str) -> dict[str, Any]:
    """The finished ``<folder>/<system>/results.json``, every entry with its seed."""
    path = folder / system / "results.json"
    if not path.exists():
        raise OscsimInputError(f"no {path}: run forecast_table --systems {system} --out {folder}")
    data: dict[str, Any] = json.loads(path.read_text())
    if not data.get("complete"):
        raise OscsimInputError(f"{path} is not finished (its forecast_table run was interrupted)")
    for name, entry in data["models"].items():
        if "seed" not in entry:
            raise OscsimInputError(
                f"{path} ({name}) does not record its seed and settings; rerun its "
                "forecast_table command (trained runs are reused) to add them"
            )
    return data


def _seed_of(data: dict[str, Any]) -> int:
    return int(next(iter(data["models"].values()))["seed"])


def add_baselines(
    runs: list[dict[str, Any]], folders: list[Path], baselines: list[Path], system: str
) -> None:
    """Add to each run the models that the ``baselines`` result of its seed has and it lacks.

    Raises
    ------
    OscsimInputError
        If two baseline folders share a seed, or a baseline was trained on other
        trajectories, with another budget or under another protocol (`MATCHING_OPTIONS`).
    """
    by_seed: dict[int, tuple[Path, dict[str, Any]]] = {}
    for folder in baselines:
        data = _read_result(folder, system)
        seed = _seed_of(data)
        if seed in by_seed:
            raise OscsimInputError(f"--baselines: seed {seed} appears twice ({folder})")
        by_seed[seed] = (folder, data)
    for folder, data in zip(folders, runs, strict=True):
        seed = _seed_of(data)
        if seed not in by_seed:
            continue  # a run that trained every model itself; `load_runs` checks it has them
        source, baseline = by_seed[seed]
        own = next(iter(data["models"].values()))
        for name, entry in baseline["models"].items():
            if name in data["models"]:
                continue
            compared = [(key, entry[key], own[key]) for key in BASELINE_SETTINGS] + [
                (key, entry["model_options"].get(key), own["model_options"].get(key))
                for key in MATCHING_OPTIONS
            ]
            for key, theirs, ours in compared:
                if theirs != ours:
                    raise OscsimInputError(
                        f"--baselines: {source} trained {name} with {key} = {theirs!r}, "
                        f"{folder} has {ours!r}"
                    )
            data["models"][name] = {**entry, "reused_from": str(source)}


def select_models(runs: list[dict[str, Any]], folders: list[Path], names: list[str]) -> None:
    """Keep only the models ``names``, in that order, in every run.

    Raises
    ------
    OscsimInputError
        If a run lacks one of them.
    """
    for folder, data in zip(folders, runs, strict=True):
        missing = [name for name in names if name not in data["models"]]
        if missing:
            raise OscsimInputError(
                f"{folder} has no {', '.join(missing)} (it has {', '.join(data['models'])})"
            )
        data["models"] = {name: data["models"][name] for name in names}


def load_runs(
    folders: list[Path],
    system: str,
    baselines: list[Path] | None = None,
    only: list[str] | None = None,
) -> list[dict[str, Any]]:
    """The finished ``<folder>/<system>/results.json`` of each folder, checked to match.

    ``baselines``: result folders whose models complete the run of the same seed (see
    `add_baselines`). ``only``: pool only these models (`select_models`).

    Raises
    ------
    OscsimInputError
        If a folder has no finished result, two folders share a seed, or their models or
        settings differ (other than the seed).
    """
    runs = [_read_result(folder, system) for folder in folders]
    if baselines:
        add_baselines(runs, folders, baselines, system)
    if only:
        select_models(runs, folders, only)
    if len(runs) < 2:
        raise OscsimInputError(f"give at least two result folders, got {len(runs)}")
    reference = runs[0]["models"]
    seeds: list[int] = []
    for folder, data in zip(folders, runs, strict=True):
        models = data["models"]
        if list(models) != list(reference):
            raise OscsimInputError(
                f"{folder} has models {list(models)}, {folders[0]} has {list(reference)}"
            )
        for name, entry in models.items():
            for key in SHARED_SETTINGS:
                if entry[key] != reference[name][key]:
                    raise OscsimInputError(
                        f"{folder} trained {name} with {key} = {entry[key]!r}, "
                        f"{folders[0]} with {reference[name][key]!r}"
                    )
        seed = _seed_of(data)
        if seed in seeds:
            raise OscsimInputError(f"seed {seed} appears twice ({folder})")
        seeds.append(seed)
    return runs


def summarise(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Per-model statistics over seeds and paired NWM-2D − baseline VPT differences."""
    names = list(runs[0]["models"])
    models: dict[str, Any] = {}
    for name in names:
        entries = [data["models"][name] for data in runs]
        per_seed = [float(e["test"]["vpt_mean"]) for e in entries]
        models[name] = {
            "label": entries[0]["label"],
            "parameters": entries[0]["parameters"],
            "steps": entries[0]["steps"],
            "batch_size": entries[0]["batch_size"],
            "train_minutes_per_seed": [e["train_wall_seconds"] / 60 for e in entries],
            "seeds": [e["seed"] for e in entries],
            "vpt_per_seed": per_seed,
            "vpt_mean_over_seeds": float(np.mean(per_seed)),
            "vpt_std_over_seeds": float(np.std(per_seed, ddof=1)),
            "mse_window": float(np.mean([e["test"]["mse_window"] for e in entries])),
            "mse_extrapolation": float(np.mean([e["test"]["mse_extrapolation"] for e in entries])),
            "mse_per_step": np.mean([e["test_mse_per_step"] for e in entries], axis=0).tolist(),
        }
        sources = [e["reused_from"] for e in entries if "reused_from" in e]
        if sources:
            models[name]["reused_from"] = sources
    paired: dict[str, Any] = {}
    if REFERENCE_MODEL in names:
        for name in names:
            if name == REFERENCE_MODEL:
                continue
            differences = np.concatenate(
                [
                    np.asarray(data["models"][REFERENCE_MODEL]["test_vpt_per_sample"])
                    - np.asarray(data["models"][name]["test_vpt_per_sample"])
                    for data in runs
                ]
            )
            paired[name] = {
                "trajectories": int(differences.size),
                "mean": float(differences.mean()),
                "standard_error": float(differences.std(ddof=1) / math.sqrt(differences.size)),
                "nwm_ahead": int((differences > 0).sum()),
                "baseline_ahead": int((differences < 0).sum()),
            }
    return {"models": models, "paired_vpt_difference": paired}


def render_table(system: str, summary: dict[str, Any], horizon: int) -> str:
    """Markdown of `summarise`'s numbers."""
    models = summary["models"]
    seeds = next(iter(models.values()))["seeds"]
    lines = [
        f"| system | model | parameters | budget per seed | test VPT, seeds {seeds} | "
        "mean ± std over seeds | MSE steps 1–H | MSE steps H+1–2H |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for entry in models.values():
        minutes = np.mean(entry["train_minutes_per_seed"])
        lines.append(
            f"| {system} | {entry['label']} | {entry['parameters']:,} | "
            f"{entry['steps']} steps × {entry['batch_size']}, {minutes:.1f} min | "
            + " / ".join(f"{v:.1f}" for v in entry["vpt_per_seed"])
            + f" | {entry['vpt_mean_over_seeds']:.1f} ± {entry['vpt_std_over_seeds']:.1f} | "
            f"{entry['mse_window']:.5f} | {entry['mse_extrapolation']:.5f} |"
        )
    paired = summary["paired_vpt_difference"]
    if paired:
        lines += [
            "",
            f"Paired VPT difference, {models[REFERENCE_MODEL]['label']} minus baseline, over the "
            "test trajectories of every seed (mean ± standard error; trajectories where each "
            "is ahead):",
            "",
            "| baseline | trajectories | mean difference (steps) | NWM-2D ahead / baseline ahead |",
            "|---|---|---|---|",
        ]
        for name, entry in paired.items():
            lines.append(
                f"| {models[name]['label']} | {entry['trajectories']} | "
                f"{entry['mean']:+.1f} ± {entry['standard_error']:.1f} | "
                f"{entry['nwm_ahead']} / {entry['baseline_ahead']} |"
            )
    reused = {
        entry["label"]: entry["reused_from"] for entry in models.values() if "reused_from" in entry
    }
    if reused:
        lines += ["", "Trained earlier with the same seeds, data and budget, and taken from:"]
        lines += [f"- {label}: {', '.join(sources)}" for label, sources in reused.items()]
    lines += [
        "",
        f"H = {horizon} steps (the training window); the test horizon is 2H. VPT as in "
        "forecast_table (Δt = 0.05, threshold 0.025, capped at 2H).",
    ]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    """Pool the seeds; see the module docstring."""
    parser = ArgumentParser(
        prog=f"oscsim experiment {__name__.rsplit('.', 1)[-1]}", description=__doc__.splitlines()[0]
    )
    parser.add_argument("folders", nargs="+", type=Path, help="forecast_table --out folders")
    parser.add_argument("--system", required=True)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument(
        "--baselines",
        nargs="+",
        type=Path,
        default=[],
        help="finished result folders, one per seed, whose other models join the runs",
    )
    parser.add_argument(
        "--models",
        nargs="+",
        default=None,
        help="pool only these models (default: every model of the runs)",
    )
    args = parser.parse_args(argv)
    runs = load_runs(args.folders, args.system, args.baselines, args.models)
    summary = summarise(runs)
    horizon = int(next(iter(runs[0]["models"].values()))["horizon"])
    table = render_table(args.system, summary, horizon)
    args.out.mkdir(parents=True, exist_ok=True)
    write_text_atomic(table, args.out / "table.md")
    write_text_atomic(
        json.dumps({"system": args.system, "horizon": horizon, **summary}, indent=2),
        args.out / "results.json",
    )
    models = summary["models"]
    seeds = next(iter(models.values()))["seeds"]
    error_curves_figure(
        {entry["label"]: np.asarray(entry["mse_per_step"]) for entry in models.values()},
        args.out / f"{args.system}_mse_seeds.png",
        train_horizon=horizon,
        vpt={entry["label"]: entry["vpt_mean_over_seeds"] for entry in models.values()},
        title=f"{args.system}: test per-step MSE, mean over seeds {seeds}",
    )
    print(table)
    return 0
