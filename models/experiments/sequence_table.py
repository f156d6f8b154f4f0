"""Collect sequence-task runs into the README's results table.

    oscsim experiment sequence_table runs/smnist-nwm2d-s0 runs/adding500-nwm2d-s*
    oscsim experiment sequence_table results/sequence/bias_uniform/adding500-*.json \
        --figure adding.png

Each argument is a run folder written by ``oscsim train`` or the ``metrics.json`` summary
copied out of one; the table states the budget each run had (epochs or steps, wall time)
beside its test metric. ``--figure`` draws the adding runs' validation curves.
"""

from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path
from typing import Any

from oscsim.arguments import ArgumentParser


def load_summary(location: Path) -> dict[str, Any]:
    """The summary of one run: its folder's ``metrics.json``, or such a file itself."""
    path = location if location.is_file() else location / "metrics.json"
    if not path.exists():
        raise FileNotFoundError(f"{location} holds no metrics.json (not an oscsim train run?)")
    return dict(json.loads(path.read_text()))


def adding_curves_figure(summaries: list[dict[str, Any]], path: Path) -> Path:
    """Validation MSE against iteration for adding runs, one colour per model variant.

    The dashed line is the convergence threshold; a curve ends where its run stopped.
    """
    from matplotlib import colormaps
    from matplotlib.figure import Figure
    from oscsim.models.figures import save_figure  # imported only when drawing

    labels = sorted({model_label(s) for s in summaries})
    colours = {label: colormaps["tab10"](i) for i, label in enumerate(labels)}
    fig = Figure(figsize=(7.5, 4.0))
    ax = fig.subplots()
    for summary in summaries:
        points = [(r["step"], r["mse"]) for r in summary["history"] if r["split"] == "validation"]
        steps, mse = zip(*points, strict=True)
        label = model_label(summary)
        ax.plot(steps, mse, color=colours[label], lw=1.2, alpha=0.8)
    for label in labels:
        ax.plot([], [], color=colours[label], label=label)
    ax.axhline(0.05, color="k", ls="--", lw=0.8, label="MSE 0.05 (converged)")
    length = summaries[0]["run"].get("seq_len") or 500
    ax.set(
        xlabel="iteration",
        ylabel="validation MSE",
        yscale="log",
        title=f"adding problem, T = {length}: one curve per seed",
    )
    ax.legend(frameon=False, fontsize=8)
    return save_figure(fig, path)


def _parameters(summary: dict[str, Any]) -> str:
    """Trained parameters, and the weights-only count the papers give where known."""
    weights = summary.get("weights")
    return str(summary["parameters"]) + ("" if weights is None else f" / {weights}")


def _classification_row(summary: dict[str, Any]) -> str:
    best = summary.get("best", {})
    # The task's selection rule (sMNIST: last epoch; others: best validation epoch).
    selected = summary.get("test") or {}
    test = selected.get("accuracy", best.get("test_accuracy"))
    rule = " (last epoch)" if selected.get("selection") == "last" else ""
    validation = best.get("accuracy")
    return (
        f"| {summary['task']} | {model_label(summary)} | {_parameters(summary)} | "
        f"{'—' if test is None else f'{100 * test:.2f} %{rule}'} | "
        f"{'—' if validation is None else f'{100 * validation:.2f} %'} | "
        f"{summary['epochs_completed']} epochs, {summary['steps']} steps, "
        f"{summary['wall_seconds'] / 3600:.2f} h |"
    )


def model_label(summary: dict[str, Any]) -> str:
    """The model name with its ``--set`` options, e.g. ``nwm2d (bias_init=uniform)``.

    Gradient clipping, which changes how a model trains, is named like an option.
    """
    options = dict(summary["run"].get("model_options") or {})
    if summary["run"].get("clip_grad_norm") is not None:
        options["clip_grad_norm"] = summary["run"]["clip_grad_norm"]
    if not options:
        return str(summary["model"])
    settings = ", ".join(f"{key}={value}" for key, value in sorted(options.items()))
    return f"{summary['model']} ({settings})"


def adding_rows(summaries: list[dict[str, Any]]) -> list[str]:
    """One row per (model and its options, T): how many seeds converged, and when."""
    groups: dict[tuple[str, int], list[dict[str, Any]]] = defaultdict(list)
    for summary in summaries:
        length = summary["run"].get("seq_len") or 500
        groups[(model_label(summary), int(length))].append(summary)
    rows = []
    for (model, length), runs in sorted(groups.items()):
        steps = [r["converged_step"] for r in runs if r.get("converged_step") is not None]
        budget = max(r["steps"] for r in runs)
        text = ", ".join(str(s) for s in sorted(steps)) if steps else "none"
        # The published criterion (one training batch, every 100 iterations), where recorded.
        published = [
            r["converged_iteration_published"]
            for r in runs
            if r.get("converged_iteration_published") is not None
        ]
        recorded = sum("converged_iteration_published" in r for r in runs)
        published_text = (
            f"{len(published)}/{recorded}: {', '.join(str(i) for i in sorted(published))}"
            if published
            else (f"0/{recorded}" if recorded else "—")
        )
        rows.append(
            f"| {model} | {length} | {_parameters(runs[0])} | {len(steps)}/{len(runs)} | "
            f"{text} | {published_text} | up to {budget} steps each |"
        )
    return rows


def main(argv: list[str] | None = None) -> int:
    """Print the markdown tables for the given run folders."""
    parser = ArgumentParser(
        prog=f"oscsim experiment {__name__.rsplit('.', 1)[-1]}", description=__doc__.splitlines()[0]
    )
    parser.add_argument("runs", nargs="+", type=Path, help="run folders or metrics.json files")
    parser.add_argument("--figure", type=Path, help="draw the adding runs' validation curves here")
    args = parser.parse_args(argv)
    summaries = [load_summary(folder) for folder in args.runs]
    classification = [
        s for s in summaries if s["task"] in ("smnist", "psmnist", "noisy_cifar10", "imdb")
    ]
    adding = [s for s in summaries if s["task"] == "adding"]
    if classification:
        print("| task | model | parameters | test accuracy | best validation | budget |")
        print("|---|---|---|---|---|---|")
        for summary in classification:
            print(_classification_row(summary))
    if adding:
        print()
        print(
            "| model | T | parameters | converged (MSE < 0.05) | at iteration | "
            "published criterion (batch MSE ≤ 0.05) | budget |"
        )
        print("|---|---|---|---|---|---|---|")
        for row in adding_rows(adding):
            print(row)
        if args.figure is not None:
            print(f"\nfigure: {adding_curves_figure(adding, args.figure)}")
    return 0
