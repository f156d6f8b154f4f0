"""Initial states of ``[initial]`` (docs/formats.md), as float64 arrays ``(B, C, *grid)``."""

from __future__ import annotations

import numpy as np

from oscsim.config import InitialConfig
from oscsim.errors import OscsimInputError
from oscsim.linear import mode_frequency
from oscsim.parameters import NetworkParameters


def periodic_distance(grid: tuple[int, ...], center: np.ndarray) -> np.ndarray:
    """Shortest distance on the periodic grid from every cell to ``center`` (cells)."""
    squared = np.zeros(grid)
    for axis, (n, c) in enumerate(zip(grid, center, strict=True)):
        coord = np.arange(n) - c
        coord = np.abs(coord - n * np.round(coord / n))
        shape = [1] * len(grid)
        shape[axis] = n
        squared = squared + coord.reshape(shape) ** 2
    return np.sqrt(squared)


def default_wavevector(grid: tuple[int, ...]) -> np.ndarray:
    """One wavelength across the last grid axis: the gentlest wave the grid holds."""
    k = np.zeros(len(grid))
    k[-1] = 2 * np.pi / grid[-1]
    return k


def initial_state(
    initial: InitialConfig, params: NetworkParameters
) -> tuple[np.ndarray, np.ndarray]:
    """Position and velocity ``(samples, C, *grid)`` for an ``[initial]`` section.

    - ``gaussian``: ``amplitude·exp(−d²/(2·width²))``, ``d`` the periodic distance to
      ``center`` (default: the middle of the grid); zero velocity.
    - ``random``: position normal with standard deviation ``amplitude`` (seeded); zero
      velocity.
    - ``zeros``: rest.
    - ``plane_wave``: ``y = A cos(k·x)``, ``z = A ω sin(k·x)``, i.e. ``A cos(k·x − ω t)``
      at ``t = 0``; ``ω`` is ``frequency`` or, by default, the linearised network's own
      frequency for ``k`` (so the wave travels freely).
    - ``file``: the last frame of a trajectory file.
    """
    grid, c, b = params.grid, params.channels, initial.samples
    shape = (b, c, *grid)
    velocity = np.zeros(shape)
    if initial.kind == "zeros":
        return np.zeros(shape), velocity
    if initial.kind == "gaussian":
        center = (
            np.asarray(initial.center, dtype=np.float64)
            if initial.center is not None
            else np.array([n // 2 for n in grid], dtype=np.float64)
        )
        bump = initial.amplitude * np.exp(
            -(periodic_distance(grid, center) ** 2) / (2 * initial.width**2)
        )
        return np.broadcast_to(bump, shape).copy(), velocity
    if initial.kind == "random":
        rng = np.random.default_rng(initial.seed)
        return initial.amplitude * rng.standard_normal(shape), velocity
    if initial.kind == "plane_wave":
        k = (
            np.asarray(initial.wavevector, dtype=np.float64)
            if initial.wavevector is not None
            else default_wavevector(grid)
        )
        omega = (
            initial.frequency
            if initial.frequency is not None
            else mode_frequency(params, k)
            if params.coupling in ("local", "none")
            else 1.0
        )
        mesh = np.meshgrid(*[np.arange(n) for n in grid], indexing="ij")
        phase = sum(ki * xi for ki, xi in zip(k, mesh, strict=True))
        position = initial.amplitude * np.cos(phase)
        speed = initial.amplitude * omega * np.sin(phase)
        return (
            np.broadcast_to(position, shape).copy(),
            np.broadcast_to(speed, shape).copy(),
        )
    if initial.kind == "file":
        return _from_file(initial, shape)
    raise OscsimInputError(f"initial.kind {initial.kind!r} is not known")


def _from_file(initial: InitialConfig, shape: tuple[int, ...]) -> tuple[np.ndarray, np.ndarray]:
    from oscsim.io import read_trajectory

    ds = read_trajectory(str(initial.path), variables=("position", "velocity"), what="initial.path")
    last = ds.isel(time=-1)
    position = last["position"].values
    velocity = last["velocity"].values
    if position.shape[1:] != shape[1:]:
        raise OscsimInputError(
            f"initial.path {initial.path!r} holds states of shape {position.shape[1:]}, the "
            f"network needs {shape[1:]}"
        )
    if position.shape[0] != shape[0]:
        if position.shape[0] != 1:
            raise OscsimInputError(
                f"initial.path holds {position.shape[0]} samples but initial.samples = {shape[0]}"
            )
        position = np.repeat(position, shape[0], axis=0)
        velocity = np.repeat(velocity, shape[0], axis=0)
    return position.astype(np.float64), velocity.astype(np.float64)
