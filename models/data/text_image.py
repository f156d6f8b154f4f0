"""CIFAR-10 and IMDB from the standard files a user has, read without executing anything.

CIFAR-10 (the "python version", ``cifar-10-python.tar.gz`` unpacked)
    The folder ``cifar-10-batches-py`` holds ``data_batch_1`` … ``data_batch_5`` and
    ``test_batch``: pickles of a dict with ``b"data"`` (uint8 ``(n, 3072)``: the red, green
    and blue 32×32 planes of each image, rows in order) and ``b"labels"`` (n integers 0–9).
    Pickles can run code when loaded; `read_cifar10` unpickles with a restricted unpickler
    that builds only dicts, lists, bytes, strings, integers and numpy arrays, and refuses
    anything else.
IMDB (``aclImdb_v1.tar.gz`` unpacked)
    ``aclImdb/{train,test}/{pos,neg}/*.txt``: one review per file. `read_imdb` reads them
    in sorted file order.
GloVe (``glove.6B.zip`` unpacked)
    ``glove.6B.100d.txt``: one word per line followed by its 100 numbers.

Tokens
------
The published IMDB pipeline tokenises with spaCy, which oscsim does not depend on.
`tokenize` is a documented stand-in: HTML line breaks (``<br />``) become spaces, then the
text splits into runs of letters and digits (keeping an inner apostrophe, ``don't``) and
single punctuation marks; case is kept, as the published pipeline keeps it. Its tokens
differ from spaCy's on contractions (spaCy: ``do`` ``n't``), hyphenation and a few
abbreviations, so vocabularies and results differ slightly from the published ones.
"""

from __future__ import annotations

import pickle
import re
from collections import Counter
from collections.abc import Iterable
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
from oscsim.models.data._cache import data_dir

from oscsim.errors import OscsimInputError

__all__ = [
    "CIFAR_FOLDER",
    "GLOVE_FILE",
    "IMDB_FOLDER",
    "DataFilesMissingError",
    "build_vocabulary",
    "cifar_rows",
    "missing_files_error",
    "read_cifar10",
    "read_glove",
    "read_imdb",
    "tokenize",
]

#: Folder names and files inside the data directory.
CIFAR_FOLDER = "cifar-10-batches-py"
IMDB_FOLDER = "aclImdb"
GLOVE_FILE = "glove.6B.100d.txt"
CIFAR_TRAIN_FILES = tuple(f"data_batch_{i}" for i in range(1, 6))
CIFAR_TEST_FILE = "test_batch"
#: Special tokens of the IMDB vocabulary, at indices 0 and 1.
UNKNOWN, PADDING = "<unk>", "<pad>"


class DataFilesMissingError(FileNotFoundError, OscsimInputError):
    """A data set's files are not on disk; the message says where to put them."""


def missing_files_error(path: Path, what: str, source: str) -> DataFilesMissingError:
    """The error for data files that are not at ``path``: what to download and where."""
    return DataFilesMissingError(
        f"{what} not found at {path}: download {source}, unpack it into the data directory "
        f"{path.parent} (set OSCSIM_DATA to use another folder) and run again"
    )


# ----------------------------------------------------------------------------------------
# CIFAR-10


class _ArraysOnlyUnpickler(pickle.Unpickler):
    """Builds dicts, lists, bytes, str, int and numpy arrays; any other global is refused."""

    _ALLOWED: ClassVar[dict[tuple[str, str], Any]] = {
        ("builtins", "dict"): dict,
        ("builtins", "list"): list,
        ("builtins", "bytes"): bytes,
        ("builtins", "str"): str,
        ("builtins", "int"): int,
        ("__builtin__", "dict"): dict,
        ("__builtin__", "list"): list,
        ("__builtin__", "str"): str,
        ("__builtin__", "int"): int,
        ("numpy", "ndarray"): np.ndarray,
        ("numpy", "dtype"): np.dtype,
    }

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) in self._ALLOWED:
            return self._ALLOWED[(module, name)]
        if name == "_reconstruct" and module in ("numpy.core.multiarray", "numpy._core.multiarray"):
            try:
                from numpy._core.multiarray import _reconstruct  # numpy >= 2
            except ImportError:  # pragma: no cover - numpy 1.x
                from numpy.core.multiarray import _reconstruct  # type: ignore[no-redef]
            return _reconstruct
        raise pickle.UnpicklingError(
            f"{module}.{name} is not allowed in a CIFAR-10 batch file (only arrays and plain "
            "values are read; a file that names other objects is refused)"
        )


def _read_cifar_batch(path: Path) -> tuple[np.ndarray, np.ndarray]:
    try:
        with path.open("rb") as f:
            batch = _ArraysOnlyUnpickler(f, encoding="bytes").load()
    except (pickle.UnpicklingError, EOFError, ValueError) as error:
        raise OscsimInputError(f"{path} is not a CIFAR-10 batch file: {error}") from error
    if not isinstance(batch, dict):
        raise OscsimInputError(f"{path} is not a CIFAR-10 batch file (not a dict)")
    data = batch.get(b"data", batch.get("data"))
    labels = batch.get(b"labels", batch.get("labels"))
    data = np.asarray(data)
    labels = np.asarray(labels, dtype=np.int64)
    if data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3072:
        raise OscsimInputError(
            f"{path}: data must be uint8 (n, 3072), got {data.dtype} {data.shape}"
        )
    if labels.shape != (len(data),) or labels.min(initial=0) < 0 or labels.max(initial=0) > 9:
        raise OscsimInputError(f"{path}: labels must be n integers 0..9, got shape {labels.shape}")
    return data.reshape(-1, 3, 32, 32), labels


