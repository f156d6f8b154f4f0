"""Reliability of runs: checkpoints that cannot run code, exact resume, divergence caught.

The bad-input campaign is ``tests/test_reliability.py``; signals and kills are in
``tests/test_reliability_signals.py``.
"""

from __future__ import annotations

import json
import random
import shutil
import time
import warnings
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import torch
from oscsim.models import load_model
from oscsim.models.checkpoint import LAST, CheckpointError, load_checkpoint, save_checkpoint
from oscsim.models.runs import build_run
from oscsim.models.training import RunConfig, Trainer
from torch import nn

from oscsim import (
    IntegrationError,
    NetworkParameters,
    OscillatorNetwork,
    OscsimInputError,
    OscsimWarning,
    integrate,
)
from oscsim.cli import main
from oscsim.reference import solve
from oscsim.stability import amplification, check_step_stability, mode_matrices
from tests.helpers import adding_config
from tests.reliability_files import GOOD_CONFIG, malicious_pickle, malicious_torch_save

# ---------------------------------------------------------------------------------------
# checkpoints


def _undamped_ring(**kernels: np.ndarray) -> NetworkParameters:
    """Six linear oscillators on a ring, no damping or drive, coupled by the given kernels."""
    return NetworkParameters.random(
        [6], coupling="local", gamma=0.0, epsilon=0.0, activation="identity", **kernels
    )


def _tiny_run(out: Path, **changes) -> RunConfig:
    settings = dict(seed=1, batch_size=8, lr=0.01, seq_len=12, limit_eval=16, log_every=10)
    return adding_config(out, hidden=9, checkpoint_every=15, **{**settings, **changes})


def test_a_checkpoint_round_trips_every_kind_of_value(tmp_path: Path) -> None:
    state = {
        "run": {"task": "adding"},
        "model_state": {"w": torch.arange(6.0).reshape(2, 3), "step": torch.tensor(3.0)},
        "tuple": (1, 2.5, "x", None, True),
        "counter": Counter({30: 1, 60: 2}),
        "int_keys": {0: {"exp_avg": torch.ones(2)}, 1: [torch.zeros(1, dtype=torch.int64)]},
        "marker_key": {"__tensor__": "not a tensor"},
        "array": np.arange(4, dtype=np.uint32),
        "scalar": np.float64(0.25),
        "floats": [float("inf"), -0.0, 1e-300],
    }
    shared = torch.ones(3)
    state["model_state"]["tied_a"] = shared
    state["model_state"]["tied_b"] = shared  # shared memory: stored as two copies
    back = load_checkpoint(save_checkpoint(state, tmp_path / "c.safetensors"))
    assert torch.equal(back["model_state"]["w"], state["model_state"]["w"])
    assert back["model_state"]["step"].shape == ()
    assert back["tuple"] == state["tuple"] and isinstance(back["tuple"], tuple)
    assert back["counter"] == state["counter"] and isinstance(back["counter"], Counter)
    assert set(back["int_keys"]) == {0, 1}
    assert back["int_keys"][1][0].dtype == torch.int64
    assert back["marker_key"] == {"__tensor__": "not a tensor"}
    assert back["array"].dtype == np.uint32 and back["array"].tolist() == [0, 1, 2, 3]
    assert back["scalar"] == 0.25
    assert back["floats"][0] == float("inf") and back["floats"][2] == 1e-300
    assert torch.equal(back["model_state"]["tied_a"], back["model_state"]["tied_b"])
    with pytest.raises(TypeError, match="checkpoint entry state.bad is a object"):
        save_checkpoint({"bad": object()}, tmp_path / "d.safetensors")
    assert not (tmp_path / "d.safetensors").exists()


@pytest.mark.parametrize("make", [malicious_pickle, malicious_torch_save])
def test_a_malicious_pickle_is_never_executed(make, tmp_path: Path, capsys) -> None:
    """Neither ``evaluate`` nor ``train --resume`` runs the payload; both exit 2."""
    marker = tmp_path / "marker"
    payload = make(tmp_path / "model.pt", marker)
    # A control: the payload really does create the marker when unpickled.
    control = tmp_path / "control"
    import pickle

    if make is malicious_pickle:
        pickle.loads(malicious_pickle(tmp_path / "c.pt", control).read_bytes())
    else:
        torch.load(malicious_torch_save(tmp_path / "c.pt", control), weights_only=False)
    assert control.exists()
    assert main(["evaluate", str(payload)]) == 2
    assert "pickle-based file" in capsys.readouterr().err
    for name in (LAST, "last.pt"):
        run = tmp_path / f"run-{name}"
        run.mkdir()
        shutil.copy(payload, run / name)
        assert main(["train", "adding", "--resume", "--out", str(run)]) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and ("pickle" in err), err
    with pytest.raises(CheckpointError):
        load_model(payload)
    assert not marker.exists()


