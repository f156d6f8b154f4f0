"""Mass-spring, ideal pendulum and two-body data sets of DeepMind's Hamiltonian Dynamics Suite.

Re-implemented in numpy/scipy after the suite's code (``dm_hamiltonian_dynamics_suite``, configs
``MASS_SPRING``, ``PENDULUM`` and ``TWO_BODY`` of ``datasets.py``): same Hamiltonians, constants,
initial-state distributions, canvases and disc renderer; observations every ``dt = 0.05``.

=============  ===================================================  ========================
system         Hamiltonian and constants                            initial state
=============  ===================================================  ========================
mass_spring    H = k q²/2 + p²/(2m); k = 2, m = 0.5                 (q, p/√(km)) = r·(cos φ,
                                                                    sin φ), r ~ U[0.1, 1.0]
pendulum       H = m g l (1 − cos q) + p²/(2 m l²);                 (q, p) = r·(cos φ, sin φ),
               m = 0.5, g = 3, l = 1                                r ~ U[1.3, 2.3]
two_body       H = −g m₁m₂/|q₁ − q₂| + Σ|pᵢ|²/(2mᵢ);                q₁ = (a, b), a, b ~ U[0.5,
               m₁ = m₂ = 1, g = 1                                   1.5]; q₂ = −q₁; circular
=============  ===================================================  ========================

In every system φ ~ U[0, 2π) (a normalised Gaussian direction, as the suite draws it) and the
radius is uniform in r (the suite's ``uniform_annulus=False``). Two-body: with ``r = |q₁|``
the bodies sit at ±q₁, a distance 2r apart, and get the velocities of the circular orbit about
their common centre, ``v₁ = √(g m / (4 r)) · (q₁y, −q₁x)/r`` (clockwise), ``v₂ = −v₁``,
``pᵢ = m vᵢ`` — DeepMind's construction, ``vel = flip(pos) * [1, −1] / (2 r^1.5)`` for
g = m = 1. The orbit is exactly circular (period 4π r^{3/2}); numerically it stays circular to
the integrator's tolerance. The centre of mass stays at the origin.

State vectors (``states[..., :]``, float64):

- mass_spring, pendulum: ``(q, p)``
- two_body: ``(q₁x, q₁y, q₂x, q₂y, p₁x, p₁y, p₂x, p₂y)``

Integration: mass-spring by its exact solution; pendulum and two-body with
``scipy.integrate.solve_ivp(method="DOP853")`` at ``rtol = atol = 1e-10`` per trajectory
(trajectories are integrated together in blocks; the block's tolerances are divided by the
square root of its size so that the RMS error norm bounds every component). Energy is conserved
to about 1e-10 relative over a few hundred steps.

Rendering (``render_particles``, the suite's ``render_particles_trajectory``): a canvas square
``[lo, hi]²`` in world units is mapped onto ``[0, 1]²``; pixel ``(row i, column j)`` of a
``R × R`` image samples the point ``x = j/(R−1)``, ``y = i/(R−1)`` (so rows follow +y, as in the
suite: display with ``origin="lower"`` to see the world upright). Each body is a disc of radius
``√(m/π)`` (world units), drawn with the mask ``1/(1 + exp(80·(d − r)))`` where ``d`` (distance
from the body's centre) and ``r`` are measured in canvas widths, over the grey background
(0.321, 0.349, 0.368); the first body is drawn on top. No observation noise.

==============  ============================  =========================  =====================
system          disc centre (x, y)            canvas [lo, hi] (x and y)  colours
==============  ============================  =========================  =====================
mass_spring     (0, q) (``axis="y"``, the     ±(r_max + √(m/π)),         red (1, 0, 0)
                suite's vertical spring) or   r_max = 1.0
                (q, 0) with ``axis="x"``
pendulum        (l sin q, −l cos q)           ±(l + √(m/π))              red (1, 0, 0)
two_body        q₁ and q₂                     [−2.75, 2.75]              body 1 red (1, 0, 0),
                                                                         body 2 cyan (0, 1, 1)
==============  ============================  =========================  =====================

The suite draws colours from hues ``k/num_colors`` at full saturation and value; with one colour
that is red, with two colours red and cyan, which it assigns to the two bodies at random — here
body 1 is always red, so the bodies can be told apart. The suite's optional random canvas
offsets are off in these three configurations and are not implemented.

Data sets (:func:`hamiltonian_dataset`) hold ``length`` frames at ``t = k·dt``, k = 0 …
length−1; their trajectories are cached as ``.npz`` under ``<data dir>/hamiltonian/`` and the
frames drawn from them on every call.
"""

