"""``oscsim train`` and ``oscsim evaluate``: argument handling around the trainer."""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
from pathlib import Path
from typing import Any

import torch
from oscsim.models.checkpoint import LAST, CheckpointError
from oscsim.models.rotating import PUBLISHED_MODELS, recipe_from_args, train_published
from oscsim.models.runs import build_run, model_from_checkpoint
from oscsim.models.training import RunConfig, Trainer, evaluate, load_checkpoint

from oscsim import simulation
from oscsim.atomic import OutputPathError, check_output_path
from oscsim.config import parse_overrides
from oscsim.errors import OscsimInputError


def _model_options(items: list[str] | None) -> dict[str, Any]:
    return parse_overrides(items, form="key=value (e.g. grid=[11,11])")


def _positive(name: str, value: int | float | None) -> None:
    if value is None:
        return
    if not math.isfinite(value):
        raise OscsimInputError(f"{name} must be a finite number, got {value}")
    if value <= 0:
        raise OscsimInputError(f"{name} must be positive, got {value}")


def check_device(name: str) -> str:
    """Refuse a ``--device`` that is not a torch device or is not available here."""
    hint = "; use cpu, cuda, cuda:N or mps"
    simulation.check_device(name, label="--device", types=("cpu", "cuda", "mps"), hint=hint)
    return name


#: Run settings a resumed run must share with the stored one: command-line option → field.
RESUME_FIXED = {
    "--model": "model",
    "--seed": "seed",
    "--batch-size": "batch_size",
    "--lr": "lr",
    "--seq-len": "seq_len",
    "--limit-train": "limit_train",
    "--limit-eval": "limit_eval",
    "--clip-grad-norm": "clip_grad_norm",
}


def _check_resume(args: argparse.Namespace, stored: dict[str, Any], last: Path) -> None:
    """Refuse a ``--resume`` whose task, model or options differ from the stored run."""
    if args.task != stored.get("task"):
        raise OscsimInputError(
            f"--resume: {last} holds a run of task {stored.get('task')!r}, not {args.task!r}; "
            "give the same task or another --out"
        )
    for option, key in RESUME_FIXED.items():
        given = getattr(args, key)
        if given is not None and given != stored.get(key):
            raise OscsimInputError(
                f"--resume: {option} {given!r} differs from the stored run's {stored.get(key)!r} "
                f"({last}); drop {option} to continue it, or start a new run in another --out"
            )
    options = _model_options(args.set)
    stored_options = stored.get("model_options", {})
    for key, value in options.items():
        if stored_options.get(key) != value:
            raise OscsimInputError(
                f"--resume: --set {key}={value!r} differs from the stored run's "
                f"{stored_options.get(key)!r} ({last}); drop it to continue the run, or start "
                "a new run in another --out"
            )


