"""ICAR checkpoints scored by both VPT protocols, with per-step error curves.

    oscsim experiment icar_vpt runs/pendulum-icar_nwm2d-s0/best.safetensors ... --out results/icar

Every checkpoint of ``oscsim train SYSTEM --model icar_*`` is forecast closed loop on
``--batches × --batch-size`` long test trajectories of ``--length`` frames generated for
it (`oscsim.models.icar_tasks.paper_protocol`) and scored by the paper's protocol (from
frame ``--start``, median per batch of 5, mean over 50 batches) and by ours (from the first
unread frame, over twice the training horizon, mean over trajectories). It writes, under
``--out``:

- ``<system>-<model>-s<seed>.json``: both VPTs, every trajectory's and batch's values and
  the per-step error curves (mean, median, quartiles, share still valid);
- ``<system>_errors.png``: the mean relative error per step from ``--start`` of every
  checkpoint of the system;
- ``table.md``: one row per checkpoint, with the published VPT beside it (the
  publication's numbers, not ours).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import numpy as np
from oscsim.models.checkpoint import load_checkpoint
from oscsim.models.figures import error_curves_figure
from oscsim.models.icar_tasks import icar_model_from_run, paper_protocol
from oscsim.models.training import RunConfig
from oscsim.models.vpt import PAPER_BATCH, PAPER_BATCHES, PAPER_LENGTH, PAPER_START

from oscsim.atomic import write_text_atomic
from oscsim.errors import OscsimInputError

#: Published VPT (steps, mean (std)) of the NWM preprint for the ICAR cores and the LSTM.
PUBLISHED_VPT: dict[str, dict[str, str]] = {
    "mass_spring": {
        "icar_nwm2d": "312 (27)",
        "icar_nwm1d": "431 (24)",
        "icar_cornn": "375 (14)",
        "icar_lstm": "302 (63)",
    },
    "pendulum": {
        "icar_nwm2d": "155 (24)",
        "icar_nwm1d": "174 (65)",
        "icar_cornn": "179 (91)",
        "icar_lstm": "3 (4)",
    },
    "two_body": {
        "icar_nwm2d": "413 (53)",
        "icar_nwm1d": "420 (27)",
        "icar_cornn": "431 (40)",
        "icar_lstm": "263 (92)",
    },
}


def score_checkpoint(
    path: Path,
    *,
    batches: int,
    batch_size: int,
    length: int,
    start: int,
    device: str = "cpu",
    progress: bool = True,
) -> dict[str, Any]:
    """Both protocols for one checkpoint (`paper_protocol`), with the run's description."""
    state = load_checkpoint(path)
    run = RunConfig(**state["run"])
    model = icar_model_from_run(run)
    model.load_state_dict(state["model_state"])
    model.to(device)
    result = paper_protocol(
        model,
        run.task,
        seed=run.seed,
        batches=batches,
        batch_size=batch_size,
        length=length,
        horizon=int(state["task_state"].get("horizon", 60)),
        start=start,
        device=device,
        progress=progress,
    )
    return {
        "checkpoint": str(path),
        "model": run.model,
        "seed": run.seed,
        "step": state["step"],
        "model_options": run.model_options,
        "published_vpt": PUBLISHED_VPT.get(run.task, {}).get(run.model),
        **result,
    }


def render_table(results: list[dict[str, Any]]) -> str:
    """A markdown table of the scored checkpoints."""
    lines = [
        "| system | model | seed | steps | paper VPT (std over batches) | our VPT (std) | "
        "published VPT (NWM preprint) |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in sorted(results, key=lambda r: (r["system"], r["model"], r["seed"])):
        lines.append(
            f"| {r['system']} | {r['model']} | {r['seed']} | {r['step']} | "
            f"{r['paper_vpt']:.1f} ({r['paper_vpt_std']:.1f}) | "
            f"{r['ours_vpt']:.1f} ({r['ours_vpt_std']:.1f}) | {r['published_vpt'] or '—'} |"
        )
    first = results[0]
    lines.append("")
    lines.append(
        f"Paper's protocol: {first['batches']} batches of {first['batch_size']} test "
        f"trajectories of {first['length']} frames, closed loop after frame "
        f"{first['observed']}, counted from frame {first['start']} (at most "
        f"{first['length'] - first['start']} steps). Ours: from frame {first['observed']} "
        f"over {2 * first['horizon']} frames."
    )
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    """Score the checkpoints; see the module docstring."""
    parser = argparse.ArgumentParser(
        prog="oscsim experiment icar_vpt", description=__doc__.splitlines()[0]
    )
    parser.add_argument("checkpoints", nargs="+", type=Path, help="best.safetensors of ICAR runs")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--batches", type=int, default=PAPER_BATCHES)
    parser.add_argument("--batch-size", type=int, default=PAPER_BATCH)
    parser.add_argument("--length", type=int, default=PAPER_LENGTH)
    parser.add_argument("--start", type=int, default=PAPER_START)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args(argv)
    for name in ("batches", "batch_size", "length", "start"):
        if getattr(args, name) < 1:
            raise OscsimInputError(f"--{name.replace('_', '-')} must be >= 1")
    missing = [str(p) for p in args.checkpoints if not p.is_file()]
    if missing:
        raise OscsimInputError(f"checkpoint(s) not found: {', '.join(missing)}")
    args.out.mkdir(parents=True, exist_ok=True)
    results = []
    for path in args.checkpoints:
        result = score_checkpoint(
            path,
            batches=args.batches,
            batch_size=args.batch_size,
            length=args.length,
            start=args.start,
            device=args.device,
        )
        name = f"{result['system']}-{result['model']}-s{result['seed']}.json"
        write_text_atomic(json.dumps(result, indent=2), args.out / name)
        results.append(result)
        print(
            f"{result['system']} {result['model']} seed {result['seed']}: paper VPT "
            f"{result['paper_vpt']:.1f}, ours {result['ours_vpt']:.1f}"
        )
    for system in sorted({r["system"] for r in results}):
        mine = [r for r in results if r["system"] == system]
        curves = {
            f"{r['model']} s{r['seed']}": np.asarray(r["curve_from_start"]["mean"]) for r in mine
        }
        error_curves_figure(
            curves,
            args.out / f"{system}_errors.png",
            vpt={f"{r['model']} s{r['seed']}": r["paper_vpt"] for r in mine},
            title=f"{system}: closed loop, from frame {mine[0]['start']}",
            ylabel="relative error mean((x̂−x)²)/mean(x²)",
        )
    write_text_atomic(render_table(results), args.out / "table.md")
    print(render_table(results))
    return 0
