"""The reference preset against the published recurrence, and the import of published weights.

The published models are re-stated here from their documented layout: state-dict names and
shapes (``cell.Wx``, ``cell.Wy``, ``cell.Wz``, ``cell.i2h``, ``readout``) and the coRNN
``imex`` step, one time step per loop iteration in float64. The product computes with the
fused kernel; agreement within float64 rounding (1e-10 on outputs of order 1 after up to
40 steps) shows the same arithmetic, parameter for parameter.
"""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from oscsim.models.reference import (
    PUBLISHED_LAYOUTS,
    ReferenceSequenceModel,
    load_published_state,
)
from oscsim.models.runs import model_from_checkpoint
from oscsim.models.sequence import build_sequence_model, count_parameters, count_weights

from oscsim import ImexField, imex_sequence
from oscsim.cli import main
from oscsim.errors import OscsimInputError
from oscsim.fused.drive import map_inputs

DT, GAMMA, EPSILON = 0.076, 0.4, 8.0


def published_state(kind: str, inputs: int, outputs: int, hidden: int, *, seed: int = 0):
    """A state dict in the published layout with random values (float64)."""
    gen = torch.Generator().manual_seed(seed)
    side = math.isqrt(hidden)
    n = side * side if kind in ("nwm2d", "nwm1d") else hidden

    def r(*shape: int) -> torch.Tensor:
        return torch.rand(*shape, generator=gen, dtype=torch.float64) * 2 - 1

    if kind == "cornn":
        return {
            "cell.i2h.weight": r(n, inputs + 2 * n) / math.sqrt(n),
            "cell.i2h.bias": r(n),
            "readout.weight": r(outputs, n),
            "readout.bias": r(outputs),
        }
    kernel = (3, 3) if kind == "nwm2d" else (1, 3)
    return {
        "cell.Wx.weight": r(n, inputs),
        "cell.Wx.bias": r(n),
        "cell.Wz.weight": r(1, 1, *kernel),
        "cell.Wz.bias": r(1),
        "cell.Wy.weight": r(1, 1, *kernel),
        "cell.Wy.bias": r(1),
        "readout.weight": r(outputs, n),
        "readout.bias": r(outputs),
    }


