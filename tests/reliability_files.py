"""Files for the reliability tests: good inputs, and every kind of bad one a user can give.

`make_files` builds them once per session in a folder; `MALICIOUS_MARKER` is the file a
malicious pickle would create if anything ever unpickled it.
"""

from __future__ import annotations

import json
import os
import pickle
import struct
from pathlib import Path

import numpy as np
import torch
import xarray as xr

from oscsim.io import trajectory_dataset, write_trajectory

#: A small, valid configuration (a ring of 8; a fraction of a second to simulate).
GOOD_CONFIG = """
[network]
grid = [8]
kernel_size = 3
gamma = 1.0
epsilon = 0.2
[initial]
kind = "gaussian"
[solver]
method = "rk4"
dt = 0.05
t_end = 0.5
save_every = 2
progress = false
"""

#: The name of the file the malicious payload tries to create (beside the payload).
MALICIOUS_MARKER = "pwned-marker"


class Payload:
    """Unpickling this runs ``open(path, "w").close()``: proof that code was executed."""

    def __init__(self, path: str) -> None:
        self.path = path

    def __reduce__(self):  # noqa: ANN204 - the pickle protocol
        return (exec, (f"open({self.path!r}, 'w').close()",))


def malicious_pickle(path: Path, marker: Path) -> Path:
    """A raw pickle whose loading would create ``marker``."""
    path.write_bytes(pickle.dumps({"format": 1, "run": Payload(str(marker))}))
    return path


def malicious_torch_save(path: Path, marker: Path) -> Path:
    """A ``torch.save`` (zip) file whose loading would create ``marker``."""
    torch.save({"format": 1, "model_state": Payload(str(marker))}, path)
    return path


def _trajectory(grid: tuple[int, ...] = (8,)) -> xr.Dataset:
    rng = np.random.default_rng(0)
    shape = (3, 1, 1, *grid)
    return trajectory_dataset(
        np.arange(3) * 0.1, rng.standard_normal(shape), rng.standard_normal(shape), config={}
    )


def make_files(root: Path) -> dict[str, Path]:
    """Every input file the campaign uses, under ``root``."""
    root.mkdir(parents=True, exist_ok=True)
    f: dict[str, Path] = {}

    def put(name: str, data: bytes | str) -> Path:
        path = root / name
        if isinstance(data, str):
            path.write_text(data, encoding="utf-8")
        else:
            path.write_bytes(data)
        f[name] = path
        return path

    put("good.toml", GOOD_CONFIG)
    f["good.nc"] = write_trajectory(_trajectory(), root / "good.nc")
    f["good.zarr"] = write_trajectory(_trajectory(), root / "good.zarr")
    f["torus.nc"] = write_trajectory(_trajectory((4, 4)), root / "torus.nc")
    good = f["good.nc"].read_bytes()
    put("truncated.nc", good[: len(good) // 2])
    put("header-only.nc", good[:8])
    put("random.nc", os.urandom(4096))
    put("empty.nc", b"")
    put("text.nc", "this is not a trajectory\n")
    _trajectory().to_netcdf(root / "netcdf3.nc", engine="scipy")
    f["netcdf3.nc"] = root / "netcdf3.nc"
    xr.Dataset({"other": ("x", np.arange(4.0))}).to_netcdf(
        root / "noposition.nc", engine="h5netcdf"
    )
    f["noposition.nc"] = root / "noposition.nc"
    (root / "folder.nc").mkdir()
    f["folder.nc"] = root / "folder.nc"
    (root / "plain.zarr").mkdir()
    (root / "plain.zarr" / "notes.txt").write_text("not a store")
    f["plain.zarr"] = root / "plain.zarr"
    put("file.zarr", "a regular file named like a store")
    put("trajectory.txt", "wrong suffix")
    (root / "a-folder").mkdir()
    f["a-folder"] = root / "a-folder"
    put("a-file", "a regular file")
    # configurations
    put("binary.toml", bytes([0xFF, 0xFE, 0x00, 0x81]) * 64)
    put("latin1.toml", "[network]\ngrid = [8]\n# caf\xe9\n".encode("latin-1"))
    put("invalid.toml", "[network\ngrid = = 3\n")
    put("huge.toml", "# padding\n" * 120_000)
    put("empty.toml", "")
    put("array.toml", "network = [1, 2]\n")
    # checkpoints
    put("random.safetensors", os.urandom(2048))
    put("empty.safetensors", b"")
    put("text.safetensors", "not a checkpoint\n")
    put("json.safetensors", json.dumps({"format": 2}))
    header = json.dumps({"__metadata__": {"other": "x"}}).encode()
    put("foreign.safetensors", struct.pack("<Q", len(header)) + header)
    header = json.dumps({"__metadata__": {"oscsim": "{not json"}}).encode()
    put("badmeta.safetensors", struct.pack("<Q", len(header)) + header)
    put("hugeheader.safetensors", struct.pack("<Q", 10**12) + b"{}")
    marker = root / MALICIOUS_MARKER
    f["pickle.pt"] = malicious_pickle(root / "pickle.pt", marker)
    f["torchsave.pt"] = malicious_torch_save(root / "torchsave.pt", marker)
    f["pickle.safetensors"] = malicious_pickle(root / "pickle.safetensors", marker)
    f["marker"] = marker
    return f
