"""integrate(): exact linear solutions, convergence orders, inputs, adjoint, bad input."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from oscsim import IntegrationError, NetworkParameters, OscillatorNetwork, OscsimInputError
from oscsim.integration import integrate
from oscsim.linear import exact_linear_solution
from tests.helpers import (
    ADAPTIVE_METHODS,
    FIXED_METHODS_WITH_ORDER,
    decay_field,
    relative_error,
)


def _linear_problem(grid: tuple[int, ...], seed: int, gamma: float = 1.0, epsilon: float = 0.2):
    params = NetworkParameters.random(
        grid,
        1,
        "local",
        kernel_size=3,
        gamma=gamma,
        epsilon=epsilon,
        bias=0.1,
        activation="identity",
        rng=seed,
    )
    rng = np.random.default_rng(seed)
    y0 = rng.standard_normal((2, *params.state_shape))
    z0 = rng.standard_normal((2, *params.state_shape))
    return params, y0, z0


def _solve(params, y0, z0, times, **kwargs):
    net = OscillatorNetwork.from_parameters(params)
    with torch.no_grad():
        sol = integrate(net, (torch.as_tensor(y0), torch.as_tensor(z0)), times, **kwargs)
    return sol.position.numpy(), sol.velocity.numpy()


@settings(deadline=None)
@given(
    grid=st.sampled_from([(9,), (16,), (5, 7), (8, 6)]),
    gamma=st.floats(0.0, 3.0),
    epsilon=st.floats(0.0, 1.0),
    seed=st.integers(0, 1000),
)
def test_linear_network_matches_fourier_mode_solution(
    grid: tuple[int, ...], gamma: float, epsilon: float, seed: int
) -> None:
    params, y0, z0 = _linear_problem(grid, seed, gamma, epsilon)
    times = np.array([0.0, 1.0, 2.0])
    y_exact, z_exact = exact_linear_solution(params, y0, z0, times)
    y, z = _solve(params, y0, z0, times, method="dopri5", rtol=1e-10, atol=1e-12)
    # dopri5 at rtol 1e-10 over t = 2 of an O(1) linear system: global error ~1e-9.
    assert relative_error(y, y_exact) < 1e-7
    assert relative_error(z, z_exact) < 1e-7


def _fitted_order(method: str, grid: tuple[int, ...]) -> float:
    params, y0, z0 = _linear_problem(grid, seed=4)
    t_end = 1.0
    y_exact, _ = exact_linear_solution(params, y0, z0, np.array([0.0, t_end]))
    dts = [0.1, 0.05, 0.025, 0.0125]
    errors = []
    for dt in dts:
        y, _ = _solve(params, y0, z0, [0.0, t_end], method=method, dt=dt)
        errors.append(np.max(np.abs(y[-1] - y_exact[-1])))
    slope = np.polyfit(np.log(dts), np.log(errors), 1)[0]
    return float(slope)


@pytest.mark.parametrize("method, order", sorted(FIXED_METHODS_WITH_ORDER.items()))
@pytest.mark.parametrize("grid", [(12,), (6, 5)])
def test_convergence_order(method: str, order: int, grid: tuple[int, ...]) -> None:
    # The fitted log-log slope over a factor-8 refinement is within ±0.25 of the order:
    # enough margin for the higher-order terms at dt = 0.1, too little to pass a wrong order.
    assert abs(_fitted_order(method, grid) - order) < 0.25


def test_imex_is_the_published_recurrence() -> None:
    params = NetworkParameters.random((5, 6), 2, "local", rng=3, bias=0.1, gamma=[0.5, 2.0])
    net = OscillatorNetwork.from_parameters(params)
    rng = np.random.default_rng(1)
    y = torch.as_tensor(rng.standard_normal((3, *params.state_shape)))
    z = torch.as_tensor(rng.standard_normal((3, *params.state_shape)))
    u = torch.as_tensor(rng.standard_normal((7, 3, *params.state_shape)))
    dt = 0.1
    with torch.no_grad():
        sol = integrate(net, (y, z), [0.0, 0.7], method="imex", dt=dt, inputs=u, fused=False)
        for n in range(7):
            drive = net.position_coupling(y) + net.velocity_coupling(z) + u[n]
            drive = drive + net.bias.reshape(-1, 1, 1)
            z = z + dt * (
                torch.tanh(drive)
                - net.gamma.reshape(-1, 1, 1) * y
                - net.epsilon.reshape(-1, 1, 1) * z
            )
            y = y + dt * z
    torch.testing.assert_close(sol.position[-1], y, rtol=1e-13, atol=1e-13)
    torch.testing.assert_close(sol.velocity[-1], z, rtol=1e-13, atol=1e-13)


def _piecewise_exact(params, y0, z0, drive, input_dt, times):
    """Exact solution of the linear network under a zero-order-hold drive, interval by interval."""
    y, z = y0, z0
    states = {0.0: (y, z)}
    for n in range(drive.shape[0]):
        ys, zs = exact_linear_solution(params, y, z, np.array([input_dt]), drive=drive[n])
        y, z = ys[0], zs[0]
        states[round((n + 1) * input_dt, 12)] = (y, z)
    return np.stack([states[round(t, 12)][0] for t in times])


@pytest.mark.parametrize("method", ["rk4", *ADAPTIVE_METHODS])
def test_zero_order_hold_input_is_seen_piecewise_constant(method: str) -> None:
    params, y0, z0 = _linear_problem((8,), seed=2)
    rng = np.random.default_rng(5)
    drive = rng.standard_normal((10, *y0.shape))
    input_dt = 0.2
    times = np.array([0.0, 0.6, 1.0, 2.0])
    expected = _piecewise_exact(params, y0, z0, drive, input_dt, times)
    kwargs = {"dt": 0.05} if method == "rk4" else {"rtol": 1e-10, "atol": 1e-12}
    y, _ = _solve(
        params,
        y0,
        z0,
        times,
        method=method,
        inputs=torch.as_tensor(drive),
        input_dt=input_dt,
        **kwargs,
    )
    # With the jumps respected the only error is the method's own: rk4 at dt = 0.05 is
    # ~1e-7 here; adaptive methods at rtol 1e-10 well below. A step straddling a jump
    # would give O(dt) = 1e-2-sized errors instead.
    tolerance = 1e-6 if method == "rk4" else 1e-7
    assert relative_error(y, expected) < tolerance


def test_linear_interpolation_of_inputs() -> None:
    from oscsim.inputs import InputSignal

    values = torch.tensor([[0.0], [2.0], [4.0]]).unsqueeze(-1)
    signal = InputSignal(values, torch.tensor([0.0, 1.0, 2.0]), "linear")
    torch.testing.assert_close(signal(torch.tensor(0.25)), torch.tensor([[0.5]]))
    torch.testing.assert_close(signal(torch.tensor(1.5)), torch.tensor([[3.0]]))
    torch.testing.assert_close(signal(torch.tensor(5.0)), torch.tensor([[4.0]]))
    hold = InputSignal(values, torch.tensor([0.0, 1.0, 2.0]), "zoh")
    torch.testing.assert_close(hold(torch.tensor(0.999)), torch.tensor([[0.0]]))
    torch.testing.assert_close(hold(torch.tensor(1.0)), torch.tensor([[2.0]]))


def _gradients(adjoint: bool, method: str = "dopri5"):
    torch.manual_seed(0)
    net = OscillatorNetwork((4, 5), 1, trainable_gamma=True, trainable_epsilon=True, bias=0.1)
    y0 = torch.randn(2, 1, 4, 5, requires_grad=True)
    z0 = torch.randn(2, 1, 4, 5)
    sol = integrate(
        net, (y0, z0), [0.0, 0.5, 1.0], method=method, rtol=1e-10, atol=1e-12, adjoint=adjoint
    )
    loss = (sol.position**2).sum() + sol.velocity[-1].sum()
    params = [y0, *net.parameters()]
    return torch.autograd.grad(loss, params)


def test_adjoint_gradients_equal_backpropagation() -> None:
    direct = _gradients(adjoint=False)
    adjoint = _gradients(adjoint=True)
    # Both are converged solutions of the same sensitivity problem at rtol 1e-10 (errors
    # ~1e-9); the required agreement is 1e-6 relative.
    for a, b in zip(adjoint, direct, strict=True):
        assert relative_error(a.numpy(), b.numpy()) < 1e-6


def test_backprop_matches_finite_differences() -> None:
    net = OscillatorNetwork((7,), 1, bias=0.2, seed=2)
    y0 = torch.randn(1, 1, 7)
    z0 = torch.randn(1, 1, 7)

    def loss(weight: torch.Tensor) -> torch.Tensor:
        net.position_coupling.weight.data.copy_(weight)
        sol = integrate(net, (y0, z0), [0.0, 1.0], method="rk4", dt=0.05)
        return (sol.position[-1] ** 2).sum()

    weight = net.position_coupling.weight.detach().clone()
    value = loss(weight)
    (grad,) = torch.autograd.grad(value, net.position_coupling.weight)
    h = 1e-6
    for index in [(0, 0, 0), (0, 0, 1), (0, 0, 2)]:
        bumped = weight.clone()
        bumped[index] += h
        lowered = weight.clone()
        lowered[index] -= h
        with torch.no_grad():
            numeric = (loss(bumped) - loss(lowered)) / (2 * h)
        # Central differences at h = 1e-6 in float64: truncation ~h², rounding ~1e-10.
        assert abs(float(numeric) - float(grad[index])) < 1e-6 * max(1.0, abs(float(numeric)))


def test_any_module_field_with_adjoint() -> None:
    field = decay_field(0.7)
    x0 = torch.ones(3, 2)
    sol = integrate(
        field, x0, [0.0, 1.0, 2.0], method="dopri5", rtol=1e-10, atol=1e-12, adjoint=True
    )
    expected = torch.exp(torch.tensor(-0.7 * 2.0))
    torch.testing.assert_close(
        sol.states[0][-1], torch.full((3, 2), float(expected)), rtol=1e-8, atol=0
    )
    sol.states[0][-1].sum().backward()
    # d/d rate of 6·exp(−2·rate) = −12·exp(−2·rate).
    torch.testing.assert_close(field.rate.grad, -12 * expected, rtol=1e-6, atol=0)


@pytest.mark.parametrize("method", ["rk4", "dopri5", "imex"])
def test_float32_runs_and_stays_close_to_float64(method: str) -> None:
    params, y0, z0 = _linear_problem((6, 6), seed=1)
    kwargs = {"dt": 0.05} if method != "dopri5" else {"rtol": 1e-5, "atol": 1e-6}
    y64, _ = _solve(params, y0, z0, [0.0, 1.0], method=method, **kwargs)
    net = OscillatorNetwork.from_parameters(params).float()
    with torch.no_grad():
        sol = integrate(
            net,
            (torch.as_tensor(y0).float(), torch.as_tensor(z0).float()),
            [0.0, 1.0],
            method=method,
            **kwargs,
        )
    assert sol.position.dtype == torch.float32
    # float32 rounding (~1e-7) amplified over 20 steps stays far below 1e-4; rtol 1e-5 for
    # dopri5 bounds the rest.
    assert relative_error(sol.position.numpy(), y64) < 1e-4


def test_nan_state_raises_with_advice() -> None:
    net = OscillatorNetwork(
        (6,),
        1,
        activation="identity",
        gamma=0.0,
        epsilon=0.0,
        kernel_position=np.full((1, 1, 3), 1e3),
    )
    y0 = torch.randn(1, 1, 6)
    with pytest.raises(IntegrationError, match="reduce dt"):
        integrate(net, (y0, torch.zeros_like(y0)), np.arange(0, 200) * 1.0, method="euler", dt=1.0)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"method": "rk5"}, "valid methods are"),
        ({"method": "rk4"}, "give dt"),
        ({"method": "rk4", "dt": -0.1}, "dt must be a positive"),
        ({"method": "rk4", "dt": 0.3}, "not on the fixed-step grid"),
        ({"times": [1.0, 0.5]}, "strictly increasing"),
        ({"times": [0.0]}, "at least 2 times"),
        ({"inputs": torch.zeros(3, 5, 1, 4, 4)}, "batch size"),
        ({"inputs": torch.zeros(3, 2, 1, 4, 4)}, "input_times or input_dt"),
        ({"method": "imex", "dt": 0.1, "adjoint": "backsolve"}, "applies to continuous"),
        (
            {"interpolation": "cubic", "inputs": torch.zeros(3, 2, 1, 4, 4), "input_dt": 0.1},
            "interpolation must be one of",
        ),
    ],
)
def test_bad_arguments_are_refused_before_work(kwargs: dict, message: str) -> None:
    net = OscillatorNetwork((4, 4))
    y0 = torch.zeros(2, 1, 4, 4)
    times = kwargs.pop("times", [0.0, 1.0])
    with pytest.raises(OscsimInputError, match=message):
        integrate(net, (y0, y0), times, **kwargs)


def test_dtype_mismatch_names_the_fix() -> None:
    net = OscillatorNetwork((4, 4)).float()
    y0 = torch.zeros(1, 1, 4, 4, dtype=torch.float64)
    with pytest.raises(OscsimInputError, match="field.to"):
        integrate(net, (y0, y0), [0.0, 1.0])
