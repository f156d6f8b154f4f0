"""Rotating MNIST: a digit turning by a fixed angle per frame (the Neural Wave Machine set-up).

Frame ``k`` of a sequence is the digit rotated by ``start + k * degrees_per_frame`` degrees
about the image centre with ``scipy.ndimage.rotate(image, angle, reshape=False, order=1)``
(bilinear, zero outside). Positive angles turn counter-clockwise as the image is displayed with
row 0 at the top (matplotlib's ``imshow`` default). Each frame is rotated from the original
digit, never from the previous frame, so interpolation blur does not accumulate.

Defaults are the paper's: 18 frames of 20° (one full turn), start angle 0. With
``random_start=True`` every sequence starts at its own angle, uniform on [0°, 360°).

========================  =========================================================
parameter                 meaning (default)
========================  =========================================================
``frames``                frames per sequence (18)
``degrees_per_frame``     rotation between consecutive frames (20.0)
``random_start``          per-sequence start angle uniform on [0, 360) (False: 0°)
``n``                     number of sequences (None: every digit of the split, in order)
``seed``                  which digits (when ``n`` is given) and which start angles
========================  =========================================================

Output: float32 ``(n, frames, 1, 28, 28)`` in [0, 1] (byte / 255), with the labels. Sets are
cached as ``.npz`` under ``<data dir>/rotating_mnist/``, keyed by the parameters and a digest
of the source digits; the same arguments give the same bytes.
"""

from __future__ import annotations

import hashlib
import os
from typing import NamedTuple

import numpy as np
import numpy.typing as npt
from oscsim.models.data._cache import data_dir, load_cached, params_digest, params_key, progress
from oscsim.models.data._cache import save_npz_atomic as _save
from oscsim.models.data.mnist import Split, load_mnist
from scipy import ndimage

from oscsim.errors import OscsimInputError

__all__ = ["RotatingMNIST", "rotate_sequences", "rotating_mnist"]

#: Version of the generator; bump when the output for given arguments changes.
GENERATOR_VERSION = 1


class RotatingMNIST(NamedTuple):
    """A rotating-MNIST set."""

    frames: np.ndarray
    """float32 ``(n, frames, 1, 28, 28)`` in [0, 1]."""
    labels: np.ndarray
    """int64 ``(n,)``, the digit of each sequence."""
    indices: np.ndarray
    """int64 ``(n,)``, index of each digit within its MNIST split."""
    start_angles: np.ndarray
    """float64 ``(n,)``, angle of frame 0 in degrees."""


def rotate_sequences(
    images: npt.ArrayLike,
    *,
    frames: int = 18,
    degrees_per_frame: float = 20.0,
    start_angles: npt.ArrayLike | None = None,
    show_progress: bool | None = None,
) -> np.ndarray:
    """Turn each image into a sequence of rotated copies.

    Parameters
    ----------
    images
        ``(n, H, W)``: uint8 (divided by 255) or floats in [0, 1].
    frames
        Frames per sequence.
    degrees_per_frame
        Rotation between consecutive frames, degrees (counter-clockwise as displayed).
    start_angles
        ``(n,)`` angle of frame 0 of each sequence in degrees; ``None`` for 0.
    show_progress
        tqdm bar: ``None`` shows it for large ``n`` on a terminal.

    Returns
    -------
    numpy.ndarray
        float32 ``(n, frames, 1, H, W)`` in [0, 1]; frame ``k`` of sequence ``i`` is
        ``scipy.ndimage.rotate(images[i], start_angles[i] + k * degrees_per_frame,
        reshape=False, order=1)``.
    """
    arr = np.asarray(images)
    if arr.ndim != 3:
        raise OscsimInputError(f"images must have shape (n, H, W); got {arr.shape}")
    if isinstance(frames, bool) or not isinstance(frames, (int, np.integer)) or frames < 1:
        raise OscsimInputError(f"frames={frames!r} must be a positive integer")
    if arr.dtype == np.uint8:
        base = arr.astype(np.float32) / np.float32(255.0)
    else:
        base = arr.astype(np.float32)
    n = len(base)
    out = np.empty((n, frames, 1) + base.shape[1:], dtype=np.float32)
    if start_angles is None:
        # One angle per frame for the whole stack: rotate all images at once.
        # Frame 0 is the image itself (rotating by 0 degrees is the identity, exactly).
        out[:, 0, 0] = base
        steps = range(1, frames)
        for k in progress(steps, total=len(steps), enabled=show_progress, desc="rotate", items=n):
            out[:, k, 0] = ndimage.rotate(
                base, k * degrees_per_frame, axes=(2, 1), reshape=False, order=1
            )
    else:
        starts = np.asarray(start_angles, dtype=np.float64)
        if starts.shape != (n,):
            raise OscsimInputError(f"start_angles must have shape ({n},); got {starts.shape}")
        for i in progress(range(n), total=n, enabled=show_progress, desc="rotate"):
            for k in range(frames):
                out[i, k, 0] = ndimage.rotate(
                    base[i], starts[i] + k * degrees_per_frame, reshape=False, order=1
                )
    np.clip(out, 0.0, 1.0, out=out)
    return out