def published_forward(
    kind: str,
    state: dict,
    x: torch.Tensor,
    coefficients: tuple[float, float, float] = (DT, GAMMA, EPSILON),
) -> torch.Tensor:
    """The published recurrence, step by step: ``x`` (T, B, F) → (B, outputs)."""
    dt, gamma, epsilon = coefficients
    n = state["readout.weight"].shape[1]
    side = math.isqrt(n)
    hy = x.new_zeros(x.shape[1], n)
    hz = x.new_zeros(x.shape[1], n)

    def conv(name: str, h: torch.Tensor) -> torch.Tensor:
        w = state[f"cell.{name}.weight"]
        pad = (w.shape[-1] // 2,) * 2 + (w.shape[-2] // 2,) * 2
        grid = F.pad(h.view(-1, 1, side, side), pad, mode="circular")
        return F.conv2d(grid, w, state[f"cell.{name}.bias"]).flatten(1)

    for t in range(x.shape[0]):
        if kind == "cornn":
            pre = F.linear(
                torch.cat((x[t], hz, hy), 1), state["cell.i2h.weight"], state["cell.i2h.bias"]
            )
        else:
            pre = F.linear(x[t], state["cell.Wx.weight"], state["cell.Wx.bias"])
            if kind == "uncoupled":
                pre = pre + hz + hy
            else:
                pre = pre + conv("Wz", hz) + conv("Wy", hy)
        hz = hz + dt * (torch.tanh(pre) - gamma * hy - epsilon * hz)
        hy = hy + dt * hz
    return F.linear(hy, state["readout.weight"], state["readout.bias"])


def reference_model(kind: str, inputs: int, outputs: int, hidden: int) -> ReferenceSequenceModel:
    return ReferenceSequenceModel(
        kind, inputs, outputs, hidden=hidden, dt=DT, gamma=GAMMA, epsilon=EPSILON
    ).double()


@pytest.mark.parametrize(
    ("kind", "inputs", "hidden"),
    [("nwm2d", 1, 256), ("nwm1d", 1, 256), ("cornn", 2, 64), ("nwm2d", 2, 121), ("nwm1d", 3, 49)],
)
def test_reference_models_compute_the_published_recurrence(
    kind: str, inputs: int, hidden: int
) -> None:
    state = published_state(kind, inputs, 10, hidden)
    model = reference_model(kind, inputs, 10, hidden)
    load_published_state(model, state)
    x = torch.rand(3, 40, inputs, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    expected = published_forward(kind, state, x.transpose(0, 1))
    torch.testing.assert_close(model(x), expected, rtol=0, atol=1e-10)


def test_uncoupled_keeps_a_fixed_self_feedback_inside_the_tanh() -> None:
    state = published_state("nwm2d", 1, 10, 16)
    state = {k: v for k, v in state.items() if k.startswith(("cell.Wx", "readout"))}
    model = reference_model("uncoupled", 1, 10, 16)
    load_published_state(model, state)
    x = torch.rand(2, 30, 1, dtype=torch.float64)
    torch.testing.assert_close(
        model(x), published_forward("uncoupled", state, x.transpose(0, 1)), rtol=0, atol=1e-10
    )
    assert {name for name, _ in model.named_parameters()} == {
        "input_map.weight",
        "input_map.bias",
        "readout.weight",
        "readout.bias",
    }


def test_gradients_reach_every_published_parameter() -> None:
    # The fused kernel's adjoint against autograd through the step-by-step recurrence.
    for kind in ("nwm2d", "nwm1d", "cornn"):
        state = published_state(kind, 1, 10, 16 if kind != "cornn" else 12)
        model = reference_model(kind, 1, 10, 16 if kind != "cornn" else 12)
        load_published_state(model, state)
        x = torch.rand(2, 20, 1, dtype=torch.float64)
        model(x).square().sum().backward()
        leaves = {k: v.clone().requires_grad_(True) for k, v in state.items()}
        published_forward(kind, leaves, x.transpose(0, 1)).square().sum().backward()
        params = dict(model.named_parameters())
        for key, target in PUBLISHED_LAYOUTS[kind].items():
            torch.testing.assert_close(params[target].grad, leaves[key].grad, rtol=1e-9, atol=1e-12)


def test_parameter_counts_match_the_published_models() -> None:
    counts = {}
    for kind in ("nwm2d", "nwm1d", "uncoupled", "cornn"):
        model = build_sequence_model(kind, 1, 10, dt=DT, gamma=GAMMA, epsilon=EPSILON)
        counts[kind] = (count_parameters(model), count_weights(model))
    # NWM-2D: 256·2 (input map) + 2·(9 + 1) (kernels) + 2570 (readout); weights only 2,834,
    # the paper's "2.8k". coRNN: 256·(1 + 512) + 256 + 2570 = 134,154 ("134k").
    assert counts == {
        "nwm2d": (3102, 2834),
        "nwm1d": (3090, 2822),
        "uncoupled": (3082, 2816),
        "cornn": (134154, 133888),
    }
    adding = build_sequence_model("nwm2d", 2, 1, dt=DT, gamma=GAMMA, epsilon=EPSILON)
    # The adding model of the paper's table: 1,045 trained, 786 weights.
    assert (count_parameters(adding), count_weights(adding)) == (1045, 786)


def test_default_initialisation_is_pytorchs() -> None:
    model = build_sequence_model("nwm2d", 1, 10, dt=DT, gamma=GAMMA, epsilon=EPSILON)
    bounds = {
        "input_map": 1.0,
        "velocity_kernel": 1 / 3,
        "position_kernel": 1 / 3,
        "readout": 1 / 16,
    }
    for name, bound in bounds.items():
        module = getattr(model, name)
        for tensor in (module.weight.detach(), module.bias.detach()):
            assert float(tensor.abs().max()) <= bound
            if tensor.numel() >= 9:
                # Uniform on ±bound: with 9 draws or more the largest passes bound/2 but
                # with probability 2⁻⁹ (the seed is fixed, so the test is deterministic).
                assert float(tensor.abs().max()) > 0.5 * bound


def test_a_state_dict_of_another_layout_is_refused_naming_the_keys() -> None:
    model = reference_model("nwm2d", 1, 10, 256)
    state = published_state("nwm2d", 1, 10, 256)
    state["cell.extra"] = state.pop("cell.Wz.bias")
    with pytest.raises(
        OscsimInputError, match=r"missing keys \['cell.Wz.bias'\].*unexpected keys \['cell.extra'\]"
    ):
        load_published_state(model, state)
    wrong = published_state("nwm2d", 1, 10, 121)
    with pytest.raises(OscsimInputError, match="cell.Wx.weight has shape"):
        load_published_state(model, wrong)


# ----------------------------------------------------------------------------------------
# oscsim import-reference


def _published_file(tmp_path: Path, kind: str, inputs: int, outputs: int, hidden: int) -> Path:
    # As the published code holds it: float32 tensors, PyTorch's default scale (±1/sqrt(fan_in)).
    state = published_state(kind, inputs, outputs, hidden, seed=5)
    fan_in = {"cell.Wx.weight": inputs, "cell.i2h.weight": inputs + 2 * hidden}
    scaled = {}
    for key, value in state.items():
        fan = fan_in.get(key, value.shape[-1] if value.dim() > 1 else 9)
        scaled[key] = (value / math.sqrt(fan)).float()
    path = tmp_path / f"{kind}.pt"
    torch.save(scaled, path)
    return path


@pytest.mark.parametrize(
    ("task", "kind", "hidden", "inputs", "outputs", "steps"),
    [
        ("psmnist", "nwm2d", 256, 1, 10, 784),
        ("smnist", "nwm1d", 256, 1, 10, 784),
        ("adding", "cornn", 128, 2, 1, 500),
    ],
)
def test_import_reference_gives_the_published_outputs_in_float32(
    tmp_path: Path, capsys, task: str, kind: str, hidden: int, inputs: int, outputs: int, steps: int
) -> None:
    source = _published_file(tmp_path, kind, inputs, outputs, hidden)
    checkpoint = tmp_path / "imported.pt"
    args = ["import-reference", str(source), "--task", task, "--model", kind]
    assert main([*args, "--out", str(checkpoint)]) == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([source.name, checkpoint.name])
    run, _, model, _ = model_from_checkpoint(checkpoint)
    assert run.model_options["preset"] == "reference"
    x = torch.rand(
        4, steps, inputs, generator=torch.Generator().manual_seed(2), dtype=torch.float32
    )
    state64 = {k: v.double() for k, v in torch.load(source, weights_only=True).items()}
    # The task's published dt, γ, ε (PAPER.md's table).
    coefficients = {"psmnist": (0.076, 0.4, 8.0), "smnist": (0.042, 2.7, 4.7)}.get(
        task, (0.016, 94.5, 9.5)
    )
    expected = published_forward(kind, state64, x.double().transpose(0, 1), coefficients)
    with torch.no_grad():
        got = model(x)
    assert got.dtype == torch.float32 and got.shape == (4, outputs)
    # float32 against the float64 recurrence: rounding of order 1e-7 per step, damped by the
    # oscillators, stays below 1e-5 over 784 steps (measured: about 1e-6).
    error = float((got.double() - expected).abs().max())
    print(f"{task}/{kind}: max |float32 import − float64 published| = {error:.2e}")
    assert error < 1e-5
    assert main(["evaluate", str(checkpoint), "--limit", "20"]) == 0
    assert '"accuracy"' in capsys.readouterr().out or task == "adding"


def test_import_reference_refuses_another_layout_and_unsafe_files(tmp_path: Path, capsys) -> None:
    source = _published_file(tmp_path, "nwm2d", 2, 1, 256)
    out = tmp_path / "out.pt"
    base = ["import-reference", "--task", "adding", "--out", str(out)]
    # An NWM-2D file read as a coRNN: the keys name what is missing and what is not expected.
    assert main([*base[:1], str(source), *base[1:], "--model", "cornn"]) == 2
    err = capsys.readouterr().err
    assert "missing keys ['cell.i2h.bias', 'cell.i2h.weight']" in err
    assert "unexpected keys ['cell.Wx.bias'" in err
    # A file that would run code when unpickled is never unpickled.
    unsafe = tmp_path / "unsafe.pt"
    torch.save({"readout.weight": torch.zeros(1, 256), "extra": Path("x")}, unsafe)
    assert main([*base[:1], str(unsafe), *base[1:], "--model", "nwm2d"]) == 2
    assert "not a tensors-only torch file" in capsys.readouterr().err
    assert not out.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["nwm2d.pt", "unsafe.pt"]
    # An existing --out is never overwritten.
    out.write_text("keep")
    assert main([*base[:1], str(source), *base[1:], "--model", "nwm2d"]) == 2
    assert "already exists" in capsys.readouterr().err
    assert out.read_text() == "keep"


@pytest.mark.parametrize(("kind", "hidden"), [("nwm2d", 64), ("nwm1d", 64), ("cornn", 32)])
def test_the_torch_backend_that_gpus_run_gives_the_published_outputs_too(
    kind: str, hidden: int
) -> None:
    # On CPU the fused kernel is Numba's; a GPU runs the torch backend on the same arguments.
    state = published_state(kind, 1, 10, hidden)
    model = reference_model(kind, 1, 10, hidden)
    load_published_state(model, state)
    x = torch.rand(3, 30, 1, dtype=torch.float64)
    coupling, k_y, k_z, bias = model.coupling()
    drive = map_inputs(x.transpose(0, 1), model._input_weight()).reshape(30, 3, 1, *model.grid)
    rest = drive.new_zeros(drive.shape[1:])
    field = ImexField(coupling, k_y, k_z, bias, model.gamma, model.epsilon)
    position, _ = imex_sequence(field, drive, rest, rest, model.dt, backend="torch")
    got = model.readout(position.flatten(1)).detach()
    torch.testing.assert_close(
        got, published_forward(kind, state, x.transpose(0, 1)), rtol=0, atol=1e-10
    )
