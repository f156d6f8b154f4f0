"""``oscsim train`` and ``oscsim evaluate``: argument handling around the trainer."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import torch
from oscsim.models.rotating import PUBLISHED_MODELS, recipe_from_args, train_published
from oscsim.models.runs import build_run
from oscsim.models.training import RunConfig, Trainer, evaluate, load_checkpoint

from oscsim.config import _parse_value
from oscsim.errors import OscsimInputError


def _model_options(items: list[str] | None) -> dict[str, Any]:
    options: dict[str, Any] = {}
    for item in items or []:
        key, sep, text = item.partition("=")
        if not sep or not key.strip():
            raise OscsimInputError(f"--set expects key=value (e.g. grid=[11,11]), got {item!r}")
        options[key.strip()] = _parse_value(text.strip())
    return options


def _positive(name: str, value: int | float | None) -> None:
    if value is not None and value <= 0:
        raise OscsimInputError(f"{name} must be positive, got {value}")


def run_config_from_args(args: argparse.Namespace) -> RunConfig:
    """A `RunConfig` with the task's published defaults where the command line is silent."""
    for name in (
        "epochs",
        "max_steps",
        "batch_size",
        "lr",
        "limit_train",
        "limit_eval",
        "seq_len",
        "checkpoint_every",
        "clip_grad_norm",
    ):
        _positive(f"--{name.replace('_', '-')}", getattr(args, name))
    out = args.out or f"runs/{args.task}-{args.model}-s{args.seed}"
    probe = RunConfig(
        task=args.task,
        model=args.model,
        seed=args.seed,
        epochs=1,
        batch_size=1,
        lr=1.0,
        out=out,
        limit_train=args.limit_train,
        limit_eval=args.limit_eval,
        seq_len=args.seq_len,
        model_options=_model_options(args.set),
        device=args.device,
    )
    if args.resume and (Path(out) / "last.pt").exists():
        stored = load_checkpoint(Path(out) / "last.pt")["run"]
        # The folder it is resumed from, which need not be where it started (a copied run).
        stored.update({"out": out, "max_steps": args.max_steps, "progress": sys.stderr.isatty()})
        if args.epochs is not None:
            stored["epochs"] = args.epochs
        return RunConfig(**stored)
    task, _ = build_run(probe)
    defaults = task.defaults
    return RunConfig(
        task=args.task,
        model=args.model,
        seed=args.seed,
        epochs=args.epochs or defaults.epochs,
        batch_size=args.batch_size or defaults.batch_size,
        lr=args.lr or defaults.lr,
        out=out,
        max_steps=args.max_steps,
        limit_train=args.limit_train,
        limit_eval=args.limit_eval,
        seq_len=args.seq_len,
        model_options=probe.model_options,
        device=args.device,
        checkpoint_every=args.checkpoint_every,
        progress=sys.stderr.isatty(),
        stop_when_converged=args.stop_when_converged,
        clip_grad_norm=args.clip_grad_norm,
    )


def train_command(args: argparse.Namespace) -> int:
    """``oscsim train TASK --model M ...``."""
    if args.task == "rotmnist" and args.model in PUBLISHED_MODELS:
        return _train_published(args)
    run = run_config_from_args(args)
    task_state = None
    last = Path(run.out) / "last.pt"
    if args.resume and last.exists():
        task_state = load_checkpoint(last)["task_state"]
    task, model = build_run(run, task_state)
    trainer = Trainer(run, task, model)
    from oscsim.models.sequence import count_parameters

    print(
        f"oscsim train: {run.task} with {run.model} ({count_parameters(model)} parameters), "
        f"batch {run.batch_size}, lr {run.lr:g}, up to {run.epochs} epochs"
        + (f" / {run.max_steps} steps" if run.max_steps else "")
        + f" → {run.out}"
    )
    summary = trainer.fit(resume=args.resume)
    print(json.dumps(summary, indent=2, default=str))
    return 0


def _train_published(args: argparse.Namespace) -> int:
    """The published rotating-MNIST VAEs train with their own loop (SGD, a VAE loss)."""
    for name in ("epochs", "max_steps", "batch_size", "lr", "limit_train", "checkpoint_every"):
        _positive(f"--{name.replace('_', '-')}", getattr(args, name))
    recipe = recipe_from_args(args, _model_options(args.set))
    out = args.out or f"runs/{args.task}-{args.model}-s{args.seed}"
    print(
        f"oscsim train: rotmnist with {recipe.model} (published recipe), batch "
        f"{recipe.batch_size}, SGD lr {recipe.lr:g} momentum {recipe.momentum:g}, up to "
        f"{recipe.epochs} epochs"
        + (f" / {recipe.max_steps} steps" if recipe.max_steps else "")
        + f" → {out}"
    )
    summary = train_published(recipe, out, resume=args.resume)
    print(json.dumps(summary, indent=2, default=str))
    return 0


def evaluate_command(args: argparse.Namespace) -> int:
    """``oscsim evaluate CHECKPOINT``: metrics of the saved model on a split."""
    state = load_checkpoint(args.checkpoint)
    run = RunConfig(**state["run"])
    if args.limit is not None:
        run.limit_eval = args.limit
    task, model = build_run(run, state["task_state"])
    model.to(dtype=getattr(torch, run.dtype))
    model.load_state_dict(state["model_state"])
    metrics = evaluate(model, task, args.split, run.device, run.dtype)
    print(
        json.dumps(
            {
                "task": run.task,
                "model": run.model,
                "split": args.split,
                "step": state["step"],
                **metrics,
            },
            indent=2,
        )
    )
    return 0
