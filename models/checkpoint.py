"""Training checkpoints that cannot run code: tensors in safetensors, the rest in JSON.

A checkpoint is one `safetensors <https://huggingface.co/docs/safetensors>`_ file. Its
tensors are the model weights, the optimiser's state tensors and the torch RNG state; its
header metadata holds, under the key ``oscsim``, one JSON document with everything else
(run configuration, task state, metric history, optimiser and schedule scalars, the NumPy
and Python RNG states, counters), with each tensor replaced by a reference to its name.
Reading one parses a length-prefixed JSON header and copies raw tensor bytes: nothing in
the file is ever executed, unlike a pickle (``torch.save``), which oscsim no longer reads.

The JSON keeps what plain JSON would lose: tuples (``{"__tuple__": [...]}``),
`collections.Counter` (``{"__counter__": [[key, count], ...]}``), dictionaries with
non-string keys (``{"__dict__": [[key, value], ...]}``) and NumPy arrays
(``{"__ndarray__": [...], "dtype": ...}``), so a state dictionary comes back exactly as
it went in.
"""

from __future__ import annotations

import json
import os
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file

from oscsim.atomic import atomic_target
from oscsim.errors import OscsimInputError

#: The metadata key and format name that mark an oscsim checkpoint, and its version.
METADATA_KEY = "oscsim"
FORMAT_NAME = "oscsim-checkpoint"
FORMAT_VERSION = 2
#: The safetensors header (JSON) may not exceed this many bytes (its reader's own limit).
MAX_HEADER_BYTES = 100_000_000
#: File names in a run folder.
LAST = "last.safetensors"
BEST = "best.safetensors"
_MARKERS = ("__tensor__", "__tuple__", "__counter__", "__dict__", "__ndarray__")


class CheckpointError(OscsimInputError):
    """A file is not an oscsim checkpoint (or a damaged one); nothing of it was run."""


def _encode(value: Any, path: str, tensors: dict[str, torch.Tensor]) -> Any:
    if isinstance(value, torch.Tensor):
        key = path
        while key in tensors:
            key += "_"
        # A copy of its own: safetensors refuses tensors that share memory (tied weights).
        tensors[key] = value.detach().to("cpu").clone().contiguous()
        return {"__tensor__": key}
    if isinstance(value, np.ndarray):
        return {"__ndarray__": value.tolist(), "dtype": str(value.dtype)}
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, Counter):
        return {"__counter__": [[_encode(k, path, tensors), n] for k, n in value.items()]}
    if isinstance(value, dict):
        if all(isinstance(k, str) for k in value) and not any(k in _MARKERS for k in value):
            return {k: _encode(v, f"{path}.{k}", tensors) for k, v in value.items()}
        return {
            "__dict__": [
                [_encode(k, path, tensors), _encode(v, f"{path}.{k}", tensors)]
                for k, v in value.items()
            ]
        }
    if isinstance(value, tuple):
        return {"__tuple__": [_encode(v, f"{path}.{i}", tensors) for i, v in enumerate(value)]}
    if isinstance(value, list):
        return [_encode(v, f"{path}.{i}", tensors) for i, v in enumerate(value)]
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    raise TypeError(
        f"checkpoint entry {path} is a {type(value).__name__}; a checkpoint holds tensors, "
        "arrays, numbers, strings and containers of them"
    )


def _decode(value: Any, tensors: dict[str, torch.Tensor]) -> Any:
    if isinstance(value, list):
        return [_decode(v, tensors) for v in value]
    if not isinstance(value, dict):
        return value
    if "__tensor__" in value:
        return tensors[value["__tensor__"]]
    if "__ndarray__" in value:
        return np.asarray(value["__ndarray__"], dtype=np.dtype(value["dtype"]))
    if "__tuple__" in value:
        return tuple(_decode(v, tensors) for v in value["__tuple__"])
    if "__counter__" in value:
        return Counter({_decode(k, tensors): n for k, n in value["__counter__"]})
    if "__dict__" in value:
        return {_decode(k, tensors): _decode(v, tensors) for k, v in value["__dict__"]}
    return {k: _decode(v, tensors) for k, v in value.items()}


