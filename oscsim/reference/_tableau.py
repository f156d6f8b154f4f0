"""Butcher tableaux of the reference solvers, as frozen data that check themselves.

The coefficients are those of torchdiffeq 0.2.5 (``_impl/rk_common.py``, ``dopri5.py``),
retyped here from the published methods so that the reference shares no code with the
torch core:

- ``euler``: forward Euler, order 1.
- ``rk4``: Kutta's 3/8 rule, order 4 — torchdiffeq's ``rk4`` (``rk4_alt_step_func``), not
  the classical RK4.
- ``dopri5``: Dormand–Prince 5(4) (Dormand & Prince 1980; Shampine 1986 dense output), with
  the embedded error weights and the mid-point weights of torchdiffeq's 4th-order
  interpolant.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

_CHECK_TOLERANCE = 1e-14


def _frozen(values: object, shape: tuple[int, ...] | None = None) -> np.ndarray:
    array = np.array(values, dtype=np.float64)
    if shape is not None and array.shape != shape:
        raise ValueError(f"tableau array has shape {array.shape}, expected {shape}")
    array.setflags(write=False)
    return array


@dataclass(frozen=True, eq=False)
class ButcherTableau:
    """An explicit Runge–Kutta method ``k_s = f(t + c_s·h, y + h·Σ_{j<s} a_sj·k_j)``.

    Parameters
    ----------
    name
        Method name as the solvers register it.
    order
        Order of the propagated solution ``y + h·Σ b_s·k_s``.
    c, a, b
        Nodes ``(S,)``, strictly lower-triangular stage matrix ``(S, S)`` and weights ``(S,)``.
    error
        Optional ``(S,)`` weights of the embedded error estimate ``h·Σ error_s·k_s``
        (``b`` minus the lower-order weights).
    mid
        Optional ``(S,)`` weights giving the solution at the step's mid-point,
        ``y + h·Σ mid_s·k_s``, for dense output.

    Raises
    ------
    ValueError
        If the tableau is inconsistent: ``a`` not strictly lower triangular, a row of
        ``a`` not summing to its ``c``, ``b`` not summing to 1, or ``error`` not summing to 0.
    """

    name: str
    order: int
    c: np.ndarray
    a: np.ndarray
    b: np.ndarray
    error: np.ndarray | None = None
    mid: np.ndarray | None = None

    def __post_init__(self) -> None:
        stages = len(self.c)
        object.__setattr__(self, "c", _frozen(self.c, (stages,)))
        object.__setattr__(self, "a", _frozen(self.a, (stages, stages)))
        object.__setattr__(self, "b", _frozen(self.b, (stages,)))
        for name in ("error", "mid"):
            if getattr(self, name) is not None:
                object.__setattr__(self, name, _frozen(getattr(self, name), (stages,)))
        if np.any(np.triu(self.a) != 0.0):
            raise ValueError(f"{self.name}: the stage matrix a must be strictly lower triangular")
        row_sums = self.a.sum(axis=1)
        if not np.allclose(row_sums, self.c, rtol=0.0, atol=_CHECK_TOLERANCE):
            raise ValueError(
                f"{self.name}: rows of a sum to {row_sums.tolist()}, not to c = {self.c.tolist()}"
            )
        if abs(self.b.sum() - 1.0) > _CHECK_TOLERANCE:
            raise ValueError(f"{self.name}: weights b sum to {self.b.sum()!r}, not 1")
        if self.error is not None and abs(self.error.sum()) > _CHECK_TOLERANCE:
            raise ValueError(f"{self.name}: error weights sum to {self.error.sum()!r}, not 0")

    @property
    def stages(self) -> int:
        """Number of stages ``S``."""
        return len(self.c)

    @property
    def first_same_as_last(self) -> bool:
        """Whether the last stage is evaluated at the propagated solution (FSAL)."""
        return bool(
            self.c[-1] == 1.0 and self.b[-1] == 0.0 and np.array_equal(self.a[-1, :-1], self.b[:-1])
        )


EULER = ButcherTableau(
    name="euler", order=1, c=_frozen([0.0]), a=_frozen([[0.0]]), b=_frozen([1.0])
)

RK4_THREE_EIGHTHS = ButcherTableau(
    name="rk4",
    order=4,
    c=_frozen([0.0, 1 / 3, 2 / 3, 1.0]),
    a=_frozen(
        [
            [0.0, 0.0, 0.0, 0.0],
            [1 / 3, 0.0, 0.0, 0.0],
            [-1 / 3, 1.0, 0.0, 0.0],
            [1.0, -1.0, 1.0, 0.0],
        ]
    ),
    b=_frozen([1 / 8, 3 / 8, 3 / 8, 1 / 8]),
)

_DP_B = [35 / 384, 0.0, 500 / 1113, 125 / 192, -2187 / 6784, 11 / 84, 0.0]

DOPRI5 = ButcherTableau(
    name="dopri5",
    order=5,
    c=_frozen([0.0, 1 / 5, 3 / 10, 4 / 5, 8 / 9, 1.0, 1.0]),
    a=_frozen(
        [
            [0.0] * 7,
            [1 / 5, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0],
            [3 / 40, 9 / 40, 0.0, 0.0, 0.0, 0.0, 0.0],
            [44 / 45, -56 / 15, 32 / 9, 0.0, 0.0, 0.0, 0.0],
            [19372 / 6561, -25360 / 2187, 64448 / 6561, -212 / 729, 0.0, 0.0, 0.0],
            [9017 / 3168, -355 / 33, 46732 / 5247, 49 / 176, -5103 / 18656, 0.0, 0.0],
            [35 / 384, 0.0, 500 / 1113, 125 / 192, -2187 / 6784, 11 / 84, 0.0],
        ]
    ),
    b=_frozen(_DP_B),
    # b minus the embedded 4th-order weights of the Dormand–Prince–Shampine pair, written
    # term by term as torchdiffeq writes them so that the values agree to the last bit.
    error=_frozen(
        [
            35 / 384 - 1951 / 21600,
            0.0,
            500 / 1113 - 22642 / 50085,
            125 / 192 - 451 / 720,
            -2187 / 6784 - -12231 / 42400,
            11 / 84 - 649 / 6300,
            -1.0 / 60.0,
        ]
    ),
    mid=_frozen(
        [
            6025192743 / 30085553152 / 2,
            0.0,
            51252292925 / 65400821598 / 2,
            -2691868925 / 45128329728 / 2,
            187940372067 / 1594534317056 / 2,
            -1776094331 / 19743644256 / 2,
            11237099 / 235043384 / 2,
        ]
    ),
)

TABLEAUX: dict[str, ButcherTableau] = {t.name: t for t in (EULER, RK4_THREE_EIGHTHS, DOPRI5)}
