"""The published rotating-MNIST Neural Wave Machines: a VAE whose latent is an oscillator sheet.

Two models, as in the Neural Wave Machine paper's rotating-MNIST experiment:

- ``published2d``: a 36×36 torus (1296 cells) with 3×3 circular kernels;
- ``published1d``: 24 rings of 54 cells (the same 1296 cells) whose three kernels only look
  at the next cell, each scaled by one learned number ("forward-only" coupling).

At frame ``t`` of a clip ``x`` (T frames of 28×28 in [0, 1]) the model computes

.. math::

    (\\mu_t, \\log\\sigma_t^2) = E x_t + e,\\qquad
    z_t = \\mu_t + \\sigma_t \\odot \\xi_t,\\quad \\xi_t \\sim N(0, I_{2592})

    s_t = \\mathrm{LN}(z_t[{:}1296])\\quad\\text{(layer norm, no affine parameters)}

    v_{t+1} = v_t + \\sigma(d)\\,\\big(\\tanh(W_h\\star h_t + W_v\\star v_t + W_z\\star s_t + b)
              - \\mathrm{relu}(\\gamma) h_t - \\mathrm{relu}(\\alpha) v_t\\big)

    h_{t+1} = h_t + \\sigma(d)\\, v_{t+1}

    p_{t+1} = \\mathrm{sigmoid}(D h_{t+1} + c)

with ``⋆`` a bias-free circular cross-correlation on the sheet. The start is ``h_0 = s`` of a
separate sample of frame 0 and ``v_0 = 0``. The loss of a clip is, averaged over batch and
frames, the Bernoulli negative log-likelihood of the **next** frame ``x_{(t+1) mod T}`` under
``p_{t+1}`` plus the KL divergence of ``N(μ_t, σ_t²)`` from ``N(0, I)`` summed over all 2592
dimensions (weight 1). Initial values: ``W_h, W_v, W_z`` all ``1/1296`` (2-D) or the scalars
1 (1-D), ``b = 0``, ``d = −1.95`` (``σ(d) ≈ 0.125``), ``γ = 1``, ``α = 0.5``; PyTorch's default
initialisation of the two linear maps.

The training step here is fast and exact: the encoder and the decoder run once on all
``B·T`` frames (teacher forcing knows every frame in advance), the driving convolution once on
all drives, and the recurrence is one call of the fused kernel (`oscsim.imex_sequence`).
`published_loop_loss` is the same loss written frame by frame as the published code runs it,
with ``torch.distributions``; the test suite checks the two agree to float32 rounding.

Data (`published_clips`): 48 000 training digits, the 80 % of the 60 000 MNIST training images
left by a seeded 80/20 split, each turned by 20° per frame from 0° over 18 frames (one turn);
test clips are MNIST test digits over 72 frames (four turns). Clips are rotated once with
``scipy.ndimage.rotate`` (bilinear), stored as bytes and cached on disk.
"""

from __future__ import annotations

import hashlib
import json
import math
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from oscsim.models.checkpoint import LAST, load_checkpoint, save_checkpoint
from oscsim.models.data._cache import data_dir, load_cached, params_digest, params_key
from oscsim.models.data._cache import save_npz_atomic as _save
from oscsim.models.data.mnist import load_mnist
from oscsim.models.data.rotating import rotate_sequences
from torch import nn
from tqdm.auto import tqdm

from oscsim import ImexField, OscsimInputError, imex_sequence
from oscsim.atomic import write_text_atomic

__all__ = [
    "PUBLISHED_MODELS",
    "PublishedRotatingNWM",
    "RotatingRecipe",
    "build_published_model",
    "drive_latents",
    "load_published",
    "published_clips",
    "published_loop_loss",
    "published_split",
    "recipe_from_args",
    "train_published",
]

#: Model names accepted by ``oscsim train rotmnist --model NAME``.
PUBLISHED_MODELS: tuple[str, ...] = ("published2d", "published1d")

#: Pixels of a frame, cells of the sheet.
PIXELS = 28 * 28
CELLS = 1296
#: Version of the clip generator; bump when the bytes for given arguments change.
CLIP_VERSION = 1
CHECKPOINT_KIND = "oscsim-rotating-nwm"


# --------------------------------------------------------------------------------------
# data