def read_cifar10(root: str | Path | None = None) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """CIFAR-10 from its python batch files.

    Parameters
    ----------
    root
        The data directory (default ``$OSCSIM_DATA`` or ``~/.cache/oscsim``); the files are
        in its ``cifar-10-batches-py`` folder.

    Returns
    -------
    dict
        ``{"train": (images, labels), "test": (images, labels)}``: images uint8
        ``(n, 3, 32, 32)`` (channel, row, column), labels int64 ``(n,)``.

    Raises
    ------
    DataFilesMissingError
        A batch file is missing; the message says where to put the files.
    OscsimInputError
        A file that is not a CIFAR-10 batch, or a pickle that names other objects.
    """
    folder = data_dir(root) / CIFAR_FOLDER
    names = (*CIFAR_TRAIN_FILES, CIFAR_TEST_FILE)
    missing = [name for name in names if not (folder / name).is_file()]
    if missing:
        raise missing_files_error(
            folder,
            f"CIFAR-10 ({', '.join(missing)})",
            "the CIFAR-10 python version (cifar-10-python.tar.gz)",
        )
    train = [_read_cifar_batch(folder / name) for name in CIFAR_TRAIN_FILES]
    return {
        "train": (np.concatenate([t[0] for t in train]), np.concatenate([t[1] for t in train])),
        "test": _read_cifar_batch(folder / CIFAR_TEST_FILE),
    }


def cifar_rows(images: np.ndarray) -> np.ndarray:
    """Images ``(n, 3, 32, 32)`` uint8 → sequences ``(n, 32, 96)`` float32 in [0, 1].

    Step ``r`` holds row ``r`` of the red, then the green, then the blue plane (32 values
    each), scaled by 1/255: the layout of coRNN's noisy CIFAR-10.
    """
    return (images.transpose(0, 2, 1, 3).reshape(len(images), 32, 96) / np.float32(255.0)).astype(
        np.float32
    )


# ----------------------------------------------------------------------------------------
# IMDB and GloVe

_BREAK = re.compile(r"<br\s*/?>", re.IGNORECASE)
_TOKEN = re.compile(r"\w+(?:'\w+)?|[^\w\s]")


def tokenize(text: str) -> list[str]:
    """Split a review into tokens (the module docstring says how, and how it differs).

    Examples
    --------
    >>> tokenize("I didn't like it.<br /><br />Not at all!")
    ['I', "didn't", 'like', 'it', '.', 'Not', 'at', 'all', '!']
    """
    return _TOKEN.findall(_BREAK.sub(" ", text))


def read_imdb(root: str | Path | None = None) -> dict[str, tuple[list[str], np.ndarray]]:
    """The IMDB reviews and labels (1 positive, 0 negative).

    Returns
    -------
    dict
        ``{"train": (texts, labels), "test": (texts, labels)}``; within a split the negative
        reviews come first, each folder in sorted file-name order.

    Raises
    ------
    DataFilesMissingError
        ``aclImdb/{train,test}/{pos,neg}`` is missing; the message says where to put it.
    """
    folder = data_dir(root) / IMDB_FOLDER
    out: dict[str, tuple[list[str], np.ndarray]] = {}
    for split in ("train", "test"):
        texts: list[str] = []
        labels: list[int] = []
        for label, name in ((0, "neg"), (1, "pos")):
            sub = folder / split / name
            if not sub.is_dir():
                raise missing_files_error(
                    folder, f"IMDB ({split}/{name})", "the Large Movie Review Dataset (aclImdb_v1)"
                )
            files = sorted(sub.glob("*.txt"))
            texts.extend(p.read_text(encoding="utf-8") for p in files)
            labels.extend([label] * len(files))
        out[split] = (texts, np.asarray(labels, dtype=np.int64))
    return out


def build_vocabulary(token_lists: Iterable[list[str]], max_size: int) -> list[str]:
    """``<unk>``, ``<pad>`` and the ``max_size`` most frequent tokens.

    Ties are broken alphabetically, so the vocabulary is a function of the counts alone.
    """
    counts: Counter[str] = Counter()
    for tokens in token_lists:
        counts.update(tokens)
    ranked = sorted(counts.items(), key=lambda item: (-item[1], item[0]))
    return [UNKNOWN, PADDING, *(word for word, _ in ranked[:max_size])]


def read_glove(path: str | Path, vocabulary: list[str], *, seed: int, dim: int = 100) -> np.ndarray:
    """The initial embedding: GloVe vectors for the vocabulary, normal draws elsewhere.

    As published: a word without a GloVe vector starts from N(0, 1) (drawn from
    ``np.random.default_rng(seed)``); the ``<unk>`` and ``<pad>`` rows are zero.

    Returns
    -------
    numpy.ndarray
        float32 ``(len(vocabulary), dim)``.

    Raises
    ------
    DataFilesMissingError
        No file at ``path``.
    OscsimInputError
        A line whose vector is not ``dim`` numbers.
    """
    source = Path(path)
    if not source.is_file():
        raise missing_files_error(source, "GloVe vectors", "glove.6B.zip")
    index = {word: i for i, word in enumerate(vocabulary)}
    table = np.random.default_rng(seed).standard_normal((len(vocabulary), dim)).astype(np.float32)
    with source.open(encoding="utf-8") as f:
        for number, line in enumerate(f, 1):
            word, _, rest = line.rstrip("\n").partition(" ")
            row = index.get(word)
            if row is None:
                continue
            values = np.array(rest.split(" "), dtype=np.float32)
            if values.shape != (dim,):
                raise OscsimInputError(
                    f"{source}:{number}: {word!r} has {values.size} numbers, expected {dim}"
                )
            table[row] = values
    table[index[UNKNOWN]] = 0.0
    table[index[PADDING]] = 0.0
    return table