def test_load_model_returns_the_trained_weights(tmp_path: Path) -> None:
    run = _tiny_run(tmp_path / "run", max_steps=3)
    task, model = build_run(run)
    trainer = Trainer(run, task, model)
    trainer.fit()
    loaded = load_model(tmp_path / "run" / LAST)
    assert not loaded.training
    for (name, a), b in zip(
        trainer.model.state_dict().items(), loaded.state_dict().values(), strict=True
    ):
        assert torch.equal(a, b), name
    x, _ = task.train_batch(0, 0, 4)
    x = x.to(torch.float32)
    torch.testing.assert_close(loaded(x), trainer.model.eval()(x), rtol=0, atol=0)


class _ConsumesEveryGenerator(nn.Module):
    """Draws from the NumPy and Python generators on every forward pass (like a data
    augmentation would), so their states after a run depend on every step taken."""

    def __init__(self, inner: nn.Module) -> None:
        super().__init__()
        self.inner = inner

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        np.random.random_sample(3)
        random.random()
        return self.inner(x)


def _train(run: RunConfig, *, resume: bool = False, crash_at: int | None = None) -> Trainer:
    task, model = build_run(run)

    def crash(step: int) -> None:
        if crash_at is not None and step >= crash_at:
            raise KeyboardInterrupt  # a kill right after the checkpoint at this step

    trainer = Trainer(run, task, _ConsumesEveryGenerator(model), on_checkpoint=crash)
    trainer.fit(resume=resume)
    return trainer


def _rows(history: list[dict]) -> list[dict]:
    return [{k: v for k, v in row.items() if k != "seconds_per_step"} for row in history]


def test_resume_is_exact_in_weights_history_and_every_generator(tmp_path: Path) -> None:
    """Checkpoints at 15 and 30 fall inside the logging intervals (rows at 10, 20, 30): the
    first row after the resume must still average steps 11–20, as without the break."""
    total = 35
    straight = _train(_tiny_run(tmp_path / "straight", max_steps=total))
    broken = _tiny_run(tmp_path / "resumed", max_steps=total)
    with pytest.raises(KeyboardInterrupt):
        _train(broken, crash_at=15)
    # Other generator draws between the kill and the resume must not matter.
    np.random.seed(12345)
    random.seed(12345)
    torch.manual_seed(12345)
    resumed = _train(broken, resume=True)
    assert resumed.step == straight.step == total
    assert _rows(resumed.history) == _rows(straight.history)
    train_rows = [r for r in resumed.history if r["split"] == "train"]
    assert [r["step"] for r in train_rows] == [10, 20, 30]
    for (name, a), b in zip(
        straight.model.state_dict().items(), resumed.model.state_dict().values(), strict=True
    ):
        assert torch.equal(a, b), name
    final_straight = load_checkpoint(tmp_path / "straight" / LAST)
    final_resumed = load_checkpoint(tmp_path / "resumed" / LAST)
    for key in ("numpy", "python"):
        a, b = final_straight["rng"][key], final_resumed["rng"][key]
        assert json.dumps(a, default=lambda v: v.tolist()) == json.dumps(
            b, default=lambda v: v.tolist()
        ), key
    assert torch.equal(final_straight["rng"]["torch"], final_resumed["rng"]["torch"])
    # The generators really were drawn from (the comparison above is not vacuous).
    np.random.seed(1)
    assert not np.array_equal(final_straight["rng"]["numpy"][1], np.random.get_state()[1])


def test_a_diverging_loss_names_only_a_checkpoint_that_exists(tmp_path: Path) -> None:
    from oscsim.models.training import TrainingDivergedError

    run = _tiny_run(tmp_path / "nan", max_steps=5, model_options={"hidden": 9, "dt": 30.0})
    with pytest.raises(TrainingDivergedError, match="no checkpoint was written before it"):
        _train(run)


# ---------------------------------------------------------------------------------------
# divergence


def _growing_network(dtype=torch.float64) -> OscillatorNetwork:
    # Identity activation with a strong positive kernel: the k = 0 mode grows like
    # exp(sqrt(3000)·t) ≈ 10^24 per time unit. A true blow-up, finite at every step.
    return OscillatorNetwork(
        (6,),
        1,
        activation="identity",
        gamma=0.0,
        epsilon=0.0,
        kernel_position=np.full((1, 1, 3), 1e3),
    ).to(dtype)


