"""The vector field: couplings, symmetry, parameter round trips, non-negativity."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from oscsim import NetworkParameters, OscillatorNetwork, OscsimInputError
from oscsim.coupling import local_kernel_as_matrix
from tests.helpers import ACTIVATIONS, COUPLINGS, numpy_field


@pytest.mark.parametrize("coupling", COUPLINGS)
@pytest.mark.parametrize("grid", [(9,), (6, 5)])
def test_field_shapes_and_state_names(coupling: str, grid: tuple[int, ...]) -> None:
    net = OscillatorNetwork(grid, 2, coupling, kernel_size=3)
    y = torch.randn(4, 2, *grid)
    z = torch.randn(4, 2, *grid)
    dy, dz = net(0.0, (y, z))
    assert dy.shape == dz.shape == y.shape
    assert torch.equal(dy, z)
    assert net.state_names == ("position", "velocity")


@settings(deadline=None)
@given(
    grid=st.sampled_from([(7,), (10,), (5, 6), (8, 7)]),
    channels=st.integers(1, 3),
    kernel_size=st.sampled_from([1, 3, 5]),
    shift=st.integers(-9, 9),
    activation=st.sampled_from(ACTIVATIONS),
    seed=st.integers(0, 2**16),
)
def test_local_coupling_commutes_with_circular_shifts(
    grid: tuple[int, ...], channels: int, kernel_size: int, shift: int, activation: str, seed: int
) -> None:
    net = OscillatorNetwork(
        grid, channels, "local", kernel_size=kernel_size, activation=activation, seed=seed
    )
    generator = torch.Generator().manual_seed(seed)
    y = torch.randn(2, channels, *grid, generator=generator)
    z = torch.randn(2, channels, *grid, generator=generator)
    dims = tuple(range(2, 2 + len(grid)))
    shifts = (shift,) * len(grid)
    _, shifted_then_field = net(0.0, (y.roll(shifts, dims), z.roll(shifts, dims)))
    _, field_then_shifted = net(0.0, (y, z))
    # Both sides do the same arithmetic on permuted data: equal up to summation order.
    torch.testing.assert_close(
        shifted_then_field, field_then_shifted.roll(shifts, dims), rtol=1e-12, atol=1e-12
    )


@pytest.mark.parametrize("grid", [(7,), (5, 4)])
def test_global_and_locally_connected_reproduce_local(grid: tuple[int, ...]) -> None:
    local = NetworkParameters.random(grid, 2, "local", kernel_size=3, rng=1, bias=0.3)
    dense = NetworkParameters(
        grid=grid,
        channels=2,
        coupling="global",
        kernel_position=local_kernel_as_matrix(local.kernel_position, grid),
        kernel_velocity=local_kernel_as_matrix(local.kernel_velocity, grid),
        gamma=local.gamma,
        epsilon=local.epsilon,
        bias=local.bias,
    )
    tiled_shape = (2, 2, *grid) + (3,) * len(grid)

    def tile(kernel: np.ndarray) -> np.ndarray:
        expanded = kernel.reshape((2, 2) + (1,) * len(grid) + (3,) * len(grid))
        return np.broadcast_to(expanded, tiled_shape).copy()

    untied = NetworkParameters(
        grid=grid,
        channels=2,
        coupling="locally_connected",
        kernel_position=tile(local.kernel_position),
        kernel_velocity=tile(local.kernel_velocity),
        gamma=local.gamma,
        epsilon=local.epsilon,
        bias=local.bias,
    )
    y = torch.randn(3, 2, *grid)
    z = torch.randn(3, 2, *grid)
    expected = OscillatorNetwork.from_parameters(local)(0.0, (y, z))[1]
    for params in (dense, untied):
        actual = OscillatorNetwork.from_parameters(params)(0.0, (y, z))[1]
        torch.testing.assert_close(actual, expected, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("grid", [(11,), (6, 7)])
def test_field_matches_independent_numpy_field(grid: tuple[int, ...]) -> None:
    params = NetworkParameters.random(grid, 2, "local", kernel_size=3, rng=3, bias=0.2)
    rng = np.random.default_rng(0)
    y = rng.standard_normal((1, *params.state_shape))
    z = rng.standard_normal((1, *params.state_shape))
    net = OscillatorNetwork.from_parameters(params)
    _, acc = net(0.0, (torch.as_tensor(y), torch.as_tensor(z)))
    expected = numpy_field(params)(0.0, np.concatenate([y.ravel(), z.ravel()]))
    np.testing.assert_allclose(
        acc.detach().numpy().ravel(), expected[y.size :], rtol=1e-12, atol=1e-12
    )


@pytest.mark.parametrize("coupling", COUPLINGS)
def test_parameters_round_trip(coupling: str) -> None:
    params = NetworkParameters.random((6, 5), 2, coupling, rng=7, gamma=[0.5, 1.5], bias=0.1)
    back = OscillatorNetwork.from_parameters(params).to_parameters()
    for name in ("kernel_position", "kernel_velocity", "gamma", "epsilon", "bias"):
        a, b = getattr(params, name), getattr(back, name)
        if a is None:
            assert b is None
        else:
            np.testing.assert_array_equal(a, b)


def test_trainable_gamma_epsilon_stay_nonnegative_under_training() -> None:
    net = OscillatorNetwork((8,), 1, trainable_gamma=True, trainable_epsilon=True, gamma=0.0)
    optimiser = torch.optim.SGD(net.parameters(), lr=10.0)
    for _ in range(20):
        optimiser.zero_grad()
        # A loss that rewards ever more negative γ and ε: they must still stay >= 0.
        (net.gamma.sum() + net.epsilon.sum()).backward()
        optimiser.step()
        assert bool((net.gamma >= 0).all()) and bool((net.epsilon >= 0).all())
    assert float(net.gamma.detach().sum()) < 1e-3


def test_linear_drive_and_grid_drive() -> None:
    net = OscillatorNetwork((4, 4), 1, input_size=3)
    u = torch.randn(5, 3)
    assert net.drive_term(u).shape == (5, 1, 4, 4)
    plain = OscillatorNetwork((4, 4), 1)
    with pytest.raises(OscsimInputError, match="drive map"):
        plain.drive_term(u)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"grid": (4, 4), "coupling": "ring"}, "coupling must be one of"),
        ({"grid": (4, 4), "kernel_size": 2}, "odd"),
        ({"grid": (2, 8), "kernel_size": 3}, "smaller than the kernel"),
        ({"grid": (4, 4), "gamma": -1.0}, "gamma must be finite and >= 0"),
        ({"grid": (4, 4), "activation": "relu"}, "activation must be one of"),
        ({"grid": (4, 4, 4)}, "grid must be"),
    ],
)
def test_bad_network_arguments(kwargs: dict, message: str) -> None:
    with pytest.raises(OscsimInputError, match=message):
        OscillatorNetwork(**kwargs)


def test_float64_network_keeps_every_digit_under_a_float32_default() -> None:
    params = NetworkParameters.random((6, 5), 1, "local", rng=11, gamma=0.123456789012345)
    previous = torch.get_default_dtype()
    torch.set_default_dtype(torch.float32)
    try:
        net = OscillatorNetwork.from_parameters(params, dtype=torch.float64)
    finally:
        torch.set_default_dtype(previous)
    back = net.to_parameters()
    np.testing.assert_array_equal(back.kernel_position, params.kernel_position)
    np.testing.assert_array_equal(back.gamma, params.gamma)