def save_checkpoint(state: dict[str, Any], path: str | os.PathLike[str]) -> Path:
    """Write ``state`` (a dictionary of tensors, arrays, numbers, strings, containers) to
    ``path`` as an oscsim checkpoint, atomically (`oscsim.atomic`).

    Raises
    ------
    TypeError
        If ``state`` holds anything else (an object that only pickle could store).
    """
    tensors: dict[str, torch.Tensor] = {}
    document = {
        "format": FORMAT_NAME,
        "version": FORMAT_VERSION,
        "state": _encode(state, "state", tensors),
    }
    metadata = {METADATA_KEY: json.dumps(document)}
    target = Path(path)
    with atomic_target(target) as tmp:
        save_file(tensors, str(tmp), metadata=metadata)
    return target


def _describe_foreign(head: bytes) -> str:
    if head.startswith(b"PK\x03\x04") or head[:1] == b"\x80":
        return (
            "a pickle-based file (torch.save, the old .pt checkpoint format); oscsim does not "
            "load pickles because loading one can run arbitrary code: retrain, or convert it "
            "where you trust its origin"
        )
    if not head:
        return "empty"
    return "not an oscsim checkpoint (a safetensors file written by oscsim train)"


def load_checkpoint(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Read a checkpoint written by `save_checkpoint` (tensors on the CPU).

    The file is parsed, never executed: a pickle, or anything else that is not an oscsim
    checkpoint, is refused without being interpreted.

    Raises
    ------
    CheckpointError
        If ``path`` is missing, not a regular file, a pickle, not safetensors, or a
        safetensors file without oscsim's metadata; the message names the file and what
        a checkpoint is.
    """
    source = Path(path)
    name = str(source)
    if not source.exists():
        raise CheckpointError(f"checkpoint {name!r} does not exist")
    if not source.is_file():
        raise CheckpointError(
            f"checkpoint {name!r} is not a regular file; give a .safetensors file written "
            "by oscsim train"
        )
    try:
        size = source.stat().st_size
        with source.open("rb") as handle:
            head = handle.read(8)
    except OSError as error:
        raise CheckpointError(f"checkpoint {name!r} cannot be read: {error}") from None
    header = int.from_bytes(head, "little") if len(head) == 8 else -1
    if header <= 1 or header > min(size - 8, MAX_HEADER_BYTES):
        raise CheckpointError(f"checkpoint {name!r} is {_describe_foreign(head)}")
    try:
        with safe_open(name, framework="pt", device="cpu") as handle:
            metadata = handle.metadata() or {}
            text = metadata.get(METADATA_KEY)
            if text is None:
                raise CheckpointError(
                    f"checkpoint {name!r} is a safetensors file without oscsim's metadata; "
                    "give a checkpoint written by oscsim train"
                )
            tensors = {key: handle.get_tensor(key) for key in handle.keys()}  # noqa: SIM118
    except SafetensorError as error:
        raise CheckpointError(
            f"checkpoint {name!r} is damaged or truncated ({' '.join(str(error).split())})"
        ) from None
    try:
        document = json.loads(text)
        if document.get("format") != FORMAT_NAME:
            raise ValueError("format")
        if document.get("version") != FORMAT_VERSION:
            raise CheckpointError(
                f"checkpoint {name!r} has format version {document.get('version')!r}; this "
                f"oscsim reads version {FORMAT_VERSION}"
            )
        state = _decode(document["state"], tensors)
    except CheckpointError:
        raise
    except (ValueError, KeyError, TypeError, AttributeError):
        raise CheckpointError(
            f"checkpoint {name!r} has damaged oscsim metadata; give a checkpoint written by "
            "oscsim train"
        ) from None
    if not isinstance(state, dict) or "run" not in state or "model_state" not in state:
        raise CheckpointError(f"checkpoint {name!r} lacks the run or the model weights")
    return state