def rotating_mnist(
    split: Split = "train",
    n: int | None = None,
    *,
    seed: int = 0,
    frames: int = 18,
    degrees_per_frame: float = 20.0,
    random_start: bool = False,
    root: str | os.PathLike[str] | None = None,
    cache: bool = True,
    cache_dir: str | os.PathLike[str] | None = None,
    show_progress: bool | None = None,
) -> RotatingMNIST:
    """Rotating MNIST from the offline MNIST, deterministic from ``seed``, cached on disk.

    Parameters
    ----------
    split
        MNIST split the digits come from.
    n
        Number of sequences; ``None`` takes every digit of the split in order. Otherwise ``n``
        distinct digits are drawn with ``np.random.default_rng([seed, 0]).choice(len, n,
        replace=False)``.
    seed
        Non-negative integer; selects the digits and (``random_start``) the start angles, drawn
        after the digits from the same generator.
    frames, degrees_per_frame, random_start
        See the module table.
    root
        Where MNIST is (see :func:`models.data.load_mnist`).
    cache, cache_dir
        Read/write ``<cache_dir>/rotating_mnist/*.npz`` (default data directory).
    show_progress
        tqdm bar (``None``: for large ``n`` on a terminal).

    Returns
    -------
    RotatingMNIST
        ``frames`` float32 ``(n, frames, 1, 28, 28)``, ``labels``, ``indices``, ``start_angles``.
    """
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise OscsimInputError(f"seed={seed!r} must be a non-negative integer")
    images, labels = load_mnist(split, root=root)
    total = len(images)
    rng = np.random.default_rng([int(seed), 0])
    if n is None:
        indices = np.arange(total, dtype=np.int64)
    else:
        if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or not 1 <= n <= total:
            raise OscsimInputError(
                f"n={n!r} must be an integer between 1 and {total} (the {split} split's size)"
            )
        indices = rng.choice(total, size=int(n), replace=False).astype(np.int64)
    starts = rng.uniform(0.0, 360.0, size=len(indices)) if random_start else np.zeros(len(indices))
    chosen = images[indices]
    params = {
        "generator": "rotating_mnist",
        "version": GENERATOR_VERSION,
        "split": split,
        "n": None if n is None else int(n),
        "seed": int(seed),
        "frames": int(frames),
        "degrees_per_frame": float(degrees_per_frame),
        "random_start": bool(random_start),
        "digits_sha256": hashlib.sha256(chosen.tobytes()).hexdigest(),
    }
    path = (
        data_dir(cache_dir)
        / "rotating_mnist"
        / f"rotating-mnist-{split}-n{len(indices)}-seed{seed}-{params_digest(params)}.npz"
    )
    if cache:
        hit = load_cached(path, params)
        if hit is not None:
            return RotatingMNIST(hit["frames"], hit["labels"], hit["indices"], hit["start_angles"])
    out = rotate_sequences(
        chosen,
        frames=frames,
        degrees_per_frame=degrees_per_frame,
        start_angles=starts if random_start else None,
        show_progress=show_progress,
    )
    result = RotatingMNIST(out, labels[indices], indices, starts)
    if cache:
        _save(
            path,
            {**result._asdict(), "params": np.asarray(params_key(params))},
            compress=True,
        )
    return result
