"""Noisy sequential CIFAR-10 and IMDB from small files written here in the standard formats."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pytest
import torch
from oscsim.models.data.text_image import (
    DataFilesMissingError,
    build_vocabulary,
    read_cifar10,
    read_glove,
    tokenize,
)
from oscsim.models.tasks import build_task

from oscsim.cli import main
from oscsim.errors import OscsimInputError


def _write_cifar(root: Path, per_file: int = 10) -> dict[str, np.ndarray]:
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    written = {}
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        data = rng.integers(0, 256, size=(per_file, 3072), dtype=np.uint8)
        labels = [int(v) for v in rng.integers(0, 10, size=per_file)]
        batch = {
            b"batch_label": name.encode(),
            b"labels": labels,
            b"data": data,
            b"filenames": [f"{i}.png".encode() for i in range(per_file)],
        }
        # The distributed files are Python 2 pickles whose strings load as bytes; protocol 3
        # writes bytes with its own opcodes (protocol 2 from Python 3 would call
        # _codecs.encode, which the reader rightly refuses). Arrays pickle alike in both.
        (folder / name).write_bytes(pickle.dumps(batch, protocol=3))
        written[name] = data
    return written


class _Opens:
    """Unpickling this would call open() and create a file: a stand-in for any code."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def __reduce__(self):
        return (open, (str(self.path), "w"))


def test_cifar_batches_are_read_and_anything_but_arrays_is_refused(tmp_path: Path) -> None:
    written = _write_cifar(tmp_path)
    data = read_cifar10(tmp_path)
    images, labels = data["train"]
    assert images.shape == (50, 3, 32, 32) and labels.shape == (50,)
    assert np.array_equal(images[:10].reshape(10, 3072), written["data_batch_1"])
    marker = tmp_path / "ran"
    evil = {b"data": np.zeros((1, 3072), np.uint8), b"labels": [0], b"x": _Opens(marker)}
    (tmp_path / "cifar-10-batches-py" / "test_batch").write_bytes(pickle.dumps(evil, protocol=3))
    with pytest.raises(OscsimInputError, match=r"io.open is not allowed in a CIFAR-10 batch file"):
        read_cifar10(tmp_path)
    assert not marker.exists()


def test_noisy_cifar_sequences_follow_the_published_layout(tmp_path: Path, monkeypatch) -> None:
    _write_cifar(tmp_path)
    monkeypatch.setenv("OSCSIM_DATA", str(tmp_path))
    task = build_task("noisy_cifar10", seed=0)
    images, _ = read_cifar10(tmp_path)["train"]
    # 3 of every 50 training images validate (3,000 of 50,000).
    assert task.batches_per_epoch(1) == 47
    x, y = next(task.eval_batches("validation", 3))
    assert x.shape == (3, 1000, 96) and y.shape == (3,)
    first = int(task._index["validation"][0])
    # Step r: row r of the red, green and blue planes, in [0, 1].
    row = 5
    expected = np.concatenate([images[first, c, row] for c in range(3)]) / 255.0
    assert np.allclose(x[0, row].numpy(), expected, atol=1e-7)
    # Then 968 steps of one noise tensor, the same for every image and split.
    x_test, _ = next(task.eval_batches("test", 2))
    assert torch.equal(x[0, 32:], x[1, 32:]) and torch.equal(x[0, 32:], x_test[1, 32:])
    assert abs(float(x[0, 32:].std()) - 1.0) < 0.05
    other = build_task("noisy_cifar10", seed=1)
    assert not torch.equal(other.noise, task.noise)


def _write_imdb(root: Path) -> None:
    reviews = {
        "train/pos": ["A great film.<br />Great acting!", "great fun", "Loved it, great", "fun"],
        "train/neg": ["A bad film.", "bad, bad acting", "I didn't like it", "boring and bad"],
        "test/pos": ["great"],
        "test/neg": ["bad film", "terrible"],
    }
    for folder, texts in reviews.items():
        path = root / "aclImdb" / folder
        path.mkdir(parents=True)
        for i, text in enumerate(texts):
            (path / f"{i}_7.txt").write_text(text, encoding="utf-8")
    lines = [
        f"{w} " + " ".join(f"{(i + 1) * 0.01 + j * 1e-3:.4f}" for j in range(100))
        for i, w in enumerate(["great", "bad", "film", "the"])
    ]
    (root / "glove.6B.100d.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")


def test_tokens_vocabulary_and_glove_embedding(tmp_path: Path) -> None:
    assert tokenize("I didn't like it.<br /><br />Not at all!") == [
        "I", "didn't", "like", "it", ".", "Not", "at", "all", "!",
    ]  # fmt: skip
    vocabulary = build_vocabulary([["b", "a", "b"], ["c", "a", "b"]], max_size=2)
    assert vocabulary == ["<unk>", "<pad>", "b", "a"]
    _write_imdb(tmp_path)
    table = read_glove(tmp_path / "glove.6B.100d.txt", ["<unk>", "<pad>", "bad", "zzz"], seed=0)
    assert table.shape == (4, 100) and table.dtype == np.float32
    assert not table[:2].any()
    assert table[2, 0] == pytest.approx(0.02) and table[2, 99] == pytest.approx(0.02 + 0.099)
    assert table[3].std() > 0.3  # a word without a GloVe vector: N(0, 1)


def test_imdb_task_splits_pads_and_starts_from_glove(tmp_path: Path, monkeypatch) -> None:
    _write_imdb(tmp_path)
    monkeypatch.setenv("OSCSIM_DATA", str(tmp_path))
    task = build_task("imdb", seed=0)
    assert task.vocabulary[:2] == ["<unk>", "<pad>"] and task.padding_index == 1
    # 30 % of the 8 training reviews validate (7,500 of 25,000): 2.
    assert len(task._index["validation"]) == 2 and task.batches_per_epoch(1) == 6
    tokens, labels = next(task.eval_batches("test", 3))
    assert tokens.dtype == torch.int64 and labels.tolist() == [0.0, 0.0, 1.0]
    # Padded at the end to the longest review of the batch ("bad film" has two tokens).
    assert tokens.shape == (3, 2) and tokens[1, 1] == task.padding_index
    great = task.vocabulary.index("great")
    assert task.initial_embedding[great, 0] == pytest.approx(0.01)


@pytest.mark.parametrize("task", ["noisy_cifar10", "imdb"])
def test_training_runs_from_the_files_and_refuses_without_them(
    tmp_path: Path, monkeypatch, capsys, task: str
) -> None:
    monkeypatch.setenv("OSCSIM_DATA", str(tmp_path / "empty"))
    out = tmp_path / "run"
    args = ["train", task, "--max-steps", "2", "--batch-size", "2", "--limit-eval", "2"]
    assert main([*args, "--out", str(out), "--set", "hidden=16"]) == 2
    err = capsys.readouterr().err
    assert "not found at" in err and "OSCSIM_DATA" in err and not out.exists()
    data = tmp_path / "data"
    data.mkdir()
    _write_cifar(data) if task == "noisy_cifar10" else _write_imdb(data)
    monkeypatch.setenv("OSCSIM_DATA", str(data))
    assert main([*args, "--out", str(out), "--set", "hidden=16"]) == 0
    assert (out / "last.safetensors").exists()


def test_missing_files_error_is_an_input_error() -> None:
    assert issubclass(DataFilesMissingError, OscsimInputError)
    assert issubclass(DataFilesMissingError, FileNotFoundError)