from __future__ import annotations

import abc
import math
import os
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any, ClassVar, NamedTuple

import numpy as np
import numpy.typing as npt
from oscsim.models.data._cache import data_dir, load_cached, params_digest, params_key, progress
from oscsim.models.data._cache import save_npz_atomic as _save
from scipy.integrate import solve_ivp

from oscsim.errors import IntegrationError, OscsimInputError

__all__ = [
    "BACKGROUND",
    "HAMILTONIAN_SYSTEMS",
    "HamiltonianData",
    "HamiltonianSystem",
    "HamiltonianTrajectories",
    "IdealPendulum",
    "MassSpring",
    "TwoBody",
    "hamiltonian_dataset",
    "hamiltonian_trajectories",
    "pixel_coordinates",
    "render_particles",
]

#: Background colour of the suite's renderer (RGB in [0, 1]).
BACKGROUND: tuple[float, float, float] = (0.321, 0.349, 0.368)
#: Steepness of the disc edge, per canvas width.
EDGE_TEMPERATURE = 80.0
RED: tuple[float, float, float] = (1.0, 0.0, 0.0)
CYAN: tuple[float, float, float] = (0.0, 1.0, 1.0)
#: Version of the generator; bump when the output for given arguments changes.
GENERATOR_VERSION = 1

Colour = tuple[float, float, float]


# ----------------------------------------------------------------------------------------------
# rendering


def pixel_coordinates(
    xy: npt.ArrayLike, canvas: tuple[float, float], resolution: int = 32
) -> np.ndarray:
    """World points ``(..., 2)`` as fractional pixel indices ``(..., 2)`` = (column, row).

    Column ``(x − lo)/(hi − lo)·(R − 1)``, row likewise from ``y``: the pixel centres of
    :func:`render_particles`.
    """
    lo, hi = canvas
    return (np.asarray(xy, dtype=np.float64) - lo) / (hi - lo) * (resolution - 1)


def render_particles(
    positions: npt.ArrayLike,
    radii: npt.ArrayLike,
    colours: npt.ArrayLike,
    canvas: tuple[float, float],
    *,
    resolution: int = 32,
    background: Colour = BACKGROUND,
    temperature: float = EDGE_TEMPERATURE,
    chunk: int = 256,
) -> np.ndarray:
    """Draw discs with a sigmoid edge, the suite's particle renderer, vectorised over frames.

    Parameters
    ----------
    positions
        ``(..., B, 2)`` world coordinates (x, y) of the B disc centres.
    radii
        ``(B,)`` disc radii, world units.
    colours
        ``(B, 3)`` RGB in [0, 1]; body 0 is drawn on top.
    canvas
        ``(lo, hi)``: the world square ``[lo, hi]²`` shown.
    resolution
        Image side R in pixels.
    background
        RGB of the background.
    temperature
        Edge steepness: mask ``1/(1 + exp(temperature·(d − r)))``, d and r in canvas widths.
    chunk
        Frames rendered per block (small blocks stay in cache).

    Returns
    -------
    numpy.ndarray
        float32 ``(..., 3, R, R)`` in [0, 1]; rows follow +y (see the module notes). Pixel ``p``
        is ``background + Σ_b w_b (colour_b − background)`` with ``w_b = mask_b Π_{a<b} (1 −
        mask_a)``, the suite's front-to-back compositing. Computed in float32 (the output
        precision), with the sigmoid written as ``(1 + tanh(x/2))/2``.
    """
    pos = np.asarray(positions, dtype=np.float64)
    if pos.ndim < 2 or pos.shape[-1] != 2:
        raise OscsimInputError(f"positions must have shape (..., B, 2); got {pos.shape}")
    lead, n_bodies = pos.shape[:-2], pos.shape[-2]
    r = np.broadcast_to(np.asarray(radii, dtype=np.float64), (n_bodies,))
    col = np.broadcast_to(np.asarray(colours, dtype=np.float64), (n_bodies, 3))
    bg = np.asarray(background, dtype=np.float64)
    lo, hi = canvas
    size = hi - lo
    f32 = np.float32
    unit = ((pos.reshape(-1, n_bodies, 2) - lo) / size).astype(f32)
    grid = np.linspace(0.0, 1.0, resolution).astype(f32)
    half_t = f32(temperature / 2)
    # mask = (1 + tanh(a))/2 with a = temperature·(r − d)/2, d and r in canvas widths
    offset = (temperature / 2 * r / size).astype(f32)[None, :, None, None]
    delta = (col - bg).astype(f32)  # (B, 3)
    out = np.empty((len(unit), 3, resolution, resolution), dtype=f32)
    for start in range(0, len(unit), chunk):
        u = unit[start : start + chunk]
        dx2 = np.square(u[..., 0, None] - grid)  # (F, B, R) along columns
        dy2 = np.square(u[..., 1, None] - grid)  # (F, B, R) along rows
        a = dy2[..., :, None] + dx2[..., None, :]  # (F, B, R, R): d²
        np.sqrt(a, out=a)
        a *= -half_t
        a += offset
        np.tanh(a, out=a)
        a *= f32(0.5)
        a += f32(0.5)  # the masks
        if n_bodies > 1:  # weights: a body shows where the bodies above it leave room
            room = 1 - a[:, 0]
            for b in range(1, n_bodies):
                below = 1 - a[:, b]
                a[:, b] *= room
                room *= below
        block = out[start : start + chunk]
        for c in range(3):
            acc = a[:, 0] * delta[0, c]
            for b in range(1, n_bodies):
                acc += a[:, b] * delta[b, c]
            acc += f32(bg[c])
            np.clip(acc, 0.0, 1.0, out=block[:, c])  # a convex combination, up to rounding
    return out.reshape(lead + (3, resolution, resolution))


