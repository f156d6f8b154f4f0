"""Every example of the README and the docs runs, exactly as written.

Per page, in a fresh temporary working directory and in document order:

- fenced ``python`` blocks run in one namespace, so a page may build on its earlier blocks;
- lines of ``console``/``bash`` blocks that start with ``oscsim`` (after an optional
  ``$ `` prompt) run as commands and must exit with status 0;
- a fenced block right after ``<!-- file: NAME -->`` is written to ``NAME`` (a
  configuration the commands below it read);
- a block right after ``<!-- expensive -->`` (hours of training, the full benchmark) is
  not run; the test prints the reason.

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
    for block in fenced_blocks(page.read_text(encoding="utf-8")):
        where = f"{_page_id(page)}:{block.line}"
        marker = block.marker or ""
        if marker.startswith("file:"):
            (tmp_path / marker[len("file:") :].strip()).write_text(block.code, encoding="utf-8")
            continue
        if block.lang not in PYTHON | SHELL:
            continue
        if marker == "expensive":
            skipped.append(f"{where}: marked expensive (minutes to hours of work), not run")
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
            print(f"\n  skipped {reason}", end="")


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


def test_every_module_with_examples_is_listed() -> None:
    found = set()
    for folder, package in (
        ("oscsim", "oscsim"),
        ("models", "oscsim.models"),
        ("analysis", "oscsim.analysis"),
    ):
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
    for folder, package in (
        ("oscsim", "oscsim"),
        ("models", "oscsim.models"),
        ("analysis", "oscsim.analysis"),
    ):
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
