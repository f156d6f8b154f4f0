"""Where data live on disk, and how generated data sets are cached there.

Every data set of `models.data` is either fetched (MNIST) or generated deterministically from a
seed (sequence tasks, rotating MNIST, the Hamiltonian systems). Generated sets are cached as
``.npz`` files under the data directory, keyed by every parameter that changes their content, and
written atomically, so an interrupted run never leaves a truncated file under the final name.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
from tqdm.auto import tqdm

from oscsim.atomic import atomic_target

DATA_ENV_VAR = "OSCSIM_DATA"
"""Environment variable naming the data directory (default ``~/.cache/oscsim``)."""

T = TypeVar("T")


def data_dir(cache_dir: str | os.PathLike[str] | None = None) -> Path:
    """The directory holding fetched and generated data.

    Parameters
    ----------
    cache_dir
        An explicit directory. When ``None``: the environment variable ``OSCSIM_DATA`` if set,
        else ``~/.cache/oscsim``.

    Returns
    -------
    Path
        The directory (not created here).
    """
    if cache_dir is not None:
        return Path(cache_dir).expanduser()
    env = os.environ.get(DATA_ENV_VAR)
    if env:
        return Path(env).expanduser()
    return Path.home() / ".cache" / "oscsim"


def sha256_file(path: str | os.PathLike[str]) -> str:
    """Hex SHA-256 digest of a file's bytes."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def params_key(params: Mapping[str, Any]) -> str:
    """Canonical JSON of a parameter record (sorted keys), the identity of a cached set."""
    return json.dumps(params, sort_keys=True, separators=(",", ":"), default=_jsonable)


def params_digest(params: Mapping[str, Any], length: int = 12) -> str:
    """Short hex digest of :func:`params_key`, used in cache file names."""
    return hashlib.sha256(params_key(params).encode()).hexdigest()[:length]


def _jsonable(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    raise TypeError(f"cannot record {type(value).__name__} in a cache key")


def save_npz_atomic(path: Path, arrays: Mapping[str, np.ndarray], *, compress: bool) -> None:
    """Write ``arrays`` to ``path`` as ``.npz`` through a temporary file and a rename.

    Written through `oscsim.atomic.atomic_target`: on any error or signal the temporary is
    removed and ``path`` is left as it was.
    """
    with atomic_target(path) as tmp, open(tmp, "wb") as f:
        if compress:
            np.savez_compressed(f, **arrays)  # type: ignore[arg-type]
        else:
            np.savez(f, **arrays)  # type: ignore[arg-type]
        f.flush()
        os.fsync(f.fileno())


def load_cached(path: Path, params: Mapping[str, Any]) -> dict[str, np.ndarray] | None:
    """Arrays of a cached set if ``path`` holds one made with exactly ``params``, else ``None``.

    A missing, unreadable or foreign file (different ``params`` record) counts as a miss; the
    caller then regenerates and overwrites it.
    """
    if not path.is_file():
        return None
    try:
        with np.load(path, allow_pickle=False) as npz:
            if str(npz["params"]) != params_key(params):
                return None
            return {name: npz[name] for name in npz.files}
    except (OSError, ValueError, KeyError, EOFError):
        return None


def progress(
    iterable: Iterable[T],
    *,
    total: int,
    enabled: bool | None,
    desc: str,
    items: int | None = None,
    large: int = 1000,
) -> Iterator[T]:
    """Wrap ``iterable`` (``total`` steps) in a tqdm bar.

    ``enabled=None`` shows the bar when the work covers at least ``large`` items (``items``,
    default ``total``) and stderr is a terminal; ``True``/``False`` force it on or off.
    """
    disable: bool | None
    if enabled is None:
        disable = True if (total if items is None else items) < large else None
    else:
        disable = not enabled
    yield from tqdm(iterable, total=total, desc=desc, disable=disable, leave=False)
