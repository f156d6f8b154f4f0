"""The bad-input campaign: every command, given what a new user might give it.

Each case runs ``oscsim ...`` in process and must be refused before any work: exit status
2, exactly one line on stderr that names the argument or file and says what is wrong, and
nothing written where the output would go (no file, no temporary). Run it with

    python -m pytest tests/test_reliability.py -q

(docs/reliability.md gives the totals). The signal, kill and checkpoint tests are in
``tests/test_reliability_signals.py`` and ``tests/test_reliability_runs.py``.
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest

from oscsim.cli import main
from tests.reliability_files import MALICIOUS_MARKER, make_files

SIM = ["simulate", "@good.toml", "--out", "%OUT/out.nc"]
TRAIN = ["train", "adding", "--out", "%OUT/run", "--seq-len", "10", "--set", "hidden=9"]
RESUME = ["train", "adding", "--resume", "--out", "@run"]


def _set(item: str, fragment: str) -> tuple[list[str], str]:
    return [*SIM, "--set", item], fragment


# (id, argv with @file and %OUT placeholders, a fragment the one-line message must contain)
CASES: list[tuple[str, list[str], str]] = [
    # --- the command line itself -------------------------------------------------------
    ("no-command", [], "required: COMMAND"),
    ("unknown-command", ["simualte"], "invalid choice: 'simualte'"),
    ("unknown-global-option", ["--verbose", "demo"], "unrecognized arguments: --verbose"),
    ("simulate-no-config", ["simulate"], "required: config"),
    ("simulate-extra-argument", [*SIM, "extra"], "unrecognized arguments: extra"),
    ("simulate-unknown-option", [*SIM, "--dt", "0.1"], "unrecognized arguments: --dt"),
    ("analyze-no-path", ["analyze"], "required: path"),
    ("train-no-task", ["train"], "required: task"),
    ("train-unknown-task", ["train", "mnist"], "invalid choice: 'mnist'"),
    ("evaluate-no-checkpoint", ["evaluate"], "required: checkpoint"),
    ("experiment-unknown", ["experiment", "table"], "invalid choice: 'table'"),
    ("experiment-own-option", ["experiment", "sequence_table"], "required: runs"),
    ("data-unknown", ["data", "cifar"], "invalid choice: 'cifar'"),
    ("bench-unknown-option", ["bench", "--fast"], "unrecognized arguments: --fast"),
    ("demo-unknown-option", ["demo", "--size", "3"], "unrecognized arguments: --size"),
    # --- configuration files -----------------------------------------------------------
    ("config-missing", ["simulate", "%OUT/none.toml"], "does not exist"),
    ("config-directory", ["simulate", "@a-folder"], "is a folder"),
    ("config-dev-null", ["simulate", "/dev/null"], "not a regular file"),
    ("config-dev-zero", ["simulate", "/dev/zero"], "not a regular file"),
    ("config-binary", ["simulate", "@binary.toml"], "is not UTF-8"),
    ("config-latin1", ["simulate", "@latin1.toml"], "is not UTF-8"),
    ("config-invalid-toml", ["simulate", "@invalid.toml"], "is not valid TOML"),
    ("config-huge", ["simulate", "@huge.toml"], "at most 1048576 bytes"),
    ("config-section-not-table", ["simulate", "@array.toml"], "[network] must be a table"),
    ("config-is-trajectory", ["simulate", "@good.nc"], "is not UTF-8"),
    # --- configuration values (each a --set on a good file) ----------------------------
    *[
        (f"set-{name}", *_set(item, fragment))
        for name, item, fragment in [
            ("no-equals", "solver.dt", "expects section.key=value"),
            ("no-section", "dt=0.1", "expects section.key=value"),
            ("unknown-section", "numerics.dt=0.1", "unknown section [numerics]"),
            ("unknown-key", "solver.step=0.1", "unknown key solver.step"),
            ("dt-zero", "solver.dt=0", "solver.dt must be a number > 0"),
            ("dt-negative", "solver.dt=-0.01", "solver.dt must be a number > 0"),
            ("dt-inf", "solver.dt=inf", "solver.dt must be a number > 0"),
            ("dt-nan", "solver.dt=nan", "solver.dt must be a number > 0"),
            ("dt-text", "solver.dt=small", "solver.dt must be a number > 0"),
            ("dt-bool", "solver.dt=true", "solver.dt must be a number > 0"),
            ("t-end-zero", "solver.t_end=0", "solver.t_end must be a number > 0"),
            ("t-end-inf", "solver.t_end=inf", "solver.t_end must be a number > 0"),
            ("t-end-short", "solver.t_end=0.01", "shorter than one saved interval"),
            ("save-every-zero", "solver.save_every=0", "solver.save_every must be an integer"),
            ("save-every-float", "solver.save_every=1.5", "solver.save_every must be an integer"),
            ("method-unknown", "solver.method=rk5", "solver.method must be one of"),
            ("backend-unknown", "solver.backend=jax", "solver.backend must be one of"),
            ("dtype-half", "solver.dtype=float16", "solver.dtype must be one of"),
            ("rtol-zero", "solver.rtol=0", "solver.rtol must be a number > 0"),
            ("atol-nan", "solver.atol=nan", "solver.atol must be a number > 0"),
            ("progress-text", "solver.progress=yes", "solver.progress must be true or false"),
            ("max-state-zero", "solver.max_state=0", "solver.max_state must be a number > 0"),
            ("max-state-nan", "solver.max_state=nan", "solver.max_state must be a number > 0"),
            ("stability-check-int", "solver.stability_check=1", "must be true or false"),
            ("grid-empty", "network.grid=[]", "network.grid must be [n]"),
            ("grid-zero", "network.grid=[0]", "network.grid must be [n]"),
            ("grid-3d", "network.grid=[4,4,4]", "network.grid must be [n]"),
            ("grid-float", "network.grid=[8.5]", "network.grid must be [n]"),
            ("grid-small", "network.grid=[2]", "smaller than network.kernel_size"),
            ("channels-zero", "network.channels=0", "network.channels must be an integer"),
            ("kernel-even", "network.kernel_size=4", "network.kernel_size must be odd"),
            ("coupling-unknown", "network.coupling=dense", "network.coupling must be one of"),
            ("activation-unknown", "network.activation=relu", "network.activation must be"),
            ("gamma-negative", "network.gamma=-1", "network.gamma must be a number >= 0"),
            ("gamma-inf", "network.gamma=inf", "network.gamma must be a number >= 0"),
            ("epsilon-nan", "network.epsilon=nan", "network.epsilon must be a number >= 0"),
            ("epsilon-text", "network.epsilon=low", "network.epsilon must be a number >= 0"),
            ("bias-inf", "network.bias=inf", "network.bias must be a (nested) list of finite"),
            ("seed-negative", "network.seed=-1", "network.seed must be an integer >= 0"),
            ("kernel-wrong-size", "network.kernel_position=[1,2,3,4,5]", "has size 5"),
            ("kernel-nan", "network.kernel_position=[1,nan,1]", "list of finite numbers"),
            ("initial-kind", "initial.kind=noise", "initial.kind must be one of"),
            ("amplitude-inf", "initial.amplitude=inf", "initial.amplitude must be a finite"),
            ("amplitude-nan", "initial.amplitude=nan", "initial.amplitude must be a finite"),
            ("width-zero", "initial.width=0", "initial.width must be a number > 0"),
            ("center-length", "initial.center=[1,2]", "initial.center must have 1 entries"),
            ("center-inf", "initial.center=[inf]", "initial.center must be a list of finite"),
            ("frequency-nan", "initial.frequency=nan", "initial.frequency must be a finite"),
            ("samples-zero", "initial.samples=0", "initial.samples must be an integer >= 1"),
            ("file-without-path", "initial.kind=file", "needs initial.path"),
            ("output-suffix", "output.path=run.h5", "output.path must end in .nc or .zarr"),
            ("device-unknown", "solver.device=tpu", "solver.device 'tpu'"),
            ("device-cuda", "solver.device=cuda", "no CUDA device is available"),
            ("device-cuda-index", "solver.device=cuda:7", "CUDA"),
        ]
    ],
    (
        "set-numba-float32",
        [*SIM, "--set", "solver.backend=numba", "--set", "solver.dtype=float32"],
        "computes in float64",
    ),
    (
        "set-numba-method",
        [*SIM, "--set", "solver.backend=numba", "--set", "solver.method=dopri8"],
        "is not available with solver.backend = 'numba'",
    ),
    # --- initial state from a file ------------------------------------------------------
    *[
        (
            f"initial-file-{name}",
            [*SIM, "--set", "initial.kind=file", "--set", f"initial.path='{path}'"],
            fragment,
        )
        for name, path, fragment in [
            ("missing", "%OUT/none.nc", "does not exist"),
            ("directory", "@folder.nc", "not a regular file"),
            ("truncated", "@truncated.nc", "cannot be read"),
            ("random", "@random.nc", "is not a netCDF4 (HDF5) file"),
            ("netcdf3", "@netcdf3.nc", "is classic netCDF3"),
            ("empty", "@empty.nc", "it is empty"),
            ("no-position", "@noposition.nc", "has no variable 'position'"),
            ("wrong-shape", "@torus.nc", "holds states of shape"),
            ("wrong-suffix", "@trajectory.txt", "must end in .nc"),
            ("plain-folder", "@plain.zarr", "is not a zarr store"),
        ]
    ],
    # --- simulate outputs ---------------------------------------------------------------
    ("out-suffix", [*SIM[:2], "--out", "%OUT/out.txt"], "must end in .nc"),
    ("out-no-suffix", [*SIM[:2], "--out", "%OUT/out"], "must end in .nc"),
    ("out-folder-as-file", [*SIM[:2], "--out", "@folder.nc"], "is a folder; give a file name"),
    ("out-file-as-store", [*SIM[:2], "--out", "@file.zarr"], "exists and is not a folder"),
    ("out-folder-not-store", [*SIM[:2], "--out", "@plain.zarr"], "is a folder that is not a"),
    ("out-under-file", [*SIM[:2], "--out", "@a-file/x.nc"], "is a file, not a folder"),
    ("out-name-too-long", [*SIM[:2], "--out", "%OUT/" + "n" * 300 + ".nc"], "at most 255"),
    ("out-folder-too-long", [*SIM[:2], "--out", "%OUT/" + "d" * 256 + "/x.nc"], "at most 255"),
    (
        "out-config-path-folder",
        [*SIM[:2], "--set", "output.path='@folder.nc'"],
        "is a folder; give a file name",
    ),
    # --- resources and stability, refused before work -----------------------------------
    (
        "memory-too-large",
        [
            *SIM,
            *("--set", "network.grid=[4096,4096]", "--set", "solver.save_every=1"),
            *("--set", "solver.t_end=100000", "--set", "solver.dt=0.5"),
        ],
        "of memory",
    ),
    (
        "stability-euler-stiff",
        [*SIM, "--set", "solver.method=euler", "--set", "network.gamma=10000"],
        "outside the stability region of euler",
    ),
    (
        "stability-rk4-large-dt",
        [*SIM, "--set", "network.gamma=10000", "--set", "solver.t_end=5", "--set", "solver.dt=1"],
        "outside the stability region of rk4",
    ),
    (
        "stability-imex-stiff",
        [*SIM, "--set", "solver.method=imex", "--set", "network.gamma=10000"],
        "outside the stability region of imex",
    ),
    (
        "stability-numba-euler",
        [
            *SIM,
            *("--set", "solver.backend=numba", "--set", "solver.method=euler"),
            *("--set", "network.gamma=10000"),
        ],
        "outside the stability region of euler",
    ),
    # --- analyze --------------------------------------------------------------------------
    *[
        (f"analyze-{name}", ["analyze", path, *extra], fragment)
        for name, path, extra, fragment in [
            ("missing", "%OUT/none.nc", [], "does not exist"),
            ("directory", "@folder.nc", [], "not a regular file"),
            ("truncated", "@truncated.nc", [], "cannot be read"),
            ("header-only", "@header-only.nc", [], "cannot be read"),
            ("random", "@random.nc", [], "is not a netCDF4 (HDF5) file"),
            ("text", "@text.nc", [], "is not a netCDF4 (HDF5) file"),
            ("empty", "@empty.nc", [], "it is empty"),
            ("netcdf3", "@netcdf3.nc", [], "is classic netCDF3"),
            ("suffix", "@trajectory.txt", [], "must end in .nc"),
            ("config", "@good.toml", [], "must end in .nc"),
            ("plain-folder", "@plain.zarr", [], "is not a zarr store"),
            ("file-as-store", "@file.zarr", [], "is not a zarr store"),
            ("var-missing", "@good.nc", ["--var", "phase"], "--var 'phase'"),
            ("var-no-position", "@noposition.nc", [], "no such variable"),
            ("band-inf", "@good.nc", ["--band", "0", "inf"], "is not a finite number"),
            ("band-nan", "@good.nc", ["--band", "nan", "1"], "is not a finite number"),
            ("band-text", "@good.nc", ["--band", "low", "1"], "is not a number"),
            ("band-reversed", "@good.nc", ["--band", "2", "1"], "0 <= LOW < HIGH"),
            ("band-negative", "@good.nc", ["--band", "-1", "1"], "0 <= LOW < HIGH"),
            ("band-one-value", "@good.nc", ["--band", "1"], "expected 2 arguments"),
            ("out-file", "@good.nc", ["--out", "@a-file"], "exists and is not a folder"),
            ("out-long", "@good.nc", ["--out", "%OUT/" + "r" * 300], "at most 255"),
        ]
    ],
    # --- train: arguments -----------------------------------------------------------------
    *[
        (f"train-{name}", [*TRAIN, *extra], fragment)
        for name, extra, fragment in [
            ("lr-inf", ["--lr", "inf"], "argument --lr: 'inf' is not a finite number"),
            ("lr-nan", ["--lr", "nan"], "argument --lr: 'nan' is not a finite number"),
            ("lr-zero", ["--lr", "0"], "argument --lr: '0' is not a number > 0"),
            ("lr-negative", ["--lr", "-0.1"], "argument --lr: '-0.1' is not a number > 0"),
            ("lr-text", ["--lr", "fast"], "argument --lr: 'fast' is not a number"),
            ("epochs-zero", ["--epochs", "0"], "argument --epochs: '0' is not an integer >= 1"),
            ("epochs-float", ["--epochs", "1.5"], "argument --epochs: '1.5' is not an integer"),
            ("epochs-negative", ["--epochs", "-3"], "argument --epochs"),
            ("max-steps-zero", ["--max-steps", "0"], "argument --max-steps"),
            ("batch-size-zero", ["--batch-size", "0"], "argument --batch-size"),
            ("batch-size-text", ["--batch-size", "many"], "argument --batch-size"),
            ("seed-negative", ["--seed", "-1"], "argument --seed: '-1' is not an integer >= 0"),
            ("seed-float", ["--seed", "0.5"], "argument --seed"),
            ("limit-train-zero", ["--limit-train", "0"], "argument --limit-train"),
            ("limit-eval-zero", ["--limit-eval", "0"], "argument --limit-eval"),
            ("seq-len-zero", ["--seq-len", "0"], "argument --seq-len"),
            ("checkpoint-every-zero", ["--checkpoint-every", "0"], "argument --checkpoint-every"),
            ("clip-inf", ["--clip-grad-norm", "inf"], "argument --clip-grad-norm: 'inf' is not"),
            ("clip-zero", ["--clip-grad-norm", "0"], "--clip-grad-norm must be positive"),
            ("clip-negative", ["--clip-grad-norm", "-1"], "--clip-grad-norm must be positive"),
            ("device-cuda", ["--device", "cuda"], "--device 'cuda': no CUDA device"),
            ("device-cuda-index", ["--device", "cuda:3"], "--device 'cuda:3'"),
            ("device-unknown", ["--device", "gpu"], "--device 'gpu' is not a torch device"),
            ("device-garbage", ["--device", "!!"], "--device '!!' is not a torch device"),
            ("device-meta", ["--device", "meta"], "--device 'meta' is not supported"),
            (
                "model-unknown",
                ["--model", "transformer"],
                "--model 'transformer' is not a model of adding",
            ),
            ("set-no-equals", ["--set", "grid"], "--set expects key=value"),
            ("set-empty-key", ["--set", "=3"], "--set expects key=value"),
            ("resume-nothing", ["--resume"], "--resume: no checkpoint"),
        ]
    ],
    ("train-out-file", ["train", "adding", "--out", "@a-file"], "exists and is not a folder"),
    ("train-out-under-file", ["train", "adding", "--out", "@a-file/run"], "is a file, not a"),
    ("train-out-long", ["train", "adding", "--out", "%OUT/" + "x" * 300], "at most 255"),
    ("train-out-holds-run", ["train", "adding", "--out", "@run"], "already holds a run"),
    ("train-out-old-pt", ["train", "adding", "--out", "@run-old"], "old pickle-based"),
    (
        "train-resume-old-pt",
        ["train", "adding", "--resume", "--out", "@run-old"],
        "old pickle-based",
    ),
    # --- train --resume: the stored run decides --------------------------------------------
    *[
        (f"resume-{name}", [*RESUME[:1], task, *RESUME[2:], *extra], fragment)
        for name, task, extra, fragment in [
            ("other-task", "smnist", [], "holds a run of task 'adding', not 'smnist'"),
            ("other-forecast-task", "pendulum", [], "not 'pendulum'"),
            ("other-model", "adding", ["--model", "cornn"], "--model 'cornn' differs"),
            ("other-seed", "adding", ["--seed", "5"], "--seed 5 differs"),
            ("other-lr", "adding", ["--lr", "0.5"], "--lr 0.5 differs"),
            ("other-batch", "adding", ["--batch-size", "3"], "--batch-size 3 differs"),
            ("other-seq-len", "adding", ["--seq-len", "11"], "--seq-len 11 differs"),
            ("other-limit-eval", "adding", ["--limit-eval", "5"], "--limit-eval 5 differs"),
            ("other-clip", "adding", ["--clip-grad-norm", "1"], "--clip-grad-norm 1.0 differs"),
            ("other-option", "adding", ["--set", "hidden=16"], "--set hidden=16 differs"),
            ("new-option", "adding", ["--set", "dt=0.5"], "--set dt=0.5 differs"),
            ("lr-inf", "adding", ["--lr", "inf"], "is not a finite number"),
        ]
    ],
    *[
        (f"resume-{name}", ["train", "adding", "--resume", "--out", folder], fragment)
        for name, folder, fragment in [
            ("random-bytes", "@run-random", "is not an oscsim checkpoint"),
            ("pickle", "@run-pickle", "pickle-based file"),
            ("empty", "@run-empty", "is empty"),
            ("folder", "@run-folder", "is not a regular file"),
        ]
    ],
    # --- evaluate ---------------------------------------------------------------------------
    *[
        (f"evaluate-{name}", ["evaluate", path, *extra], fragment)
        for name, path, extra, fragment in [
            ("missing", "%OUT/none.safetensors", [], "does not exist"),
            ("directory", "@a-folder", [], "is not a regular file"),
            ("random", "@random.safetensors", [], "is not an oscsim checkpoint"),
            ("empty", "@empty.safetensors", [], "is empty"),
            ("text", "@text.safetensors", [], "is not an oscsim checkpoint"),
            ("json", "@json.safetensors", [], "is not an oscsim checkpoint"),
            ("foreign-safetensors", "@foreign.safetensors", [], "without oscsim's metadata"),
            ("damaged-metadata", "@badmeta.safetensors", [], "damaged oscsim metadata"),
            ("huge-header", "@hugeheader.safetensors", [], "is not an oscsim checkpoint"),
            ("pickle", "@pickle.pt", [], "pickle-based file"),
            ("torch-save", "@torchsave.pt", [], "pickle-based file"),
            ("pickle-renamed", "@pickle.safetensors", [], "pickle-based file"),
            ("trajectory", "@good.nc", [], "is not an oscsim checkpoint"),
            ("config", "@good.toml", [], "is not an oscsim checkpoint"),
            ("truncated", "@truncated.safetensors", [], "damaged or truncated"),
            ("batch-size-zero", "@run/last.safetensors", ["--batch-size", "0"], "--batch-size"),
            ("batch-size-negative", "@run/last.safetensors", ["--batch-size", "-4"], "--batch"),
            ("batch-size-text", "@run/last.safetensors", ["--batch-size", "all"], "--batch-size"),
            ("limit-zero", "@run/last.safetensors", ["--limit", "0"], "argument --limit"),
            ("split-unknown", "@run/last.safetensors", ["--split", "train"], "invalid choice"),
        ]
    ],
    # --- the other commands -----------------------------------------------------------------
    ("demo-out-file", ["demo", "--out", "@a-file"], "exists and is not a folder"),
    ("demo-out-long", ["demo", "--out", "%OUT/" + "o" * 300], "at most 255"),
    ("bench-only-nothing", ["bench", "--only", "no-such-benchmark"], "matches no benchmark"),
    ("bench-out-folder", ["bench", "--out", "@a-folder"], "is a folder; give a file name"),
    ("data-cache-file", ["data", "mnist", "--cache-dir", "@a-file"], "exists and is not a"),
]


@pytest.fixture(scope="session")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Bad and good inputs, plus run folders: a finished tiny run and damaged copies."""
    root = tmp_path_factory.mktemp("inputs")
    made = make_files(root)
    run = root / "run"
    argv = ["train", "adding", "--out", str(run), "--max-steps", "2", "--seq-len", "10"]
    argv += ["--limit-eval", "8", "--batch-size", "4", "--set", "hidden=9", "--lr", "0.01"]
    assert main(argv) == 0
    made["run"] = run
    for name, content in [
        ("run-random", made["random.safetensors"]),
        ("run-pickle", made["pickle.pt"]),
        ("run-empty", made["empty.safetensors"]),
    ]:
        (root / name).mkdir()
        shutil.copy(content, root / name / "last.safetensors")
        made[name] = root / name
    (root / "run-folder" / "last.safetensors").mkdir(parents=True)
    made["run-folder"] = root / "run-folder"
    (root / "run-old").mkdir()
    shutil.copy(made["pickle.pt"], root / "run-old" / "last.pt")
    made["run-old"] = root / "run-old"
    data = (run / "last.safetensors").read_bytes()
    made["truncated.safetensors"] = root / "truncated.safetensors"
    made["truncated.safetensors"].write_bytes(data[: len(data) - 100])
    return made


