"""Hamiltonian Dynamics Suite systems: dynamics, energy, rendering, determinism, cache."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
from oscsim.models.data import (
    HAMILTONIAN_SYSTEMS,
    MassSpring,
    hamiltonian_dataset,
    hamiltonian_trajectories,
    pixel_coordinates,
    render_particles,
)
from oscsim.models.data.hamiltonian import BACKGROUND
from scipy.integrate import solve_ivp

from oscsim import OscsimInputError

SYSTEMS = tuple(HAMILTONIAN_SYSTEMS)
STATE_DIMS = {"mass_spring": 2, "pendulum": 2, "two_body": 8}


@pytest.mark.parametrize("name", SYSTEMS)
def test_shapes_dtypes_and_determinism(name: str) -> None:
    a = hamiltonian_dataset(name, 3, seed=4, length=12, cache=False)
    assert a.frames.shape == (3, 12, 3, 32, 32) and a.frames.dtype == np.float32
    assert a.states.shape == (3, 12, STATE_DIMS[name]) and a.states.dtype == np.float64
    assert a.frames.min() >= 0.0 and a.frames.max() <= 1.0
    np.testing.assert_allclose(a.times, 0.05 * np.arange(12))
    b = hamiltonian_dataset(name, 3, seed=4, length=12, cache=False)
    assert a.frames.tobytes() == b.frames.tobytes() and a.states.tobytes() == b.states.tobytes()
    c = hamiltonian_dataset(name, 3, seed=5, length=12, cache=False)
    assert not np.array_equal(a.states[:, 0], c.states[:, 0])
    assert not np.array_equal(a.frames, c.frames)


def test_cache_round_trip(tmp_path: Path) -> None:
    a = hamiltonian_dataset("two_body", 2, seed=0, length=8, cache_dir=tmp_path)
    files = list((tmp_path / "hamiltonian").iterdir())
    assert [f.suffix for f in files] == [".npz"], "one file, no temporary leftovers"
    b = hamiltonian_dataset("two_body", 2, seed=0, length=8, cache_dir=tmp_path)
    assert a.frames.tobytes() == b.frames.tobytes() and a.states.tobytes() == b.states.tobytes()
    hamiltonian_dataset("two_body", 2, seed=0, length=9, cache_dir=tmp_path)
    assert len(list((tmp_path / "hamiltonian").iterdir())) == 2  # keyed by the parameters
    # trajectories alone come from the same cache, and render to the same frames
    traj = hamiltonian_trajectories("two_body", 2, seed=0, length=8, cache_dir=tmp_path)
    assert traj.states.tobytes() == a.states.tobytes()
    assert traj.system.render(traj.states).tobytes() == a.frames.tobytes()
    # a damaged cache file is regenerated, not trusted
    files[0].write_bytes(b"garbage")
    c = hamiltonian_dataset("two_body", 2, seed=0, length=8, cache_dir=tmp_path)
    assert c.states.tobytes() == a.states.tobytes()


def test_initial_states_follow_the_suite() -> None:
    n = 4000
    ms = hamiltonian_dataset("mass_spring", n, seed=0, length=2, cache=False).states[:, 0]
    spring = HAMILTONIAN_SYSTEMS["mass_spring"]
    assert isinstance(spring, MassSpring)
    radius = np.hypot(ms[:, 0], ms[:, 1] / math.sqrt(spring.k * spring.m))
    assert 0.1 <= radius.min() and radius.max() <= 1.0
    assert abs(radius.mean() - 0.55) < 0.02  # uniform in the radius, not in the area
    pend = hamiltonian_dataset("pendulum", n, seed=0, length=2, cache=False).states[:, 0]
    radius = np.hypot(pend[:, 0], pend[:, 1])
    assert 1.3 <= radius.min() and radius.max() <= 2.3
    two = hamiltonian_dataset("two_body", n, seed=0, length=2, cache=False).states[:, 0]
    assert two[:, 0:2].min() >= 0.5 and two[:, 0:2].max() <= 1.5
    np.testing.assert_array_equal(two[:, 2:4], -two[:, 0:2])
    np.testing.assert_array_equal(two[:, 6:8], -two[:, 4:6])


def test_mass_spring_exact_solution_matches_the_ode() -> None:
    spring = HAMILTONIAN_SYSTEMS["mass_spring"]
    data = hamiltonian_dataset("mass_spring", 3, seed=1, length=200, cache=False)
    k, m = 2.0, 0.5
    for i in range(3):
        sol = solve_ivp(
            lambda t, y: [y[1] / m, -k * y[0]],
            (0.0, data.times[-1]),
            data.states[i, 0],
            method="DOP853",
            t_eval=data.times,
            rtol=1e-12,
            atol=1e-12,
        )
        np.testing.assert_allclose(sol.y.T, data.states[i], atol=1e-9)
    energy = spring.energy(data.states)
    np.testing.assert_allclose(energy, np.broadcast_to(energy[:, :1], energy.shape), rtol=1e-12)


@pytest.mark.parametrize("name", ["pendulum", "two_body"])
def test_integrator_conserves_energy(name: str) -> None:
    data = hamiltonian_dataset(name, 64, seed=2, length=400, cache=False)
    energy = data.system.energy(data.states)
    drift = np.abs(energy - energy[:, :1]).max(axis=1) / np.abs(energy[:, 0])
    assert drift.max() < 1e-8, f"relative energy drift {drift.max():.2e}"


def test_pendulum_mixes_swinging_and_rotating() -> None:
    data = hamiltonian_dataset("pendulum", 200, seed=0, length=2, cache=False)
    energy = data.system.energy(data.states[:, 0])
    separatrix = 2 * 0.5 * 3.0 * 1.0
    assert (energy < separatrix).any() and (energy > separatrix).any()


def test_two_body_orbit_is_circular() -> None:
    data = hamiltonian_dataset("two_body", 16, seed=3, length=300, cache=False)
    q1, q2 = data.states[..., 0:2], data.states[..., 2:4]
    np.testing.assert_allclose(q1 + q2, 0.0, atol=1e-8)  # centre of mass stays at the origin
    r = np.linalg.norm(q1, axis=-1)
    np.testing.assert_allclose(r, np.broadcast_to(r[:, :1], r.shape), rtol=1e-8)
    # clockwise at omega = sqrt(g m / (4 r)) / r
    omega = np.sqrt(1.0 / (4 * r[:, 0])) / r[:, 0]
    angle = -omega[:, None] * data.times[None, :]
    x0, y0 = q1[:, 0, 0, None], q1[:, 0, 1, None]
    expected = np.stack(
        [x0 * np.cos(angle) - y0 * np.sin(angle), x0 * np.sin(angle) + y0 * np.cos(angle)],
        axis=-1,
    )
    np.testing.assert_allclose(q1, expected, atol=1e-7)


def _centroid(weights: np.ndarray) -> np.ndarray:
    """Intensity-weighted centroid (column, row) of ``(..., R, R)`` weights."""
    rows, cols = np.indices(weights.shape[-2:])
    total = weights.sum(axis=(-2, -1))
    return np.stack(
        [(weights * cols).sum(axis=(-2, -1)) / total, (weights * rows).sum(axis=(-2, -1)) / total],
        axis=-1,
    )


@pytest.mark.parametrize("name", SYSTEMS)
def test_disc_centres_match_simulated_positions(name: str) -> None:
    data = hamiltonian_dataset(name, 6, seed=7, length=60, cache=False)
    system = data.system
    bg = np.asarray(BACKGROUND, dtype=np.float32)[:, None, None]
    diff = data.frames - bg  # (n, T, 3, R, R)
    expected = pixel_coordinates(data.positions, system.canvas, 32)  # (n, T, B, 2)
    if name == "two_body":
        # body 1 is red (only it raises the red channel), body 2 cyan (only it raises green)
        weights = [np.clip(diff[:, :, 0], 0, None), np.clip(diff[:, :, 1], 0, None)]
    else:
        weights = [np.abs(diff).sum(axis=2)]
    for body, w in enumerate(weights):
        error = np.linalg.norm(_centroid(w) - expected[:, :, body], axis=-1)
        assert error.max() < 1.0, f"{name} body {body}: centroid off by {error.max():.2f} px"


@pytest.mark.parametrize("name", SYSTEMS)
def test_discs_stay_on_the_canvas(name: str) -> None:
    system = HAMILTONIAN_SYSTEMS[name]
    data = hamiltonian_dataset(name, 200, seed=0, length=100, cache=False)
    lo, hi = system.canvas
    reach = np.abs(data.positions).max(axis=(0, 1)) + np.asarray(system.radii)[:, None]
    assert (reach <= hi + 1e-9).all() and lo == -hi


def test_render_matches_the_sigmoid_formula() -> None:
    canvas = (-2.0, 2.0)
    pos = np.array([[[0.3, -0.5]]])  # one frame, one body
    frame = render_particles(pos, [0.6], [(1.0, 0.0, 0.0)], canvas, resolution=32)[0]
    assert frame.shape == (3, 32, 32)
    col, row = 20, 11
    x, y = col / 31, row / 31  # pixel centre in canvas widths
    ux, uy = (0.3 + 2.0) / 4.0, (-0.5 + 2.0) / 4.0
    d = math.hypot(x - ux, y - uy)
    mask = 1.0 / (1.0 + math.exp(80.0 * (d - 0.6 / 4.0)))
    expected = [mask * c + (1 - mask) * b for c, b in zip((1.0, 0.0, 0.0), BACKGROUND, strict=True)]
    np.testing.assert_allclose(frame[:, row, col], expected, atol=1e-6)
    # far from the disc: background; at the centre pixel: the disc's colour
    np.testing.assert_allclose(frame[:, 0, 0], BACKGROUND, atol=1e-6)
    c_col, c_row = np.rint(pixel_coordinates(pos[0, 0], canvas, 32)).astype(int)
    np.testing.assert_allclose(frame[:, c_row, c_col], (1.0, 0.0, 0.0), atol=1e-3)


def test_mass_spring_axis_option() -> None:
    data = hamiltonian_dataset(MassSpring(axis="x"), 2, seed=0, length=5, cache=False)
    np.testing.assert_array_equal(data.positions[..., 0, 0], data.states[..., 0])
    np.testing.assert_array_equal(data.positions[..., 0, 1], 0.0)
    default = hamiltonian_dataset("mass_spring", 2, seed=0, length=5, cache=False)
    np.testing.assert_array_equal(default.positions[..., 0, 1], default.states[..., 0])


def test_bad_arguments_are_refused() -> None:
    with pytest.raises(OscsimInputError, match="mass_spring, pendulum, two_body"):
        hamiltonian_dataset("three_body", 1, seed=0)
    with pytest.raises(OscsimInputError, match="length"):
        hamiltonian_dataset("pendulum", 1, seed=0, length=1)
    with pytest.raises(OscsimInputError, match="axis"):
        MassSpring(axis="z")