# ----------------------------------------------------------------------------------------------
# systems


def _check_positive(**values: float) -> None:
    for name, value in values.items():
        if not (isinstance(value, (int, float)) and math.isfinite(value) and value > 0):
            raise OscsimInputError(f"{name}={value!r} must be a positive finite number")


def _check_range(name: str, value: tuple[float, float]) -> None:
    if not (len(value) == 2 and 0 <= value[0] <= value[1]):
        raise OscsimInputError(f"{name}={value!r} must be (low, high) with 0 <= low <= high")


class HamiltonianSystem(abc.ABC):
    """A system of the suite: Hamiltonian, initial states, dynamics, picture."""

    name: ClassVar[str]
    #: Names of the state components.
    state_names: ClassVar[tuple[str, ...]]
    #: Independent random stream of the system, so one seed gives unrelated draws per system.
    stream: ClassVar[int]

    @property
    def state_dim(self) -> int:
        return len(self.state_names)

    @abc.abstractmethod
    def sample_initial(self, rng: np.random.Generator, n: int) -> np.ndarray:
        """``n`` initial states ``(n, state_dim)``."""

    @abc.abstractmethod
    def energy(self, states: npt.ArrayLike) -> np.ndarray:
        """Hamiltonian of states ``(..., state_dim)``, shape ``(...)``."""

    @abc.abstractmethod
    def simulate(self, y0: np.ndarray, times: np.ndarray) -> np.ndarray:
        """States ``(n, T, state_dim)`` at ``times`` (``times[0]`` is the time of ``y0``)."""

    @abc.abstractmethod
    def positions(self, states: npt.ArrayLike) -> np.ndarray:
        """World coordinates ``(..., B, 2)`` of the disc centres."""

    @property
    @abc.abstractmethod
    def canvas(self) -> tuple[float, float]:
        """``(lo, hi)`` of the square canvas."""

    @property
    @abc.abstractmethod
    def radii(self) -> tuple[float, ...]:
        """Disc radius of each body, ``√(m/π)``."""

    @property
    @abc.abstractmethod
    def colours(self) -> tuple[Colour, ...]:
        """RGB of each body."""

    def params(self) -> dict[str, Any]:
        """Every constant of the system (recorded with cached data)."""
        return {"system": self.name, **asdict(self)}  # type: ignore[call-overload]

    def render(self, states: npt.ArrayLike, *, resolution: int = 32) -> np.ndarray:
        """Frames float32 ``(..., 3, R, R)`` of states ``(..., state_dim)``."""
        return render_particles(
            self.positions(states), self.radii, self.colours, self.canvas, resolution=resolution
        )