@pytest.mark.parametrize(
    ("method", "dt"),
    [("euler", 1e-3), ("rk4", 1e-3), ("midpoint", 1e-3), ("imex", 1e-3), ("dopri5", None)],
)
def test_a_blow_up_stops_at_the_time_it_passes_the_bound(method: str, dt) -> None:
    net = _growing_network()
    y0 = torch.full((1, 1, 6), 0.5)
    times = np.linspace(0.0, 10.0, 11)
    with pytest.raises(IntegrationError) as caught:
        integrate(net, (y0, torch.zeros_like(y0)), times, method=method, dt=dt, max_state=1e6)
    message = str(caught.value)
    assert "past the bound 1e+06" in message
    # A fixed step may be the cause; an adaptive method's step is not: the network grows.
    assert ("network itself grows" if method == "dopri5" else "reduce dt") in message
    # The k = 0 mode: y = 0.5·cosh(w·t), z = 0.5·w·sinh(w·t) with w = sqrt(3000); the
    # velocity passes 1e6 first, at t = asinh(2e6/w)/w ≈ 0.2045.
    reported = float(message.split("model time t = ")[1].split(";")[0])
    w = np.sqrt(3000.0)
    expected = np.arcsinh(2e6 / w) / w
    # Output frames are 1 apart but the guard sees every step: the time is to within a step
    # (dopri5: its steps near there are under 0.05).
    assert abs(reported - expected) < 0.05, reported


@pytest.mark.parametrize("method", ["euler", "rk4", "imex", "dopri5"])
def test_the_numba_reference_stops_at_the_bound_too(method: str) -> None:
    params = _undamped_ring(kernel_position=np.full((1, 1, 3), 1e3))
    y0 = np.full((1, 1, 6), 0.5)
    times = np.linspace(0.0, 1.0, 101)
    start = time.perf_counter()
    # The velocity passes 1e6 at t ≈ 0.2045 (see above): the first frame after it is 0.21;
    # euler's growth per step, 1 + h·w, is 2.6 % slower than exp(h·w): it passes at 0.21.
    with pytest.raises(IntegrationError, match=r"past the bound .* by model time t = 0\.2[012]"):
        solve(params, y0, 0 * y0, times, method=method, dt=None if method == "dopri5" else 1e-3)
    assert time.perf_counter() - start < 60  # promptly, not after minutes


def test_the_bound_scales_with_the_initial_amplitude_and_can_be_switched_off() -> None:
    net = OscillatorNetwork((4,), 1, activation="identity", gamma=1.0, epsilon=0.0).double()
    y0 = torch.full((1, 1, 4), 1e8)  # a large but harmless oscillation
    times = np.linspace(0.0, 1.0, 11)
    integrate(net, (y0, torch.zeros_like(y0)), times, method="rk4", dt=0.01)
    net = _growing_network()
    small = torch.full((1, 1, 6), 1e-3)
    # At t = 0.4, |y| = 1e-3·cosh(0.4·sqrt(3000)) ≈ 1.6e6: past the default bound 1e6.
    solution = integrate(
        net, (small, torch.zeros_like(small)), [0.0, 0.4], method="rk4", dt=1e-3, max_state=None
    )
    assert float(solution.position.detach().abs().max()) > 1e6


def _simulate(tmp_path: Path, capsys, *sets: str) -> tuple[int, str, Path]:
    config = tmp_path / "c.toml"
    config.write_text(GOOD_CONFIG)
    out = tmp_path / "out.nc"
    argv = ["simulate", str(config), "--out", str(out)]
    for item in sets:
        argv += ["--set", item]
    status = main(argv)
    return status, capsys.readouterr().err, out


GROWING = (
    "network.activation=identity",
    "network.gamma=0",
    "network.epsilon=0",
    "network.kernel_position=[1000.0, 1000.0, 1000.0]",
    "solver.t_end=1",
    "solver.dt=0.001",
    "solver.save_every=100",
)


