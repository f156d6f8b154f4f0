"""Noisy sequential CIFAR-10 and IMDB sentiment: the paper's other two sequence benchmarks.

Both read the standard files a user downloads (`oscsim.models.data.text_image` says which
and where) and follow the published protocols.

Noisy CIFAR-10 (coRNN's protocol, used by the NWM paper)
    Each image is 1000 steps of 96 values: its 32 rows (red, green, blue row ``r`` side by
    side, in [0, 1]), then 968 steps of one noise tensor, N(0, 1), drawn once per seed and
    shared by every image and split. The 50,000 training images split at random (seeded)
    into 47,000 / 3,000; the test accuracy is the best validation epoch's.
IMDB (the NWM paper's protocol)
    Reviews become token ids (`oscsim.models.data.text_image.tokenize`, which stands in for
    spaCy and differs from it slightly); the 25,000 training reviews split at random (seeded)
    70 / 30 into 17,500 / 7,500; the vocabulary is ``<unk>``, ``<pad>`` and the 25,000 most
    frequent training tokens; the model reads them through a trainable 100-wide embedding that
    starts from GloVe (6B, 100d), with zero ``<unk>`` and ``<pad>`` rows. A batch pads its
    reviews at the end to its longest one, and the padding steps run through the model (the
    published models ignore the lengths too). Loss: binary cross-entropy on one logit.
"""

from __future__ import annotations

import abc
from collections.abc import Iterator
from typing import Any, ClassVar

import numpy as np
import torch
import torch.nn.functional as F
from oscsim.models.data._cache import data_dir
from oscsim.models.data.text_image import (
    GLOVE_FILE,
    PADDING,
    UNKNOWN,
    build_vocabulary,
    cifar_rows,
    missing_files_error,
    read_cifar10,
    read_glove,
    read_imdb,
    tokenize,
)
from oscsim.models.tasks import (
    Batch,
    CrossEntropyMixin,
    Task,
    TaskDefaults,
    TaskRequest,
    check_protocol,
)

#: Steps of the noisy CIFAR-10 sequence: 32 image rows, then noise.
CIFAR_STEPS = 1000
#: Validation share of the training files: 3,000 of CIFAR's 50,000; 7,500 of IMDB's 25,000.
CIFAR_VALIDATION_SHARE = 3 / 50
IMDB_VALIDATION_SHARE = 3 / 10
#: IMDB vocabulary size (without ``<unk>`` and ``<pad>``) and embedding width.
IMDB_VOCABULARY = 25_000
IMDB_EMBEDDING = 100
# Random streams of one seed: the split, the noise, the embedding of words without GloVe.
_SPLIT_STREAM, _NOISE_STREAM = 47, 968