def published_split(
    seed: int = 1, *, total: int = 60_000, fraction_val: float = 0.2
) -> tuple[np.ndarray, np.ndarray]:
    """Training and validation indices into the ``total`` (60 000) MNIST training images.

    The images are shuffled by ``numpy.random.RandomState(seed).permutation``; the first
    ``⌊fraction_val·total⌋`` are validation, the rest training (48 000 / 12 000 by default,
    the published proportions and seed).

    Returns
    -------
    train, validation
        int64 index arrays, each sorted.
    """
    if not 0.0 < fraction_val < 1.0:
        raise OscsimInputError(f"fraction_val={fraction_val!r} must lie strictly between 0 and 1")
    order = np.random.RandomState(seed).permutation(total)
    n_val = int(math.floor(fraction_val * total))
    return np.sort(order[n_val:]).astype(np.int64), np.sort(order[:n_val]).astype(np.int64)


def _mnist60k() -> np.ndarray:
    """The 60 000 MNIST training images in their original order (train + validation)."""
    train, _ = load_mnist("train")
    val, _ = load_mnist("validation")
    return np.concatenate([train, val])


def published_clips(
    split: str = "train",
    *,
    n: int | None = None,
    frames: int | None = None,
    seed: int = 1,
    degrees_per_frame: float = 20.0,
    cache: bool = True,
    show_progress: bool | None = None,
) -> np.ndarray:
    """Rotating-MNIST clips of the published protocol, as bytes.

    Parameters
    ----------
    split
        ``"train"`` (the 48 000 digits of `published_split`), ``"validation"`` (its 12 000)
        or ``"test"`` (the 10 000 MNIST test digits, in order).
    n
        Keep the first ``n`` digits of the split (``None``: all).
    frames
        Frames per clip; default 18 for train/validation and 72 for test.
    seed
        Seed of the 80/20 split.
    degrees_per_frame
        Turn between frames (counter-clockwise as displayed), from 0° at frame 0.
    cache
        Read/write ``<data dir>/rotating_mnist/published-*.npz``.

    Returns
    -------
    numpy.ndarray
        uint8 ``(n, frames, 28, 28)``: ``round(255·rotate(digit/255, k·degrees_per_frame))``.
    """
    if split not in ("train", "validation", "test"):
        raise OscsimInputError(f"split must be train, validation or test; got {split!r}")
    if frames is None:
        frames = 72 if split == "test" else 18
    if isinstance(frames, bool) or not isinstance(frames, int) or frames < 1:
        raise OscsimInputError(f"frames={frames!r} must be a positive integer")
    if split == "test":
        images, _ = load_mnist("test")
    else:
        everything = _mnist60k()
        train_idx, val_idx = published_split(seed, total=len(everything))
        images = everything[train_idx if split == "train" else val_idx]
    if n is not None:
        if isinstance(n, bool) or not isinstance(n, int) or not 1 <= n <= len(images):
            raise OscsimInputError(f"n={n!r} must be an integer from 1 to {len(images)}")
        images = images[:n]
    params = {
        "generator": "published_rotating_mnist",
        "version": CLIP_VERSION,
        "split": split,
        "n": len(images),
        "frames": frames,
        "seed": seed if split != "test" else None,
        "degrees_per_frame": float(degrees_per_frame),
        "digits_sha256": hashlib.sha256(images.tobytes()).hexdigest(),
    }
    path = (
        data_dir()
        / "rotating_mnist"
        / f"published-{split}-n{len(images)}-f{frames}-{params_digest(params)}.npz"
    )
    if cache:
        hit = load_cached(path, params)
        if hit is not None:
            return hit["clips"]
    out = np.empty((len(images), frames, 28, 28), dtype=np.uint8)
    chunk = 2000
    starts = range(0, len(images), chunk)
    for start in tqdm(starts, desc=f"rotate {split}", disable=show_progress is False, leave=False):
        part = rotate_sequences(
            images[start : start + chunk], frames=frames, degrees_per_frame=degrees_per_frame,
            show_progress=False,
        )  # fmt: skip
        out[start : start + chunk] = np.rint(part[:, :, 0] * 255.0).astype(np.uint8)
    if cache:
        _save(path, {"clips": out, "params": np.asarray(params_key(params))}, compress=False)
    return out