def _annulus(rng: np.random.Generator, n: int, radius: tuple[float, float]) -> np.ndarray:
    """``n`` points ``(n, 2)``: Gaussian direction normalised, radius uniform in ``radius``."""
    direction = rng.normal(size=(n, 2))
    direction /= np.linalg.norm(direction, axis=-1, keepdims=True)
    return direction * rng.uniform(radius[0], radius[1], size=n)[:, None]


def _integrate(
    rhs: Callable[[np.ndarray], np.ndarray],
    y0: np.ndarray,
    times: np.ndarray,
    *,
    rtol: float,
    atol: float,
    block: int = 1024,
) -> np.ndarray:
    """Integrate ``n`` independent copies of an autonomous ODE with DOP853.

    ``rhs`` maps states ``(D, c)`` (component-major) to their time derivatives. Copies are
    integrated ``block`` at a time as one system; tolerances are divided by ``√(c·D)`` because
    solve_ivp controls the RMS of the scaled error over all components, so every component
    then meets ``rtol``/``atol``.
    """
    n, dim = y0.shape
    out = np.empty((n, len(times), dim))
    for start in range(0, n, block):
        y = y0[start : start + block]
        c = len(y)
        scale = math.sqrt(c * dim)

        def fun(t: float, flat: np.ndarray, c: int = c) -> np.ndarray:
            return rhs(flat.reshape(dim, c)).reshape(-1)

        sol = solve_ivp(
            fun,
            (float(times[0]), float(times[-1])),
            y.T.reshape(-1),
            method="DOP853",
            t_eval=times,
            rtol=rtol / scale,
            atol=atol / scale,
        )
        if not sol.success or not np.all(np.isfinite(sol.y)):
            raise IntegrationError(
                f"DOP853 failed on trajectories {start}..{start + c - 1}: {sol.message}; "
                "use a shorter length or looser tolerances"
            )
        out[start : start + c] = sol.y.reshape(dim, c, len(times)).transpose(1, 2, 0)
    return out


class _OneDisc(HamiltonianSystem):
    """A system drawn as one red disc of area ``m`` whose centre stays within `reach` of
    the origin."""

    m: float

    @property
    @abc.abstractmethod
    def reach(self) -> float:
        """The farthest the disc's centre gets from the origin."""

    @property
    def canvas(self) -> tuple[float, float]:
        half = self.reach + math.sqrt(self.m / math.pi)
        return (-half, half)

    @property
    def radii(self) -> tuple[float, ...]:
        return (math.sqrt(self.m / math.pi),)

    @property
    def colours(self) -> tuple[Colour, ...]:
        return (RED,)


@dataclass(frozen=True)
class MassSpring(_OneDisc):
    """Ideal mass-spring: ``H = k q²/2 + p²/(2m)``, solved exactly.

    Parameters
    ----------
    k
        Spring constant (2.0).
    m
        Mass (0.5); also sets the disc radius ``√(m/π)``.
    radius_range
        Initial ``(q, p/√(km))`` lies on a circle of radius uniform in this range ((0.1, 1.0));
        it is the amplitude of ``q``.
    axis
        Direction the mass moves in the picture: ``"y"`` (the suite's vertical spring) or
        ``"x"``.
    """

    name: ClassVar[str] = "mass_spring"
    state_names: ClassVar[tuple[str, ...]] = ("q", "p")
    stream: ClassVar[int] = 0

    k: float = 2.0
    m: float = 0.5
    radius_range: tuple[float, float] = (0.1, 1.0)
    axis: str = "y"

    def __post_init__(self) -> None:
        _check_positive(k=self.k, m=self.m)
        _check_range("radius_range", self.radius_range)
        if self.axis not in ("x", "y"):
            raise OscsimInputError(f"axis={self.axis!r} must be 'x' or 'y'")

    def sample_initial(self, rng: np.random.Generator, n: int) -> np.ndarray:
        state = _annulus(rng, n, self.radius_range)
        state[:, 1] *= math.sqrt(self.k * self.m)
        return state

    def energy(self, states: npt.ArrayLike) -> np.ndarray:
        s = np.asarray(states, dtype=np.float64)
        return self.k * s[..., 0] ** 2 / 2 + s[..., 1] ** 2 / (2 * self.m)

    def simulate(self, y0: np.ndarray, times: np.ndarray) -> np.ndarray:
        w = math.sqrt(self.k / self.m)
        t = (np.asarray(times, dtype=np.float64) - times[0])[None, :]
        q0, p0 = y0[:, 0, None], y0[:, 1, None]
        cos, sin = np.cos(w * t), np.sin(w * t)
        q = q0 * cos + p0 / (self.m * w) * sin
        p = p0 * cos - self.m * w * q0 * sin
        return np.stack([q, p], axis=-1)

    def positions(self, states: npt.ArrayLike) -> np.ndarray:
        q = np.asarray(states, dtype=np.float64)[..., 0]
        zero = np.zeros_like(q)
        xy = (q, zero) if self.axis == "x" else (zero, q)
        return np.stack(xy, axis=-1)[..., None, :]

    @property
    def reach(self) -> float:
        return self.radius_range[1]


