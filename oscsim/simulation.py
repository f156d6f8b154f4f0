"""Run a validated configuration: network + initial state → integrate → trajectory dataset.

Before any work: the device is checked, the memory the run needs is estimated
(`check_resources`), and a fixed-step method's step is checked against the linearised
network's stability (`oscsim.stability.check_step_stability`).
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import torch
import xarray as xr

from oscsim.config import SimulationConfig
from oscsim.errors import OscsimInputError
from oscsim.initial import initial_state
from oscsim.integration import integrate
from oscsim.io import trajectory_dataset
from oscsim.network import OscillatorNetwork
from oscsim.stability import check_step_stability

#: Peak memory of a run relative to its saved trajectory: the solver's frames, their
#: float64 copy and the dataset's sample-first copy (measured peak about 2.6× on the CPU).
MEMORY_FACTOR = 3.0


def trajectory_bytes(config: SimulationConfig) -> int:
    """Bytes of the saved trajectory: frames × samples × channels × cells × 2 × float64."""
    cells = int(np.prod(config.network.grid))
    return config.solver.n_frames * config.initial.samples * config.network.channels * cells * 2 * 8


def available_memory() -> int | None:
    """Bytes of memory available to a new allocation (Linux ``MemAvailable``), if known."""
    try:
        with open("/proc/meminfo", encoding="ascii") as handle:
            for line in handle:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        return None
    return None


def _size(nbytes: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if nbytes < 1024 or unit == "TiB":
            return f"{nbytes:.1f} {unit}"
        nbytes /= 1024
    return f"{nbytes:.1f} TiB"


def check_resources(config: SimulationConfig, out: str | os.PathLike[str] | None = None) -> int:
    """Refuse a run whose trajectory cannot fit in memory (or on disk at ``out``).

    Returns
    -------
    int
        The estimated peak memory in bytes (`MEMORY_FACTOR` × `trajectory_bytes`).

    Raises
    ------
    OscsimInputError
        With the estimate and advice, if it exceeds the available memory or the free space
        of ``out``'s file system.
    """
    saved = trajectory_bytes(config)
    need = int(saved * MEMORY_FACTOR)
    advice = (
        "raise solver.save_every, shorten solver.t_end, or use fewer initial.samples, "
        "channels or grid cells"
    )
    available = available_memory()
    if available is not None and need > available:
        raise OscsimInputError(
            f"this run needs about {_size(need)} of memory ({config.solver.n_frames} frames "
            f"of {config.initial.samples} sample(s); the trajectory alone is {_size(saved)}) "
            f"but {_size(available)} is available: {advice}"
        )
    if out is not None:
        probe = Path(out).parent
        while not probe.exists() and probe != probe.parent:
            probe = probe.parent
        free = shutil.disk_usage(probe).free
        if saved > free:
            raise OscsimInputError(
                f"the trajectory needs about {_size(saved)} on disk but {str(probe)!r} has "
                f"{_size(free)} free: {advice}, or write elsewhere"
            )
    return need


def check_device(name: str, *, label: str, types: tuple[str, ...], hint: str) -> torch.device:
    """The torch device `name`, refused unless it is of `types` and available here.

    Parameters
    ----------
    name
        A torch device string (``cpu``, ``cuda``, ``cuda:1``, ``mps``).
    label
        How the user named the setting (``--device``, ``solver.device``), for the messages.
    types
        The device types allowed (some of ``cpu``, ``cuda``, ``mps``).
    hint
        Appended to the message for a string that is not a torch device at all.

    Returns
    -------
    torch.device

    Raises
    ------
    OscsimInputError
        Not a torch device, a type not in `types`, no CUDA or MPS here, or a CUDA index past
        the devices present.
    """
    try:
        device = torch.device(name)
    except (RuntimeError, ValueError):
        raise OscsimInputError(f"{label} {name!r} is not a torch device{hint}") from None
    if device.type not in types:
        allowed = f"{', '.join(types[:-1])} or {types[-1]}"
        raise OscsimInputError(f"{label} {name!r} is not supported; use {allowed}")
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise OscsimInputError(f"{label} {name!r}: no CUDA device is available here; use cpu")
        if (device.index or 0) >= torch.cuda.device_count():
            raise OscsimInputError(
                f"{label} {name!r}: only {torch.cuda.device_count()} CUDA device(s) here"
            )
    if device.type == "mps" and not torch.backends.mps.is_available():
        raise OscsimInputError(f"{label} {name!r}: MPS is not available here; use cpu")
    return device


def _device(name: str) -> torch.device:
    return check_device(
        name, label="solver.device", types=("cpu", "cuda"), hint=" (cpu, cuda, cuda:0, …)"
    )


def _check_device_memory(config: SimulationConfig, device: torch.device) -> None:
    """Refuse a run whose saved frames cannot fit in the GPU's free memory."""
    itemsize = 4 if config.solver.dtype == "float32" else 8
    need = trajectory_bytes(config) // 8 * itemsize
    free, _ = torch.cuda.mem_get_info(device)
    if need > free:
        raise OscsimInputError(
            f"the saved frames need about {_size(need)} on {device} but {_size(free)} is free: "
            "raise solver.save_every, shorten solver.t_end, use fewer initial.samples, or "
            "solver.device = 'cpu'"
        )


def simulate(config: SimulationConfig) -> xr.Dataset:
    """Integrate ``config`` with its backend and return the trajectory dataset.

    Raises
    ------
    OscsimInputError
        Before any work: an unavailable device, a run that cannot fit in memory, or a
        fixed step outside the method's stability region (unless
        ``solver.stability_check = false``).
    IntegrationError
        When the state passes ``solver.max_state`` (or becomes non-finite), with the model
        time.
    """
    solver = config.solver
    params = config.network_parameters()
    device = _device(solver.device) if solver.backend == "torch" else None
    check_resources(config)
    if device is not None and device.type == "cuda":
        _check_device_memory(config, device)
    if solver.stability_check:
        check_step_stability(params, solver.method, solver.dt, solver.t_end, solver.max_state)
    position0, velocity0 = initial_state(config.initial, params)
    times = solver.frame_times()
    # what both backends take alike
    common: dict[str, Any] = dict(
        method=solver.method, dt=solver.dt, rtol=solver.rtol, atol=solver.atol,
        progress=solver.progress, max_state=solver.max_state,
    )  # fmt: skip
    if device is not None:
        dtype = getattr(torch, solver.dtype)
        network = OscillatorNetwork.from_parameters(params, dtype=dtype).to(device=device)
        state0 = tuple(
            torch.as_tensor(a, dtype=dtype, device=device) for a in (position0, velocity0)
        )
        with torch.no_grad():
            solution = integrate(
                network, state0, torch.as_tensor(times, dtype=dtype, device=device), **common
            )
        position = solution.position.cpu().numpy().astype(np.float64)
        velocity = solution.velocity.cpu().numpy().astype(np.float64)
    else:
        from oscsim.reference import solve

        position, velocity = solve(
            params, position0, velocity0, times, threads=solver.threads, **common
        )

    def pick(source: Any, *names: str) -> dict[str, Any]:
        return {name: getattr(source, name) for name in names}

    # stored as the dataset's attributes, in this order
    attrs = {
        **pick(solver, "method", "dt"),
        **pick(params, "gamma", "epsilon", "coupling", "activation"),
        "seed": config.network.seed,
        **pick(solver, "backend", "dtype"),
    }
    return trajectory_dataset(times, position, velocity, config=config.to_dict(), **attrs)