def _check_out(out: str) -> None:
    try:
        check_output_path(out, directory=True, replace=False)
    except OutputPathError as error:
        raise OscsimInputError(f"--out: {error}") from None
    folder = Path(out)
    if folder.is_dir() and not (folder / LAST).exists() and any(folder.glob("*.pt")):
        raise OscsimInputError(
            f"--out {out!r} holds old pickle-based checkpoints (*.pt), which oscsim no longer "
            "loads (loading a pickle can run code); choose another --out"
        )


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
    if args.seed is not None and args.seed < 0:
        raise OscsimInputError(f"--seed must be >= 0, got {args.seed}")
    check_device(args.device)
    model = args.model or "nwm2d"
    seed = 0 if args.seed is None else args.seed
    out = args.out or f"runs/{args.task}-{model}-s{seed}"
    _check_out(out)
    last = Path(out) / LAST
    if args.resume:
        if not last.exists():
            raise OscsimInputError(
                f"--resume: no checkpoint {str(last)!r}; run without --resume to start, or "
                "give the --out of an earlier run"
            )
        state = load_checkpoint(last)
        stored = dict(state["run"])
        _check_resume(args, stored, last)
        # The folder it is resumed from, which need not be where it started (a copied run).
        stored.update(
            {
                "out": out,
                "max_steps": args.max_steps,
                "progress": sys.stderr.isatty(),
                "device": args.device,
                "checkpoint_every": args.checkpoint_every,
            }
        )
        if args.epochs is not None:
            stored["epochs"] = args.epochs
        try:
            return RunConfig(**stored)
        except TypeError as error:
            raise CheckpointError(
                f"checkpoint {str(last)!r} has a run record this oscsim cannot read: {error}"
            ) from None
    if last.exists():
        raise OscsimInputError(
            f"--out {out!r} already holds a run; pass --resume to continue it or choose "
            "another --out"
        )
    probe = RunConfig(
        task=args.task,
        model=model,
        seed=seed,
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
    task, _ = build_run(probe)
    defaults = task.defaults
    return RunConfig(
        task=args.task,
        model=model,
        seed=seed,
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
    """``oscsim train TASK --model M ...`` (``--nproc N``: on N processes with DDP)."""
    nproc = getattr(args, "nproc", 1)
    if nproc is None or nproc < 1:
        raise OscsimInputError(f"--nproc must be >= 1, got {nproc}")
    if args.task == "rotmnist" and args.model in PUBLISHED_MODELS:
        if nproc != 1:
            raise OscsimInputError(
                "--nproc: the published rotating-MNIST recipe trains on one process"
            )
        return _train_published(args)
    run = run_config_from_args(args)
    if nproc > 1:
        from oscsim.models.distributed import launch

        if int(os.environ.get("WORLD_SIZE", "1")) > 1:
            raise OscsimInputError("--nproc spawns processes itself; leave it out under torchrun")
        launch(nproc, train_process, run.to_dict(), bool(args.resume))
        return 0
    return train_process(run.to_dict(), bool(args.resume))


def train_process(run_dict: dict[str, Any], resume: bool) -> int:
    """Train one process of a run: alone, or as one rank of a launched or torchrun group."""
    from oscsim.models.distributed import join_from_environment, leave

    run = RunConfig(**run_dict)
    context = join_from_environment(run.device)
    try:
        if context is not None:
            run.device = context.device
            run.progress = run.progress and context.is_writer
        task_state = None
        last = Path(run.out) / LAST
        if resume and last.exists():
            task_state = load_checkpoint(last)["task_state"]
        task, model = build_run(run, task_state)
        trainer = Trainer(run, task, model, distributed=context)
        from oscsim.models.sequence import count_parameters, count_weights

        writer = context is None or context.is_writer
        if writer:
            print(
                f"oscsim train: {run.task} with {run.model} ({count_parameters(model)} trained "
                f"parameters, {count_weights(model)} without biases), "
                f"batch {run.batch_size}, lr {run.lr:g}, up to {run.epochs} epochs"
                + (f" / {run.max_steps} steps" if run.max_steps else "")
                + ("" if context is None else f" on {context.world_size} processes")
                + f" → {run.out}",
                flush=True,
            )
        summary = trainer.fit(resume=resume)
        if writer:
            print(json.dumps(summary, indent=2, default=str), flush=True)
    finally:
        leave()
    return 0


def _train_published(args: argparse.Namespace) -> int:
    """The published rotating-MNIST VAEs train with their own loop (SGD, a VAE loss)."""
    for name in ("epochs", "max_steps", "batch_size", "lr", "limit_train", "checkpoint_every"):
        _positive(f"--{name.replace('_', '-')}", getattr(args, name))
    if args.seed is None:
        args.seed = 0
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
    _positive("--batch-size", args.batch_size)
    _positive("--limit", args.limit)
    run, task, model, state = model_from_checkpoint(args.checkpoint)
    run.device = "cpu"
    if args.limit is not None:
        task.limit_eval = args.limit
    metrics = evaluate(model, task, args.split, run.device, run.dtype, batch_size=args.batch_size)
    print(
        json.dumps(
            {
                "task": run.task,
                "model": run.model,
                "split": args.split,
                "step": state["step"],
                "batch_size": args.batch_size or task.defaults.eval_batch_size,
                **metrics,
            },
            indent=2,
        )
    )
    return 0


def _read_permutation(path: str) -> list[int]:
    """A pixel order from ``.npy`` (no pickles) or text (integers separated by white space)."""
    import numpy as np

    source = Path(path)
    if not source.is_file():
        raise OscsimInputError(f"--permutation {path!r}: no such file")
    try:
        values = (
            np.load(source, allow_pickle=False)
            if source.suffix == ".npy"
            else np.loadtxt(source, dtype=np.int64)
        )
    except ValueError as error:
        raise OscsimInputError(
            f"--permutation {path!r}: not a list of integers ({error})"
        ) from error
    return [int(v) for v in np.asarray(values).ravel()]


def import_reference_command(args: argparse.Namespace) -> int:
    """``oscsim import-reference FILE --task T --model M --out CKPT``.

    Reads a ``state_dict`` saved from the published sequence code (``torch.load`` with
    ``weights_only=True``: tensors only, nothing executes), maps it onto the reference model
    (`oscsim.models.reference.PUBLISHED_LAYOUTS`) and writes a checkpoint that ``oscsim
    evaluate`` and `oscsim.models.runs.model_from_checkpoint` read. The number of cells comes
    from the file; the task's published ``dt``, ``gamma`` and ``epsilon`` apply.
    """
    import os
    import tempfile

    from oscsim.models.reference import (
        ReferenceSequenceModel,
        load_published_state,
        published_hidden,
    )

    source, out = Path(args.file), Path(args.out)
    if not source.is_file():
        raise OscsimInputError(f"FILE {args.file!r}: no such file")
    if out.exists():
        raise OscsimInputError(f"--out {args.out!r} already exists; choose a new file")
    if not out.parent.is_dir():
        raise OscsimInputError(f"--out {args.out!r}: folder {str(out.parent)!r} does not exist")
    if args.permutation is not None and args.task != "psmnist":
        raise OscsimInputError(f"--permutation applies to psmnist only, not {args.task}")
    options = _model_options(args.set)
    for key in ("preset", "hidden"):
        if key in options:
            raise OscsimInputError(f"--set {key}: fixed by import-reference (reference, from FILE)")
    permutation = None if args.permutation is None else _read_permutation(args.permutation)
    try:
        state = torch.load(source, map_location="cpu", weights_only=True)
    except Exception as error:  # noqa: BLE001 - any unreadable file is bad input here
        raise OscsimInputError(
            f"FILE {args.file!r} is not a tensors-only torch file ({type(error).__name__}: "
            f"{' '.join(str(error).split())[:200]})"
        ) from error
    if not isinstance(state, dict) or not all(isinstance(k, str) for k in state):
        raise OscsimInputError(
            f"FILE {args.file!r} holds a {type(state).__name__}, not a state_dict; save "
            "model.state_dict() of the published model"
        )
    options.update({"preset": "reference", "hidden": published_hidden(args.model, state)})
    probe = RunConfig(
        task=args.task,
        model=args.model,
        seed=args.seed,
        epochs=1,
        batch_size=1,
        lr=1.0,
        out=str(out.parent),
        model_options=options,
        progress=False,
    )
    task_state = None
    if permutation is not None:
        task_state = {"permutation": permutation, "protocol": "reference"}
    task, model = build_run(probe, task_state)
    if not isinstance(model, ReferenceSequenceModel):
        raise OscsimInputError(f"--model {args.model} has no published layout")
    load_published_state(model, state)
    defaults = task.defaults
    run = RunConfig(
        **{
            **probe.to_dict(),
            "epochs": defaults.epochs,
            "batch_size": defaults.batch_size,
            "lr": defaults.lr,
        }
    )
    trainer = Trainer(run, task, model)
    # The trainer writes its checkpoint (and metric files) into a folder: a private one
    # beside --out, from which only the checkpoint moves into place.
    with tempfile.TemporaryDirectory(dir=out.parent, prefix=".import-") as folder:
        trainer.out = Path(folder)
        written = trainer.save(out.name)
        os.replace(written, out)
    from oscsim.models.sequence import count_parameters, count_weights

    print(
        f"wrote {out}: published {args.model} for {args.task}, {model.cells} cells, "
        f"{count_parameters(model)} trained parameters ({count_weights(model)} without biases)"
    )
    return 0