def _split(n: int, share: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Seeded split of ``n`` items: (training, validation) indices, each sorted."""
    n_validation = round(n * share)
    order = np.random.default_rng([seed, _SPLIT_STREAM]).permutation(n)
    return np.sort(order[n_validation:]), np.sort(order[:n_validation])


def _limited(index: np.ndarray, limit: int | None) -> np.ndarray:
    return index if limit is None else index[:limit]


class _ClassificationTask(Task):
    """Shared batching: a shuffled training index per epoch, fixed evaluation order."""

    selection_metric = "accuracy"
    higher_is_better = True

    def __init__(
        self,
        *,
        seed: int,
        limit_train: int | None = None,
        limit_eval: int | None = None,
        protocol: str = "reference",
        root: str | None = None,
    ) -> None:
        super().__init__(seed=seed, limit_train=limit_train, limit_eval=limit_eval)
        self.protocol = check_protocol(protocol)
        self._index: dict[str, np.ndarray] = {}
        self._load(root, seed)

    @abc.abstractmethod
    def _load(self, root: str | None, seed: int) -> None:
        """Read the data set below `root` (see `data_dir`) and fill ``_index`` per split."""

    @abc.abstractmethod
    def _items(self, split: str, index: np.ndarray) -> Batch:
        """Inputs and targets of the items ``index`` of ``split``."""

    def batches_per_epoch(self, batch_size: int) -> int:
        return -(-len(_limited(self._index["train"], self.limit_train)) // batch_size)

    def train_batch(self, epoch: int, index: int, batch_size: int) -> Batch:
        pool = _limited(self._index["train"], self.limit_train)
        order = np.random.default_rng([self.seed, epoch]).permutation(len(pool))
        return self._items("train", pool[order[index * batch_size : (index + 1) * batch_size]])

    def eval_batches(self, split: str, batch_size: int) -> Iterator[Batch]:
        pool = _limited(self._index[split], self.limit_eval)
        for start in range(0, len(pool), batch_size):
            yield self._items(split, pool[start : start + batch_size])

    def state(self) -> dict[str, Any]:
        return {"protocol": self.protocol}


class NoisyCifarTask(CrossEntropyMixin, _ClassificationTask):
    """Noisy sequential CIFAR-10 (module docstring): inputs ``(B, 1000, 96)``, 10 classes."""

    name = "noisy_cifar10"
    input_size = 96
    output_size = 10
    defaults = TaskDefaults(0.0075, 0.034, 1.3, 12.7, 100, 120, (100,), hidden=128)

    def _load(self, root: str | None, seed: int) -> None:
        data = read_cifar10(root)
        self._images = {"train": data["train"][0], "test": data["test"][0]}
        self._labels = {"train": data["train"][1], "test": data["test"][1]}
        train, validation = _split(len(self._labels["train"]), CIFAR_VALIDATION_SHARE, seed)
        self._index = {
            "train": train,
            "validation": validation,
            "test": np.arange(len(self._labels["test"])),
        }
        noise = np.random.default_rng([seed, _NOISE_STREAM]).standard_normal((CIFAR_STEPS - 32, 96))
        self.noise = torch.from_numpy(noise.astype(np.float32))

    def _items(self, split: str, index: np.ndarray) -> Batch:
        source = "test" if split == "test" else "train"
        rows = torch.from_numpy(cifar_rows(self._images[source][index]))
        noise = self.noise.expand(len(index), *self.noise.shape)
        return torch.cat((rows, noise), dim=1), torch.from_numpy(self._labels[source][index])


class ImdbTask(_ClassificationTask):
    """IMDB sentiment (module docstring): token ids ``(B, L)``, one logit.

    Attributes
    ----------
    vocabulary : list of str
        ``<unk>``, ``<pad>``, then the most frequent training tokens.
    initial_embedding : numpy.ndarray
        float32 ``(len(vocabulary), 100)``: GloVe rows, N(0, 1) for words without one,
        zero for ``<unk>`` and ``<pad>``.
    padding_index : int
        Id of ``<pad>``.
    """

    name = "imdb"
    input_size = IMDB_EMBEDDING
    output_size = 1
    defaults = TaskDefaults(6e-4, 0.054, 4.9, 4.8, 64, 100, (), eval_batch_size=64, hidden=128)
    #: The published IMDB models' kernels have no bias.
    model_defaults: ClassVar[dict[str, Any]] = {"kernel_bias": False}

    def _load(self, root: str | None, seed: int) -> None:
        glove = data_dir(root) / GLOVE_FILE
        data = read_imdb(root)
        if not glove.is_file():
            raise missing_files_error(glove, "GloVe vectors", "glove.6B.zip")
        tokens = {split: [tokenize(text) for text in texts] for split, (texts, _) in data.items()}
        train, validation = _split(len(tokens["train"]), IMDB_VALIDATION_SHARE, seed)
        self.vocabulary = build_vocabulary((tokens["train"][i] for i in train), IMDB_VOCABULARY)
        ids = {word: i for i, word in enumerate(self.vocabulary)}
        unknown = ids[UNKNOWN]
        self.padding_index = ids[PADDING]
        self._ids = {
            split: [np.array([ids.get(t, unknown) for t in seq], dtype=np.int64) for seq in seqs]
            for split, seqs in tokens.items()
        }
        self._labels = {split: labels for split, (_, labels) in data.items()}
        self._index = {
            "train": train,
            "validation": validation,
            "test": np.arange(len(self._labels["test"])),
        }
        self.initial_embedding = read_glove(glove, self.vocabulary, seed=seed, dim=IMDB_EMBEDDING)

    def _items(self, split: str, index: np.ndarray) -> Batch:
        source = "test" if split == "test" else "train"
        sequences = [self._ids[source][i] for i in index]
        length = max(1, *(len(s) for s in sequences))
        tokens = np.full((len(sequences), length), self.padding_index, dtype=np.int64)
        for row, seq in enumerate(sequences):
            tokens[row, : len(seq)] = seq
        labels = self._labels[source][index].astype(np.float32)
        return torch.from_numpy(tokens), torch.from_numpy(labels)

    def loss(self, output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return F.binary_cross_entropy_with_logits(output.squeeze(1), target)

    def batch_metrics(self, output: torch.Tensor, target: torch.Tensor) -> dict[str, float]:
        logit = output.squeeze(1)
        return {
            "loss": float(F.binary_cross_entropy_with_logits(logit, target, reduction="sum")),
            "accuracy": float(((logit > 0).to(target.dtype) == target).sum()),
        }


def noisy_cifar_task(request: TaskRequest) -> Task:
    """The noisy CIFAR-10 task (registered in `oscsim.models.registry`)."""
    return NoisyCifarTask(**request.common())


def imdb_task(request: TaskRequest) -> Task:
    """The IMDB task (registered in `oscsim.models.registry`)."""
    return ImdbTask(**request.common())
