"""Rotating MNIST, the published model: watch the rotation become a wave, and judge it.

    oscsim experiment rotmnist_waves RUN/last.safetensors --out DIR

Takes a checkpoint of ``oscsim train rotmnist --model published2d|published1d``, drives it
with 72-frame test clips (four turns of 20° per frame) and writes under ``--out``:

- ``waves.gif`` (and ``waves.mp4`` when ``ffmpeg`` is on the path): three panels per
  digit, the observed frame | the latent phase drawn the published way (causal Butterworth
  band-pass, order 5, 0.2–0.4 of Nyquist; z-score per cell; Hilbert phase; phase as hue)
  | the model's prediction of that frame from the frames before it;
- ``waves_frames.png``: still frames of the same three rows;
- ``waves.json``: the numbers that judge it, over ``--digits`` test digits with the first
  ``--drop`` frames (the filter's start-up) dropped and everything pooled:

  ``percent_waves`` (`oscsim.analysis.percent_waves` of the band-passed latent positions),
  ``percent_waves_shuffled`` (the same on a copy whose cells are permuted, one permutation
  per digit), ``percent_waves_init`` (the model at its initialisation),
  ``published_percent_waves`` (the paper's own measure, `analysis.published_percent_waves`),
  ``dominant_frequency`` (cycles per frame) and ``wavelength`` (cells) of the strongest
  space–time mode, ``equivariance_gain`` and the 1-D roll errors (see below).

Equivariance, from the state after frame ``t`` (``t`` = 18, 27, 36, 45, 54) and for
``j = 1 … 9`` frames ahead (up to a half turn), each compared by pixel MSE with the truly
rotated digit (frame ``t + 1 + j``):

- 2-D: the band-limited wave component ``w`` of the position (the causal band-pass at
  ``t``) is translated by ``j·c``, ``c`` the phase velocity of the dominant mode, the rest
  kept, and decoded ("shifted"); against decoding the state as it is ("unshifted") and
  against the model's own closed-loop forecast ("forecast"). The normalised gain is
  ``(MSE unshifted − MSE shifted) / (MSE unshifted − MSE forecast)``: 0 when shifting does
  nothing, 1 when it is as good as running the model. Two diagnostics use instead the
  translation that best maps one frame onto the next (`estimate_wave_velocity`), of the
  wave component and of the whole latent.
- 1-D: the whole latent rolled forward along the rings by ``j·v`` cells, ``v`` the
  measured travel per frame (cells), decoded; the same three errors per ``j``.

The equivariance runs drive the model with posterior means (deterministic); the pictures
and percent waves draw from the posterior as the published code does (``--mean`` for the
means everywhere).
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
import xarray as xr
from oscsim.models.equivariance import estimate_wave_velocity, fourier_shift
from oscsim.models.rotating import (
    PublishedRotatingNWM,
    build_published_model,
    closed_loop_forecast,
    drive_latents,
    load_published,
    published_clips,
    to_frames,
)

from oscsim.atomic import atomic_target, write_text_atomic
from oscsim.errors import OscsimInputError

STARTS = (18, 27, 36, 45, 54)
AHEAD = 9


def _recording(position: np.ndarray, layout: str) -> xr.DataArray:
    """``(N, T, *sheet)`` → a DataArray the analysis reads (rings are channels of a ring)."""
    if layout == "torus":
        return xr.DataArray(position, dims=("sample", "time", "y", "x"))
    return xr.DataArray(position, dims=("sample", "time", "channel", "x"))


def wave_numbers(position: np.ndarray, layout: str, *, drop: int, seed: int) -> dict[str, Any]:
    """Percent waves (ours and the paper's), its shuffled control and the dominant mode.

    Parameters
    ----------
    position
        ``(N, T, *sheet)`` driven latent positions.
    layout
        ``"torus"`` or ``"rings"``.
    drop
        Frames dropped at the start, after the causal band-pass.
    """
    from oscsim import analysis

    filtered = analysis.published_bandpass(_recording(position, layout))
    kept = filtered.isel(time=slice(drop, None))
    values = kept.values
    rng = np.random.default_rng(seed)
    shuffled = values.copy()
    n, t = values.shape[:2]
    flat = shuffled.reshape(n, t, -1)
    for i in range(n):
        flat[i] = flat[i][:, rng.permutation(flat.shape[-1])]
    control = kept.copy(data=flat.reshape(values.shape))
    mode = analysis.dominant_mode(kept)
    return {
        "percent_waves": float(analysis.percent_waves(kept, seed=seed)),
        "percent_waves_shuffled": float(analysis.percent_waves(control, seed=seed)),
        "published_percent_waves": float(analysis.published_percent_waves(kept, seed=seed)),
        "dominant_frequency": float(mode["frequency"]),
        "wavelength": float(mode["wavelength"]),
        "dominant_power_fraction": float(mode["power_fraction"]),
    }


def phase_velocity(wave: np.ndarray) -> tuple[np.ndarray, float, float]:
    """Phase velocity (cells per frame, grid order) of the strongest mode of ``wave``.

    ``wave`` is ``(N, T, *grid)``. The power of the space–time FFT (mean over time
    removed), summed over samples, is maximised over positive temporal frequencies. With
    NumPy's FFT a peak at ``(f_t, f)`` is ``exp(2πi(f_t·t + f·x))``, whose crests move with
    ``−f_t·f/|f|²``.

    Returns
    -------
    velocity, frequency, wavelength
        Velocity per grid axis, ``f_t`` in cycles per frame, ``1/|f|`` in cells.
    """
    centred = wave - wave.mean(axis=1, keepdims=True)
    axes = tuple(range(1, wave.ndim))
    power = (np.abs(np.fft.fftn(centred, axes=axes)) ** 2).sum(axis=0)
    freqs = [np.fft.fftfreq(n) for n in wave.shape[1:]]
    positive = freqs[0] > 0
    power[~positive] = 0.0
    peak = np.unravel_index(int(np.argmax(power)), power.shape)
    f_t = freqs[0][peak[0]]
    f = np.array([freqs[i + 1][peak[i + 1]] for i in range(wave.ndim - 2)])
    norm2 = float((f * f).sum())
    if norm2 == 0:
        return np.zeros_like(f), float(f_t), float("inf")
    return -f_t * f / norm2, float(f_t), float(1 / np.sqrt(norm2))


def _mse(a: torch.Tensor, b: torch.Tensor) -> float:
    return float(((a - b) ** 2).mean())


def equivariance(
    model: PublishedRotatingNWM, clips: np.ndarray, position: np.ndarray
) -> dict[str, Any]:
    """Shift (2-D: the wave component) or roll (1-D: the latent) and decode; see module doc.

    ``position`` is the posterior-mean recording ``(N, 72, *sheet)`` of ``clips``.
    """
    from oscsim import analysis

    frames = to_frames(clips)
    # Each variant: (the component that moves, its velocity in cells per frame).
    variants: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    if model.layout == "torus":
        wave_all = analysis.published_bandpass(_recording(position, "torus")).values
        velocity, _, _ = phase_velocity(wave_all[:, STARTS[0] :])
        variants["shifted"] = (wave_all, velocity)
        # Diagnostics: the translation that best maps one frame onto the next (least
        # squares), for the wave component and for the whole latent.
        later = torch.as_tensor(wave_all[:, STARTS[0] :]).transpose(0, 1)[:, :, None]
        variants["wave_best_translation"] = (
            wave_all, np.array(estimate_wave_velocity(later))
        )  # fmt: skip
        whole = torch.as_tensor(position[:, STARTS[0] :]).transpose(0, 1)[:, :, None]
        variants["latent_best_translation"] = (
            position, np.array(estimate_wave_velocity(whole))
        )  # fmt: skip
    else:
        latents = torch.as_tensor(position[:, STARTS[0] :]).transpose(0, 1)
        variants["shifted"] = (position, np.array(estimate_wave_velocity(latents)))
    names = [*variants, "unshifted", "forecast"]
    per_j: dict[str, list[list[float]]] = {name: [] for name in names}
    for t in STARTS:
        state = torch.as_tensor(position[:, t], dtype=torch.float32)
        forecast = closed_loop_forecast(model, frames[:, : t + 1], AHEAD + 1)
        rows: dict[str, list[float]] = {name: [] for name in names}
        with torch.no_grad():
            unshifted = model.decode(state.reshape(len(state), -1))
            for j in range(1, AHEAD + 1):
                target = frames[:, t + 1 + j]
                for name, (component, velocity) in variants.items():
                    moving = torch.as_tensor(component[:, t], dtype=torch.float32)
                    moved = state - moving + fourier_shift(moving, list(j * velocity))
                    rows[name].append(_mse(model.decode(moved.reshape(len(state), -1)), target))
                rows["unshifted"].append(_mse(unshifted, target))
                rows["forecast"].append(_mse(forecast[:, j], target))
        for key, value in rows.items():
            per_j[key].append(value)
    curves = {key: np.mean(value, axis=0).tolist() for key, value in per_j.items()}
    pooled = {key: float(np.mean(value)) for key, value in curves.items()}
    main_velocity = variants["shifted"][1]
    out: dict[str, Any] = {
        "starts": list(STARTS),
        "frames_ahead": list(range(1, AHEAD + 1)),
        "velocity_cells_per_frame": [float(v) for v in main_velocity],
        "mse_curves": {k: curves[k] for k in ("shifted", "unshifted", "forecast")},
        "mse": {k: pooled[k] for k in ("shifted", "unshifted", "forecast")},
    }
    denominator = pooled["unshifted"] - pooled["forecast"]

    def gain(name: str) -> float | None:
        if denominator <= 0:
            return None
        return (pooled["unshifted"] - pooled[name]) / denominator

    if model.layout == "torus":
        out["gain"] = gain("shifted")
        out["diagnostics"] = {
            name: {
                "velocity_cells_per_frame": [float(v) for v in variants[name][1]],
                "mse_curve": curves[name],
                "mse": pooled[name],
                "gain": gain(name),
            }
            for name in ("wave_best_translation", "latent_best_translation")
        }
    else:
        out["roll_cells"] = [float(j * main_velocity[0]) for j in range(1, AHEAD + 1)]
        out["rolled_closer_than_unrolled_at_every_shift"] = bool(
            all(s < u for s, u in zip(curves["shifted"], curves["unshifted"], strict=True))
        )
    return out


# --------------------------------------------------------------------------------------
# pictures


def _upscale(image: np.ndarray, factor: int) -> np.ndarray:
    return np.repeat(np.repeat(image, factor, axis=0), factor, axis=1)


def _gray(image: np.ndarray, factor: int) -> np.ndarray:
    rgb = np.repeat(np.clip(image, 0, 1)[..., None], 3, axis=-1)
    return _upscale(rgb, factor)


def _panels(
    clips: np.ndarray, rgb: np.ndarray, probs: np.ndarray, digit: int, t: int
) -> list[np.ndarray]:
    """Observed, latent phase and reconstruction of one digit at frame ``t``, as RGB."""
    observed = clips[digit, t] / 255.0
    # probs[t − 1] is the prediction of frame t from frames 0 … t − 1.
    predicted = probs[digit, t - 1] if t > 0 else np.zeros((28, 28))
    sheet = rgb[digit, t]
    factor = max(1, round(112 / sheet.shape[0]))
    return [_gray(observed, 4), _upscale(sheet, factor), _gray(predicted, 4)]


def _canvas(rows: list[list[np.ndarray]], gap: int = 6) -> np.ndarray:
    height = max(p.shape[0] for row in rows for p in row)
    widths = [max(row[c].shape[1] for row in rows) for c in range(len(rows[0]))]
    canvas = np.ones((len(rows) * (height + gap) + gap, sum(widths) + gap * (len(widths) + 1), 3))
    for r, row in enumerate(rows):
        x = gap
        for c, panel in enumerate(row):
            y = gap + r * (height + gap) + (height - panel.shape[0]) // 2
            canvas[y : y + panel.shape[0], x : x + panel.shape[1]] = panel
            x += widths[c] + gap
    return (canvas * 255).round().astype(np.uint8)


def write_animation(
    clips: np.ndarray, rgb: np.ndarray, probs: np.ndarray, out: Path, *, digits: int
) -> list[str]:
    """``waves.gif`` (+ ``waves.mp4`` with ffmpeg) and ``waves_frames.png``; the file names."""
    from PIL import Image

    frames = [
        _canvas([_panels(clips, rgb, probs, d, t) for d in range(digits)])
        for t in range(clips.shape[1])
    ]
    # 64 colours keep the phase hues apart and the file small enough to commit (about 2 MB).
    images = [Image.fromarray(f).quantize(colors=64, dither=Image.Dither.NONE) for f in frames]
    written = []
    with atomic_target(out / "waves.gif") as tmp:
        images[0].save(
            tmp,
            format="GIF",
            save_all=True,
            append_images=images[1:],
            duration=100,
            loop=0,
            optimize=True,
        )
    written.append("waves.gif")
    ffmpeg = shutil.which("ffmpeg")
    if ffmpeg is not None:
        with tempfile.TemporaryDirectory() as folder:
            for i, f in enumerate(frames):
                Image.fromarray(f).save(Path(folder) / f"{i:03d}.png")
            with atomic_target(out / "waves.mp4") as tmp:
                subprocess.run(
                    [ffmpeg, "-loglevel", "error", "-y", "-framerate", "10", "-i",
                     str(Path(folder) / "%03d.png"), "-pix_fmt", "yuv420p", "-vf",
                     "pad=ceil(iw/2)*2:ceil(ih/2)*2", "-f", "mp4", str(tmp)],
                    check=True,
                )  # fmt: skip
        written.append("waves.mp4")
    # Still frames: the three rows of digit 0 over half a turn, after the filter's start-up.
    stills = list(range(18, 28))
    columns = [_panels(clips, rgb, probs, 0, t) for t in stills]
    grid = [[column[r] for column in columns] for r in range(3)]
    with atomic_target(out / "waves_frames.png") as tmp:
        Image.fromarray(_canvas(grid, gap=4)).save(tmp, format="PNG")
    written.append("waves_frames.png")
    return written


# --------------------------------------------------------------------------------------
# command


def main(argv: list[str] | None = None) -> int:
    """``oscsim experiment rotmnist_waves CHECKPOINT --out DIR``."""
    parser = argparse.ArgumentParser(
        prog="oscsim experiment rotmnist_waves", description=__doc__.splitlines()[0]
    )
    parser.add_argument(
        "checkpoint", help="last.safetensors of oscsim train rotmnist --model published*"
    )
    parser.add_argument("--out", required=True, help="folder for waves.json, waves.gif, …")
    parser.add_argument("--digits", type=int, default=64, help="test digits measured (64)")
    parser.add_argument("--drop", type=int, default=18, help="frames dropped at the start (18)")
    parser.add_argument("--animate", type=int, default=3, help="digits in the animation (3)")
    parser.add_argument("--seed", type=int, default=0, help="posterior draws and shuffles")
    parser.add_argument("--mean", action="store_true", help="drive with posterior means only")
    args = parser.parse_args(argv)
    if not 1 <= args.digits <= 10_000:
        raise OscsimInputError(f"--digits must be from 1 to 10000; got {args.digits}")
    if not 0 <= args.drop <= 72 - 16:
        raise OscsimInputError(f"--drop must be from 0 to 56 (72 frames); got {args.drop}")
    if not 1 <= args.animate <= min(args.digits, 8):
        raise OscsimInputError(
            f"--animate must be from 1 to min(--digits, 8) = {min(args.digits, 8)}; "
            f"got {args.animate}"
        )
    model, meta, _ = load_published(args.checkpoint)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    started = time.time()
    recipe = meta["recipe"]
    layout = model.layout
    clips = published_clips("test", n=args.digits)
    print(
        f"rotmnist_waves: {recipe['model']} at step {meta['step']}, {args.digits} digits",
        flush=True,
    )

    recorded = drive_latents(model, clips, seed=args.seed, sample=not args.mean)
    means = recorded if args.mean else drive_latents(model, clips, sample=False)
    numbers = wave_numbers(recorded["position"], layout, drop=args.drop, seed=args.seed)
    initial = build_published_model(recipe["model"], recipe["seed"])
    at_init = drive_latents(initial, clips, seed=args.seed, sample=not args.mean)
    numbers_init = wave_numbers(at_init["position"], layout, drop=args.drop, seed=args.seed)
    eq = equivariance(model, clips, means["position"])
    print(
        f"  percent waves {numbers['percent_waves']:.1f} % "
        f"(init {numbers_init['percent_waves']:.1f} %)",
        flush=True,
    )

    from oscsim import analysis

    phase = analysis.published_phase(_recording(recorded["position"], layout)).values
    rgb = analysis.phase_rgb(phase)
    files = write_animation(clips, rgb, recorded["probs"], out, digits=args.animate)

    result: dict[str, Any] = {
        "checkpoint": str(args.checkpoint),
        "model": recipe["model"],
        "step": meta["step"],
        "epochs": meta["epoch"],
        "training_seconds": meta["elapsed"],
        "digits": args.digits,
        "frames": int(clips.shape[1]),
        "dropped_frames": args.drop,
        "drive": "posterior mean" if args.mean else "posterior samples",
        **numbers,
        "percent_waves_init": numbers_init["percent_waves"],
        "published_percent_waves_init": numbers_init["published_percent_waves"],
        "dominant_frequency_init": numbers_init["dominant_frequency"],
        "equivariance_gain": eq.get("gain"),
        "equivariance": eq if layout == "torus" else None,
        "roll_1d": eq if layout == "rings" else None,
        "files": files,
        "wall_seconds": time.time() - started,
    }
    write_text_atomic(json.dumps(result, indent=2), out / "waves.json")
    print(json.dumps({k: v for k, v in result.items() if not isinstance(v, dict)}, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