@pytest.mark.parametrize(
    ("backend", "method"),
    [
        ("torch", "euler"),
        ("torch", "rk4"),
        ("torch", "imex"),
        ("torch", "dopri5"),
        ("numba", "rk4"),
        ("numba", "imex"),
        ("numba", "dopri5"),
    ],
)
def test_simulate_exits_1_at_a_blow_up_and_writes_nothing(
    tmp_path: Path, capsys, backend: str, method: str
) -> None:
    status, err, out = _simulate(
        tmp_path, capsys, *GROWING, f"solver.backend={backend}", f"solver.method={method}"
    )
    assert status == 1, err
    assert err.count("\n") == 1, err
    assert ("network itself grows" if method == "dopri5" else "reduce dt") in err, err
    # Passed at t ≈ 0.2045 (see above); reported then (rk4's later stages look ahead: a
    # step earlier), or at the first saved frame after it (t = 0.3) where only frames are
    # seen (the Numba fixed-step kernels).
    reported = float(err.split("model time t = ")[1].split(";")[0])
    assert 0.19 <= reported <= 0.3
    assert not out.exists()
    assert [p.name for p in tmp_path.iterdir()] == ["c.toml"]


def test_a_step_past_the_stability_limit_is_refused_before_work_or_caught_at_run_time(
    tmp_path: Path, capsys
) -> None:
    """A stiff damped network (γ = 10⁴, so ω = 100): its true solution decays, but euler
    with dt = 0.05 multiplies the fast mode by |1 + 5i| ≈ 5 per step."""
    stiff = ("network.gamma=10000", "solver.method=euler", "solver.t_end=5")
    status, err, out = _simulate(tmp_path, capsys, *stiff)
    assert status == 2 and "outside the stability region of euler" in err, err
    assert "dt <= 0.000" in err  # a stable step is proposed: dt < 2ε/ω² ≈ 2e-5
    status, err, out = _simulate(tmp_path, capsys, *stiff, "solver.stability_check=false")
    assert status == 1 and "model time t =" in err and "reduce dt" in err, err
    assert not out.exists()
    # The same network with a stable method and step runs.
    status, err, out = _simulate(tmp_path, capsys, "network.gamma=10000", "solver.dt=0.01")
    assert status == 0, err
    assert out.exists()


@pytest.mark.parametrize("method", ["euler", "midpoint", "heun3", "rk4", "imex"])
def test_amplification_matches_one_step_of_the_method(method: str) -> None:
    """The stability estimate's R(h·A) is one step of the real solver on the linear network
    (independent check: integrate each Fourier mode's initial state one step)."""
    params = NetworkParameters.random(
        [5], coupling="local", gamma=2.0, epsilon=0.3, activation="identity", rng=3
    )
    h = 0.1
    a = mode_matrices(params)
    r = amplification(method, a, h)
    net = OscillatorNetwork.from_parameters(params, dtype=torch.float64)
    x = np.arange(5)
    for m in range(5):
        wave = np.exp(2j * np.pi * m * x / 5)
        for part in (0, 1):
            state = [np.zeros(5, dtype=complex), np.zeros(5, dtype=complex)]
            state[part] = wave
            stepped = []
            for take in (np.real, np.imag):
                y0 = torch.as_tensor(take(state[0])).reshape(1, 1, 5)
                z0 = torch.as_tensor(take(state[1])).reshape(1, 1, 5)
                sol = integrate(net, (y0, z0), [0.0, h], method=method, dt=h, max_state=None)
                stepped.append(
                    (
                        sol.position[-1].detach().numpy().ravel(),
                        sol.velocity[-1].detach().numpy().ravel(),
                    )
                )
            y1 = stepped[0][0] + 1j * stepped[1][0]
            z1 = stepped[0][1] + 1j * stepped[1][1]
            # The mode stays a mode: its coefficients are the column of R.
            np.testing.assert_allclose(y1, r[m, 0, part] * wave, atol=1e-12)
            np.testing.assert_allclose(z1, r[m, 1, part] * wave, atol=1e-12)


