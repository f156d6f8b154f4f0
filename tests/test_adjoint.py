"""Gradients through integrate(): checkpoint = direct backpropagation, backsolve diagnostic,
solver statistics, bad adjoint values, and progress bars that end cleanly."""

from __future__ import annotations

import warnings

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from tqdm import TqdmWarning

from oscsim import OscillatorNetwork, OscsimInputError, OscsimWarning
from oscsim.integration import integrate
from tests.helpers import decay_field

#: Checkpointed recomputation repeats the forward arithmetic, so it differs from direct
#: backpropagation only in the order autograd sums the segments' contributions: rounding,
#: ~1e-15 relative in float64. 1e-10 is the issue's target and leaves room for the
#: amplification of rounding over 1,600 steps.
EXACT = 1e-10


def _network(grid: tuple[int, ...], channels: int, *, inputs: int | None = None, seed: int = 0):
    return OscillatorNetwork(
        grid,
        channels,
        bias=0.1,
        epsilon=0.2,
        trainable_gamma=True,
        trainable_epsilon=True,
        input_size=inputs,
        seed=seed,
    )


def _loss_and_leaves(
    adjoint: object,
    method: str,
    steps: int,
    grid: tuple[int, ...],
    channels: int,
    with_inputs: bool,
    seed: int = 0,
    dt: float = 0.05,
    first_step: bool = True,
):
    torch.manual_seed(seed)
    net = _network(grid, channels, inputs=3 if with_inputs else None, seed=seed)
    y0 = (0.5 * torch.randn(2, channels, *grid)).requires_grad_()
    z0 = (0.5 * torch.randn(2, channels, *grid)).requires_grad_()
    u = torch.randn(steps + 1, 2, 3, requires_grad=True) if with_inputs else None
    horizon = steps * dt
    times = [0.0, dt * (steps // 2), horizon] if steps >= 2 else [0.0, horizon]
    sol = integrate(
        net,
        (y0, z0),
        times,
        method=method,
        dt=dt if first_step else None,
        input_dt=dt if with_inputs else None,
        inputs=u,
        rtol=1e-8,
        atol=1e-10,
        adjoint=adjoint,
    )
    last_velocity = sol.velocity[-1]
    weights = torch.linspace(-1.0, 1.0, last_velocity.numel()).reshape(last_velocity.shape)
    loss = (sol.position**2).sum() + (last_velocity * weights).sum()
    leaves = [y0, z0, *net.parameters()] + ([u] if u is not None else [])
    return loss, leaves, sol


def _gradients(adjoint: object, *args, **kwargs):
    loss, leaves, sol = _loss_and_leaves(adjoint, *args, **kwargs)
    return torch.autograd.grad(loss, leaves), sol


def _relative(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).norm() / b.norm().clamp_min(1e-300))


@settings(deadline=None, max_examples=12)
@given(
    method=st.sampled_from(["rk4", "euler", "midpoint", "imex", "dopri5"]),
    steps=st.integers(1, 48),
    grid=st.sampled_from([(5,), (4, 3), (3, 5)]),
    channels=st.integers(1, 2),
    with_inputs=st.booleans(),
    seed=st.integers(0, 50),
)
def test_checkpoint_gradients_equal_direct_backpropagation(
    method: str,
    steps: int,
    grid: tuple[int, ...],
    channels: int,
    with_inputs: bool,
    seed: int,
) -> None:
    if method == "dopri5" and with_inputs:
        # Zero-order-hold inputs jump at every sample: dopri5 restarts there, hundreds of
        # steps per unit time. test_adaptive_with_inputs covers that case on a short run.
        with_inputs = False
    direct, _ = _gradients(False, method, steps, grid, channels, with_inputs, seed)
    checkpointed, sol = _gradients("checkpoint", method, steps, grid, channels, with_inputs, seed)
    assert sol.stats.checkpoints is not None and sol.stats.checkpoints >= 1
    for a, b in zip(checkpointed, direct, strict=True):
        assert _relative(a, b) < EXACT


@pytest.mark.slow
def test_checkpoint_equals_direct_at_1600_steps() -> None:
    # The horizon: 1,600 rk4 steps of dt 0.05 on an unstable network (default
    # random kernels), where backsolve is far off.
    direct, _ = _gradients(False, "rk4", 1600, (4, 4), 1, False)
    checkpointed, sol = _gradients("checkpoint", "rk4", 1600, (4, 4), 1, False)
    # √1600 = 40 states kept
    assert sol.stats.checkpoints == 40
    for a, b in zip(checkpointed, direct, strict=True):
        assert _relative(a, b) < EXACT


def test_true_means_checkpoint_and_matches_direct() -> None:
    # Without dt, torchdiffeq selects the first step from f(t0, y0), with a graph that the
    # step times carry: the checkpointed pass differentiates them as direct backprop does.
    direct, _ = _gradients(False, "dopri5", 40, (4,), 1, False, first_step=False)
    default, sol = _gradients(True, "dopri5", 40, (4,), 1, False, first_step=False)
    assert sol.options["adjoint"] == "checkpoint"
    for a, b in zip(default, direct, strict=True):
        assert _relative(a, b) < EXACT


@pytest.mark.parametrize("method", ["dopri5", "bosh3"])
def test_adaptive_with_inputs(method: str) -> None:
    # Jumps of the input (forced step ends), rejections and dense output all replayed.
    direct, _ = _gradients(False, method, 6, (3,), 1, True)
    replayed, sol = _gradients("checkpoint", method, 6, (3,), 1, True)
    assert sol.stats.backward_rejected_steps == sol.stats.rejected_steps
    for a, b in zip(replayed, direct, strict=True):
        assert _relative(a, b) < EXACT


@pytest.mark.parametrize("method", ["explicit_adams", "implicit_adams"])
def test_adams_methods(method: str) -> None:
    # The derivative history is part of each checkpoint. Adams–Bashforth runs here up to
    # order 12, whose weights are large and alternate in sign: the order in which autograd
    # sums the segments' contributions shows at ~1e-11, so 1e-9 is the bound here.
    direct, _ = _gradients(False, method, 40, (4, 3), 2, False, 1)
    checkpointed, _ = _gradients("checkpoint", method, 40, (4, 3), 2, False, 1)
    for a, b in zip(checkpointed, direct, strict=True):
        assert _relative(a, b) < 1e-9


@pytest.mark.parametrize("method", ["rk4", "imex", "midpoint"])
def test_gradcheck_checkpoint(method: str) -> None:
    torch.manual_seed(1)
    net = OscillatorNetwork((3,), 1, bias=0.1, input_size=2, seed=1)
    y0 = torch.randn(1, 1, 3, requires_grad=True)
    z0 = torch.randn(1, 1, 3, requires_grad=True)
    u = torch.randn(8, 1, 2, requires_grad=True)
    weight = net.position_coupling.weight

    def run(y0, z0, u, weight):
        sol = integrate(
            net,
            (y0, z0),
            [0.0, 0.2, 0.35],
            method=method,
            dt=0.05,
            inputs=u,
            adjoint="checkpoint",
        )
        return sol.position, sol.velocity

    # Central differences in float64 (gradcheck's eps 1e-6): agreement to ~1e-7 expected.
    assert torch.autograd.gradcheck(run, (y0, z0, u, weight), atol=1e-6, rtol=1e-5)


def _unstable(steps: int):
    # Default random kernels on an 8×8 torus have growing modes: the state grows from
    # 0.1 to about 5 over 400 rk4 steps of 0.05.
    net = OscillatorNetwork((8, 8), 1, bias=0.1, seed=0)
    torch.manual_seed(0)
    y0, z0 = 0.1 * torch.randn(2, 1, 8, 8), 0.1 * torch.randn(2, 1, 8, 8)
    return net, (y0, z0), [0.0, steps * 0.05]


def test_backsolve_diagnostic_fires_on_an_unstable_network() -> None:
    net, state0, times = _unstable(400)
    sol = integrate(net, state0, times, method="rk4", dt=0.05, adjoint="backsolve")
    loss = (sol.position[-1] ** 2).sum()
    assert sol.stats.backsolve_reconstruction_error is None
    with pytest.warns(OscsimWarning, match="adjoint='checkpoint'"):
        backsolve = torch.autograd.grad(loss, list(net.parameters()))
    assert sol.stats.backsolve_reconstruction_error > sol.stats.backsolve_tolerance
    # ... and its gradient is indeed wrong, unlike the checkpointed one.
    direct_sol = integrate(net, state0, times, method="rk4", dt=0.05)
    direct = torch.autograd.grad((direct_sol.position[-1] ** 2).sum(), list(net.parameters()))
    assert max(_relative(a, b) for a, b in zip(backsolve, direct, strict=True)) > 1e-3


def test_backsolve_diagnostic_quiet_on_a_damped_network() -> None:
    net = OscillatorNetwork((6, 6), 1, bias=0.1, epsilon=0.3, activation="identity", seed=2)
    with torch.no_grad():
        net.position_coupling.weight.mul_(0.1)
        net.velocity_coupling.weight.mul_(0.1)
    torch.manual_seed(0)
    y0 = torch.randn(2, 1, 6, 6, requires_grad=True)
    z0 = torch.randn(2, 1, 6, 6)
    sol = integrate(net, (y0, z0), [0.0, 1.0, 2.0], method="rk4", dt=0.05, adjoint="backsolve")
    # OscsimWarning is an error in the test suite: a warning here fails the test.
    grads = torch.autograd.grad((sol.position**2).sum(), [y0, *net.parameters()])
    error = sol.stats.backsolve_reconstruction_error
    assert error is not None and error < sol.stats.backsolve_tolerance
    direct_sol = integrate(net, (y0, z0), [0.0, 1.0, 2.0], method="rk4", dt=0.05)
    direct = torch.autograd.grad((direct_sol.position**2).sum(), [y0, *net.parameters()])
    for a, b in zip(grads, direct, strict=True):
        assert _relative(a, b) < 1e-6


def test_statistics_of_known_runs() -> None:
    net = _network((4,), 1)
    y0, z0 = torch.randn(2, 1, 4, requires_grad=True), torch.randn(2, 1, 4)
    times = [0.0, 0.5, 1.0]  # 20 steps of 0.05
    direct = integrate(net, (y0, z0), times, method="rk4", dt=0.05)
    assert (direct.stats.function_evaluations, direct.stats.accepted_steps) == (80, 20)
    assert direct.stats.rejected_steps == 0
    direct.position.sum().backward()
    assert direct.stats.backward_function_evaluations is None  # autograd replays the graph

    ckpt = integrate(net, (y0, z0), times, method="rk4", dt=0.05, adjoint="checkpoint")
    assert ckpt.stats.backward_function_evaluations is None
    ckpt.position.sum().backward()
    # the backward pass recomputes every step once
    assert (ckpt.stats.backward_function_evaluations, ckpt.stats.backward_accepted_steps) == (
        80,
        20,
    )
    # ⌈√20⌉ = 5 steps per segment: the initial state, then the states after 5, 10, 15 steps
    assert ckpt.stats.checkpoints == 4

    imex = integrate(net, (y0, z0), times, method="imex", dt=0.05)
    assert (imex.stats.function_evaluations, imex.stats.accepted_steps) == (20, 20)

    back = integrate(net, (y0, z0), times, method="rk4", dt=0.05, adjoint="backsolve")
    back.position.sum().backward()
    # the adjoint solve steps the same grid backwards over both intervals: 20 rk4 steps
    assert (back.stats.backward_accepted_steps, back.stats.backward_function_evaluations) == (
        20,
        80,
    )

    adaptive = integrate(net, (y0, z0), times, method="dopri5", dt=0.05, rtol=1e-9, atol=1e-11)
    s = adaptive.stats
    # dopri5 (FSAL): six evaluations per attempted step, plus f(t0, y0); with dt given as
    # the first step, no evaluation selects one.
    assert s.accepted_steps > 0
    assert s.function_evaluations == 1 + 6 * (s.accepted_steps + s.rejected_steps)


def test_adaptive_statistics_count_rejections() -> None:
    net = _network((4,), 1)
    y0, z0 = torch.randn(2, 1, 4), torch.randn(2, 1, 4)
    # a first step far too large for rtol 1e-10 must be rejected
    sol = integrate(net, (y0, z0), [0.0, 1.0], method="dopri5", dt=1.0, rtol=1e-10, atol=1e-12)
    assert sol.stats.rejected_steps >= 1


@pytest.mark.parametrize("bad", ["adjoint", "Checkpoint", 1, None, "direct"])
def test_bad_adjoint_values_are_refused(bad: object) -> None:
    net = _network((4,), 1)
    state = (torch.zeros(1, 1, 4), torch.zeros(1, 1, 4))
    with pytest.raises(OscsimInputError, match="'backsolve' or 'checkpoint'"):
        integrate(net, state, [0.0, 1.0], method="rk4", dt=0.1, adjoint=bad)  # type: ignore[arg-type]


def test_unsupported_adjoint_combinations_are_refused() -> None:
    net = _network((4,), 1)
    state = (torch.zeros(1, 1, 4), torch.zeros(1, 1, 4))
    with pytest.raises(OscsimInputError, match="imex"):
        integrate(net, state, [0.0, 1.0], method="imex", dt=0.1, adjoint="backsolve")
    with pytest.raises(OscsimInputError, match="Module"):
        integrate(lambda t, y: -y, torch.ones(1, 2), [0.0, 1.0], adjoint="checkpoint")
    with pytest.raises(OscsimInputError, match="scipy_solver"):
        integrate(net, state, [0.0, 1.0], method="scipy_solver", adjoint="checkpoint")


def test_checkpoint_any_module_field() -> None:
    field = decay_field(0.7)
    sol = integrate(
        field,
        torch.ones(1, 1),
        [0.0, 2.0],
        method="dopri5",
        rtol=1e-10,
        atol=1e-12,
        adjoint="checkpoint",
    )
    (grad,) = torch.autograd.grad(sol.states[0][-1].sum(), [field.rate])
    # y(2) = exp(-2·rate): d/d rate = -2·exp(-1.4)
    assert abs(float(grad) - (-2.0 * torch.exp(torch.tensor(-1.4)).item())) < 1e-8


@pytest.mark.parametrize("method", ["dopri5", "bosh3", "rk4"])
def test_progress_bar_ends_cleanly(method: str, capsys: pytest.CaptureFixture[str]) -> None:
    net = _network((4,), 1)
    state = (torch.randn(1, 1, 4), torch.randn(1, 1, 4))
    with warnings.catch_warnings():
        warnings.simplefilter("error", TqdmWarning)
        integrate(net, state, [0.0, 0.7, 1.3], method=method, dt=0.1, progress=True)
    err = capsys.readouterr().err
    # the last rendering of the bar shows the end time reached, and nothing beyond it
    assert "t=1.3/1.3" in err.split("\r")[-1] or "t=1.3/1.3" in err.splitlines()[-1]
    assert "clamping" not in err


@pytest.mark.parametrize("adjoint", [False, "checkpoint", "backsolve"])
def test_solution_is_freed_after_backward(adjoint: object) -> None:
    # Hooks and saved solver state must not form reference cycles through autograd nodes
    # (which Python's collector cannot see): a training loop would keep every step alive.
    import gc
    import weakref

    net = _network((4,), 1)
    y0 = torch.randn(1, 1, 4, requires_grad=True)
    sol = integrate(
        net, (y0, torch.zeros(1, 1, 4)), [0.0, 0.5], method="rk4", dt=0.05, adjoint=adjoint
    )
    alive = weakref.ref(sol.position)
    (sol.position[-1] ** 2).sum().backward()
    del sol
    gc.collect()
    assert alive() is None
