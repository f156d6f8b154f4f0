"""The linearised network through the Fourier modes of its grid (NumPy only).

On a periodic grid the circular coupling is diagonal in Fourier space: the mode
``exp(i k·x)`` of a ``local`` kernel ``K`` is multiplied by its symbol

    Λ(k)[o, c] = Σ_a K[o, c, a] · exp(i k·(a − r)),      r = k_size // 2

so each mode of the linear network (``identity``, or ``tanh`` linearised at the bias) is a
damped harmonic oscillator with ``2C`` complex eigenvalues ``s(k)``. That gives the
dispersion relation (frequency ``ω = Im s``, phase speed ``ω/|k|``) and the exact solution
the tests compare solvers against.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import scipy.linalg

from oscsim.errors import OscsimInputError
from oscsim.parameters import NetworkParameters

#: A wave vector in rad per cell, one entry per grid axis (grid order).
WaveVector = Sequence[float] | np.ndarray


def _check_local(params: NetworkParameters) -> None:
    if params.coupling not in ("local", "none"):
        raise OscsimInputError(
            f"the Fourier-mode analysis needs translation-invariant coupling (local or none), "
            f"got {params.coupling!r}"
        )


def kernel_symbol(kernel: np.ndarray | None, wavevector: WaveVector, channels: int) -> np.ndarray:
    """``Λ(k)``, ``(C, C)`` complex, of a local kernel ``(C, C, *k_size)`` at ``wavevector``."""
    if kernel is None:
        return np.zeros((channels, channels), dtype=np.complex128)
    size = kernel.shape[-1]
    r = size // 2
    offsets = np.arange(size) - r
    phase = np.ones((size,) * len(wavevector), dtype=np.complex128)
    for axis, k in enumerate(wavevector):
        shape = [1] * len(wavevector)
        shape[axis] = size
        phase = phase * np.exp(1j * k * offsets).reshape(shape)
    axes = tuple(range(2, kernel.ndim))
    return np.tensordot(kernel, phase, axes=(axes, tuple(range(phase.ndim))))


def _gain(params: NetworkParameters) -> np.ndarray:
    """Slope of the activation at the bias (per channel): 1 for identity, 1 − tanh²(b)."""
    if params.activation == "identity":
        return np.ones(params.channels)
    bias = (
        params.bias if params.bias.ndim == 1 else params.bias.reshape(params.channels, -1).mean(1)
    )
    return 1.0 - np.tanh(bias) ** 2


def mode_matrix(params: NetworkParameters, wavevector: WaveVector) -> np.ndarray:
    """The ``(2C, 2C)`` matrix ``A(k)`` with ``d/dt (ŷ, ẑ) = A(k) (ŷ, ẑ)`` for one mode."""
    _check_local(params)
    c = params.channels
    gain = _gain(params)[:, None]
    a = np.zeros((2 * c, 2 * c), dtype=np.complex128)
    a[:c, c:] = np.eye(c)
    a[c:, :c] = gain * kernel_symbol(params.kernel_position, wavevector, c) - np.diag(params.gamma)
    a[c:, c:] = gain * kernel_symbol(params.kernel_velocity, wavevector, c) - np.diag(
        params.epsilon
    )
    return a


def dispersion(params: NetworkParameters, wavevector: WaveVector) -> np.ndarray:
    """Eigenvalues ``s(k)`` (``2C`` complex) of one mode: ``Re s`` growth, ``Im s`` frequency."""
    return np.linalg.eigvals(mode_matrix(params, wavevector))


def mode_frequency(params: NetworkParameters, wavevector: WaveVector) -> float:
    """``ω(k) ≥ 0`` (rad per time unit) of the least-damped oscillating branch of a mode."""
    s = dispersion(params, wavevector)
    oscillating = s[np.abs(s.imag) > 1e-12]
    if oscillating.size == 0:
        return 0.0
    return float(abs(oscillating[np.argmax(oscillating.real)].imag))


def phase_speed(params: NetworkParameters, wavevector: WaveVector) -> float:
    """Predicted phase speed ``ω(k)/|k|`` in cells per time unit."""
    norm = float(np.linalg.norm(wavevector))
    if norm == 0:
        raise OscsimInputError("the phase speed of the k = 0 mode is undefined")
    return mode_frequency(params, wavevector) / norm


def grid_wavevectors(grid: Sequence[int]) -> np.ndarray:
    """Wave vectors of every FFT mode of ``grid``: ``(*grid, d)`` in rad per cell."""
    axes = [2 * np.pi * np.fft.fftfreq(n) for n in grid]
    mesh = np.meshgrid(*axes, indexing="ij")
    return np.stack(mesh, axis=-1)


def exact_linear_solution(
    params: NetworkParameters,
    position0: np.ndarray,
    velocity0: np.ndarray,
    times: np.ndarray,
    drive: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Exact states of the linear (``identity``) network with a constant drive.

    Parameters
    ----------
    params
        ``identity`` activation, ``local`` or ``none`` coupling.
    position0, velocity0
        ``(B, C, *grid)``.
    times
        ``(S,)`` times measured from the initial state.
    drive
        Optional constant drive ``(B, C, *grid)`` added inside the activation.

    Returns
    -------
    positions, velocities
        ``(S, B, C, *grid)``: ``exp(A(k) t)`` applied to each Fourier mode, with the bias
        and drive as a constant forcing (an augmented matrix exponential).
    """
    _check_local(params)
    if params.activation != "identity":
        raise OscsimInputError("the exact solution holds for activation 'identity' only")
    c, grid = params.channels, params.grid
    axes = tuple(range(2, 2 + len(grid)))
    forcing = np.broadcast_to(params.bias_full, position0.shape).astype(np.float64)
    if drive is not None:
        forcing = forcing + drive
    y_hat = np.fft.fftn(position0, axes=axes)
    z_hat = np.fft.fftn(velocity0, axes=axes)
    f_hat = np.fft.fftn(forcing, axes=axes)
    wavevectors = grid_wavevectors(grid).reshape(-1, len(grid))
    batch = position0.shape[0]
    # Modes first: (M, B, C)
    y_modes = np.moveaxis(y_hat.reshape(batch, c, -1), -1, 0)
    z_modes = np.moveaxis(z_hat.reshape(batch, c, -1), -1, 0)
    f_modes = np.moveaxis(f_hat.reshape(batch, c, -1), -1, 0)
    m = wavevectors.shape[0]
    augmented = np.zeros((m, batch, 2 * c + 1, 2 * c + 1), dtype=np.complex128)
    for index, k in enumerate(wavevectors):
        augmented[index, :, : 2 * c, : 2 * c] = mode_matrix(params, k)
    augmented[:, :, c : 2 * c, 2 * c] = f_modes
    state = np.concatenate([y_modes, z_modes, np.ones((m, batch, 1))], axis=-1)
    positions: list[np.ndarray] = []
    velocities: list[np.ndarray] = []
    for t in np.asarray(times, dtype=np.float64):
        evolved = np.einsum("mbij,mbj->mbi", scipy.linalg.expm(augmented * t), state)
        for store, part in ((positions, evolved[..., :c]), (velocities, evolved[..., c : 2 * c])):
            spectral = np.moveaxis(part, 0, -1).reshape(batch, c, *grid)
            store.append(np.fft.ifftn(spectral, axes=axes).real)
    return np.stack(positions), np.stack(velocities)
