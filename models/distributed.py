"""Data-parallel training on several processes with `torch.nn.parallel.DistributedDataParallel`.

``oscsim train ... --nproc N`` spawns ``N`` processes on this machine; the same command
under ``torchrun --nproc-per-node N -m oscsim.cli train ...`` (one or several nodes) joins
the group ``torchrun`` sets up. The backend is ``gloo`` on CPU and ``nccl`` on CUDA (one
GPU per process, ``cuda:LOCAL_RANK``).

Every process draws the same global batch ``i`` of epoch ``e`` (a pure function of the
seed, as on one process) and takes its own contiguous share of the rows: the
*distributed sampler* of `BatchShard`. Each process weights its mean loss by
``n_rank · world / batch``, so DDP's average of the gradients is exactly the gradient of
the mean loss over the whole batch, even when the batch does not divide evenly: one step
on ``N`` processes is the one-process step on the union batch, up to the order of the
floating-point sums. Rank 0 alone writes checkpoints and metric files; since the
checkpoint holds the whole state and batches depend only on ``(seed, epoch, index)``,
``--resume`` continues exactly, on any number of processes.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.distributed as dist
from torch import nn

from oscsim.errors import OscsimInputError

#: Environment variables a launcher (``torchrun``, `launch`) sets for every process.
ENV_KEYS = ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT")


def backend_for(device: str) -> str:
    """``nccl`` for CUDA devices, ``gloo`` otherwise."""
    return "nccl" if torch.device(device).type == "cuda" else "gloo"


@dataclass
class BatchShard:
    """This process's share of each global batch: rows ``[start, stop)`` of ``B``.

    The rows of a batch of ``B`` are cut into ``world`` contiguous parts whose sizes differ
    by at most one (``torch.tensor_split``); `weight` rescales the local mean loss so that
    the average over processes is the mean over all ``B`` rows.
    """

    rank: int
    world: int
    last_rows: int = 0
    last_batch: int = 0

    def __call__(self, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The local rows of ``x`` and ``y`` (first axis)."""
        batch = x.shape[0]
        bounds = torch.tensor_split(torch.arange(batch), self.world)[self.rank]
        start = int(bounds[0]) if bounds.numel() else batch
        stop = start + bounds.numel()
        self.last_rows, self.last_batch = bounds.numel(), batch
        return x[start:stop], y[start:stop]

    @property
    def weight(self) -> float:
        """``n_rank · world / B`` of the last batch cut."""
        return self.last_rows * self.world / self.last_batch


@dataclass
class DistributedContext:
    """A joined process group and what the trainer needs from it."""

    rank: int
    world_size: int
    local_rank: int
    device: str
    shard: BatchShard = field(init=False)

    def __post_init__(self) -> None:
        self.shard = BatchShard(self.rank, self.world_size)

    @property
    def is_writer(self) -> bool:
        """Rank 0 writes checkpoints, metrics and logs."""
        return self.rank == 0

    def wrap(self, model: nn.Module) -> nn.Module:
        """``DistributedDataParallel(model)``; parameters are broadcast from rank 0."""
        if torch.device(self.device).type == "cuda":
            return nn.parallel.DistributedDataParallel(
                model, device_ids=[self.local_rank], output_device=self.local_rank
            )
        return nn.parallel.DistributedDataParallel(model)

    def weighted_loss(self, loss: torch.Tensor, output: torch.Tensor) -> torch.Tensor:
        """The local mean loss scaled by `BatchShard.weight` (zero, with a graph, if empty)."""
        if self.shard.last_rows == 0:
            # no rows here: a zero loss that still touches every output, so that this
            # process joins the gradient all-reduce with zeros
            return output.sum() * 0.0
        return loss * self.shard.weight

    def global_mean(self, loss: torch.Tensor) -> float:
        """The mean loss over the whole batch (all processes)."""
        local = loss.detach().double() * self.shard.last_rows
        if self.shard.last_rows == 0:
            local = torch.zeros((), dtype=torch.float64, device=loss.device)
        dist.all_reduce(local)
        return float(local) / self.shard.last_batch

    def sum_metrics(self, sums: Mapping[str, float]) -> dict[str, float]:
        """Per-batch metric sums added over all processes (the same keys on every rank)."""
        keys = sorted(sums)
        values = torch.tensor([float(sums[k]) for k in keys], dtype=torch.float64)
        if torch.device(self.device).type == "cuda":
            values = values.to(self.device)
        dist.all_reduce(values)
        return dict(zip(keys, values.cpu().tolist(), strict=True))

    def barrier(self) -> None:
        """Wait for every process."""
        dist.barrier()


def join_from_environment(device: str) -> DistributedContext | None:
    """Join the group a launcher described in the environment (None if there is none).

    ``WORLD_SIZE`` > 1 with ``RANK``, ``LOCAL_RANK``, ``MASTER_ADDR`` and ``MASTER_PORT``,
    as ``torchrun`` and `launch` set them.

    Raises
    ------
    OscsimInputError
        If ``device`` is CUDA and this machine has fewer GPUs than ``LOCAL_RANK`` needs.
    """
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return None
    missing = [key for key in ENV_KEYS if key not in os.environ]
    if missing:
        raise OscsimInputError(
            f"WORLD_SIZE={world} but {', '.join(missing)} not set; launch with --nproc N or "
            "torchrun"
        )
    rank, local_rank = int(os.environ["RANK"]), int(os.environ["LOCAL_RANK"])
    if torch.device(device).type == "cuda":
        if local_rank >= torch.cuda.device_count():
            raise OscsimInputError(
                f"LOCAL_RANK {local_rank} needs a GPU but this node has "
                f"{torch.cuda.device_count()}; start at most that many processes per node"
            )
        device = f"cuda:{local_rank}"
        torch.cuda.set_device(local_rank)
    if not dist.is_initialized():
        dist.init_process_group(backend_for(device), rank=rank, world_size=world)
    return DistributedContext(rank=rank, world_size=world, local_rank=local_rank, device=device)


def leave() -> None:
    """Leave the process group, if one was joined."""
    if dist.is_initialized():
        dist.destroy_process_group()


def free_port() -> int:
    """A TCP port free on this machine now (for the rendezvous of `launch`)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _entry(
    rank: int, nproc: int, port: int, function: Callable[..., Any], args: tuple[Any, ...]
) -> None:
    os.environ.update(
        {
            "RANK": str(rank),
            "LOCAL_RANK": str(rank),
            "WORLD_SIZE": str(nproc),
            "LOCAL_WORLD_SIZE": str(nproc),
            "MASTER_ADDR": "127.0.0.1",
            "MASTER_PORT": str(port),
        }
    )
    # one process per core: the cores are shared out, not oversubscribed
    torch.set_num_threads(max(1, (os.cpu_count() or 1) // nproc))
    function(*args)


def launch(nproc: int, function: Callable[..., Any], *args: Any) -> None:
    """Run ``function(*args)`` on ``nproc`` spawned processes with the group's environment.

    ``function`` must be importable (a module-level function); each process calls
    `join_from_environment` itself. An exception in any process is raised here.
    """
    if nproc < 1:
        raise OscsimInputError(f"--nproc must be >= 1, got {nproc}")
    import torch.multiprocessing as mp

    mp.spawn(_entry, args=(nproc, free_port(), function, args), nprocs=nproc, join=True)
