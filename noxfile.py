"""Sessions in the order CI runs them: lint, tests, then demo, docs and bench.

torch is pinned to 2.13.0 here (a CPU build that pip finds on this machine's disk); the
package itself accepts any torch >= 2.2.
"""

from __future__ import annotations

import nox

nox.options.sessions = ["lint", "tests"]
nox.options.reuse_existing_virtualenvs = True

PYTHON = "3.11"
TORCH = "torch==2.13.0"
#: Python code that lint checks (Markdown code blocks are examples, not checked).
CODE = ("oscsim", "models", "analysis", "benchmarks", "tests", "docs/hooks", "noxfile.py")


def _install(session: nox.Session, extras: str = "") -> None:
    session.install(TORCH)
    session.install("-e", f".{extras}")


@nox.session(python=PYTHON)
def lint(session: nox.Session) -> None:
    """ruff and mypy over the packages."""
    _install(session, "[dev]")
    session.run("ruff", "check", *CODE)
    session.run("ruff", "format", "--check", *CODE)
    session.run("mypy")


@nox.session(python=PYTHON)
def tests(session: nox.Session) -> None:
    """The whole test suite (unit, property and end-to-end), under 10 minutes on 2 cores."""
    _install(session, "[dev]")
    session.run("oscsim", "data", "mnist")
    session.run("pytest", "-p", "no:cacheprovider", *session.posargs)


@nox.session(python=PYTHON)
def demo(session: nox.Session) -> None:
    """The main job: simulate, analyse and draw a traveling wave (`oscsim demo`)."""
    _install(session)
    session.run("oscsim", "demo", *session.posargs)


@nox.session(python=PYTHON)
def docs(session: nox.Session) -> None:
    """The documentation site (MkDocs) into site/, offline, with warnings as errors."""
    _install(session, "[docs]")
    session.run(
        "mkdocs", "build", "--strict", "--site-dir", "site", env={"NO_MKDOCS_2_WARNING": "1"}
    )


@nox.session(python=PYTHON)
def bench(session: nox.Session) -> None:
    """The benchmark table: each figure a ratio against its baseline, measured in one run."""
    _install(session, "[dev]")
    session.run("oscsim", "bench", *session.posargs)
