"""Hypothesis strategies for oscillator networks, initial states and drives.

All values are NumPy float64, so the same draws feed the torch core, the Numba reference
and any solver of your own.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from hypothesis import strategies as st

from oscsim.parameters import ACTIVATIONS, COUPLINGS, NetworkParameters

DEFAULT_GRIDS: tuple[tuple[int, ...], ...] = ((7,), (10,), (5, 6), (6, 4))


@st.composite
def network_parameters(
    draw: Any,
    *,
    grids: st.SearchStrategy[tuple[int, ...]] | None = None,
    channels: st.SearchStrategy[int] | None = None,
    kernel_sizes: st.SearchStrategy[int] | None = None,
    couplings: st.SearchStrategy[str] | None = None,
    activations: st.SearchStrategy[str] | None = None,
    gammas: st.SearchStrategy[float] | None = None,
    epsilons: st.SearchStrategy[float] | None = None,
    biases: st.SearchStrategy[float] | None = None,
) -> NetworkParameters:
    """A `NetworkParameters` with every field drawn; each argument narrows one field.

    Kernel sizes that do not fit the drawn grid are redrawn from the odd sizes that do.
    """
    grid = draw(grids if grids is not None else st.sampled_from(DEFAULT_GRIDS))
    n_channels = draw(channels if channels is not None else st.integers(1, 2))
    coupling = draw(couplings if couplings is not None else st.sampled_from(COUPLINGS))
    kernel_size = draw(kernel_sizes if kernel_sizes is not None else st.sampled_from((1, 3, 5)))
    if kernel_size > min(grid):
        kernel_size = draw(st.sampled_from([k for k in (1, 3, 5) if k <= min(grid)]))
    return NetworkParameters.random(
        grid,
        n_channels,
        coupling,
        kernel_size=kernel_size,
        gamma=draw(gammas if gammas is not None else st.floats(0.0, 3.0)),
        epsilon=draw(epsilons if epsilons is not None else st.floats(0.0, 1.0)),
        bias=draw(biases if biases is not None else st.floats(-0.5, 0.5)),
        activation=draw(activations if activations is not None else st.sampled_from(ACTIVATIONS)),
        rng=draw(st.integers(0, 2**32 - 1)),
    )


@st.composite
def initial_states(
    draw: Any,
    params: NetworkParameters,
    *,
    batch: st.SearchStrategy[int] | None = None,
    amplitude: float = 1.0,
) -> tuple[np.ndarray, np.ndarray]:
    """``(position0, velocity0)``, each ``(B, C, *grid)``, normal with std ``amplitude``."""
    size = draw(batch if batch is not None else st.integers(1, 2))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    shape = (size, *params.state_shape)
    return amplitude * rng.standard_normal(shape), amplitude * rng.standard_normal(shape)


@st.composite
def drives(
    draw: Any,
    params: NetworkParameters,
    batch: int,
    steps: int,
    *,
    amplitude: float = 1.0,
) -> np.ndarray:
    """A drive sequence ``(steps, batch, C, *grid)`` already on the grid, uniform in ±amplitude."""
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    return amplitude * rng.uniform(-1.0, 1.0, size=(steps, batch, *params.state_shape))
