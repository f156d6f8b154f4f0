"""Equivariance through traveling waves: shift a latent wave, decode, and the input transforms.

The Neural Wave Machine paper's demonstration: a model trained on rotating MNIST encodes the
rotation as a wave travelling across its latent torus, so translating the latent state along
the learned direction of travel and decoding it rotates the digit — without running the
dynamics. Here:

- `fourier_shift` translates a periodic field by any (fractional) number of cells;
- `estimate_wave_velocity` measures the learned direction and speed of travel, in cells per
  frame, from latent trajectories (the peak of the band-limited cross-correlation between
  consecutive fields);
- `equivariance_test` takes the latent after the observed frames of a sequence, shifts it by
  ``s·v`` for ``s = 0, 1, …`` and decodes each, and compares the result with the truly
  transformed frames, against decoding the unshifted latent (and the model's own forecast).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import torch
from oscsim.models.forecast import AutoregressiveForecaster

from oscsim.errors import OscsimInputError


def _wavenumbers(
    shape: Sequence[int], dtype: torch.dtype, device: torch.device
) -> list[torch.Tensor]:
    """Angular wavenumbers (rad per cell) of each grid axis, shaped to broadcast over the grid."""
    out = []
    for axis, n in enumerate(shape):
        k = 2 * math.pi * torch.fft.fftfreq(n, dtype=dtype, device=device)
        view = [1] * len(shape)
        view[axis] = n
        out.append(k.reshape(view))
    return out


def fourier_shift(values: torch.Tensor, shift: Sequence[float]) -> torch.Tensor:
    """Translate a periodic field by ``shift`` cells along its last ``len(shift)`` axes.

    ``out(x) = values(x − shift)``: content moves towards larger indices for a positive
    shift, as ``torch.roll`` (which this equals for integer shifts, up to rounding). A
    fractional shift is the band-limited (Fourier) interpolation, exact for every sampled
    Fourier mode except the Nyquist mode of an even axis, whose real part is kept.

    Parameters
    ----------
    values
        ``(..., *grid)`` real tensor.
    shift
        One number per grid axis, in cells, in the order of the grid (row, then column).

    Returns
    -------
    torch.Tensor
        Same shape and dtype as ``values``.

    Raises
    ------
    OscsimInputError
        If ``shift`` has more entries than ``values`` has axes, or is not finite.
    """
    shift = [float(s) for s in shift]
    ndim = len(shift)
    if ndim < 1 or ndim > values.dim():
        raise OscsimInputError(
            f"shift needs one entry per grid axis (1 to {values.dim()} here), got {shift}"
        )
    if not all(math.isfinite(s) for s in shift):
        raise OscsimInputError(f"shift must be finite, got {shift}")
    dims = tuple(range(values.dim() - ndim, values.dim()))
    real = values.dtype if values.is_floating_point() else torch.get_default_dtype()
    spectrum = torch.fft.fftn(values.to(real), dim=dims)
    phase = torch.zeros((), dtype=real, device=values.device)
    for k, s in zip(_wavenumbers(values.shape[-ndim:], real, values.device), shift, strict=True):
        phase = phase + k * s
    shifted = torch.fft.ifftn(spectrum * torch.exp(-1j * phase), dim=dims)
    return shifted.real.to(real)


def estimate_wave_velocity(
    positions: torch.Tensor | np.ndarray, *, resolution: float = 0.01
) -> tuple[float, ...]:
    """The mean displacement per frame of latent waves, in cells, one entry per grid axis.

    The fields are differenced in time, ``d[t] = a[t+1] − a[t]``, which removes any standing
    (static) pattern exactly and translates with the wave; then the circular
    cross-correlation ``c(s) = Σ_x d[t+1](x)·d[t](x − s)`` is summed over frames, samples
    and channels. Its peak is found on the integer lattice and refined on the band-limited
    interpolant ``c(s) = Re Σ_k C(k) e^{i k·s}`` with steps of ``resolution`` cells, so a
    field translated exactly by ``v`` per frame gives ``v`` to within ``resolution / 2``.

    Parameters
    ----------
    positions
        ``(T, B, C, *grid)`` latent fields at consecutive frames (time first), ``T >= 3``.
    resolution
        Step of the refinement search, cells.

    Returns
    -------
    tuple of float
        Velocity in cells per frame, in the order of the grid axes; the shortest periodic
        representative (each entry within half the axis length).

    Notes
    -----
    This is the translation that best maps one frame onto the next (least squares on the
    differenced fields), the quantity a shift of the latent needs. It is not the phase
    velocity of docs/guide/analyze.md (`analysis.wave_report`): for a single plane wave every
    translation along the wave fronts fits equally well, and one of them is returned.
    """
    a = (
        positions.detach().cpu().double().numpy()
        if isinstance(positions, torch.Tensor)
        else np.asarray(positions, dtype=np.float64)
    )
    if a.ndim < 4 or a.shape[0] < 3:
        raise OscsimInputError(
            f"positions must be (T, B, C, *grid) with T >= 3, got shape {a.shape}"
        )
    if not resolution > 0:
        raise OscsimInputError(f"resolution must be positive, got {resolution}")
    grid = a.shape[3:]
    axes = tuple(range(3, a.ndim))
    a = np.diff(a, axis=0)
    spectra = np.fft.fftn(a, axes=axes)
    cross = (spectra[1:] * np.conj(spectra[:-1])).sum(axis=(0, 1, 2))  # C(k), (*grid)
    lattice = np.fft.ifftn(cross).real
    peak = np.unravel_index(int(np.argmax(lattice)), grid)
    centre = np.array([p if p <= n // 2 else p - n for p, n in zip(peak, grid, strict=True)], float)
    offsets = np.arange(-1.0, 1.0 + resolution / 2, resolution)
    wavenumbers = [2 * np.pi * np.fft.fftfreq(n) for n in grid]
    # Separable evaluation of Re Σ_k C(k) exp(i k·s) on the refinement lattice.
    values = cross.astype(np.complex128)
    for axis, k in enumerate(wavenumbers):
        candidates = centre[axis] + offsets
        basis = np.exp(1j * np.outer(k, candidates))  # (n_axis, n_candidates)
        values = np.tensordot(values, basis, axes=([0], [0]))  # the axis moves to the end
    # ``values`` now has one axis of candidates per grid axis, in grid order.
    best = np.unravel_index(int(np.argmax(values.real)), values.shape)
    velocity = [centre[axis] + offsets[index] for axis, index in enumerate(best)]
    wrapped = [((v + n / 2) % n) - n / 2 for v, n in zip(velocity, grid, strict=True)]
    return tuple(float(v) for v in wrapped)


@dataclass
class EquivarianceResult:
    """Decoded shifted latents against the truly transformed frames.

    Frame arrays are ``(B, S, C, R, R)`` for the frames ``start + 1 … start + S``; MSE
    arrays ``(S,)`` are means over samples and pixels at each shift ``s = 0 … S−1``.
    """

    velocity: tuple[float, ...]
    start: int
    truth: np.ndarray
    shifted: np.ndarray
    static: np.ndarray
    rollout: np.ndarray
    latent_shifted: np.ndarray
    """``(S, C, *grid)``: the shifted latents of sample 0."""
    mse_shifted: np.ndarray = field(init=False)
    mse_static: np.ndarray = field(init=False)
    mse_rollout: np.ndarray = field(init=False)

    def __post_init__(self) -> None:
        def curve(x: np.ndarray) -> np.ndarray:
            return np.square(x - self.truth).reshape(*x.shape[:2], -1).mean(axis=(0, 2))

        self.mse_shifted = curve(self.shifted)
        self.mse_static = curve(self.static)
        self.mse_rollout = curve(self.rollout)

    def summary(self) -> dict[str, object]:
        """Means over the shifts ``s >= 1`` (``s = 0`` is the same latent in every row)."""
        return {
            "velocity_cells_per_frame": list(self.velocity),
            "start_frame": self.start,
            "shifts": int(len(self.mse_shifted)),
            "samples": int(self.truth.shape[0]),
            "mse_shifted": float(self.mse_shifted[1:].mean()),
            "mse_unshifted": float(self.mse_static[1:].mean()),
            "mse_model_forecast": float(self.mse_rollout[1:].mean()),
            "mse_shifted_per_step": self.mse_shifted.tolist(),
            "mse_unshifted_per_step": self.mse_static.tolist(),
            "mse_model_forecast_per_step": self.mse_rollout.tolist(),
        }


@torch.no_grad()
def equivariance_test(
    model: AutoregressiveForecaster,
    frames: torch.Tensor,
    *,
    steps: int,
    start: int | None = None,
    velocity: Sequence[float] | None = None,
    skip: int = 2,
) -> EquivarianceResult:
    """Shift the latent wave of ``model`` and decode it (the paper's equivariance test).

    Parameters
    ----------
    model
        A trained autoregressive oscillator forecaster.
    frames
        ``(B, T, C, R, R)`` sequences with ``T > start + steps``; the model reads its
        observed frames, the rest is the truth to compare with.
    steps
        Number of shifts ``s = 0 … steps−1``.
    start
        Index of the last frame read before shifting (default: the model's last observed
        frame). The latent after reading it predicts frame ``start + 1``.
    velocity
        Cells per frame to shift by (default: `estimate_wave_velocity` on the model's latent
        trajectories of ``frames``, leaving out the first ``skip`` steps from rest).
    skip
        Transient steps left out of the velocity estimate.

    Returns
    -------
    EquivarianceResult
        The latent after frame ``start``, with its mean field (the time and sample average
        of the latents, which the bias sets) kept in place and the rest shifted by ``s·v``,
        decoded; the unshifted latent decoded; the model's own forecast; the truth.
    """
    if not isinstance(model, AutoregressiveForecaster):
        raise OscsimInputError(
            f"the equivariance test needs an autoregressive oscillator model, got "
            f"{type(model).__name__}"
        )
    start = model.observed - 1 if start is None else int(start)
    total = frames.shape[1]
    if steps < 1 or start < 0 or start + steps >= total:
        raise OscsimInputError(
            f"need 0 <= start and start + steps < T; got start={start}, steps={steps}, T={total}"
        )
    if start >= model.observed:
        raise OscsimInputError(
            f"start={start} must be a frame the model reads (< observed = {model.observed})"
        )
    was_training = model.training
    model.eval()
    positions, _ = model.latents(frames)  # (T−1, B, C, *grid)
    rollout = model.decode_sequence(positions)
    model.train(was_training)
    if velocity is None:
        velocity = estimate_wave_velocity(positions[skip:])
    velocity = tuple(float(v) for v in velocity)
    ndim = len(model.network.grid)
    if len(velocity) != ndim:
        raise OscsimInputError(f"velocity needs {ndim} entries (one per grid axis), got {velocity}")
    mean_field = positions[skip:].mean(dim=(0, 1))
    latent = positions[start] - mean_field
    shifted = torch.stack(
        [mean_field + fourier_shift(latent, [s * v for v in velocity]) for s in range(steps)]
    )  # (S, B, C, *grid)
    static = positions[start].unsqueeze(0).expand(steps, *positions.shape[1:])
    truth = frames[:, start + 1 : start + 1 + steps]
    return EquivarianceResult(
        velocity=velocity,
        start=start,
        truth=truth.cpu().numpy(),
        shifted=model.decode_sequence(shifted).cpu().numpy(),
        static=model.decode_sequence(static).cpu().numpy(),
        rollout=rollout[:, start : start + steps].cpu().numpy(),
        latent_shifted=shifted[:, 0].cpu().numpy(),
    )
