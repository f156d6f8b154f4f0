"""The public names of each package import as the objects their docs describe.

Every check runs in a fresh interpreter: a name that only resolves correctly because some
other test imported a submodule first would pass in-process and fail for a user.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import pytest

PACKAGES = ("oscsim", "oscsim.models", "oscsim.models.data", "oscsim.analysis")

#: Submodules imported in between, so that ``PKG.X`` is checked again once the package's
#: submodules are bound as its attributes (the state in which a lazy ``__getattr__`` that
#: shares a name with a submodule goes wrong).
SUBMODULES = {
    "oscsim": (
        "oscsim.integration",
        "oscsim.simulation",
        "oscsim.network",
        "oscsim.config",
        "oscsim.io",
        "oscsim.errors",
        "oscsim.parameters",
    ),
    "oscsim.models": (
        "oscsim.models.training",
        "oscsim.models.runs",
        "oscsim.models.tasks",
        "oscsim.models.sequence",
        "oscsim.models.forecast",
        "oscsim.models.forecast_tasks",
        "oscsim.models.equivariance",
    ),
    "oscsim.models.data": (
        "oscsim.models.data.hamiltonian",
        "oscsim.models.data.mnist",
        "oscsim.models.data.rotating",
        "oscsim.models.data.sequences",
    ),
    "oscsim.analysis": (
        "oscsim.analysis.accessor",
        "oscsim.analysis.fields",
        "oscsim.analysis.report",
        "oscsim.analysis.spectrum",
        "oscsim.analysis.statistics",
    ),
}

PROBE = textwrap.dedent(
    """
    import importlib, json, pkgutil, sys, types

    package_name, submodules = sys.argv[1], json.loads(sys.argv[2])
    package = importlib.import_module(package_name)
    problems = []
    names = list(package.__all__)
    if len(names) != len(set(names)):
        problems.append(f"__all__ has duplicates: {sorted(names)}")

    def kind(obj):
        return "module" if isinstance(obj, types.ModuleType) else type(obj).__name__

    # 1. from PKG import X, for each X, before anything else is imported explicitly.
    for name in names:
        namespace = {}
        exec(f"from {package_name} import {name} as value", namespace)
        if isinstance(namespace["value"], types.ModuleType):
            problems.append(f"from {package_name} import {name} gives a module")
    # 2. PKG.X before and after importing the package's submodules: the same object.
    before = {name: getattr(package, name) for name in names}
    for sub in submodules:
        importlib.import_module(sub)
    for name in names:
        after = getattr(package, name)
        if isinstance(after, types.ModuleType):
            problems.append(f"{package_name}.{name} is a module after importing submodules")
        elif after is not before[name]:
            problems.append(f"{package_name}.{name} changed after importing submodules")
        namespace = {}
        exec(f"from {package_name} import {name} as value", namespace)
        if namespace["value"] is not before[name]:
            problems.append(f"from {package_name} import {name} changed after submodules")
    # 3. No public name is also the name of a submodule.
    submodule_names = {info.name for info in pkgutil.iter_modules(package.__path__)}
    for name in sorted(set(names) & submodule_names):
        problems.append(f"{package_name}.{name} is both a public name and a submodule")
    print(json.dumps({"problems": problems, "kinds": {n: kind(before[n]) for n in names}}))
    """
)


def _run(code: str, *args: str) -> str:
    result = subprocess.run(
        [sys.executable, "-c", code, *args], capture_output=True, text=True, timeout=300
    )
    if result.returncode != 0:
        raise AssertionError(f"probe failed (exit {result.returncode}):\n{result.stderr}")
    return result.stdout.strip().splitlines()[-1]


@pytest.mark.parametrize("package", PACKAGES)
def test_every_public_name_is_the_documented_object(package: str) -> None:
    report = json.loads(_run(PROBE, package, json.dumps(SUBMODULES[package])))
    assert report["problems"] == []
    # Every name is something documented: a class, function, constant or version string;
    # never a module (checked above) and never None.
    assert "NoneType" not in report["kinds"].values(), report["kinds"]
    assert report["kinds"], f"{package}.__all__ is empty"


def test_functions_and_classes_are_what_the_docs_say() -> None:
    code = textwrap.dedent(
        """
        import inspect
        from oscsim import OscillatorNetwork, integrate, simulate, Solution
        from oscsim.models import Trainer, build_run, evaluate
        from oscsim.analysis import wave_report, WavesAccessor
        checks = [inspect.isfunction(integrate), inspect.isfunction(simulate),
                  inspect.isclass(OscillatorNetwork), inspect.isclass(Solution),
                  inspect.isclass(Trainer), inspect.isfunction(build_run),
                  inspect.isfunction(evaluate), inspect.isfunction(wave_report),
                  inspect.isclass(WavesAccessor)]
        print(all(checks))
        """
    )
    assert _run(code) == "True"


def test_analysis_never_imports_torch() -> None:
    code = textwrap.dedent(
        """
        import sys
        import oscsim.analysis, oscsim.analysis.figures
        import xarray as xr, numpy as np
        da = xr.DataArray(np.cos(np.arange(64)[:, None] * 0.3 - np.arange(16)), dims=("time", "x"),
                          coords={"time": np.arange(64) * 0.1})
        da.waves.speed()
        print(sorted(m for m in sys.modules if m == "torch" or m.startswith("torch.")))
        """
    )
    assert _run(code) == "[]"
