"""Sequence tasks: sequential / permuted MNIST and the adding problem."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from oscsim.models.data import (
    AddingProblemStream,
    SequentialMNIST,
    adding_problem_batch,
    adding_problem_split,
    load_mnist,
    pixel_permutation,
)

from oscsim import OscsimInputError
from tests.test_data_mnist import fake_mnist_root  # noqa: F401 - a fixture

# ------------------------------------------------------------------------------------------
# adding problem


def _check_adding(inputs: np.ndarray, targets: np.ndarray, length: int) -> None:
    n = len(inputs)
    assert inputs.shape == (n, length, 2) and inputs.dtype == np.float32
    assert targets.shape == (n, 1) and targets.dtype == np.float32
    values, markers = inputs[..., 0], inputs[..., 1]
    assert values.min() >= 0.0 and values.max() < 1.0
    assert set(np.unique(markers)) <= {0.0, 1.0}
    np.testing.assert_array_equal(markers.sum(axis=1), 2.0)
    half = length // 2
    np.testing.assert_array_equal(markers[:, :half].sum(axis=1), 1.0)
    np.testing.assert_array_equal(markers[:, half:].sum(axis=1), 1.0)
    marked = (values * markers).sum(axis=1, dtype=np.float64).astype(np.float32)
    np.testing.assert_array_equal(targets[:, 0], marked)


@pytest.mark.parametrize("length", [2, 3, 50, 501])
def test_adding_batch_markers_and_targets(length: int) -> None:
    inputs, targets = adding_problem_batch(length, 64, seed=7, index=3)
    _check_adding(inputs, targets, length)


def test_adding_markers_cover_both_halves_uniformly() -> None:
    inputs, targets = adding_problem_batch(10, 20_000, seed=0)
    positions = np.nonzero(inputs[..., 1])[1].reshape(-1, 2)
    assert set(np.unique(positions[:, 0])) == set(range(5))
    assert set(np.unique(positions[:, 1])) == set(range(5, 10))
    assert abs(targets.mean() - 1.0) < 0.01  # the sum of two U[0, 1) values


def test_adding_batches_are_pure_functions_of_seed_and_index() -> None:
    a = adding_problem_batch(100, 8, seed=1, index=5)
    b = adding_problem_batch(100, 8, seed=1, index=5)
    assert all(x.tobytes() == y.tobytes() for x, y in zip(a, b, strict=True))
    assert not np.array_equal(a[0], adding_problem_batch(100, 8, seed=1, index=6)[0])
    assert not np.array_equal(a[0], adding_problem_batch(100, 8, seed=2, index=5)[0])


def test_adding_fixed_splits_are_fixed_and_distinct() -> None:
    val = adding_problem_split(60, 100, seed=0, split="validation")
    test = adding_problem_split(60, 100, seed=0, split="test")
    _check_adding(*val, 60)
    _check_adding(*test, 60)
    assert val[0].tobytes() == adding_problem_split(60, 100, seed=0)[0].tobytes()
    train0 = adding_problem_batch(60, 100, seed=0, index=0)[0]
    assert not np.array_equal(val[0], test[0]) and not np.array_equal(val[0], train0)
    with pytest.raises(OscsimInputError, match="validation"):
        adding_problem_split(60, 10, seed=0, split="train")


def test_adding_stream_resumes_exactly() -> None:
    stream = AddingProblemStream(30, 4, seed=3)
    first = [next(stream) for _ in range(3)]
    state = stream.state_dict()
    assert state == {"length": 30, "batch_size": 4, "seed": 3, "index": 3}
    expected = next(stream)
    resumed = AddingProblemStream(30, 4, seed=3)
    resumed.load_state_dict(state)
    got = next(resumed)
    assert torch.equal(got[0], expected[0]) and torch.equal(got[1], expected[1])
    assert got[0].dtype == torch.float32 and got[0].shape == (4, 30, 2)
    x1, y1 = adding_problem_batch(30, 4, seed=3, index=1)
    assert np.array_equal(first[1][0].numpy(), x1) and np.array_equal(first[1][1].numpy(), y1)
    with pytest.raises(OscsimInputError, match="seed"):
        AddingProblemStream(30, 4, seed=4).load_state_dict(state)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"length": 1, "batch_size": 2, "seed": 0}, "length"),
        ({"length": 10, "batch_size": 0, "seed": 0}, "batch_size"),
        ({"length": 10, "batch_size": 2, "seed": -1}, "seed"),
        ({"length": 10, "batch_size": 2, "seed": 0, "index": -3}, "index"),
    ],
)
def test_adding_rejects_bad_arguments(kwargs: dict, match: str) -> None:
    with pytest.raises(OscsimInputError, match=match):
        adding_problem_batch(**kwargs)


# ------------------------------------------------------------------------------------------
# sequential MNIST


def test_sequential_mnist_is_row_major_pixels(fake_mnist_root: Path) -> None:  # noqa: F811
    images, labels = load_mnist("test", root=fake_mnist_root)
    ds = SequentialMNIST("test", root=fake_mnist_root)
    assert len(ds) == len(images) == 7
    assert ds.permutation is None
    x, y = ds[2]
    assert x.shape == (784, 1) and x.dtype == torch.float32
    assert y.dtype == torch.int64 and int(y) == labels[2]
    np.testing.assert_array_equal(x[:, 0].numpy(), images[2].reshape(-1) / np.float32(255))
    assert float(x.min()) >= 0.0 and float(x.max()) <= 1.0
    # step t = 28*row + column
    assert float(x[28 * 5 + 9, 0]) == np.float32(images[2, 5, 9]) / np.float32(255)
    bx, by = ds.batch([0, 2])
    assert bx.shape == (2, 784, 1) and torch.equal(bx[1], x) and int(by[1]) == int(y)


def test_permuted_mnist_uses_the_seeded_permutation(fake_mnist_root: Path) -> None:  # noqa: F811
    plain = SequentialMNIST("train", root=fake_mnist_root)
    perm_ds = SequentialMNIST("train", permuted=True, seed=5, root=fake_mnist_root)
    expected = np.random.default_rng(5).permutation(784)
    np.testing.assert_array_equal(perm_ds.permutation, expected)
    np.testing.assert_array_equal(pixel_permutation(5), expected)
    x, _ = plain[1]
    xp, _ = perm_ds[1]
    assert torch.equal(xp[:, 0], x[expected, 0])  # step t shows pixel permutation[t]
    # a stored permutation restores the same data set
    again = SequentialMNIST("train", permutation=perm_ds.permutation, root=fake_mnist_root)
    assert torch.equal(again[1][0], xp)
    other = SequentialMNIST("train", permuted=True, seed=6, root=fake_mnist_root)
    assert other.permutation is not None and not np.array_equal(other.permutation, expected)
    with pytest.raises(OscsimInputError, match="permutation"):
        SequentialMNIST("train", permutation=np.zeros(784, dtype=int), root=fake_mnist_root)