@dataclass(frozen=True)
class IdealPendulum(_OneDisc):
    """Ideal pendulum: ``H = m g l (1 − cos q) + p²/(2 m l²)``, q the angle from straight down.

    Parameters
    ----------
    m, g, l
        Mass (0.5), gravity (3.0), length (1.0).
    radius_range
        Initial ``(q, p)`` lies on a circle of radius uniform in this range ((1.3, 2.3)). Some
        of these states have energy above ``2 m g l`` (= 3; e.g. q = 0, |p| > √3) and go over
        the top: the set mixes swinging and rotating pendulums, as the suite's does.
    """

    name: ClassVar[str] = "pendulum"
    state_names: ClassVar[tuple[str, ...]] = ("q", "p")
    stream: ClassVar[int] = 1

    m: float = 0.5
    g: float = 3.0
    l: float = 1.0  # noqa: E741 - the physics name
    radius_range: tuple[float, float] = (1.3, 2.3)
    rtol: float = 1e-10
    atol: float = 1e-10

    def __post_init__(self) -> None:
        _check_positive(m=self.m, g=self.g, l=self.l, rtol=self.rtol, atol=self.atol)
        _check_range("radius_range", self.radius_range)

    def sample_initial(self, rng: np.random.Generator, n: int) -> np.ndarray:
        return _annulus(rng, n, self.radius_range)

    def energy(self, states: npt.ArrayLike) -> np.ndarray:
        s = np.asarray(states, dtype=np.float64)
        m, g, l = self.m, self.g, self.l  # noqa: E741
        return m * g * l * (1 - np.cos(s[..., 0])) + s[..., 1] ** 2 / (2 * m * l**2)

    def simulate(self, y0: np.ndarray, times: np.ndarray) -> np.ndarray:
        m, g, l = self.m, self.g, self.l  # noqa: E741

        def rhs(y: np.ndarray) -> np.ndarray:
            return np.stack([y[1] / (m * l**2), -m * g * l * np.sin(y[0])])

        return _integrate(rhs, y0, times, rtol=self.rtol, atol=self.atol)

    def positions(self, states: npt.ArrayLike) -> np.ndarray:
        q = np.asarray(states, dtype=np.float64)[..., 0]
        return np.stack([self.l * np.sin(q), -self.l * np.cos(q)], axis=-1)[..., None, :]

    @property
    def reach(self) -> float:
        return self.l


