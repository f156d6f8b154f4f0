"""Run a validated configuration: network + initial state → integrate → DESIGN §3 dataset."""

from __future__ import annotations

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


def _device(name: str) -> torch.device:
    try:
        device = torch.device(name)
    except RuntimeError:
        raise OscsimInputError(
            f"solver.device {name!r} is not a torch device (cpu, cuda, cuda:0, …)"
        ) from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise OscsimInputError("solver.device asks for CUDA, but no CUDA device is available here")
    return device


def simulate(config: SimulationConfig) -> xr.Dataset:
    """Integrate ``config`` with its backend and return the trajectory dataset."""
    solver = config.solver
    params = config.network_parameters()
    position0, velocity0 = initial_state(config.initial, params)
    times = solver.frame_times()
    # what both backends take alike
    common: dict[str, Any] = dict(
        method=solver.method, dt=solver.dt, rtol=solver.rtol, atol=solver.atol,
        progress=solver.progress,
    )  # fmt: skip
    if solver.backend == "torch":
        device = _device(solver.device)
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