@pytest.mark.parametrize("method", ["euler", "rk4", "imex"])
def test_global_coupling_is_estimated_like_the_same_local_network(method: str) -> None:
    """A dense matrix that is the circulant of a local kernel is the same network: its one
    dense eigenvalue problem must predict the growth the Fourier modes predict."""
    kernel = np.array([[[1.0, -2.5, 1.0]]]) * 40.0
    circulant = np.zeros((12, 12))
    for cell in range(12):
        for offset, weight in zip((-1, 0, 1), kernel.ravel(), strict=True):
            circulant[cell, (cell + offset) % 12] += weight
    # the same damped ring of 12 cells, once as a local kernel and once as its dense matrix
    local, dense = (
        NetworkParameters.random(
            [12],
            coupling=coupling,
            gamma=0.5,
            epsilon=0.05,
            activation="identity",
            kernel_position=position,
            kernel_velocity=np.zeros_like(position),
        )
        for coupling, position in (("local", kernel), ("global", circulant))
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", OscsimWarning)  # near the limit: the value matters
        expected = check_step_stability(local, method, 0.02, 2.0, max_state=1e300)
        got = check_step_stability(dense, method, 0.02, 2.0, max_state=1e300)
    assert expected is not None and got is not None
    assert got == pytest.approx(expected, rel=1e-9)
    with pytest.raises(OscsimInputError, match="outside the stability region"):
        check_step_stability(dense, method, 0.5, 50.0)  # |s|·dt ≈ 6.7: outside all three


def test_a_stable_step_is_accepted_silently() -> None:
    params = NetworkParameters.random([16], coupling="local", gamma=1.0, epsilon=0.1, rng=0)
    assert check_step_stability(params, "rk4", 0.01, 100.0) == pytest.approx(1.0)
    assert check_step_stability(params, "dopri5", 10.0, 100.0) is None  # adaptive: not estimated


def test_evaluate_batch_size_is_honoured_and_does_not_change_the_metrics(
    tmp_path: Path, capsys
) -> None:
    run = _tiny_run(tmp_path / "run", max_steps=2)
    task, model = build_run(run)
    Trainer(run, task, model).fit()
    capsys.readouterr()
    seen: list[int] = []
    original = type(task).eval_batches

    def record(self, split, batch_size):
        seen.append(batch_size)
        return original(self, split, batch_size)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(type(task), "eval_batches", record)
        reports = []
        for extra in ([], ["--batch-size", "3"]):
            assert main(["evaluate", str(tmp_path / "run" / LAST), *extra]) == 0
            reports.append(json.loads(capsys.readouterr().out))
    assert seen == [task.defaults.eval_batch_size, 3]
    assert reports[1]["batch_size"] == 3
    # Sums over items divided by the count: only float32 rounding differs (1e-5 relative).
    assert reports[1]["mse"] == pytest.approx(reports[0]["mse"], rel=1e-5)


def test_a_step_near_the_stability_limit_warns_in_one_line_and_runs(tmp_path: Path, capsys) -> None:
    """euler on an undamped mode (ω² = 1000) grows by (1 + h²ω²)^(1/2) a step: over t_end
    = 10 with h = 1e-3 about e^5 ≈ 148× — above the warning level (100×), below the bound."""
    with pytest.warns(OscsimWarning, match="near the stability limit of euler"):
        params = _undamped_ring(
            kernel_position=np.array([[[0.0, -1000.0, 0.0]]]), kernel_velocity=np.zeros((1, 1, 3))
        )
        growth = check_step_stability(params, "euler", 1e-3, 10.0)
    assert growth == pytest.approx(np.exp(0.5 * np.log1p(1e-3) * 1e4), rel=1e-6)
    with warnings.catch_warnings():
        warnings.simplefilter("default", OscsimWarning)  # shown as a user would see it
        status, err, out = _simulate(
            tmp_path,
            capsys,
            "network.activation=identity",
            "network.gamma=0",
            "network.epsilon=0",
            "network.kernel_position=[0.0, -1000.0, 0.0]",
            "network.kernel_velocity=[0.0, 0.0, 0.0]",
            "solver.method=euler",
            "solver.dt=0.001",
            "solver.t_end=10",
            "solver.save_every=1000",
        )
    assert status == 0, err
    assert err.startswith("oscsim simulate: warning: solver.dt = 0.001 is near the stability")
    assert err.count("\n") == 1
    assert out.exists()


def test_an_adaptive_run_that_fails_names_the_time_at_once() -> None:
    """y' = y², y(0) = 1 has y = 1/(1 − t): it passes 1e6 at t = 1 − 1e-6 and has no
    solution past t = 1. With the bound the run stops there; without it, the step size
    underflows at t = 1 — either way within seconds and naming the time."""
    y0 = torch.ones(1, 1, dtype=torch.float64)
    start = time.perf_counter()
    with pytest.raises(IntegrationError, match=r"past the bound 1e\+06 by model time t = 0\.99999"):
        integrate(lambda t, y: y**2, y0, [0.0, 2.0], method="dopri5")
    with pytest.raises(IntegrationError, match=r"underflowed near model time t = 1 "):
        integrate(lambda t, y: y**2, y0, [0.0, 2.0], method="dopri5", max_state=None)
    assert time.perf_counter() - start < 30