def to_frames(clips: np.ndarray | torch.Tensor, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """Bytes ``(B, T, 28, 28)`` → floats ``(B, T, 784)`` in [0, 1]."""
    x = torch.as_tensor(np.asarray(clips))
    return (x.to(dtype) / 255.0).reshape(x.shape[0], x.shape[1], PIXELS)


# --------------------------------------------------------------------------------------
# hand-written adjoints for the batched step


class _Correlate3x3(torch.autograd.Function):
    """Single-channel circular 3×3 cross-correlation of ``(N, 1, H, W)``, adjoint by hand.

    ``out = Σ_ab w[a, b]·x[i + a − 1, j + b − 1]`` (indices mod H, W). The backward pass is
    the correlation of the gradient with the flipped kernel and nine inner products, with
    no intermediate the size of the input beyond one padded copy.
    """

    @staticmethod
    def forward(ctx: Any, x: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[-2:]
        padded = F.pad(x, (1, 1, 1, 1), mode="circular")
        taps = weight.reshape(3, 3).tolist()
        out = torch.mul(padded[..., 0:h, 0:w], taps[0][0])
        for a in range(3):
            for b in range(3):
                if a or b:
                    out.add_(padded[..., a : a + h, b : b + w], alpha=taps[a][b])
        ctx.save_for_backward(padded, weight)
        return out

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        padded, weight = ctx.saved_tensors
        h, w = grad.shape[-2:]
        gpad = F.pad(grad.contiguous(), (1, 1, 1, 1), mode="circular")
        taps = weight.reshape(3, 3).tolist()
        grad_x = torch.mul(gpad[..., 2 : 2 + h, 2 : 2 + w], taps[0][0])
        grad_w = torch.empty(3, 3, dtype=grad.dtype, device=grad.device)
        flat_grad = grad.reshape(-1)
        for a in range(3):
            for b in range(3):
                if a or b:
                    grad_x.add_(gpad[..., 2 - a : 2 - a + h, 2 - b : 2 - b + w], alpha=taps[a][b])
                grad_w[a, b] = torch.dot(flat_grad, padded[..., a : a + h, b : b + w].reshape(-1))
        return grad_x, grad_w.reshape(weight.shape)


class _GaussianHead(torch.autograd.Function):
    """From the encoder output to the pre-norm drives and the summed KL, adjoint by hand.

    ``out`` holds ``(μ, log σ²)`` of each row; rows ``0..B−1`` are frame 0, whose second
    draw ``noise0`` also gives the start position. Only the first ``CELLS`` latents of a
    draw are used, so only they are formed. Returns ``z[:, :CELLS]`` of every row, ``z0``'s
    first ``CELLS`` and ``KL = ½ Σ (σ² + μ² − 1 − log σ²)`` over all rows and latents.
    """

    @staticmethod
    def forward(
        ctx: Any, out: torch.Tensor, noise: torch.Tensor, noise0: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        half = out.shape[1] // 2
        mu, logvar = out[:, :half], out[:, half:]
        b = noise0.shape[0]
        std = torch.exp(0.5 * logvar[:, :CELLS])
        z = torch.addcmul(mu[:, :CELLS], std, noise)
        z0 = torch.addcmul(mu[:b, :CELLS], std[:b], noise0)
        kl = 0.5 * (torch.exp(logvar).sum() + mu.square().sum() - mu.numel() - logvar.sum())
        ctx.save_for_backward(out, std, noise, noise0)
        return z, z0, kl

    @staticmethod
    def backward(
        ctx: Any, grad_z: torch.Tensor, grad_z0: torch.Tensor, grad_kl: torch.Tensor
    ) -> tuple[torch.Tensor, None, None]:
        out, std, noise, noise0 = ctx.saved_tensors
        half = out.shape[1] // 2
        b = noise0.shape[0]
        grad = torch.empty_like(out)
        g_mu, g_lv = grad[:, :half], grad[:, half:]
        torch.mul(out[:, :half], grad_kl, out=g_mu)
        torch.exp(out[:, half:], out=g_lv)
        g_lv.sub_(1.0).mul_(0.5 * grad_kl)
        g_mu[:, :CELLS].add_(grad_z)
        g_lv[:, :CELLS].addcmul_(grad_z * noise, std, value=0.5)
        g_mu[:b, :CELLS].add_(grad_z0)
        g_lv[:b, :CELLS].addcmul_(grad_z0 * noise0, std[:b], value=0.5)
        return grad, None, None


# --------------------------------------------------------------------------------------
# model


class PublishedRotatingNWM(nn.Module):
    """The published rotating-MNIST VAE with an oscillator sheet as its latent dynamics.

    Parameters
    ----------
    layout
        ``"torus"`` (a ``36×36`` sheet, 3×3 kernels) or ``"rings"`` (24 rings of 54 cells,
        forward-only kernels scaled by learned numbers).
    dt, gamma, alpha
        Initial raw values of the step (through a sigmoid), stiffness and damping (through
        a relu).

    Notes
    -----
    State layout for the fused kernel: ``(B, 1, 36, 36)`` on the torus; on the rings every
    ring is its own batch row, ``(B·24, 1, 54)``, so the shared ring kernel stays 1×3.
    """

    def __init__(
        self, layout: str = "torus", *, dt: float = -1.95, gamma: float = 1.0, alpha: float = 0.5
    ) -> None:
        super().__init__()
        if layout not in ("torus", "rings"):
            raise OscsimInputError(f"layout must be 'torus' or 'rings'; got {layout!r}")
        self.layout = layout
        self.grid: tuple[int, ...] = (36, 36) if layout == "torus" else (54,)
        self.rings = 1 if layout == "torus" else 24
        self.encoder = nn.Linear(PIXELS, 4 * CELLS)
        self.decoder = nn.Linear(CELLS, PIXELS)
        if layout == "torus":
            for name in ("coupling", "damping", "driving"):
                self.register_parameter(name, nn.Parameter(torch.full((1, 1, 3, 3), 1 / CELLS)))
        else:
            for name in ("coupling", "damping", "driving"):
                self.register_parameter(name, nn.Parameter(torch.ones(())))
        self.bias = nn.Parameter(torch.zeros(1, *self.grid))
        self.dt_raw = nn.Parameter(torch.tensor(float(dt)))
        self.gamma_raw = nn.Parameter(torch.tensor(float(gamma)))
        self.alpha_raw = nn.Parameter(torch.tensor(float(alpha)))

    # -- pieces ------------------------------------------------------------------------

    def kernel(self, name: str) -> torch.Tensor:
        """The 3×3 (torus) or 1×3 (ring: ``[0, 0, w]``, i.e. ``out[i] = w·in[i+1]``) kernel."""
        weight = getattr(self, name)
        if self.layout == "torus":
            return weight
        zero = torch.zeros((), dtype=weight.dtype, device=weight.device)
        return torch.stack([zero, zero, weight]).reshape(1, 1, 3)

    def sheet(self, flat: torch.Tensor) -> torch.Tensor:
        """``(N, 1296)`` → the fused kernel's layout ``(N·rings, 1, *grid)``."""
        return flat.reshape(flat.shape[0] * self.rings, 1, *self.grid)

    @staticmethod
    def flat(sheet: torch.Tensor) -> torch.Tensor:
        """Inverse of `sheet`: ``(N·rings, 1, *grid)`` → ``(N, 1296)``."""
        return sheet.reshape(-1, CELLS)

    def conv(self, values: torch.Tensor, name: str) -> torch.Tensor:
        """Circular cross-correlation of sheets ``(N, 1, *grid)`` with kernel ``name``.

        Written as a weighted sum of shifted copies (nine on the torus, one on the rings):
        with one channel, this is several times cheaper than a convolution call, above all
        in the backward pass over the ``B·T`` drives of a clip.
        """
        k = self.kernel(name)
        if self.layout == "rings":
            # out[i] = w·in[i + 1]: the only non-zero tap of the forward-only kernel.
            return k[0, 0, 2] * torch.roll(values, -1, dims=-1)
        return _Correlate3x3.apply(values, k)

    def published_conv(self, values: torch.Tensor, name: str) -> torch.Tensor:
        """`conv` as the published code computes it: circular padding, then a convolution."""
        k = self.kernel(name)
        if self.layout == "torus":
            return F.conv2d(F.pad(values, (1, 1, 1, 1), mode="circular"), k)
        return F.conv1d(F.pad(values, (1, 1), mode="circular"), k)

    def posterior(self, frames: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(..., 784)`` → mean and log-variance, each ``(..., 2592)``."""
        out = self.encoder(frames)
        return out[..., : 2 * CELLS], out[..., 2 * CELLS :]

    @staticmethod
    def drive_of(z: torch.Tensor) -> torch.Tensor:
        """The drive ``s``: the first 1296 latents, layer-normalised (no affine)."""
        return F.layer_norm(z[..., :CELLS], (CELLS,))

    def decode(self, position: torch.Tensor) -> torch.Tensor:
        """``(..., 1296)`` → pixel probabilities ``(..., 784)``."""
        return torch.sigmoid(self.decoder(position))

    def coefficients(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``σ(d)``, ``relu(γ)`` and ``relu(α)`` as used by the recurrence."""
        return torch.sigmoid(self.dt_raw), F.relu(self.gamma_raw), F.relu(self.alpha_raw)

    # -- the sequence -------------------------------------------------------------------

    def run(
        self,
        frames: torch.Tensor,
        noise: torch.Tensor,
        noise0: torch.Tensor,
        *,
        backend: str | None = None,
    ) -> dict[str, torch.Tensor]:
        """Drive the sheet with every frame of a clip (teacher forcing), batched.

        Parameters
        ----------
        frames
            ``(B, T, 784)`` in [0, 1].
        noise
            ``(B, T, 2592)`` standard normal draws of the frame posteriors.
        noise0
            ``(B, 2592)`` the draw of frame 0's posterior that sets the start position.
        backend
            Of `oscsim.imex_sequence` (``None``: its default).

        Returns
        -------
        dict
            ``kl`` the summed KL of every frame's posterior; ``position``, ``velocity``
            ``(B, T, 1296)``, the state after each frame's step; ``probs`` ``(B, T, 784)``,
            the prediction of the next frame (``probs_time_major``: the same ``(T, B, 784)``).
        """
        b, t = frames.shape[:2]
        # Rows in (frame, clip) order: the fused kernel wants time first.
        out = self.encoder(frames.transpose(0, 1).reshape(t * b, PIXELS))
        z, z0, kl = _GaussianHead.apply(
            out,
            noise[..., :CELLS].transpose(0, 1).reshape(t * b, CELLS),
            noise0[:, :CELLS],
        )
        s = F.layer_norm(z, (CELLS,))
        drive = self.conv(self.sheet(s), "driving").reshape(t, b * self.rings, 1, *self.grid)
        h0 = self.sheet(F.layer_norm(z0, (CELLS,)))
        step, gamma, alpha = self.coefficients()
        field = ImexField(
            "local",
            self.kernel("coupling"),
            self.kernel("damping"),
            self.bias,
            gamma.reshape(1),
            alpha.reshape(1),
        )
        h, v = imex_sequence(
            field, drive, h0, torch.zeros_like(h0), step, return_sequence=True, backend=backend
        )
        position = h.reshape(t, b, CELLS)
        velocity = v.reshape(t, b, CELLS)
        probs = self.decode(position)
        return {
            "kl": kl,
            "position": position.transpose(0, 1),
            "velocity": velocity.transpose(0, 1),
            "probs": probs.transpose(0, 1),
            "probs_time_major": probs,
        }

    def loss(
        self,
        frames: torch.Tensor,
        noise: torch.Tensor | None = None,
        noise0: torch.Tensor | None = None,
        *,
        backend: str | None = None,
        generator: torch.Generator | None = None,
    ) -> tuple[torch.Tensor, dict[str, float]]:
        """The published loss of a batch of clips (mean over clips and frames).

        Parameters
        ----------
        frames
            ``(B, T, 784)`` in [0, 1].
        noise, noise0
            As in `run`; drawn from ``generator`` when ``None``.

        Returns
        -------
        loss, parts
            The scalar loss; ``parts`` has its ``nll`` and ``kl`` (per frame).
        """
        b, t = frames.shape[:2]
        if noise is None:
            noise = torch.randn(b, t, 2 * CELLS, generator=generator, dtype=frames.dtype)
            noise = noise.to(frames.device)
        if noise0 is None:
            noise0 = torch.randn(b, 2 * CELLS, generator=generator, dtype=frames.dtype)
            noise0 = noise0.to(frames.device)
        out = self.run(frames, noise, noise0, backend=backend)
        target = frames.roll(-1, dims=1).transpose(0, 1)
        nll = bernoulli_nll(out["probs_time_major"], target)
        kl = out["kl"]
        loss = (nll + kl) / (b * t)
        return loss, {"nll": float(nll.detach()) / (b * t), "kl": float(kl.detach()) / (b * t)}


def bernoulli_nll(probs: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Summed Bernoulli negative log-likelihood of ``target`` under ``probs``.

    The probabilities are clamped to ``[ε, 1 − ε]`` (ε the dtype's machine epsilon), as
    ``torch.distributions.Bernoulli`` does.
    """
    eps = torch.finfo(probs.dtype).eps
    p = probs.clamp(eps, 1 - eps)
    return -(target * torch.log(p) + (1 - target) * torch.log1p(-p)).sum()


def published_loop_loss(
    model: PublishedRotatingNWM,
    frames: torch.Tensor,
    noise: torch.Tensor,
    noise0: torch.Tensor,
) -> torch.Tensor:
    """The same loss as `PublishedRotatingNWM.loss`, one frame at a time as published.

    Each frame is encoded on its own, sampled with ``torch.distributions.Normal.rsample``
    (driven here by the given noise), scored with ``kl_divergence`` and
    ``Bernoulli.log_prob``, and the sheet advances by one step of padded convolutions. This
    is the baseline of the speed benchmark and the check of the batched step.
    """
    from torch.distributions import Bernoulli, Normal, kl_divergence

    b, t = frames.shape[:2]
    prior = Normal(torch.zeros((), dtype=frames.dtype), torch.ones((), dtype=frames.dtype))

    def sample(x: torch.Tensor, xi: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        mu, logvar = model.posterior(x)
        q = Normal(mu, torch.exp(logvar / 2.0))
        return q.loc + q.scale * xi, kl_divergence(q, prior)

    z0, _ = sample(frames[:, 0], noise0)
    h = model.sheet(model.drive_of(z0))
    v = torch.zeros_like(h)
    step, gamma, alpha = model.coefficients()
    total_nll = frames.new_zeros(())
    total_kl = frames.new_zeros(())
    for i in range(t):
        z, kl = sample(frames[:, i], noise[:, i])
        s = model.sheet(model.drive_of(z))
        pre = (
            model.published_conv(h, "coupling")
            + model.published_conv(v, "damping")
            + model.published_conv(s, "driving")
        )
        v = v + step * (torch.tanh(pre + model.bias) - gamma * h - alpha * v)
        h = h + step * v
        probs = torch.clamp(model.decode(model.flat(h)), 0, 1)
        target = frames[:, (i + 1) % t]
        total_nll = total_nll - Bernoulli(probs=probs, validate_args=False).log_prob(target).sum()
        total_kl = total_kl + kl.sum()
    return (total_nll + total_kl) / (b * t)


def build_published_model(name: str, seed: int = 0) -> PublishedRotatingNWM:
    """``published2d`` or ``published1d`` in float32, initialised by ``torch.manual_seed(seed)``."""
    if name not in PUBLISHED_MODELS:
        raise OscsimInputError(f"model must be one of {', '.join(PUBLISHED_MODELS)}; got {name!r}")
    torch.manual_seed(seed)
    return PublishedRotatingNWM("torus" if name == "published2d" else "rings").float()


# --------------------------------------------------------------------------------------
# driven latents


@torch.no_grad()
def drive_latents(
    model: PublishedRotatingNWM,
    clips: np.ndarray,
    *,
    seed: int = 0,
    sample: bool = True,
    batch_size: int = 64,
) -> dict[str, np.ndarray]:
    """Drive the model with every frame of test clips and record the sheet.

    Parameters
    ----------
    clips
        uint8 ``(N, T, 28, 28)``.
    seed
        Seed of the posterior draws (``sample=True``, the published way of running it).
    sample
        Draw from each frame's posterior; ``False`` drives with the posterior mean.

    Returns
    -------
    dict
        ``position``, ``velocity`` float64 ``(N, T, *sheet)`` where ``sheet`` is ``(36, 36)``
        or ``(24, 54)``; ``probs`` float64 ``(N, T, 28, 28)``, the prediction of frame t+1
        after seeing frame t.
    """
    model.eval()
    dtype = next(model.parameters()).dtype
    generator = torch.Generator().manual_seed(seed)
    parts: dict[str, list[np.ndarray]] = {"position": [], "velocity": [], "probs": []}
    sheet = (36, 36) if model.layout == "torus" else (24, 54)
    for start in range(0, len(clips), batch_size):
        x = to_frames(clips[start : start + batch_size], dtype)
        b, t = x.shape[:2]
        noise = torch.randn(b, t, 2 * CELLS, generator=generator, dtype=dtype)
        noise0 = torch.randn(b, 2 * CELLS, generator=generator, dtype=dtype)
        if not sample:
            noise.zero_()
            noise0.zero_()
        out = model.run(x, noise, noise0)
        parts["position"].append(out["position"].reshape(b, t, *sheet).double().numpy())
        parts["velocity"].append(out["velocity"].reshape(b, t, *sheet).double().numpy())
        parts["probs"].append(out["probs"].reshape(b, t, 28, 28).double().numpy())
    return {key: np.concatenate(value) for key, value in parts.items()}


# --------------------------------------------------------------------------------------
# training


@dataclass
class RotatingRecipe:
    """A training run of a published rotating-MNIST model (the preset is the published one)."""

    model: str = "published2d"
    seed: int = 0
    epochs: int = 50
    batch_size: int = 128
    lr: float = 2.5e-4
    momentum: float = 0.9
    max_steps: int | None = None
    limit_train: int | None = None
    checkpoint_every: int = 50
    split_seed: int = 1
    device: str = "cpu"
    #: Stop (and checkpoint) after this much training time, in minutes (None: never).
    minutes: float | None = None

    def validate(self) -> None:
        """Raise `OscsimInputError` for an option out of range."""
        if self.model not in PUBLISHED_MODELS:
            raise OscsimInputError(
                f"model must be one of {', '.join(PUBLISHED_MODELS)}; got {self.model!r}"
            )
        for name in ("epochs", "batch_size", "checkpoint_every"):
            if getattr(self, name) < 1:
                raise OscsimInputError(f"{name} must be positive; got {getattr(self, name)}")
        if self.minutes is not None and not self.minutes > 0:
            raise OscsimInputError(f"minutes must be positive; got {self.minutes}")
        for name in ("max_steps", "limit_train"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise OscsimInputError(f"{name} must be positive; got {value}")
        if not self.lr > 0 or not 0 <= self.momentum < 1:
            raise OscsimInputError(
                f"lr must be > 0 and momentum in [0, 1); got {self.lr}, {self.momentum}"
            )


def _order(seed: int, epoch: int, n: int) -> np.ndarray:
    return np.random.default_rng([seed, epoch]).permutation(n)


def save_published(
    path: Path,
    model: PublishedRotatingNWM,
    optimizer: torch.optim.Optimizer | None,
    meta: dict[str, Any],
) -> None:
    """Write a checkpoint: safetensors + JSON (`oscsim.models.checkpoint`), so that loading
    it never runs code; ``run`` holds the kind and the metadata (recipe, step, history)."""
    save_checkpoint(
        {
            "run": {"kind": CHECKPOINT_KIND, "meta": meta},
            "model_state": model.state_dict(),
            "optimizer_state": optimizer.state_dict() if optimizer is not None else {},
        },
        path,
    )


def load_published(path: str | Path) -> tuple[PublishedRotatingNWM, dict[str, Any], dict[str, Any]]:
    """Model, metadata and optimiser state of a checkpoint written by `train_published`."""
    source = Path(path)
    state = load_checkpoint(source)
    run = state["run"]
    if not isinstance(run, dict) or run.get("kind") != CHECKPOINT_KIND:
        raise OscsimInputError(
            f"{source} is not a published rotating-MNIST checkpoint (it was written by "
            "oscsim train for another model; use oscsim evaluate)"
        )
    meta = run["meta"]
    model = build_published_model(meta["recipe"]["model"])
    model.load_state_dict(state["model_state"])
    return model, meta, state["optimizer_state"]


def train_published(recipe: RotatingRecipe, out: str | Path, *, resume: bool = False) -> dict:
    """Train with SGD + momentum on the published clips; checkpoints in ``out``.

    ``out/last.safetensors`` is written every ``checkpoint_every`` steps and at the end, with the
    metric history in ``out/metrics.json``. Batches are a pure function of
    ``(seed, epoch, index)`` and the noise of step ``k`` comes from a generator seeded by
    ``(seed, k)``, so a resumed run continues exactly.

    Returns
    -------
    dict
        The summary written to ``out/summary.json``.
    """
    recipe.validate()
    folder = Path(out)
    folder.mkdir(parents=True, exist_ok=True)
    clips = published_clips("train", seed=recipe.split_seed, n=recipe.limit_train)
    n = len(clips)
    per_epoch = n // recipe.batch_size
    if per_epoch < 1:
        raise OscsimInputError(
            f"batch_size={recipe.batch_size} exceeds the {n} training clips (limit_train)"
        )
    model = build_published_model(recipe.model, recipe.seed).to(recipe.device)
    optimizer = torch.optim.SGD(model.parameters(), lr=recipe.lr, momentum=recipe.momentum)
    step, elapsed, history = 0, 0.0, []
    last = folder / LAST
    if resume and last.exists():
        model, stored, opt_state = load_published(last)
        model = model.to(recipe.device)
        optimizer = torch.optim.SGD(model.parameters(), lr=recipe.lr, momentum=recipe.momentum)
        optimizer.load_state_dict(opt_state)
        step, elapsed, history = stored["step"], stored["elapsed"], stored["history"]
    total = recipe.epochs * per_epoch
    if recipe.max_steps is not None:
        total = min(total, recipe.max_steps)

    def meta() -> dict[str, Any]:
        return {
            "recipe": asdict(recipe),
            "step": step,
            "epoch": step / per_epoch,
            "elapsed": elapsed,
            "history": history,
            "train_clips": n,
        }

    def checkpoint() -> None:
        save_published(last, model, optimizer, meta())
        write_text_atomic(json.dumps(history, indent=1), folder / "metrics.json")

    bar = tqdm(total=total, initial=step, desc=f"rotmnist/{recipe.model}", leave=True)
    window: list[float] = []
    while step < total:
        if recipe.minutes is not None and elapsed >= 60.0 * recipe.minutes:
            break
        epoch, index = divmod(step, per_epoch)
        rows = _order(recipe.seed, epoch, n)[
            index * recipe.batch_size : (index + 1) * recipe.batch_size
        ]
        frames = to_frames(clips[np.sort(rows)])
        generator = torch.Generator().manual_seed(recipe.seed * 1_000_003 + step)
        noise = torch.randn(len(rows), frames.shape[1], 2 * CELLS, generator=generator)
        noise0 = torch.randn(len(rows), 2 * CELLS, generator=generator)
        device = torch.device(recipe.device)
        started = time.perf_counter()
        optimizer.zero_grad(set_to_none=True)
        loss, parts = model.loss(frames.to(device), noise.to(device), noise0.to(device))
        if not torch.isfinite(loss):
            checkpoint()
            raise OscsimInputError(
                f"the loss became {float(loss)} at step {step}; lower --lr (now {recipe.lr})"
            )
        loss.backward()
        optimizer.step()
        elapsed += time.perf_counter() - started
        step += 1
        window.append(float(loss.detach()))
        bar.update(1)
        if step % 10 == 0 or step == total:
            history.append(
                {"step": step, "loss": float(np.mean(window)), **parts, "elapsed": elapsed}
            )
            bar.set_postfix(loss=f"{np.mean(window):.1f}")
            window = []
        if step % recipe.checkpoint_every == 0:
            checkpoint()
    bar.close()
    checkpoint()
    summary = {**meta(), "history": history[-1:] if history else []}
    write_text_atomic(json.dumps(summary, indent=2), folder / "summary.json")
    return summary


def recipe_from_args(args: Any, options: dict[str, Any]) -> RotatingRecipe:
    """The recipe of ``oscsim train rotmnist --model published2d|published1d ...``.

    The published preset (SGD, lr 2.5e-4, momentum 0.9, batch 128, 50 epochs) fills what
    the command line leaves out; ``--set momentum=…``, ``--set split_seed=…`` and
    ``--set minutes=…`` (a training-time budget) are the only options. Raises
    `OscsimInputError` before any work for anything else.
    """
    allowed = {"momentum", "split_seed", "minutes"}
    unknown = sorted(set(options) - allowed)
    if unknown:
        raise OscsimInputError(
            f"--set {unknown[0]}: the published rotating-MNIST models take only "
            f"{', '.join(sorted(allowed))}"
        )
    base = RotatingRecipe()
    recipe = RotatingRecipe(
        model=args.model,
        seed=args.seed,
        epochs=args.epochs or base.epochs,
        batch_size=args.batch_size or base.batch_size,
        lr=args.lr or base.lr,
        momentum=float(options.get("momentum", base.momentum)),
        max_steps=args.max_steps,
        limit_train=args.limit_train,
        checkpoint_every=args.checkpoint_every,
        split_seed=int(options.get("split_seed", base.split_seed)),
        device=args.device,
        minutes=None if "minutes" not in options else float(options["minutes"]),
    )
    recipe.validate()
    return recipe


# --------------------------------------------------------------------------------------
# forecasts and equivariance


def _step(
    model: PublishedRotatingNWM, h: torch.Tensor, v: torch.Tensor, s: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """One step of the recurrence on sheets (the published update)."""
    step, gamma, alpha = model.coefficients()
    pre = model.conv(h, "coupling") + model.conv(v, "damping") + model.conv(s, "driving")
    v = v + step * (torch.tanh(pre + model.bias) - gamma * h - alpha * v)
    return h + step * v, v


@torch.no_grad()
def closed_loop_forecast(
    model: PublishedRotatingNWM, frames: torch.Tensor, steps: int
) -> torch.Tensor:
    """The model's own forecast: observe ``frames``, then feed back its predictions.

    The observed frames drive the sheet through their posterior means; after the last
    one, each predicted frame (pixel probabilities) is encoded as the next input.

    Parameters
    ----------
    frames
        ``(B, T, 784)`` observed frames ``0 … T−1``.
    steps
        How many frames to predict, ``≥ 1``.

    Returns
    -------
    torch.Tensor
        ``(B, steps, 784)``: the predictions of frames ``T … T + steps − 1``.
    """
    if steps < 1:
        raise OscsimInputError(f"steps must be at least 1; got {steps}")
    b, t = frames.shape[:2]
    zeros = torch.zeros(b, t, 2 * CELLS, dtype=frames.dtype)
    out = model.run(frames, zeros, zeros[:, 0])
    h = model.sheet(out["position"][:, -1])
    v = model.sheet(out["velocity"][:, -1])
    prediction = out["probs"][:, -1]
    predictions = [prediction]
    for _ in range(steps - 1):
        mu, _ = model.posterior(prediction)
        h, v = _step(model, h, v, model.sheet(model.drive_of(mu)))
        prediction = model.decode(model.flat(h))
        predictions.append(prediction)
    return torch.stack(predictions, dim=1)
