"""Sampled input sequences as functions of continuous time (docs/model.md, "Inputs").

A sequence ``u[0..T-1]`` sampled at times ``s_n`` becomes ``u(t)`` by zero-order hold
(``u(t) = u[n]`` on ``[s_n, s_{n+1})``) or by linear interpolation; before ``s_0`` and after
``s_{T-1}`` the end values hold. The sample times are handed to adaptive solvers as jump
times so that no step straddles a discontinuity.
"""

from __future__ import annotations

import torch

from oscsim.errors import OscsimInputError

INTERPOLATIONS = ("zoh", "linear")


class InputSignal:
    """``u(t)`` from samples.

    Parameters
    ----------
    values
        ``(T, B, ...)``: sample ``n`` of every batch element.
    sample_times
        ``(T,)`` strictly increasing.
    interpolation
        ``"zoh"`` (zero-order hold, what ``imex`` sees) or ``"linear"``.
    """

    def __init__(
        self, values: torch.Tensor, sample_times: torch.Tensor, interpolation: str = "zoh"
    ) -> None:
        if interpolation not in INTERPOLATIONS:
            raise OscsimInputError(
                f"interpolation must be one of {', '.join(INTERPOLATIONS)}; got {interpolation!r}"
            )
        if values.dim() < 2:
            raise OscsimInputError(
                f"inputs must have shape (T, B, ...) (time first), got {tuple(values.shape)}"
            )
        if sample_times.shape != (values.shape[0],):
            raise OscsimInputError(
                f"input sample times must have shape ({values.shape[0]},) to match the "
                f"{values.shape[0]} input samples, got {tuple(sample_times.shape)}"
            )
        if values.shape[0] > 1 and not bool(torch.all(sample_times[1:] > sample_times[:-1])):
            raise OscsimInputError("input sample times must be strictly increasing")
        self.values = values
        self.sample_times = sample_times.to(values.dtype)
        self.interpolation = interpolation

    def _index(self, t: torch.Tensor) -> torch.Tensor:
        # The sample in force at t: the last s_n <= t (so exactly at s_n, sample n applies).
        index = torch.searchsorted(self.sample_times, t.reshape(-1), right=True) - 1
        return index.clamp(0, self.values.shape[0] - 1)

    def at(self, times: torch.Tensor) -> torch.Tensor:
        """``u`` at each of ``times`` (shape ``(S,)``), returned as ``(S, B, ...)``."""
        times = torch.as_tensor(times, dtype=self.sample_times.dtype).reshape(-1)
        index = self._index(times)
        if self.interpolation == "zoh" or self.values.shape[0] == 1:
            return self.values[index]
        upper = (index + 1).clamp(max=self.values.shape[0] - 1)
        span = self.sample_times[upper] - self.sample_times[index]
        weight = torch.where(
            upper > index, (times - self.sample_times[index]) / span.clamp_min(1e-300), 0.0
        ).clamp(0.0, 1.0)
        weight = weight.reshape((-1,) + (1,) * (self.values.dim() - 1))
        return self.values[index] + weight * (self.values[upper] - self.values[index])

    def __call__(self, t: torch.Tensor | float) -> torch.Tensor:
        """``u(t)``, shape ``(B, ...)``."""
        return self.at(torch.as_tensor(t, dtype=self.sample_times.dtype))[0]

    def jump_times(self, start: float, end: float) -> torch.Tensor:
        """Sample times strictly inside ``(start, end)``: where ``u`` or its slope jumps."""
        inside = (self.sample_times > start) & (self.sample_times < end)
        return self.sample_times[inside]
