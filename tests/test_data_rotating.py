"""Rotating MNIST: full turn, frame k is frame 0 turned by 20k degrees, determinism, cache."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
from oscsim.models.data import data_dir, load_mnist, rotate_sequences, rotating_mnist
from oscsim.models.data.mnist import FETCH_COMMAND, MNIST_FILENAME
from scipy import ndimage

from oscsim import OscsimInputError
from tests.test_data_mnist import fake_mnist_root  # noqa: F401 - a fixture


def _digits(n: int) -> np.ndarray:
    """Digit-like test images: smooth random strokes inside the central disc, uint8."""
    rng = np.random.default_rng(0)
    images = np.zeros((n, 28, 28))
    for i in range(n):
        for _ in range(3):
            r, c = rng.integers(8, 20, size=2)
            images[i, r - 2 : r + 3, c - 1 : c + 2] = 1.0
    return (ndimage.gaussian_filter(images, (0, 1, 1)) / images.max() * 255).astype(np.uint8)


def test_frames_are_rotations_of_frame_zero() -> None:
    digits = _digits(4)
    frames = rotate_sequences(digits, frames=19)  # one frame past the full turn
    assert frames.shape == (4, 19, 1, 28, 28) and frames.dtype == np.float32
    assert frames.min() >= 0.0 and frames.max() <= 1.0
    np.testing.assert_array_equal(frames[:, 0, 0], digits / np.float32(255))
    for k in (1, 4, 9, 17):
        expected = [ndimage.rotate(f, 20.0 * k, reshape=False, order=1) for f in frames[:, 0, 0]]
        np.testing.assert_array_equal(frames[:, k, 0], np.stack(expected))
    # 18 frames of 20 degrees make a full turn
    np.testing.assert_allclose(frames[:, 18], frames[:, 0], atol=1e-5)
    assert np.abs(frames[:, 9] - frames[:, 0]).max() > 0.5  # half a turn is not the identity


def test_positive_angles_turn_counter_clockwise_as_displayed() -> None:
    image = np.zeros((1, 28, 28), dtype=np.float32)
    image[0, 4, 13:15] = 1.0  # top centre (row 0 is the top when displayed)
    quarter = rotate_sequences(image, frames=2, degrees_per_frame=90.0)[0, 1, 0]
    row, col = np.unravel_index(np.argmax(quarter), quarter.shape)
    assert 12 <= row <= 15 and col <= 5, "top goes to the left under a counter-clockwise turn"


def test_random_start_angles() -> None:
    digits = _digits(3)
    starts = np.array([10.0, 200.0, 355.0])
    frames = rotate_sequences(digits, frames=3, start_angles=starts)
    for i in range(3):
        for k in range(3):
            expected = ndimage.rotate(
                digits[i] / np.float32(255), starts[i] + 20.0 * k, reshape=False, order=1
            )
            np.testing.assert_array_equal(frames[i, k, 0], expected)


def test_rotating_mnist_is_deterministic_and_cached(
    fake_mnist_root: Path,  # noqa: F811
    tmp_path: Path,
) -> None:
    kwargs: dict[str, Any] = {"root": fake_mnist_root, "cache_dir": tmp_path, "frames": 4}
    a = rotating_mnist("test", 5, seed=1, **kwargs)
    assert a.frames.shape == (5, 4, 1, 28, 28) and a.frames.dtype == np.float32
    images, labels = load_mnist("test", root=fake_mnist_root)
    np.testing.assert_array_equal(a.labels, labels[a.indices])
    np.testing.assert_array_equal(a.frames[:, 0, 0], images[a.indices] / np.float32(255))
    assert len(set(a.indices.tolist())) == 5
    files = list((tmp_path / "rotating_mnist").iterdir())
    assert len(files) == 1 and files[0].suffix == ".npz"
    cached = rotating_mnist("test", 5, seed=1, **kwargs)
    fresh = rotating_mnist("test", 5, seed=1, cache=False, root=fake_mnist_root, frames=4)
    assert cached.frames.tobytes() == a.frames.tobytes() == fresh.frames.tobytes()
    other = rotating_mnist("test", 5, seed=2, **kwargs)
    assert not np.array_equal(other.indices, a.indices)
    spun = rotating_mnist("test", 5, seed=1, random_start=True, **kwargs)
    assert spun.start_angles.min() >= 0 and spun.start_angles.max() < 360
    assert not np.array_equal(spun.frames, a.frames)
    assert len(list((tmp_path / "rotating_mnist").iterdir())) == 3
    with pytest.raises(OscsimInputError, match="between 1 and 7"):
        rotating_mnist("test", 8, **kwargs)


def test_rotating_real_mnist_when_fetched(tmp_path: Path) -> None:
    if not (data_dir() / MNIST_FILENAME).is_file():
        pytest.skip(f"MNIST is not in {data_dir()}; run `{FETCH_COMMAND}` (nox -s tests does)")
    data = rotating_mnist("validation", 16, seed=0, cache_dir=tmp_path)
    assert data.frames.shape == (16, 18, 1, 28, 28)
    # the ink is conserved approximately by rotation (bilinear interpolation smooths it a bit)
    ink = data.frames.sum(axis=(2, 3, 4))
    np.testing.assert_allclose(ink, np.broadcast_to(ink[:, :1], ink.shape), rtol=0.1)
    # one more step after the last frame closes the turn: far closer to frame 0 (only the blur
    # of a second interpolation) than one step of 20 degrees is
    full_turn = ndimage.rotate(data.frames[:, 17, 0], 20.0, axes=(2, 1), reshape=False, order=1)
    closing = np.abs(full_turn - data.frames[:, 0, 0]).mean()
    one_step = np.abs(data.frames[:, 1, 0] - data.frames[:, 0, 0]).mean()
    assert closing < 0.35 * one_step
