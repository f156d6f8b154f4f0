"""Data-parallel training on a real two-process gloo group.

One step on 2 processes must equal one step on 1 process with the union batch: DDP
averages the ranks' gradients and each rank weights its mean loss by its share of the
batch, so the only difference is the order of float32 sums. Checked for the fused `imex`
kernel (adding problem, NWM-2D) and for the adjoint path (latent ODE with
``adjoint=true``), with a batch of 5 that splits unevenly (3 + 2). Also: rank 0 alone
writes, and a 2-process run stopped and resumed equals the uninterrupted one exactly.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from oscsim.models.distributed import BatchShard, join_from_environment, launch, leave
from oscsim.models.runs import build_run
from oscsim.models.training import RunConfig, Trainer

from oscsim.cli import main

BATCH = 5  # splits 3 + 2 over two ranks: the weighting must make it the union mean


def _one_epoch(task: str, model: str, **settings: Any) -> dict[str, Any]:
    """`RunConfig` fields of one epoch in batches of `BATCH`."""
    return dict(task=task, model=model, epochs=1, batch_size=BATCH, **settings)


RUNS: dict[str, dict[str, Any]] = {
    "fused": _one_epoch(
        "adding", "nwm2d", seed=3, lr=0.02, seq_len=30, limit_eval=16, model_options={"hidden": 36}
    ),
    "adjoint": _one_epoch(
        "mass_spring",
        "nwm2d_ode",
        seed=0,
        lr=3e-3,
        limit_train=10,
        limit_eval=4,
        model_options={
            "grid": [5, 5],
            "features": 8,
            "width": 2,
            "observed": 3,
            "horizon": 2,
            "n_train": 10,
            "n_eval": 4,
            "adjoint": True,
        },
    ),
}


def _trainer(kind: str, out: Path, context: Any = None, **changes: Any) -> Trainer:
    settings = {**RUNS[kind], "out": str(out), "progress": False, **changes}
    run = RunConfig(**settings)
    task, model = build_run(run)
    return Trainer(run, task, model, distributed=context)


def _one_step(kind: str, out: Path, context: Any = None) -> dict[str, np.ndarray]:
    trainer = _trainer(kind, out, context)
    x, y = trainer.task.train_batch(0, 0, BATCH)
    if context is not None:
        x, y = context.shard(x, y)
    trainer._train_step(x.float(), y.float())
    state: dict[str, np.ndarray] = {}
    for name, parameter in trainer.model.named_parameters():
        state[f"param/{name}"] = parameter.detach().numpy().copy()
        if parameter.grad is not None:
            state[f"grad/{name}"] = parameter.grad.numpy().copy()
    return state


def _rank_main(folder: str) -> None:
    """What each of the two processes runs (module level, so that spawn can import it)."""
    torch.set_num_threads(1)
    # as in the test process (conftest): models are drawn in float64, then cast to float32
    torch.set_default_dtype(torch.float64)
    root = Path(folder)
    context = join_from_environment("cpu")
    assert context is not None and context.world_size == 2
    try:
        for kind in RUNS:
            state = _one_step(kind, root / f"{kind}-step", context)
            np.savez(root / f"{kind}-rank{context.rank}.npz", **state)  # type: ignore[arg-type]
        # exact resume on 2 processes: 2 steps, stop, resume to 4 == 4 steps straight
        straight = _trainer("fused", root / "straight", context, max_steps=4)
        straight.fit()
        first = _trainer("fused", root / "resumed", context, max_steps=2)
        first.fit()
        context.barrier()  # rank 0's checkpoint is on disk before anyone reads it
        second = _trainer("fused", root / "resumed", context, max_steps=4)
        second.fit(resume=True)
        for name, trainer in (("straight", straight), ("resumed", second)):
            params = {k: v.detach().numpy() for k, v in trainer.model.named_parameters()}
            np.savez(root / f"{name}-rank{context.rank}.npz", **params)
    finally:
        leave()


@pytest.fixture(scope="module")
def group_results(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("ddp")
    launch(2, _rank_main, str(root))
    return root


@pytest.mark.parametrize("kind", list(RUNS))
def test_two_process_step_equals_one_process_step_on_the_union_batch(kind, group_results, tmp_path):
    torch.set_num_threads(1)
    alone = _one_step(kind, tmp_path / "alone")
    ranks = [dict(np.load(group_results / f"{kind}-rank{r}.npz")) for r in (0, 1)]
    assert set(ranks[0]) == set(alone) and any(k.startswith("grad/") for k in alone)
    for key, expected in alone.items():
        # float32: the union mean is summed in another order on two processes, so the
        # gradients agree to a few float32 roundings (eps 1.2e-7) of their size
        scale = float(np.abs(expected).max()) or 1.0
        for rank in ranks:
            np.testing.assert_allclose(rank[key], expected, rtol=1e-5, atol=1e-6 * scale)
        # after the all-reduce both ranks hold the same numbers
        np.testing.assert_array_equal(ranks[0][key], ranks[1][key])
    nonzero = [k for k in alone if k.startswith("grad/") and np.abs(alone[k]).max() > 0]
    assert nonzero, "the step must have moved something"


def test_only_rank_zero_writes_and_resume_is_exact(group_results):
    for name in ("straight", "resumed"):
        files = sorted(p.name for p in (group_results / name).iterdir())
        assert files == ["best.safetensors", "last.safetensors", "metrics.csv", "metrics.json"]
    straight = np.load(group_results / "straight-rank0.npz")
    for rank in (0, 1):
        resumed = np.load(group_results / f"resumed-rank{rank}.npz")
        for key in straight.files:
            np.testing.assert_array_equal(resumed[key], straight[key])


def test_batch_shard_cuts_contiguous_rows_and_weights_to_the_union_mean():
    x = torch.arange(5.0)[:, None]
    parts = [BatchShard(rank, 2) for rank in (0, 1)]
    rows = [shard(x, x)[0][:, 0].tolist() for shard in parts]
    assert rows == [[0.0, 1.0, 2.0], [3.0, 4.0]]
    # mean over ranks of (weight · local mean) = union mean
    means = [np.mean(r) for r in rows]
    union = np.mean(sum(rows, []))
    assert np.isclose(np.mean([s.weight * m for s, m in zip(parts, means, strict=True)]), union)


def test_nproc_below_one_is_refused(tmp_path, capsys):
    assert main(["train", "adding", "--nproc", "0", "--out", str(tmp_path / "r")]) == 2
    assert "--nproc must be >= 1" in capsys.readouterr().err
