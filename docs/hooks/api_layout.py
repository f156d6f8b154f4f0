"""MkDocs hook: lay the packages out as they install, for the API reference.

The folders ``oscsim/``, ``models/``, ``analysis/`` and ``benchmarks/`` install as
``oscsim``, ``oscsim.models``, ``oscsim.analysis`` and ``oscsim.benchmarks`` (setuptools'
``package-dir``; see docs/design.md, "Layout"). mkdocstrings reads packages from folders
without importing them, so before the build this hook copies the sources into
``build/api/oscsim/`` in the installed layout, where the ``paths`` option of mkdocs.yml
points it.
"""

from __future__ import annotations

import shutil
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
TARGET = ROOT / "build" / "api"
#: Installed location (under TARGET) → source folder (under ROOT), as in pyproject.toml.
LAYOUT = {
    "oscsim": "oscsim",
    "oscsim/models": "models",
    "oscsim/analysis": "analysis",
    "oscsim/benchmarks": "benchmarks",
}


def on_startup(command: str, dirty: bool) -> None:
    shutil.rmtree(TARGET, ignore_errors=True)
    for installed, source in LAYOUT.items():
        shutil.copytree(
            ROOT / source,
            TARGET / installed,
            ignore=shutil.ignore_patterns("__pycache__", "*.pyc"),
            dirs_exist_ok=True,
        )
