"""Sequence tasks: sequential and permuted MNIST, and the adding problem.

Conventions: batches are batch-first, ``(batch, time, features)``; inputs are float32.

Sequential MNIST (sMNIST)
    Each image is read pixel by pixel in row-major order: 784 steps of one feature, the pixel
    value in [0, 1] (byte / 255, as torchvision's ``ToTensor``), target the digit. The splits
    are MNIST's 50 000 / 10 000 / 10 000 (see :func:`models.data.load_mnist`), or the 60 000
    training images at once (``"all_train"``) for the published seeded 57 000 / 3 000 split
    (`published_mnist_split`).
Permuted sequential MNIST (psMNIST)
    The same with one fixed permutation of the 784 pixel positions,
    ``np.random.default_rng(seed).permutation(784)``: step ``t`` shows pixel
    ``permutation[t]`` of the row-major image. The permutation is an attribute of the data set,
    so a run can store it and a resumed run can pass it back.
Adding problem (Hochreiter & Schmidhuber 1997, in the form of coRNN, Rusch & Mishra 2021)
    Input ``(T, 2)``: channel 0 uniform on [0, 1), channel 1 zero except two markers equal to
    1, one at a uniform position in ``[0, T//2)`` and one in ``[T//2, T)``; the target is the
    sum of the two marked values (mean 1). Batch ``i`` of seed ``s`` is a pure function of
    ``(T, batch size, s, i)``, so a stream of training batches resumes exactly from the index
    alone; validation and test sets are fixed and drawn from their own streams.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping
from typing import Any, Literal

import numpy as np
import numpy.typing as npt
import torch
from oscsim.models.data.mnist import Split, load_mnist
from torch.utils.data import Dataset

from oscsim.errors import OscsimInputError

__all__ = [
    "AddingProblemStream",
    "SequentialMNIST",
    "adding_problem_batch",
    "adding_problem_split",
    "pixel_permutation",
    "published_mnist_split",
]

#: Number of pixels of an MNIST image, the length of an sMNIST sequence.
MNIST_PIXELS = 784

# Independent random streams of the adding problem: entropy (seed, stream, index).
_ADDING_STREAMS = {"train": 0, "validation": 1, "test": 2}


def pixel_permutation(seed: int) -> np.ndarray:
    """The psMNIST pixel order of ``seed``: ``np.random.default_rng(seed).permutation(784)``."""
    return np.random.default_rng(_check_seed(seed)).permutation(MNIST_PIXELS)


#: Sizes of the published split of MNIST's 60 000 training images (training, validation).
PUBLISHED_MNIST_SPLIT = (57_000, 3_000)
# Random stream of that split, apart from the permutation's stream of the same seed.
_SPLIT_STREAM = 57


def published_mnist_split(seed: int) -> tuple[np.ndarray, np.ndarray]:
    """The seeded 57 000 / 3 000 split of MNIST's 60 000 training images.

    The published code splits the training file at random (``random_split``) into 57 000
    training and 3 000 validation images; here the draw is
    ``np.random.default_rng([seed, 57]).permutation(60000)``, so a seed fixes it.

    Returns
    -------
    train, validation : numpy.ndarray
        int64 indices into the 60 000 images (``SequentialMNIST("all_train")``), sorted.
    """
    order = np.random.default_rng([_check_seed(seed), _SPLIT_STREAM]).permutation(
        sum(PUBLISHED_MNIST_SPLIT)
    )
    n_train = PUBLISHED_MNIST_SPLIT[0]
    return np.sort(order[:n_train]), np.sort(order[n_train:])


class SequentialMNIST(Dataset[tuple[torch.Tensor, torch.Tensor]]):
    """Sequential (optionally permuted) MNIST as a map-style torch data set.

    Parameters
    ----------
    split
        ``"train"``, ``"validation"`` or ``"test"``, or ``"all_train"``: all 60 000 images
        of MNIST's training file (train then validation), for a split of one's own.
    permuted
        Read the pixels in the fixed random order of ``seed`` (psMNIST).
    seed
        Seed of the permutation (used only when ``permuted``).
    permutation
        An explicit pixel order (784 distinct indices), e.g. one stored with a run; implies
        ``permuted`` and overrides ``seed``.
    root
        Where MNIST is (see :func:`models.data.load_mnist`).

    Attributes
    ----------
    permutation : numpy.ndarray or None
        int64 ``(784,)``: step ``t`` shows pixel ``permutation[t]`` of the row-major image;
        ``None`` for plain sMNIST.

    Notes
    -----
    Items are ``(x, y)``: ``x`` float32 ``(784, 1)`` in [0, 1], ``y`` an int64 scalar tensor.
    :meth:`batch` gathers many items at once without a DataLoader.

    Examples
    --------
    >>> ds = SequentialMNIST("test", permuted=True, seed=0)  # doctest: +SKIP
    >>> x, y = ds[0]; x.shape  # doctest: +SKIP
    torch.Size([784, 1])
    """

    sequence_length = MNIST_PIXELS
    input_size = 1
    num_classes = 10

    def __init__(
        self,
        split: Split | Literal["all_train"] = "train",
        *,
        permuted: bool = False,
        seed: int = 0,
        permutation: npt.ArrayLike | None = None,
        root: str | os.PathLike[str] | None = None,
    ) -> None:
        if split == "all_train":
            # The 60 000 images of MNIST's training file in their original order.
            parts = [load_mnist(name, root=root) for name in ("train", "validation")]
            images = np.concatenate([p[0] for p in parts])
            labels = np.concatenate([p[1] for p in parts])
        else:
            images, labels = load_mnist(split, root=root)
        pixels = images.reshape(len(images), MNIST_PIXELS)
        if permutation is not None:
            perm = np.asarray(permutation)
            if (
                perm.shape != (MNIST_PIXELS,)
                or not np.issubdtype(perm.dtype, np.integer)
                or not np.array_equal(np.sort(perm), np.arange(MNIST_PIXELS))
            ):
                raise OscsimInputError(
                    f"permutation must hold each of 0..{MNIST_PIXELS - 1} once (shape "
                    f"({MNIST_PIXELS},), integers); got shape {perm.shape}, dtype {perm.dtype}"
                )
            self.permutation: np.ndarray | None = perm.astype(np.int64)
        elif permuted:
            self.permutation = pixel_permutation(seed)
        else:
            self.permutation = None
        if self.permutation is not None:
            pixels = pixels[:, self.permutation]
        self.split = split
        self._pixels = torch.from_numpy(np.ascontiguousarray(pixels))
        self._labels = torch.from_numpy(labels)

    def __len__(self) -> int:
        return len(self._labels)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        x = self._pixels[index].to(torch.float32).div_(255.0).unsqueeze(-1)
        return x, self._labels[index]

    def batch(self, index: npt.ArrayLike | slice) -> tuple[torch.Tensor, torch.Tensor]:
        """Inputs float32 ``(B, 784, 1)`` and labels int64 ``(B,)`` for many items at once."""
        idx = index if isinstance(index, slice) else torch.as_tensor(np.asarray(index))
        x = self._pixels[idx].to(torch.float32).div_(255.0).unsqueeze(-1)
        return x, self._labels[idx]

    @property
    def labels(self) -> torch.Tensor:
        """All labels, int64 ``(n,)``."""
        return self._labels


# ----------------------------------------------------------------------------------------------
# adding problem


def _check_seed(seed: int, name: str = "seed") -> int:
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise OscsimInputError(f"{name}={seed!r} must be a non-negative integer")
    return int(seed)


def _check_length(length: int) -> int:
    if isinstance(length, bool) or not isinstance(length, (int, np.integer)) or length < 2:
        raise OscsimInputError(
            f"length={length!r} must be an integer >= 2 (one marker goes in each half)"
        )
    return int(length)


def _check_count(value: int, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise OscsimInputError(f"{name}={value!r} must be a positive integer")
    return int(value)


def _adding_draw(rng: np.random.Generator, length: int, n: int) -> tuple[np.ndarray, np.ndarray]:
    values = rng.random((n, length)).astype(np.float32)
    half = length // 2
    first = rng.integers(0, half, size=n)
    second = rng.integers(half, length, size=n)
    rows = np.arange(n)
    inputs = np.zeros((n, length, 2), dtype=np.float32)
    inputs[:, :, 0] = values
    inputs[rows, first, 1] = 1.0
    inputs[rows, second, 1] = 1.0
    targets = (values[rows, first] + values[rows, second]).astype(np.float32)
    return inputs, targets[:, None]


def adding_problem_batch(
    length: int, batch_size: int, *, seed: int, index: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """Training batch ``index`` of the adding problem, a pure function of its arguments.

    Parameters
    ----------
    length
        Sequence length ``T`` (>= 2).
    batch_size
        Number of sequences ``B``.
    seed, index
        Non-negative integers; the batch is drawn from ``np.random.default_rng([seed, 0,
        index])``, so batches of one seed are independent and any of them can be regenerated.

    Returns
    -------
    inputs : numpy.ndarray
        float32 ``(B, T, 2)``: channel 0 values uniform on [0, 1), channel 1 the two markers.
    targets : numpy.ndarray
        float32 ``(B, 1)``: the sum of the two marked values.
    """
    length = _check_length(length)
    batch_size = _check_count(batch_size, "batch_size")
    seed = _check_seed(seed)
    index = _check_seed(index, "index")
    rng = np.random.default_rng([seed, _ADDING_STREAMS["train"], index])
    return _adding_draw(rng, length, batch_size)


def adding_problem_split(
    length: int, n: int, *, seed: int, split: str = "validation"
) -> tuple[np.ndarray, np.ndarray]:
    """Fixed validation or test set of the adding problem (shapes as :func:`adding_problem_batch`).

    Drawn from ``np.random.default_rng([seed, stream, 0])`` with stream 1 for ``"validation"``
    and 2 for ``"test"``, independent of every training batch of the same seed.
    """
    length = _check_length(length)
    n = _check_count(n, "n")
    seed = _check_seed(seed)
    if split not in ("validation", "test"):
        raise OscsimInputError(
            f"split={split!r} is not a fixed split; use 'validation' or 'test' (training batches "
            "come from adding_problem_batch or AddingProblemStream)"
        )
    rng = np.random.default_rng([seed, _ADDING_STREAMS[split], 0])
    return _adding_draw(rng, length, n)


class AddingProblemStream:
    """Endless stream of adding-problem training batches, as torch tensors, resumable exactly.

    Batch ``k`` of the stream is ``adding_problem_batch(length, batch_size, seed=seed,
    index=k)``. The whole state is the next index: save :meth:`state_dict` with a checkpoint and
    :meth:`load_state_dict` it to continue with the very batch that would have come next.

    Examples
    --------
    >>> stream = AddingProblemStream(500, 50, seed=0)
    >>> x, y = next(stream); tuple(x.shape), tuple(y.shape)
    ((50, 500, 2), (50, 1))
    >>> stream.state_dict()["index"]
    1
    """

    def __init__(self, length: int, batch_size: int, *, seed: int, start: int = 0) -> None:
        self.length = _check_length(length)
        self.batch_size = _check_count(batch_size, "batch_size")
        self.seed = _check_seed(seed)
        self.index = _check_seed(start, "start")

    def batch(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Batch ``index`` (does not move the stream)."""
        x, y = adding_problem_batch(self.length, self.batch_size, seed=self.seed, index=index)
        return torch.from_numpy(x), torch.from_numpy(y)

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        return self

    def __next__(self) -> tuple[torch.Tensor, torch.Tensor]:
        out = self.batch(self.index)
        self.index += 1
        return out

    def state_dict(self) -> dict[str, int]:
        """``{"length", "batch_size", "seed", "index"}``: everything needed to resume."""
        return {key: getattr(self, key) for key in ("length", "batch_size", "seed", "index")}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Continue from a saved :meth:`state_dict` (of a stream with the same task settings)."""
        for key in ("length", "batch_size", "seed"):
            if key in state and int(state[key]) != getattr(self, key):
                raise OscsimInputError(
                    f"saved stream has {key}={state[key]!r}, this stream {getattr(self, key)!r}; "
                    "build the stream with the saved settings"
                )
        self.index = _check_seed(int(state["index"]), "index")