@dataclass(frozen=True)
class TwoBody(HamiltonianSystem):
    """Two equal masses under gravity: ``H = −g m²/|q₁ − q₂| + (|p₁|² + |p₂|²)/(2m)``.

    Parameters
    ----------
    m
        Mass of each body (1.0); disc radius ``√(m/π)``.
    g
        Gravitational constant (1.0).
    position_range
        Each coordinate of the initial ``q₁`` is uniform in this range ((0.5, 1.5)); ``q₂ =
        −q₁``; velocities of the circular orbit (module notes).
    canvas_half_width
        The canvas is ``[−w, w]²`` (2.75).
    """

    name: ClassVar[str] = "two_body"
    state_names: ClassVar[tuple[str, ...]] = (
        "q1x", "q1y", "q2x", "q2y", "p1x", "p1y", "p2x", "p2y",
    )  # fmt: skip
    stream: ClassVar[int] = 2

    m: float = 1.0
    g: float = 1.0
    position_range: tuple[float, float] = (0.5, 1.5)
    canvas_half_width: float = 2.75
    rtol: float = 1e-10
    atol: float = 1e-10

    def __post_init__(self) -> None:
        _check_positive(
            m=self.m, g=self.g, canvas_half_width=self.canvas_half_width, rtol=self.rtol,
            atol=self.atol,
        )  # fmt: skip
        _check_range("position_range", self.position_range)
        if self.position_range[0] == 0:
            raise OscsimInputError("position_range must start above 0 (the bodies would touch)")

    def sample_initial(self, rng: np.random.Generator, n: int) -> np.ndarray:
        q1 = rng.uniform(self.position_range[0], self.position_range[1], size=(n, 2))
        r = np.linalg.norm(q1, axis=-1, keepdims=True)
        speed = np.sqrt(self.g * self.m / (4 * r))
        v1 = speed * np.stack([q1[:, 1], -q1[:, 0]], axis=-1) / r
        return np.concatenate([q1, -q1, self.m * v1, -self.m * v1], axis=-1)

    def energy(self, states: npt.ArrayLike) -> np.ndarray:
        s = np.asarray(states, dtype=np.float64)
        dist = np.linalg.norm(s[..., 0:2] - s[..., 2:4], axis=-1)
        kinetic = (s[..., 4:8] ** 2).sum(axis=-1) / (2 * self.m)
        return -self.g * self.m**2 / dist + kinetic

    def simulate(self, y0: np.ndarray, times: np.ndarray) -> np.ndarray:
        m, g = self.m, self.g

        def rhs(y: np.ndarray) -> np.ndarray:
            d = y[0:2] - y[2:4]
            force = -g * m * m * d / ((d * d).sum(axis=0) ** 1.5)  # on body 1
            return np.concatenate([y[4:8] / m, force, -force])

        return _integrate(rhs, y0, times, rtol=self.rtol, atol=self.atol)

    def positions(self, states: npt.ArrayLike) -> np.ndarray:
        s = np.asarray(states, dtype=np.float64)
        return s[..., 0:4].reshape(s.shape[:-1] + (2, 2))

    @property
    def canvas(self) -> tuple[float, float]:
        return (-self.canvas_half_width, self.canvas_half_width)

    @property
    def radii(self) -> tuple[float, ...]:
        return (math.sqrt(self.m / math.pi),) * 2

    @property
    def colours(self) -> tuple[Colour, ...]:
        return (RED, CYAN)


HAMILTONIAN_SYSTEMS: dict[str, HamiltonianSystem] = {
    "mass_spring": MassSpring(),
    "pendulum": IdealPendulum(),
    "two_body": TwoBody(),
}
"""The suite's configurations, by name."""


# ----------------------------------------------------------------------------------------------
# data sets


class HamiltonianTrajectories(NamedTuple):
    """Simulated trajectories of a Hamiltonian system (no pictures)."""

    states: np.ndarray
    """float64 ``(n, T, state_dim)`` (see the module notes for the components)."""
    times: np.ndarray
    """float64 ``(T,)``, ``k·dt``."""
    positions: np.ndarray
    """float64 ``(n, T, B, 2)``, world coordinates of the disc centres."""
    system: HamiltonianSystem
    """The system, with all its constants; ``system.render(states)`` draws frames."""


class HamiltonianData(NamedTuple):
    """A generated Hamiltonian data set: trajectories and their frames."""

    frames: np.ndarray
    """float32 ``(n, T, 3, R, R)`` in [0, 1]."""
    states: np.ndarray
    """float64 ``(n, T, state_dim)`` (see the module notes for the components)."""
    times: np.ndarray
    """float64 ``(T,)``, ``k·dt``."""
    positions: np.ndarray
    """float64 ``(n, T, B, 2)``, world coordinates of the disc centres."""
    system: HamiltonianSystem
    """The system, with all its constants."""


def _system(name: str | HamiltonianSystem) -> HamiltonianSystem:
    if isinstance(name, HamiltonianSystem):
        return name
    if name in HAMILTONIAN_SYSTEMS:
        return HAMILTONIAN_SYSTEMS[name]
    raise OscsimInputError(
        f"Hamiltonian system {name!r} is not known; use one of "
        f"{', '.join(HAMILTONIAN_SYSTEMS)} or pass a HamiltonianSystem"
    )