def _expand(arg: str, files: dict[str, Path], out: Path) -> str:
    arg = arg.replace("%OUT", str(out))
    return re.sub(r"@([\w.\-]+)", lambda match: str(files[match.group(1)]), arg)


@pytest.mark.parametrize(("argv", "fragment"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_bad_input_is_refused_in_one_line_before_any_work(
    argv: list[str], fragment: str, files: dict[str, Path], tmp_path: Path, capsys
) -> None:
    out = tmp_path / "out"
    out.mkdir()
    status = main([_expand(a, files, out) for a in argv])
    captured = capsys.readouterr()
    err = captured.err
    assert status == 2, err
    assert err.endswith("\n") and err.count("\n") == 1, f"not one line: {err!r}"
    assert err.startswith("oscsim"), err
    assert "Traceback" not in err
    assert fragment in err, err
    assert list(out.iterdir()) == [], "something was written"
    assert not files["marker"].exists(), "a pickle was executed"


def test_the_campaign_has_at_least_150_cases() -> None:
    ids = [case[0] for case in CASES]
    assert len(ids) == len(set(ids)), "case ids must be unique"
    assert len(CASES) >= 150
    commands = {case[1][0] for case in CASES if case[1] and not case[1][0].startswith("-")}
    assert {"simulate", "analyze", "train", "evaluate", "demo", "bench", "data"} <= commands
    assert {"experiment", "simualte"} <= commands


def test_nothing_is_left_beside_the_inputs(files: dict[str, Path]) -> None:
    # No temporary of ours beside any input after the whole campaign (it runs first).
    root = files["good.toml"].parent
    stray = [p for p in root.rglob(".oscsim-*")]
    assert stray == []
    assert not (root / MALICIOUS_MARKER).exists()
