"""The published rotating-MNIST VAEs: the batched step is the published per-frame loop."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from oscsim.models.rotating import (
    CELLS,
    PublishedRotatingNWM,
    RotatingRecipe,
    _Correlate3x3,
    _GaussianHead,
    build_published_model,
    load_published,
    published_clips,
    published_loop_loss,
    published_split,
    to_frames,
    train_published,
)
from scipy import ndimage

from tests.test_data_mnist import fake_mnist_root  # noqa: F401 - a fixture


@pytest.fixture()
def fake_data(fake_mnist_root: Path, monkeypatch: pytest.MonkeyPatch) -> Path:  # noqa: F811
    monkeypatch.setenv("OSCSIM_DATA", str(fake_mnist_root))
    return fake_mnist_root


def _batch(
    name: str, dtype: torch.dtype, b: int = 3, t: int = 5
) -> tuple[PublishedRotatingNWM, torch.Tensor, torch.Tensor, torch.Tensor]:
    model = build_published_model(name, seed=1).to(dtype)
    # Away from the initial values, so that every parameter carries its own gradient.
    gen = torch.Generator().manual_seed(2)
    with torch.no_grad():
        for p in model.parameters():
            if p.numel() < 100:
                p.add_(0.1 * torch.randn(p.shape, generator=gen, dtype=dtype))
    x = torch.rand(b, t, 28 * 28, generator=gen, dtype=dtype)
    noise = torch.randn(b, t, 2 * CELLS, generator=gen, dtype=dtype)
    noise0 = torch.randn(b, 2 * CELLS, generator=gen, dtype=dtype)
    return model, x, noise, noise0


@pytest.mark.parametrize("name", ["published2d", "published1d"])
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_batched_step_is_the_published_loop(name: str, dtype: torch.dtype) -> None:
    model, x, noise, noise0 = _batch(name, dtype)
    ours, _ = model.loss(x, noise, noise0)
    grads = torch.autograd.grad(ours, list(model.parameters()))
    theirs = published_loop_loss(model, x, noise, noise0)
    expected = torch.autograd.grad(theirs, list(model.parameters()))
    # The two sum ~10⁴ terms in different orders: float64 agrees to ~1e-13, float32 to
    # a few units of its rounding (1.2e-7) relative to the loss.
    rtol = 1e-11 if dtype == torch.float64 else 2e-6
    assert abs(float(ours.detach()) - float(theirs.detach())) <= rtol * abs(float(theirs.detach()))
    gtol = 1e-9 if dtype == torch.float64 else 1e-4
    for (pname, _), g, e in zip(model.named_parameters(), grads, expected, strict=True):
        scale = float(e.abs().max())
        assert scale > 0, pname
        assert float((g - e).abs().max()) <= gtol * scale, pname


def test_correlation_matches_padded_conv_and_its_adjoint() -> None:
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(4, 1, 6, 7, generator=gen, requires_grad=True)
    w = torch.randn(1, 1, 3, 3, generator=gen, requires_grad=True)
    expected = F.conv2d(F.pad(x, (1, 1, 1, 1), mode="circular"), w)
    torch.testing.assert_close(_Correlate3x3.apply(x, w), expected, rtol=1e-13, atol=1e-13)
    assert torch.autograd.gradcheck(_Correlate3x3.apply, (x, w))


def test_gaussian_head_adjoint_is_autograd_of_its_formula() -> None:
    gen = torch.Generator().manual_seed(0)
    b, rows = 2, 4
    out = (0.3 * torch.randn(rows, 4 * CELLS, generator=gen)).requires_grad_()
    noise = torch.randn(rows, CELLS, generator=gen)
    noise0 = torch.randn(b, CELLS, generator=gen)
    cotangents = (
        torch.randn(rows, CELLS, generator=gen),
        torch.randn(b, CELLS, generator=gen),
        torch.tensor(0.7),
    )
    ours = _GaussianHead.apply(out, noise, noise0)
    mu, logvar = out[:, : 2 * CELLS], out[:, 2 * CELLS :]
    std = torch.exp(0.5 * logvar[:, :CELLS])
    reference = (
        mu[:, :CELLS] + std * noise,
        mu[:b, :CELLS] + std[:b] * noise0,
        0.5 * (logvar.exp() + mu**2 - 1 - logvar).sum(),
    )
    for got, want in zip(ours, reference, strict=True):
        torch.testing.assert_close(got, want, rtol=1e-13, atol=1e-12)
    (grad,) = torch.autograd.grad(ours, out, cotangents)
    (expected,) = torch.autograd.grad(reference, out, cotangents)
    torch.testing.assert_close(grad, expected, rtol=1e-13, atol=1e-12)


def test_split_is_eighty_twenty_and_disjoint() -> None:
    train, val = published_split(1)
    assert len(train) == 48_000 and len(val) == 12_000
    assert len(np.intersect1d(train, val)) == 0
    assert len(np.union1d(train, val)) == 60_000


def test_clips_turn_twenty_degrees_per_frame(fake_data: Path) -> None:
    clips = published_clips("test", n=3)
    assert clips.shape == (3, 72, 28, 28) and clips.dtype == np.uint8
    from oscsim.models.data.mnist import load_mnist

    digits, _ = load_mnist("test")
    np.testing.assert_array_equal(clips[:, 0], digits[:3])
    turned = ndimage.rotate(digits[1] / 255.0, 60.0, reshape=False, order=1)
    np.testing.assert_allclose(clips[1, 3] / 255.0, np.clip(turned, 0, 1), atol=0.5 / 255 + 1e-6)
    # A full turn later the frame is the same rotation again.
    np.testing.assert_array_equal(clips[:, 18], clips[:, 0])
    train = published_clips("train", n=4)
    assert train.shape == (4, 18, 28, 28)
    np.testing.assert_array_equal(published_clips("train", n=4), train)  # from the cache


def test_training_resumes_exactly(fake_data: Path, tmp_path: Path) -> None:
    torch.set_default_dtype(torch.float32)
    try:
        recipe = RotatingRecipe(batch_size=2, limit_train=6, max_steps=4, checkpoint_every=2)
        train_published(recipe, tmp_path / "straight")
        half = RotatingRecipe(batch_size=2, limit_train=6, max_steps=2, checkpoint_every=2)
        train_published(half, tmp_path / "resumed")
        train_published(recipe, tmp_path / "resumed", resume=True)
    finally:
        torch.set_default_dtype(torch.float64)
    a, meta_a, _ = load_published(tmp_path / "straight" / "last.safetensors")
    b, meta_b, _ = load_published(tmp_path / "resumed" / "last.safetensors")
    assert meta_a["step"] == meta_b["step"] == 4
    for (name, p), q in zip(a.state_dict().items(), b.state_dict().values(), strict=True):
        torch.testing.assert_close(p, q, rtol=0, atol=0, msg=name)
    assert not torch.equal(a.encoder.weight, build_published_model("published2d").encoder.weight)


def test_cli_rejects_unknown_option_before_work() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "oscsim.cli", "train", "rotmnist", "--model", "published2d",
         "--set", "layers=3"],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert done.returncode == 2
    assert "layers" in done.stderr and len(done.stderr.strip().splitlines()) == 1


def test_frames_are_bytes_over_255() -> None:
    clips = np.array([[[[0, 255] * 392]]], dtype=np.uint8).reshape(1, 1, 28, 28)
    x = to_frames(clips)
    assert x.shape == (1, 1, 784) and float(x.max()) == 1.0 and float(x.min()) == 0.0