def _check_int(label: str, value: int, low: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < low:
        raise OscsimInputError(f"{label}={value!r} must be an integer >= {low}")
    return int(value)


def hamiltonian_trajectories(
    name: str | HamiltonianSystem,
    n: int,
    seed: int,
    *,
    length: int = 151,
    dt: float = 0.05,
    cache: bool = True,
    cache_dir: str | os.PathLike[str] | None = None,
) -> HamiltonianTrajectories:
    """Trajectories of a Hamiltonian system, deterministic from ``seed``, cached; no frames.

    For sets too large to hold as pictures: draw batches on demand with
    ``result.system.render(result.states[batch])``. Parameters as :func:`hamiltonian_dataset`.
    The cache file ``<cache_dir>/hamiltonian/*.npz`` holds the states (``n·length·state_dim``
    float64) and is keyed by the system's constants, ``n``, ``seed``, ``length`` and ``dt``.
    """
    system = _system(name)
    n, seed, length = (
        _check_int("n", n, 1),
        _check_int("seed", seed, 0),
        _check_int("length", length, 2),
    )
    _check_positive(dt=dt)
    params = {
        "generator": "hamiltonian",
        "version": GENERATOR_VERSION,
        **system.params(),
        "n": n,
        "seed": seed,
        "length": length,
        "dt": float(dt),
    }
    path = (
        data_dir(cache_dir)
        / "hamiltonian"
        / f"{system.name}-n{n}-T{length}-seed{seed}-{params_digest(params)}.npz"
    )
    hit = load_cached(path, params) if cache else None
    if hit is not None:
        states, times = hit["states"], hit["times"]
    else:
        times = dt * np.arange(length, dtype=np.float64)
        rng = np.random.default_rng([seed, system.stream])
        states = system.simulate(system.sample_initial(rng, n), times)
        if cache:
            _save(
                path,
                {"states": states, "times": times, "params": np.asarray(params_key(params))},
                compress=False,
            )
    return HamiltonianTrajectories(states, times, system.positions(states), system)


def hamiltonian_dataset(
    name: str | HamiltonianSystem,
    n: int,
    seed: int,
    *,
    length: int = 151,
    dt: float = 0.05,
    resolution: int = 32,
    cache: bool = True,
    cache_dir: str | os.PathLike[str] | None = None,
    show_progress: bool | None = None,
) -> HamiltonianData:
    """Trajectories and frames of a Hamiltonian system, deterministic from ``seed``, cached.

    Parameters
    ----------
    name
        ``"mass_spring"``, ``"pendulum"`` or ``"two_body"`` (the suite's constants), or a
        system instance with other constants, e.g. ``MassSpring(axis="x")``.
    n
        Number of trajectories.
    seed
        Non-negative integer; initial states come from ``np.random.default_rng([seed,
        system.stream])`` (so one seed gives unrelated draws for different systems). Use
        different seeds for training and test sets.
    length
        Frames per trajectory, at ``t = k·dt`` for k = 0 … length−1 (151 = the paper's 31
        inference + 60 target + 60 extrapolation steps).
    dt
        Time between frames (the suite's 0.05).
    resolution
        Image side in pixels (32).
    cache, cache_dir
        Read/write the trajectories as ``<cache_dir>/hamiltonian/*.npz`` (default data
        directory; see :func:`hamiltonian_trajectories`). Frames are not stored: drawing them
        again (about 2 s per 10⁵ frames) is faster than reading them back and keeps the file a
        hundred times smaller; they come out bit-identical on the same machine and numpy.
    show_progress
        tqdm bar over rendering (``None``: for ``n >= 1000`` on a terminal).

    Returns
    -------
    HamiltonianData
        ``frames`` float32 ``(n, length, 3, R, R)`` (1.9 GB for 1000 × 151 at 32 × 32),
        ``states`` float64 ``(n, length, state_dim)``, ``times``, ``positions``, ``system``.

    Examples
    --------
    >>> data = hamiltonian_dataset("pendulum", 4, seed=0, length=10, cache=False)
    >>> data.frames.shape, data.states.shape
    ((4, 10, 3, 32, 32), (4, 10, 2))
    """
    resolution = _check_int("resolution", resolution, 2)
    traj = hamiltonian_trajectories(
        name, n, seed, length=length, dt=dt, cache=cache, cache_dir=cache_dir
    )
    system, positions = traj.system, traj.positions
    count, steps = positions.shape[:2]
    frames = np.empty((count, steps, 3, resolution, resolution), dtype=np.float32)
    block = 128
    starts = range(0, count, block)
    for start in progress(
        starts, total=len(starts), enabled=show_progress, desc=system.name, items=count
    ):
        stop = start + block
        frames[start:stop] = render_particles(
            positions[start:stop], system.radii, system.colours, system.canvas,
            resolution=resolution,
        )  # fmt: skip
    return HamiltonianData(frames, traj.states, traj.times, positions, system)
